"""A guardian: what a run started, stopped, and its folder removed, once the run's process is gone.

A run killed with SIGKILL (the OOM killer, a CI time-out, a closed terminal) runs no `finally`, so a server it
started would live on, with its files.  So a run that starts one (the embedded Valkey) also starts this small
process, in a session of its own, holding the read end of a pipe; the run writes the PIDs to watch into it.  When
the pipe closes (the kernel closes the run's end however it ended) or the guardian finds itself orphaned, it kills
what it watches and removes the folder.  That works on Linux and macOS alike; a parent-death signal would be
Linux-only, and follows the thread that started the child rather than the process.

The folder keeps the same record on disk (`owner`, `pids`), so a run that finds a folder whose owner is dead (its
guardian was killed too) cleans it up: `sweep()`.  This file runs as a script, with nothing but the standard
library and psutil (`-I`: its own folder is not put on the import path), so it starts in a few milliseconds.
"""

import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ORPHAN_CHECK_S = 0.5  # how often the guardian also checks that its parent still lives (a leaked pipe end)


@contextmanager
def guarded_folder(prefix: str, *, linger_if_interrupted: bool = False) -> Iterator["Guardian"]:
    """A new folder named prefix* in the temporary folder, under a guardian; removed, with the guardian, at the
    end of the block (or by the guardian, should this process die).  linger_if_interrupted: after Ctrl-C or
    SIGTERM, leave the removal to the guardian, once this process has ended (exit hooks may still write there)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    guardian = Guardian(folder)
    try:
        yield guardian
    except BaseException as error:
        if linger_if_interrupted and not isinstance(error, Exception):
            raise  # the guardian's pipe closes as this process ends: it removes the folder then
        _remove(guardian)
        raise
    _remove(guardian)


def _remove(guardian: "Guardian") -> None:
    shutil.rmtree(guardian.folder, ignore_errors=True)
    guardian.close()


class Guardian:
    """The run's side: start the guardian of folder, then watch() each process started for it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "owner").write_text(f"{os.getpid()}\n")
        self._process = subprocess.Popen([sys.executable, "-I", __file__, str(folder)], stdin=subprocess.PIPE,
                                         start_new_session=True)

    def watch(self, process: subprocess.Popen) -> None:
        """Kill process (by PID, if it is still the program started) should this run die."""
        try:
            line = f"{process.pid} {psutil.Process(process.pid).name()}\n"
        except psutil.NoSuchProcess:
            return  # it has ended already (mpiexec refusing its arguments, say): nothing to watch
        with open(self.folder / "pids", "a") as pids:
            pids.write(line)
        self._send(f"+{line}")

    def stop(self, process: subprocess.Popen, timeout_s: float) -> None:
        """Stop process gracefully (SIGTERM; SIGKILL if it takes over timeout_s), then forget it."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.forget(process)

    def forget(self, process: subprocess.Popen) -> None:
        """process has ended and was waited for: its PID may be reused, so never kill it."""
        self._send(f"-{process.pid}\n")

    def close(self) -> None:
        """The run is done: the guardian removes the folder if it is still there, and ends."""
        self._process.stdin.close()
        self._process.wait(timeout=30)

    def _send(self, line: str) -> None:
        self._process.stdin.write(line.encode())
        self._process.stdin.flush()


def sweep(prefix: str) -> Iterator[str]:
    """Kill what runs whose process died left behind in folders named prefix* in the temporary folder, remove
    those folders, and say what was removed, one line each."""
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            owner = int((folder / "owner").read_text())
        except (OSError, ValueError):
            continue  # not ours, or being made right now
        if psutil.pid_exists(owner):
            continue
        killed = [pid for pid, name in _watched(folder) if _kill(pid, name)]
        shutil.rmtree(folder, ignore_errors=True)
        yield f"removed {folder}" + (f" and stopped its server (pid {', '.join(map(str, killed))})" if killed else "") \
              + f", left by a run that died (pid {owner})"


def _watched(folder: Path) -> list[tuple[int, str]]:
    try:
        lines = (folder / "pids").read_text().splitlines()
    except OSError:
        return []
    return [(int(pid), name) for pid, _, name in (line.partition(" ") for line in lines) if pid.isdigit()]


def _kill(pid: int, name: str) -> bool:
    """SIGKILL pid if it is still the program named name (not another that got its PID); whether it was."""
    try:
        if psutil.Process(pid).name() != name:
            return False
        os.kill(pid, signal.SIGKILL)
    except (psutil.Error, ProcessLookupError):
        return False
    return True


def _guard(folder: Path) -> None:
    """The guardian's loop: read what to watch until the pipe closes or the parent is gone, then clean up."""
    parent, watched, pending = os.getppid(), {}, b""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is for the run, which stops things itself
    while os.getppid() == parent:
        readable, _, _ = select.select([sys.stdin.buffer], [], [], ORPHAN_CHECK_S)
        if not readable:
            continue
        chunk = os.read(sys.stdin.fileno(), 4096)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            pid, _, name = line.decode()[1:].partition(" ")
            if line.startswith(b"+"):
                watched[int(pid)] = name
            else:
                watched.pop(int(pid), None)
    for pid, name in watched.items():
        _kill(pid, name)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    _guard(Path(sys.argv[1]))
