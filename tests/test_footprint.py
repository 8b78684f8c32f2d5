"""harness/footprint.py: a command's whole process tree, its memory added up, its peak never under one process's."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from approaches.harness.footprint import measure_command, memory, tree

MB = 1 << 20
# A process whose child leaves the session (as the guardian does) and says its PID; both wait for stdin's end.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import os, sys; os.setsid(); print(os.getpid(), flush=True); "
                          "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
print(child.stdout.readline().strip(), flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


def test_the_tree_holds_the_command_and_a_child_that_left_its_session():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        assert tree(parent.pid) == sorted([parent.pid, child])
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)


def test_a_process_memory_counts_what_it_touched():
    holder = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(200 << 20); print(flush=True); "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        holder.stdout.readline()
        assert memory(holder.pid) > 200 * MB
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert memory(holder.pid) == 0  # gone


def test_the_peak_is_at_least_the_largest_process_own_peak_even_between_samples(tmp_path):
    # The 300 MB live a moment only, freed perhaps before a sample could see them: the high-water mark keeps them.
    freed, go = tmp_path / "freed", tmp_path / "go"
    script = (f"import pathlib, time\nb = bytearray(300 << 20)\nb[::4096] = b'x' * len(b[::4096])\ndel b\n"
              f"pathlib.Path({str(freed)!r}).touch()\n"
              f"while not pathlib.Path({str(go)!r}).exists(): time.sleep(0.01)\nprint('done')")
    opener = threading.Thread(target=_touch_when, args=(freed, go))
    opener.start()
    footprint = measure_command([sys.executable, "-c", script], interval_s=0.05, timeout_s=120)
    opener.join()
    assert footprint.returncode == 0 and footprint.output.strip() == "done"
    # (most of them: the high-water mark once read 285 MiB, pages reclaimed while the rest were written)
    assert footprint.max_rss_bytes > 250 * MB and footprint.peak_bytes >= footprint.max_rss_bytes
    assert footprint.samples >= 1 and footprint.wall_s > 0


def test_a_child_of_a_large_parent_is_not_charged_the_parent_s_size():
    """Linux folds a process's size before its exec into ru_maxrss: forked from a parent holding 600 MB, a tiny
    command would read as 600 MB.  The high-water mark counts from the exec."""
    ballast = bytearray(600 << 20)
    ballast[::4096] = b"x" * len(ballast[::4096])
    footprint = measure_command([sys.executable, "-c", "print('small')"])
    assert footprint.returncode == 0 and footprint.peak_bytes < 200 * MB
    del ballast


def _touch_when(seen: Path, then: Path) -> None:
    deadline = time.monotonic() + 120
    while not seen.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    then.touch()


def test_a_command_over_its_time_is_killed():
    with pytest.raises(subprocess.TimeoutExpired):
        measure_command([sys.executable, "-c", "import signal; signal.pause()"], timeout_s=0.5, interval_s=0.05)
