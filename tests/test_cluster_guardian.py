"""The embedded server never outlives its run: not on SIGKILL of the run, and a folder left by a dead run is
cleaned up by the next one."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image

from approaches.cluster.broker import EMBEDDED_PREFIX, open_broker
from approaches.cluster.guardian import sweep
from tests.conftest import photo

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
BOUND_S = 60.0  # generous bounds for what a busy machine may take; the promise itself is checked at 5 s


def valkeys_in(folder: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if "valkey" in (process.info["name"] or "") and str(folder) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def eventually(condition, bound: float) -> bool:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_run_killed_with_sigkill_leaves_no_server_and_no_folder(short_tmp, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(3):
        Image.fromarray(photo(300, 300, 3, seed=index)).save(inputs / f"p{index}.png")
    run = subprocess.Popen([sys.executable, "run_all.py", "--quick", "--approaches", "f", "--broker", "embedded://",
                            "--input", str(inputs), "--output", str(tmp_path / "out"), "--logs", str(tmp_path / "logs"),
                            "--charts", str(tmp_path / "charts")],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert eventually(lambda: any((f / "pids").exists() for f in short_tmp.glob(f"{EMBEDDED_PREFIX}*")), BOUND_S)
        [folder] = short_tmp.glob(f"{EMBEDDED_PREFIX}*")
        assert valkeys_in(folder)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    killed = time.monotonic()
    assert eventually(lambda: not valkeys_in(folder) and not folder.exists(), 5.0), \
        f"{time.monotonic() - killed:.1f} s after the SIGKILL: {valkeys_in(folder)}, folder there: {folder.exists()}"


def test_the_next_run_stops_and_removes_what_a_dead_run_left_in_one_line(short_tmp, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its PID is now nobody's: the owner of the left folder is dead
    left = short_tmp / f"{EMBEDDED_PREFIX}left"
    left.mkdir()
    server = subprocess.Popen(["sleep", "300"])  # stands in for the server a dead run and its guardian left
    (left / "owner").write_text(f"{dead.pid}\n")
    (left / "pids").write_text(f"{server.pid} sleep\n")
    alive = short_tmp / f"{EMBEDDED_PREFIX}alive"  # a run still going: left alone
    alive.mkdir()
    (alive / "owner").write_text(f"{os.getpid()}\n")
    try:
        with caplog.at_level(logging.WARNING), open_broker("embedded://"):
            pass
        assert server.wait(timeout=5) == -signal.SIGKILL
        assert not left.exists() and alive.exists()
        [said] = [record.getMessage() for record in caplog.records if "left by a run that died" in record.getMessage()]
        assert str(left) in said and str(server.pid) in said and "\n" not in said
        assert list(sweep(EMBEDDED_PREFIX)) == []  # nothing else to say
    finally:
        server.kill()
