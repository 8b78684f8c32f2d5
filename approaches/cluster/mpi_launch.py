"""Launching an MPI job: mpiexec, N copies of a rank program, a settings file in, rank 0's report out.

    mpiexec [-f hosts] -n <workers> python -m <program> settings.json

The mpiexec beside the running Python (from the mpich wheel) runs in a session of its own; the settings
are plain values, and rank 0 writes a JSON report (images saved and failed, every rank's spans).  This
side checks the report against its own list of inputs and names every output itself: the report refers
to images by index, so no name or path is taken from it.  On any exception here, Ctrl-C included,
mpiexec gets SIGTERM, which ends every rank; if this process is killed outright, Linux kills mpiexec.
The launch (mpiexec, N interpreters, imports, the kernel loaded, every rank at a barrier) is each rank's
"start" span, timed apart from the work.

Across machines the same program runs with a host file (a host name per line, ``host:4`` for 4 ranks
on it), the suite installed at the same path on every host, and rank 0 (on the file's first host) able
to read the input and write the output and the report.  Only rank 0 reads a file; the other ranks get
the settings and the pixels through MPI.  Span times are each host's clock.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from importlib.util import find_spec
from pathlib import Path

from approaches.cluster.guardian import Guardian, guarded_folder
from approaches.cluster.pods import read_report
from approaches.core.images import output_path
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.trace import Tracer

REPORT, SETTINGS, LOG = "report.json", "settings.json", "mpiexec.log"
STOP_GRACE_SECONDS = 5.0  # after SIGTERM, mpiexec has this long to end its ranks before its group is killed
NOT_INSTALLED = "MPI is not installed: no mpiexec beside this Python, or no mpi4py (pip install mpich mpi4py)"


def mpiexec() -> Path | None:
    """The mpiexec beside the running Python (the mpich wheel puts it there), if MPI is installed."""
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    return Path(found) if found and find_spec("mpi4py") is not None else None


def run_ranks(job: Job, tracer: Tracer, program: str, *, hosts: Path | None = None,
              fail_rank: int | None = None) -> Outcome:
    """Run the rank program (a module, run with python -m) on ``workers`` MPI ranks (on the machines of a host
    file: hosts, or --mpi-hosts), to blur job's images; the outcome, from rank 0's report.

    fail_rank names a rank that raises at its first blur, on purpose: the tests' way to see MPI end a job.
    """
    launcher = mpiexec()
    if launcher is None:
        return _all_failed(job, NOT_INSTALLED)
    config = job.config
    hosts = hosts or config.mpi_hosts
    with guarded_folder("blur-i-") as guardian:  # should this process die, mpiexec is killed, the folder removed
        folder = guardian.folder
        command = [str(launcher), *(["-f", str(hosts)] if hosts else []), "-n", str(config.workers),
                   sys.executable, "-m", program, str(folder / SETTINGS)]
        settings = {
            "images": [[str(source.path), source.name] for source in job.images],
            "output_dir": str(config.output_dir), "letter": job.letter, "kernel_size": config.kernel_size,
            "png_level": config.png_level, "png_encoder": config.png_encoder, "truncate": config.truncate,
            "kernel": config.kernel, "max_pixels": config.max_pixels,
            "report": str(folder / REPORT), "fail_rank": fail_rank, "launched": time.perf_counter()}
        (folder / SETTINGS).write_text(json.dumps(settings))
        code = _launch(command, folder / LOG, guardian)
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


def _launch(command: list[str], log: Path, guardian: Guardian) -> int:
    """Run mpiexec in a session of its own, its output (and every rank's) into log; its exit status.

    A session of its own, so Ctrl-C in the terminal reaches this process only, which then stops the job.
    If this process dies without stopping it (SIGKILL), the guardian kills mpiexec (SIGKILL: mpiexec loses a
    SIGTERM that comes while it still starts its ranks; once it is gone, its proxies end the ranks).
    """
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        guardian.watch(process)
        try:
            return process.wait()
        except BaseException:
            _stop(process)
            raise
        finally:
            guardian.forget(process)


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
