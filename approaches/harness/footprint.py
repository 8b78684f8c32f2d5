"""How much memory a whole command takes at its peak: the command and every process it starts, added up.

A run's memory is not one process's: b.processes forks workers, the queue approaches start pods and an
embedded Valkey, h a dask cluster, i MPI ranks, j a RabbitMQ node.  `measure_command` starts the command in a
session of its own and, every `interval_s`, adds up the proportional set size (PSS) of every process of that
session and every descendant (a process that left the session, as the guardian does, is still found by its
parent).  PSS splits a page shared by n processes (libraries, forked copy-on-write pages, b.shm's segment)
n ways, so the sum counts each page once, as the machine does; where /proc/PID/smaps_rollup cannot be read,
resident set size stands in.  A peak shorter than the interval can fall between two samples, so the largest
single process's own high-water mark (VmHWM, which the kernel keeps for each process) is a floor.  Not
ru_maxrss: Linux folds into it the size of the process before its exec, which for a child forked from a large
parent (a sweep holding images) is the parent's size, not the child's.

Linux only (/proc).  benchmarks/big_image_memory.py uses it; a sweep can too:

    footprint = measure_command([sys.executable, "run_all.py", "--approaches", "a", "--quick"])
    print(footprint.peak_bytes, footprint.wall_s)
"""

import contextlib
import math
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Footprint:
    """One command's run: its exit status, its output, how long it took and its peak memory.

    peak_bytes is the figure to quote: the larger of the sampled sum and the largest single process's
    high-water mark.
    """

    returncode: int
    output: str  # stdout and stderr, interleaved
    wall_s: float
    peak_bytes: int
    sampled_peak_bytes: int  # the largest sum of PSS over the process tree at one sample
    max_rss_bytes: int  # the largest high-water mark (VmHWM) of any one process of the tree, as sampled (the floor)
    most_processes: int  # the most processes found in one sample
    samples: int


def measure_command(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
                    timeout_s: float | None = None, interval_s: float = 0.05, rescan_s: float = 0.25) -> Footprint:
    """Run argv to its end, sampling its process tree's memory every interval_s.

    Finding the tree reads every process's /proc entry (a few milliseconds), so it is done every rescan_s,
    and between rescans only the processes found are read: the sampler takes a few percent of one core, not
    a fifth, from the command it measures.  After timeout_s the whole session is killed and
    subprocess.TimeoutExpired raised.
    """
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        with _signals_held() as held:
            process = subprocess.Popen(argv, cwd=cwd, env=None if env is None else dict(env), stdout=output,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        peak = most = samples = max_rss = 0
        scanned, pids = -math.inf, []
        try:
            for signum in held:  # Ctrl-C or SIGTERM came while it started: act on it now, with the child known
                signal.raise_signal(signum)
            while True:
                if time.perf_counter() - scanned >= rescan_s:
                    scanned, pids = time.perf_counter(), tree(process.pid)
                peak, most, samples = max(peak, sum(map(memory, pids))), max(most, len(pids)), samples + 1
                max_rss = max([max_rss, *map(high_water, pids)])
                done, status = os.waitpid(process.pid, os.WNOHANG)
                if done:
                    break
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    raise subprocess.TimeoutExpired(argv, timeout_s)
                time.sleep(interval_s)
        except BaseException:
            _kill_session(process)
            raise
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped by waitpid: Popen must not wait again
        output.seek(0)
        text = output.read().decode(errors="replace")
    return Footprint(process.returncode, text, wall, max(peak, max_rss), peak, max_rss, most, samples)


def tree(root: int) -> list[int]:
    """root and every living process of its session or descended from one of them."""
    children: dict[int, list[int]] = {}
    todo = [root]
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                fields = Path(entry.path, "stat").read_bytes().rpartition(b")")[2].split()
            except OSError:  # ended meanwhile
                continue
            pid = int(entry.name)  # after "pid (name)" come state, ppid, pgrp, session
            children.setdefault(int(fields[1]), []).append(pid)
            if int(fields[3]) == root:
                todo.append(pid)
    found: set[int] = set()
    while todo:
        if (pid := todo.pop()) not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return sorted(found)


def memory(pid: int) -> int:
    """pid's proportional set size in bytes (its resident set size where that cannot be read); 0 once gone."""
    pss = _kib(pid, "smaps_rollup", b"Pss:")
    if pss is not None:
        return pss
    try:
        return int(Path(f"/proc/{pid}/statm").read_bytes().split()[1]) * PAGE
    except OSError:
        return 0


def high_water(pid: int) -> int:
    """pid's own peak resident set size in bytes since its exec (VmHWM); 0 once gone."""
    return _kib(pid, "status", b"VmHWM:") or 0


def _kib(pid: int, file: str, key: bytes) -> int | None:
    """The bytes of the `key: N kB` line of /proc/pid/file; None where the file or the line is missing."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_bytes().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def _signals_held() -> Iterator[list[int]]:
    """Hold Ctrl-C and SIGTERM while the block runs, and yield the list of those that came.  Interrupted inside
    Popen, after its fork, a caller would never learn the child's pid and never kill it; so they are noted, and
    raised again once the child is known.  (Handlers, unlike ignored signals, do not outlive exec in the child.)"""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # only the main thread hears signals
        yield held
        return
    previous = {signum: signal.signal(signum, lambda number, frame: held.append(number))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _kill_session(process: subprocess.Popen) -> None:
    """SIGKILL to the command's whole tree, the processes that left its session too."""
    for pid in tree(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
