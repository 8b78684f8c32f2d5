"""i — MPI halo exchange: each rank owns a band of rows, swaps edge rows with its neighbours, blurs; bands are gathered.

How high-performance computing runs a stencil such as a blur across machines: not a queue (e-h) but
SPMD, one program on N ranks started together by ``mpiexec``, each knowing its number.  Per image, in
bulk-synchronous steps (no rank starts a step before the data it needs from the step before is there):

```
rank 0     load ─ Bcast header ─ Scatterv ─ Sendrecv ─ blur ─ barrier ─ Gatherv ─ save
rank 1..   wait ─────┘          (its band) (halo rows) (band) (slowest) (to rank 0)  wait for the next image
```

Why bands and a halo exchange: a band needs ``radius = k // 2`` rows of each neighbour's band to blur
its own edge rows.  The image crosses memory once (scattered, gathered) plus 2 * radius rows per band
boundary, with no broker in between, no message per tile, and no record of who holds what: the plan
(`bands`, `held`, `relayed`) is arithmetic that every rank computes for itself.  Beyond the image's top
and bottom the edge row repeats: the kernel clamps at its array's border, and the first and last bands'
arrays end where the image ends, which is the suite's halo rule.  A band thinner than the radius (5
rows on 3 ranks with k = 21: bands of 2, 2 and 1 rows) needs rows from further than its neighbour:
they are relayed one neighbour hop at a time, each rank passing on what it received at the hop before
(`relayed`).  With fewer rows than ranks, the last ranks own no rows and sit the image out.

What it gives up, beside f, g and h, which carry on past a dead worker: MPI has no recovery.  A rank
that fails calls MPI_Abort, and mpiexec ends every rank of the job; every image is reported as failed
with that rank's one-line reason.  And every step waits for the slowest rank: rank 0 loads and saves
each image while the other ranks wait (the "wait" spans of the timeline), so the blur is parallel but
the I/O is not.

Measured (benchmarks/i_mpi_vs_tiles.py: the five samples, k = 21, 2 ranks on a shared 2-core machine):
a launch costs about 1.1 s before the first image (mpiexec itself 0.13-0.3 s, the rest each rank importing
numpy, numba and Pillow and loading the kernel), so on five small photos i is the slowest (1.8 s against
a's 0.5 s), and after its start it does a's work in a's time: rank 0's load and save are serial, and the
other rank waits through them (0.59 s of "wait" in 0.68 s).  What bands save is movement: the 25 MB of
pixels went out and back in 0.09 s and the halo exchange took 0.01 s (summed over both ranks), without
a broker.  Where the blur dominates (the direct kernel, k = 41) i's work after its start took 2.77 s
against 3.11 s for b.processes and 4.70 s for g.  So bands beat tiles on a queue when the blur
dominates (large images, a heavy kernel, many cores or machines) and a job is long enough to pay the
start once; queues win where workers come and go or fail.

MPICH's blocking calls poll a core while they wait.  With more ranks than free cores, the waiting
ranks take CPU time from the one doing the work (rank 0's load and save): with 4 ranks on this 2-core
machine, rank 0 took 2.4x its 1-rank time (benchmarks/i_mpi_polling.py).  MPICH's own settings did
not help (MPIR_CVAR_POLLS_BEFORE_YIELD yields but keeps polling; MPIR_CVAR_CH4_PROGRESS_THROTTLE
sleeps 1 us now and then): a waiting rank still burned 0.5-0.7 s of CPU per second.  So every step is
started non-blocking and waited for politely (test, sleep 0.2 ms: `i_mpi_rank.finish`): 0.05-0.07 s of
CPU per second, and rank 0 took 1.0-1.4x its 1-rank time with 4 ranks.

This side launches ``mpiexec -n <workers> python -m approaches.i_mpi_rank settings.json`` (the mpiexec
beside the running Python, from the mpich wheel) in a session of its own; the settings are plain values
and rank 0 writes a JSON report (images saved and failed, every rank's spans).  This side checks the
report against its own list of inputs and names every output itself.  The launch (mpiexec, N
interpreters, imports, the kernel loaded, every rank at a barrier) is each rank's "start" span, timed
apart from the work.  On any exception here, Ctrl-C included, mpiexec gets SIGTERM, which ends every rank.

Across machines the same program runs with a host file (a host name per line, ``host:4`` for 4 ranks
on it), the suite installed at the same path on every host, and rank 0 (on the file's first host) able
to read the input and write the output and the report: ``mpiexec -f hosts -n 8 python -m
approaches.i_mpi_rank settings.json``, or ``run(job, tracer, hosts=Path("hosts"))``.  Only rank 0 reads
a file; the other ranks get the settings and the pixels through MPI.  Span times are each host's clock.
"""

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib.util import find_spec
from pathlib import Path

from approaches.cluster.pods import read_report
from approaches.core.images import output_path
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.trace import Tracer

RANK_PROGRAM = "approaches.i_mpi_rank"
REPORT, SETTINGS, LOG = "report.json", "settings.json", "mpiexec.log"
STAGES = ("start", "load", "wait", "scatter", "exchange", "blur", "gather", "save")
STOP_GRACE_SECONDS = 5.0  # after SIGTERM, mpiexec has this long to end its ranks before its group is killed
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies
NOT_INSTALLED = "MPI is not installed: no mpiexec beside this Python, or no mpi4py (pip install mpich mpi4py)"


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


def mpiexec() -> Path | None:
    """The mpiexec beside the running Python (the mpich wheel puts it there), if MPI is installed."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    return Path(found) if found and find_spec("mpi4py") is not None else None


def run(job: Job, tracer: Tracer, *, hosts: Path | None = None, fail_rank: int | None = None) -> Outcome:
    """Blur job's images on ``workers`` MPI ranks (on the machines of a host file: hosts, or --mpi-hosts).

    fail_rank names a rank that raises at its first blur, on purpose: the tests' way to see MPI end a job.
    """
    launcher = mpiexec()
    if launcher is None:
        return _all_failed(job, NOT_INSTALLED)
    config = job.config
    hosts = hosts or config.mpi_hosts
    with tempfile.TemporaryDirectory(prefix="blur-i-") as private:
        folder = Path(private)
        command = [str(launcher), *(["-f", str(hosts)] if hosts else []), "-n", str(config.workers),
                   sys.executable, "-m", RANK_PROGRAM, str(folder / SETTINGS)]
        settings = {
            "images": [[str(source.path), source.name] for source in job.images],
            "output_dir": str(config.output_dir), "letter": job.letter, "kernel_size": config.kernel_size,
            "png_level": config.png_level, "png_encoder": config.png_encoder, "truncate": config.truncate,
            "kernel": config.kernel,
            "report": str(folder / REPORT), "fail_rank": fail_rank, "launched": time.perf_counter()}
        (folder / SETTINGS).write_text(json.dumps(settings))
        code = _launch(command, folder / LOG)
        for _ in job.images:
            job.progress()
        if not (folder / REPORT).exists():
            return _all_failed(job, _why_no_report(folder, code))
        try:
            report = read_report((folder / REPORT).read_bytes())
            outcome = _outcome(report.result, job)
        except (KeyError, TypeError, ValueError) as error:
            return _all_failed(job, f"unreadable report from rank 0 ({error!r})")
    tracer.extend(report.spans)
    return outcome


def _launch(command: list[str], log: Path) -> int:
    """Run mpiexec in a session of its own, its output (and every rank's) into log; its exit status.

    A session of its own, so Ctrl-C in the terminal reaches this process only, which then stops the job.
    If this process dies without stopping it (SIGKILL), Linux kills mpiexec too (`_end_with_parent`).
    """
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True, preexec_fn=_end_with_parent)
        try:
            return process.wait()
        except BaseException:
            _stop(process)
            raise


def _end_with_parent() -> None:
    """In mpiexec's process, before it starts: have Linux kill it when its parent dies (elsewhere: no-op).

    Without it, a harness killed outright would leave mpiexec and its ranks running in their own sessions.
    SIGKILL, not SIGTERM: mpiexec loses a SIGTERM that comes while it is still starting its ranks (seen here:
    the job then ran to its end); once mpiexec is gone, its proxies end the ranks.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to mpiexec, which passes it to every rank and waits for them; SIGKILL if that takes too long.

    (Hydra, MPICH's mpiexec, starts each rank in a session of its own; only mpiexec can end them all.)
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _why_no_report(folder: Path, code: int) -> str:
    """One line: the failed rank's own reason if it left one, else mpiexec's last line."""
    for failed in sorted(folder.glob("rank-*.failed")):
        return f"{failed.read_text().strip()}; MPI has no recovery, so mpiexec ended the whole job"
    lines = (folder / LOG).read_text(errors="replace").split("\n")
    last = next((line.strip() for line in reversed(lines) if line.strip()), "no output")
    return f"mpiexec ended with exit status {code} and no report ({last})"


def _all_failed(job: Job, reason: str) -> Outcome:
    return Outcome(failed=[Failure(str(source.path), reason) for source in job.images])


def _outcome(result: dict, job: Job) -> Outcome:
    """Rebuild the outcome from this side's own sources; an image the report does not account for fails.

    The report refers to images by their index in the settings, so no name or path is taken from it.
    """
    saved, failed = {}, {}
    for index, width, height, mode in result["saved"]:
        saved[_index(index, job)] = (int(width), int(height), str(mode))
    for index, reason in result["failed"]:
        failed[_index(index, job)] = str(reason)
    outcome = Outcome()
    for index, source in enumerate(job.images):
        if index in saved:
            target = output_path(job.config.output_dir, job.letter, source.name)
            outcome.saved.append(Saved(source.name, source.path, target, *saved[index]))
        else:
            outcome.failed.append(Failure(str(source.path), failed.get(index, "not in rank 0's report")))
    return outcome


def _index(index: object, job: Job) -> int:
    if type(index) is not int or not 0 <= index < len(job.images):
        raise ValueError(f"image index {index!r} is not one of the {len(job.images)} inputs")
    return index
