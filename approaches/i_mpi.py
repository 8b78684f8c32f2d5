"""i — MPI halo exchange: the program every rank runs; each owns a band of rows and swaps edge rows with its neighbours.

How high-performance computing runs a stencil such as a blur across machines: not a queue (e-h) but SPMD,
one program on N ranks started together by mpiexec (``python -m approaches.i_mpi settings.json``, launched
by cluster/mpi_launch.py), each knowing its number.  Per image, in lock-step:

    rank 0     load ─ Bcast header ─ Scatterv ─ Sendrecv ─ blur ─ barrier ─ Gatherv ─ save   (gathered into the image)
    rank 1..   wait ─────┘          (its band) (halo rows) (band) (slowest) (to rank 0)  wait for the next image

A band needs radius = k // 2 rows of each neighbour's band to blur its edge rows; the plan (`bands`, `held`,
`relayed`) is arithmetic every rank computes for itself, and a band thinner than the radius gets its rows
relayed one neighbour hop at a time.  No broker, no message per tile, no record of who holds what.
The guarantee: none past a failure.  A rank that raises calls MPI_Abort, mpiexec ends every rank, and
every image fails with that rank's one-line reason.  Only uppercase mpi4py calls are used (numpy arrays
as raw memory, nothing pickled), each started non-blocking and waited for by `Rank.finish`, which sleeps
between tests: MPICH's blocking calls keep a waiting rank's core busy.  mpi4py is imported in `main`
only: importing it initialises MPI, and the suite imports every lesson.
"""

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, NoReturn

import numpy as np

from approaches.cluster.mpi_launch import run_ranks
from approaches.core.errors import ImageError
from approaches.core.images import LoadedImage, load_image, output_path, save_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_into, warm_up
from approaches.core.tiling import Tile
from approaches.core.trace import Tracer

if TYPE_CHECKING:  # for annotations only: importing mpi4py initialises MPI (see main)
    from mpi4py import MPI

RANK_PROGRAM = "approaches.i_mpi"  # this module, as mpiexec starts it on every rank
RANK_STAGES = ("start", "load", "wait", "scatter", "exchange", "blur", "gather", "save")
"""A rank's stages, numbered so that its spans travel as numbers (SPAN's stage)."""
ROOT = 0
POLL_SECONDS = 0.0002  # a waiting rank tests its request this often: 0.2 ms added per step at most
SPAN = np.dtype([("stage", "u1"), ("image", "<i4"), ("start", "<f8"), ("end", "<f8")])
NO_IMAGE = -1  # the image of the "start" span
DOWN, UP = 1, 2  # message tags of the two directions of the exchange


def run(job: Job, tracer: Tracer, *, hosts: Path | None = None, fail_rank: int | None = None) -> Outcome:
    """Blur job's images on ``workers`` MPI ranks, each running this module (cluster/mpi_launch.py).

    fail_rank names a rank that raises at its first blur, on purpose: the tests' way to see MPI end a job.
    """
    return run_ranks(job, tracer, RANK_PROGRAM, hosts=hosts, fail_rank=fail_rank)


# --- the plan: which rows each rank owns, holds and receives (arithmetic every rank does for itself) ------


def lane(rank: int) -> str:
    """The timeline lane of a rank.

    >>> lane(3)
    'rank-3'
    """
    return f"rank-{rank}"


def bands(height: int, ranks: int) -> list[range]:
    """The rows each rank owns: as even as possible, the first ``height % ranks`` bands one row longer.

    With fewer rows than ranks, the last ranks own none (so an empty band never sits between two others).

    >>> bands(10, 3)
    [range(0, 4), range(4, 7), range(7, 10)]
    >>> bands(2, 3)
    [range(0, 1), range(1, 2), range(2, 2)]
    """
    base, extra = divmod(height, ranks)
    starts = [rank * base + min(rank, extra) for rank in range(ranks + 1)]
    return [range(starts[rank], starts[rank + 1]) for rank in range(ranks)]


def held(plan: list[range], rank: int, radius: int) -> range:
    """The image rows a rank holds to blur its band: the band and ``radius`` rows each side, cut at the image.

    Cut, not padded: the kernel repeats the row at its array's border, and a band's array ends where the
    image ends, so beyond the image the edge row repeats (the halo rule).  An empty band holds nothing.

    >>> plan = bands(10, 3)
    >>> held(plan, 0, 2), held(plan, 1, 2), held(plan, 2, 2)
    (range(0, 6), range(2, 9), range(5, 10))
    """
    band, height = plan[rank], plan[-1].stop
    if not band:
        return band
    return range(max(band.start - radius, 0), min(band.stop + radius, height))


def relayed(plan: list[range], rank: int, radius: int, hop: int) -> tuple[range, range]:
    """The rows a rank receives at hop 1, 2, ... of the exchange: (from the rank above, from the rank below).

    From above it gets the rows of rank - hop's band that its halo needs, from below those of rank + hop's.
    At hop 1 a neighbour sends rows of its own band; at hop h it passes on what it received at hop h - 1,
    which holds what this rank needs because a neighbour's halo reaches at least as far that way.  Only a
    band thinner than the radius needs a second hop.  Bands of 2, 2 and 1 rows, radius 3: the last rank
    needs rows 1..3, rows 2 and 3 from rank 1 at hop 1, then row 1 (rank 0's) from rank 1 at hop 2:

    >>> plan = bands(5, 3)
    >>> relayed(plan, 2, 3, 1), relayed(plan, 2, 3, 2)
    ((range(2, 4), range(5, 5)), (range(1, 2), range(5, 5)))
    """
    mine, band = held(plan, rank, radius), plan[rank]
    above = plan[rank - hop] if rank - hop >= 0 else range(0)
    below = plan[rank + hop] if rank + hop < len(plan) else range(0)
    return _overlap(above, range(mine.start, band.start)), _overlap(below, range(band.stop, mine.stop))


def hops(plan: list[range], radius: int) -> int:
    """How many exchange hops give every rank its whole halo (0: one band, or radius 0).

    >>> hops(bands(100, 4), 10), hops(bands(5, 2), 10), hops(bands(5, 5), 2), hops(bands(9, 1), 4)
    (1, 1, 2, 0)
    """
    count = 0
    while any(any(relayed(plan, rank, radius, count + 1)) for rank in range(len(plan))):
        count += 1
    return count


def _overlap(a: range, b: range) -> range:
    start = max(a.start, b.start)
    return range(start, max(start, min(a.stop, b.stop)))


# --- the rank program ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> NoReturn:
    """A rank's life: the settings, the kernel, every image in lock-step with the others, the report; then exit.

    mpi4py is imported here, not at the top: importing it initialises MPI, and the suite imports every lesson.
    """
    from mpi4py import MPI

    rank = Rank(MPI, {"report": None})
    try:
        rank.settings = rank.broadcast_settings((argv or sys.argv)[1])
        warm_up(rank.settings["kernel_size"], method=rank.settings["kernel"])
        rank.finish(rank.comm.Ibarrier())  # every rank has started: the end of the "start" span
        rank.timeline.add("start", NO_IMAGE, rank.settings["launched"], time.perf_counter())
        for index in range(len(rank.settings["images"])):
            rank.image(index)
        rank.report()
    except Exception as error:
        rank.abort(f"rank {rank.rank}: {type(error).__name__}: {error}")
    _exit_at_once(MPI)


class Rank:
    """One rank's part of the job: the settings, its communicator and its timeline."""

    def __init__(self, mpi: ModuleType, settings: dict) -> None:
        self.mpi, self.comm = mpi, mpi.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.settings = settings
        self.timeline = Timeline()
        self.saved: list[list] = []  # rank 0: [index, width, height, mode]
        self.failed: list[list] = []  # rank 0: [index, reason]

    def image(self, index: int) -> None:
        """Every rank's steps for one image (rank 0's load and save included)."""
        loaded, header = None, np.zeros(4, np.int64)  # ok, height, width, channels
        if self.rank == ROOT:
            loaded = self._load(index)
            if loaded is not None:
                header[:] = (1, *loaded.pixels.shape)
        with self.timeline.span("wait", index):
            self.finish(self.comm.Ibcast(header, ROOT))
        if not header[0]:
            return
        height, width, channels = (int(n) for n in header[1:])
        plan, radius = bands(height, self.size), self.settings["kernel_size"] // 2
        band, rows = plan[self.rank], held(plan, self.rank, radius)
        # Rank 0 keeps one copy of the image: its band is blurred from the image itself, and the blurred bands
        # are gathered into it (its rows are read by then), so it holds 1 image and its canvas, not 3 images.
        whole = loaded.pixels if loaded is not None else None
        local = whole[rows.start:rows.stop] if whole is not None else np.empty((len(rows), width, channels), np.uint8)
        row_bytes = width * channels
        counts = [len(b) * row_bytes for b in plan]
        displacements = [b.start * row_bytes for b in plan]
        with self.timeline.span("scatter", index):
            source = [whole, counts, displacements, self.mpi.BYTE] if whole is not None else None
            self.finish(self.comm.Iscatterv(source, self.mpi.IN_PLACE if whole is not None else
                                            self._rows(local, rows, band), ROOT))
        with self.timeline.span("exchange", index):
            self._exchange(plan, radius, local, rows)
        canvas = np.empty_like(local)
        with self.timeline.span("blur", index):
            if self.rank == self.settings["fail_rank"]:
                raise FailedOnPurpose(f"rank {self.rank} failed on purpose (the fail_rank setting)")
            if band:
                tile = Tile(0, 0, band.start - rows.start, width, len(band))
                blur_into(local, tile, canvas, self.settings["kernel_size"], truncate=self.settings["truncate"],
                          method=self.settings["kernel"])
        with self.timeline.span("wait", index):
            self.finish(self.comm.Ibarrier())
        with self.timeline.span("gather", index):
            target = [whole, counts, displacements, self.mpi.BYTE] if whole is not None else None
            self.finish(self.comm.Igatherv(self._rows(canvas, rows, band), target, ROOT))
        if whole is not None:
            self._save(index, whole, loaded.mode)  # the gathered bands

    def _exchange(self, plan: list[range], radius: int, local: np.ndarray, rows: range) -> None:
        """Fill the halo rows: each hop, every rank swaps rows with the rank above and the rank below."""
        above, below = self.rank - 1, self.rank + 1
        for hop in range(1, hops(plan, radius) + 1):
            from_above, from_below = relayed(plan, self.rank, radius, hop)
            to_below = relayed(plan, below, radius, hop)[0] if below < self.size else range(0)
            to_above = relayed(plan, above, radius, hop)[1] if above >= 0 else range(0)
            self.finish(
                self.comm.Isendrecv(self._rows(local, rows, to_below), self._peer(below, to_below), DOWN,
                                    self._rows(local, rows, from_above), self._peer(above, from_above), DOWN),
                self.comm.Isendrecv(self._rows(local, rows, to_above), self._peer(above, to_above), UP,
                                    self._rows(local, rows, from_below), self._peer(below, from_below), UP))

    def finish(self, *requests: "MPI.Request") -> None:
        """Wait for requests without spinning: test, then sleep a little.

        MPICH's Wait polls the core at 100 % until the data comes; on a machine with fewer free cores than
        ranks that takes CPU time from the rank doing the work (benchmarks/i_mpi_polling.py).
        """
        while not self.mpi.Request.Testall(list(requests)):
            time.sleep(POLL_SECONDS)

    def _peer(self, rank: int, rows: range) -> int:
        """The rank to send to or receive from, or PROC_NULL when there are no rows (both sides agree: same
        plan)."""
        return rank if rows else self.mpi.PROC_NULL

    @staticmethod
    def _rows(local: np.ndarray, rows: range, wanted: range) -> np.ndarray:
        """The image rows ``wanted`` inside local, which holds the image rows ``rows``: a view, never a copy."""
        return local[wanted.start - rows.start:wanted.stop - rows.start] if wanted else local[:0]

    def broadcast_settings(self, path: str) -> dict:
        """Rank 0 reads the settings file and broadcasts its bytes: the other ranks need no shared file system."""
        data = Path(path).read_bytes() if self.rank == ROOT else b""
        size = np.array([len(data)], np.int64)
        self.finish(self.comm.Ibcast(size, ROOT))
        buffer = np.frombuffer(data, np.uint8).copy() if self.rank == ROOT else np.empty(int(size[0]), np.uint8)
        self.finish(self.comm.Ibcast(buffer, ROOT))
        return json.loads(buffer.tobytes())

    def _load(self, index: int) -> LoadedImage | None:
        path, _ = self.settings["images"][index]
        with self.timeline.span("load", index):
            try:
                loaded = load_image(Path(path), self.settings["max_pixels"])
            except ImageError as error:
                self.failed.append([index, error.reason])
                return None
        return loaded

    def _save(self, index: int, pixels: np.ndarray, mode: str) -> None:
        s = self.settings
        with self.timeline.span("save", index):
            try:
                save_image(pixels, output_path(Path(s["output_dir"]), s["letter"], s["images"][index][1]),
                           s["png_level"], encoder=s["png_encoder"])
            except ImageError as error:
                self.failed.append([index, error.reason])
                return
        self.saved.append([index, pixels.shape[1], pixels.shape[0], mode])

    def report(self) -> None:
        """Gather every rank's spans on rank 0 (as raw bytes of the structured array), which writes the report."""
        spans = self.timeline.array()
        counts = np.zeros(self.size, np.int64) if self.rank == ROOT else None
        self.finish(self.comm.Igather(np.array([spans.size], np.int64), counts, ROOT))
        everyone = np.empty(int(counts.sum()) if counts is not None else 0, SPAN)
        target = None
        if self.rank == ROOT:
            sizes = [int(n) * SPAN.itemsize for n in counts]
            target = [everyone.view(np.uint8), sizes, [sum(sizes[:r]) for r in range(self.size)], self.mpi.BYTE]
        self.finish(self.comm.Igatherv(spans.view(np.uint8), target, ROOT))
        if self.rank == ROOT:
            ranks = np.repeat(np.arange(self.size), counts)
            self._write(ranks, everyone)

    def _write(self, ranks: np.ndarray, spans: np.ndarray) -> None:
        names = [name for _, name in self.settings["images"]]
        rows = [[lane(int(rank)), RANK_STAGES[span["stage"]], names[span["image"]] if span["image"] != NO_IMAGE else "",
                 None, float(span["start"]), float(span["end"])] for rank, span in zip(ranks, spans, strict=True)]
        doc = {"spans": rows, "result": {"saved": self.saved, "failed": self.failed}}
        report = Path(self.settings["report"])
        partial = report.with_name(f".{report.name}.partial")
        partial.write_text(json.dumps(doc))
        partial.replace(report)  # the harness never reads half a report

    def abort(self, reason: str) -> None:
        """Leave the reason for the harness, then end every rank of the job: MPI has no recovery."""
        print(reason, file=sys.stderr, flush=True)
        report = self.settings["report"]
        if report is not None:
            with contextlib.suppress(OSError):  # on another host the report's folder may not exist: abort anyway
                Path(report).with_name(f"rank-{self.rank}.failed").write_text(reason.replace("\n", " ") + "\n")
        self.comm.Abort(1)


class FailedOnPurpose(RuntimeError):
    """The rank named by the fail_rank setting raises this at its first blur (tests)."""


class Timeline:
    """This rank's spans, as rows of a structured array once the run is over."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float, float]] = []

    def add(self, stage: str, image: int, start: float, end: float) -> None:
        self.rows.append((RANK_STAGES.index(stage), image, start, end))

    @contextmanager
    def span(self, stage: str, image: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.add(stage, image, start, time.perf_counter())

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=SPAN)


def _exit_at_once(mpi: ModuleType) -> NoReturn:
    """Finalize MPI and end the process without Python's own shutdown.

    Tearing down the interpreter (numba's and llvmlite's objects among others) took 0.3-1.3 s per run here,
    after the report was written, and mpiexec waits for it; nothing is left to clean up after MPI_Finalize.
    """
    mpi.Finalize()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
