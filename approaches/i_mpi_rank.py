"""The program every rank of approach i runs: one program, N copies, each with its own rank number (SPMD).

    mpiexec -n 4 python -m approaches.i_mpi_rank settings.json

Rank 0 reads the settings file and broadcasts it; then, per image, every rank takes the same steps in
lock-step (i_mpi's docstring has the lesson and the picture):
1. wait: rank 0 loads the image and broadcasts a header (ok, height, width, channels); an image that
   failed to load has ok = 0, and every rank skips it together.
2. scatter: Scatterv sends each rank its band of rows (`i_mpi.bands`), into the middle of an array
   that has room for the halo rows (`i_mpi.held`).
3. exchange: Sendrecv with the rank above and the rank below fills the halo rows, in as many hops as
   the thinnest band needs (`i_mpi.relayed`).
4. blur: the one kernel, `blur_into`, on the band's rows of that array.
5. wait: a barrier, so the time a rank waits for the slowest one is its own span.
6. gather: Gatherv puts the bands back together on rank 0, which saves the image.

Only uppercase mpi4py calls are used: they move numpy arrays as raw memory, and nothing is pickled.  The
spans go back the same way, as a numpy structured array (stage and image as numbers) through Gatherv,
and rank 0 writes them into its JSON report.  Every call is started non-blocking and waited for by
`finish`, which sleeps between tests: MPICH's blocking calls would keep a waiting rank's core busy.

A rank that raises writes its one-line reason beside the report and calls MPI_Abort: mpiexec then ends
every rank (an uncaught exception would not: the other ranks would wait for it forever).
"""

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from mpi4py import MPI

from approaches.core.errors import ImageError
from approaches.core.images import LoadedImage, load_image, output_path, save_image
from approaches.core.kernel import blur_into, warm_up
from approaches.core.tiling import Tile
from approaches.i_mpi import STAGES, bands, held, hops, lane, relayed

ROOT = 0
POLL_SECONDS = 0.0002  # a waiting rank tests its request this often: 0.2 ms added per step at most
SPAN = np.dtype([("stage", "u1"), ("image", "<i4"), ("start", "<f8"), ("end", "<f8")])
NO_IMAGE = -1  # the image of the "start" span
DOWN, UP = 1, 2  # message tags of the two directions of the exchange


class FailedOnPurpose(RuntimeError):
    """The rank named by the fail_rank setting raises this at its first blur (tests)."""


def finish(*requests: MPI.Request) -> None:
    """Wait for requests without spinning: test, then sleep a little.

    MPICH's Wait polls the core at 100 % until the data comes; on a machine with fewer free cores than
    ranks that takes CPU time from the rank doing the work (benchmarks/i_mpi_polling.py).
    """
    while not MPI.Request.Testall(list(requests)):
        time.sleep(POLL_SECONDS)


class Timeline:
    """This rank's spans, as rows of a structured array once the run is over."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float, float]] = []

    def add(self, stage: str, image: int, start: float, end: float) -> None:
        self.rows.append((STAGES.index(stage), image, start, end))

    @contextmanager
    def span(self, stage: str, image: int) -> Iterator[None]:
        start = time.perf_counter()
        yield
        self.add(stage, image, start, time.perf_counter())

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=SPAN)


class Rank:
    """One rank's part of the job: the settings, its communicator and its timeline."""

    def __init__(self, comm: MPI.Intracomm, settings: dict) -> None:
        self.comm, self.rank, self.size = comm, comm.Get_rank(), comm.Get_size()
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
            finish(self.comm.Ibcast(header, ROOT))
        if not header[0]:
            return
        height, width, channels = (int(n) for n in header[1:])
        plan, radius = bands(height, self.size), self.settings["kernel_size"] // 2
        band, rows = plan[self.rank], held(plan, self.rank, radius)
        local = np.empty((len(rows), width, channels), np.uint8)
        row_bytes = width * channels
        counts = [len(b) * row_bytes for b in plan]
        displacements = [b.start * row_bytes for b in plan]
        whole = np.empty((height, width, channels), np.uint8) if self.rank == ROOT else None
        with self.timeline.span("scatter", index):
            source = [loaded.pixels, counts, displacements, MPI.BYTE] if loaded is not None else None
            finish(self.comm.Iscatterv(source, self._rows(local, rows, band), ROOT))
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
            finish(self.comm.Ibarrier())
        with self.timeline.span("gather", index):
            target = [whole, counts, displacements, MPI.BYTE] if whole is not None else None
            finish(self.comm.Igatherv(self._rows(canvas, rows, band), target, ROOT))
        if whole is not None:
            self._save(index, whole, loaded.mode)

    def _exchange(self, plan: list[range], radius: int, local: np.ndarray, rows: range) -> None:
        """Fill the halo rows: each hop, every rank swaps rows with the rank above and the rank below."""
        above, below = self.rank - 1, self.rank + 1
        for hop in range(1, hops(plan, radius) + 1):
            from_above, from_below = relayed(plan, self.rank, radius, hop)
            to_below = relayed(plan, below, radius, hop)[0] if below < self.size else range(0)
            to_above = relayed(plan, above, radius, hop)[1] if above >= 0 else range(0)
            finish(
                self.comm.Isendrecv(self._rows(local, rows, to_below), _peer(below, to_below), DOWN,
                                    self._rows(local, rows, from_above), _peer(above, from_above), DOWN),
                self.comm.Isendrecv(self._rows(local, rows, to_above), _peer(above, to_above), UP,
                                    self._rows(local, rows, from_below), _peer(below, from_below), UP))

    @staticmethod
    def _rows(local: np.ndarray, rows: range, wanted: range) -> np.ndarray:
        """The image rows ``wanted`` inside local, which holds the image rows ``rows``: a view, never a copy."""
        return local[wanted.start - rows.start:wanted.stop - rows.start] if wanted else local[:0]

    def _load(self, index: int) -> LoadedImage | None:
        path, _ = self.settings["images"][index]
        with self.timeline.span("load", index):
            try:
                loaded = load_image(Path(path))
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
        finish(self.comm.Igather(np.array([spans.size], np.int64), counts, ROOT))
        everyone = np.empty(int(counts.sum()) if counts is not None else 0, SPAN)
        target = None
        if self.rank == ROOT:
            sizes = [int(n) * SPAN.itemsize for n in counts]
            target = [everyone.view(np.uint8), sizes, [sum(sizes[:r]) for r in range(self.size)], MPI.BYTE]
        finish(self.comm.Igatherv(spans.view(np.uint8), target, ROOT))
        if self.rank == ROOT:
            ranks = np.repeat(np.arange(self.size), counts)
            self._write(ranks, everyone)

    def _write(self, ranks: np.ndarray, spans: np.ndarray) -> None:
        names = [name for _, name in self.settings["images"]]
        rows = [[lane(int(rank)), STAGES[span["stage"]], names[span["image"]] if span["image"] != NO_IMAGE else "",
                 None, float(span["start"]), float(span["end"])] for rank, span in zip(ranks, spans, strict=True)]
        doc = {"spans": rows, "result": {"saved": self.saved, "failed": self.failed}}
        report = Path(self.settings["report"])
        partial = report.with_name(f".{report.name}.partial")
        partial.write_text(json.dumps(doc))
        partial.replace(report)  # the harness never reads half a report


def _peer(rank: int, rows: range) -> int:
    """The rank to send to or receive from, or PROC_NULL when there are no rows (both sides agree: same plan)."""
    return rank if rows else MPI.PROC_NULL


def _settings(comm: MPI.Intracomm, path: str) -> dict:
    """Rank 0 reads the settings file and broadcasts its bytes: the other ranks need no shared file system."""
    data = Path(path).read_bytes() if comm.Get_rank() == ROOT else b""
    size = np.array([len(data)], np.int64)
    finish(comm.Ibcast(size, ROOT))
    buffer = np.frombuffer(data, np.uint8).copy() if comm.Get_rank() == ROOT else np.empty(int(size[0]), np.uint8)
    finish(comm.Ibcast(buffer, ROOT))
    return json.loads(buffer.tobytes())


def main(argv: list[str] | None = None) -> None:
    comm = MPI.COMM_WORLD
    rank = Rank(comm, {"report": None})
    try:
        rank.settings = _settings(comm, (argv or sys.argv)[1])
        warm_up(rank.settings["kernel_size"], method=rank.settings["kernel"])
        finish(comm.Ibarrier())  # every rank has started: the end of the "start" span
        rank.timeline.add("start", NO_IMAGE, rank.settings["launched"], time.perf_counter())
        for index in range(len(rank.settings["images"])):
            rank.image(index)
        rank.report()
    except Exception as error:
        _abort(comm, rank.settings["report"], f"rank {comm.Get_rank()}: {type(error).__name__}: {error}")


def _abort(comm: MPI.Intracomm, report: str | None, reason: str) -> None:
    """Leave the reason for the harness, then end every rank of the job: MPI has no recovery."""
    print(reason, file=sys.stderr, flush=True)
    if report is not None:
        with contextlib.suppress(OSError):  # on another host the report's folder may not exist: abort anyway
            Path(report).with_name(f"rank-{comm.Get_rank()}.failed").write_text(reason.replace("\n", " ") + "\n")
    comm.Abort(1)


def _exit_at_once() -> None:
    """Finalize MPI and end the process without Python's own shutdown.

    Tearing down the interpreter (numba's and llvmlite's objects among others) took 0.3-1.3 s per run here,
    after the report was written, and mpiexec waits for it; nothing is left to clean up after MPI_Finalize.
    """
    MPI.Finalize()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
    _exit_at_once()
