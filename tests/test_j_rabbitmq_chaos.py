"""j's chaos matrix and its private node's clean-up: minutes of RabbitMQ boots, so not in the default run.

    python -m pytest -m slow

Every scenario of the chaos demo against j with process pods (SIGKILL, SIGSTOP) on a real Valkey, each run on
a RabbitMQ node of its own (the broker scenario restarts it); and the node, its epmd and its folder gone
however the run that started them ends (SIGTERM, SIGKILL).
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from approaches.cluster.amqp import NODE_PREFIX, unavailable
from approaches.core.settings import Settings
from tests.conftest import main
from tests.test_cluster_chaos import ROW

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("rabbitmq")]
ROW_J = re.compile(ROW.pattern.replace("[efg]", "j"), re.M)  # a row of the side-by-side table, for j


@pytest.fixture(autouse=True)
def rabbitmq_installed() -> None:
    if (why := unavailable(None)) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true, and {why}")
        pytest.skip(why)


def test_every_scenario_loses_j_nothing_and_says_how_soon_each_tile_was_redone(tmp_path, image_dir, capsys):
    # Given j's worker processes, slowed so each holds a tile when struck, and AMQP heartbeats every 2 s
    status = main(["chaos", "j", "--broker", "embedded://", "--input", str(image_dir), "--output",
                   str(tmp_path / "out"), "--tile-size", "16", "--kernel-size", "3", "--workers", "2", "--quiet",
                   "--logs", str(tmp_path / "logs"), "--no-charts"], env={},
                  settings=Settings(tile_delay_s=0.05, progress_wait_s=20.0, visibility_s=2.0))
    out = capsys.readouterr().out
    # Then whatever was struck (every worker, one for good, the assembler, the coordinator, the broker, junk, a
    # hung worker), nothing is lost and every image is saved with a's pixels
    rows = {row[0]: tuple(map(int, row[2:8])) for row in ROW_J.findall(out)}
    assert set(rows) == {"workers", "one-worker", "assembler", "coordinator", "broker", "junk", "hung"}, out
    for scenario, (expected, _, lost, _, unsaved, differ) in rows.items():
        assert (expected, lost, unsaved, differ) == (43, 0, 0, 0), (scenario, out)
    assert status == 0, out
    # And the tiles a killed worker held were done again, at once; a hung one's once its heartbeats stopped
    (written,) = (tmp_path / "logs").glob("*_chaos.json")
    recovery = {row["scenario"]: row["recovery_s"] for row in json.loads(written.read_text())["chaos"]}
    assert all(0 < recovery[scenario] < 60 for scenario in ("workers", "one-worker", "hung")), recovery
    assert "dead-lettered from jobs" in out and recovery["junk"] is None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_the_private_node_its_epmd_and_its_folder_go_with_the_run_however_it_ends(tmp_path, image_dir, signum):
    # Given a run of j whose private node is up (its guardian watches epmd and the node)
    before = set(Path(tempfile.gettempdir()).glob(f"{NODE_PREFIX}*"))
    run = subprocess.Popen([sys.executable, "run_all.py", "--approaches", "j", "--input", str(image_dir), "--output",
                            str(tmp_path / "out"), "--logs", str(tmp_path / "logs"), "--no-charts", "--quick",
                            "--quiet"], cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
    folder, watched = wait_for_node(before)
    assert [name for _, name in watched] == ["epmd", "beam.smp"]
    # When the run is stopped, politely or not
    run.send_signal(signum)
    run.wait(timeout=120)
    # Then the node and its epmd are stopped and its folder removed (by the run, or by its guardian)
    deadline = time.monotonic() + 120
    while (folder.exists() or any(psutil.pid_exists(pid) for pid, _ in watched)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not folder.exists() and not [pid for pid, _ in watched if running(pid)]
    if signum == signal.SIGTERM:
        assert run.returncode == 143 and "terminated; everything it started is stopped" in run.stderr.read().decode()


def wait_for_node(before: set[Path]) -> tuple[Path, list[tuple[int, str]]]:
    """The new node's folder and the (pid, name) its guardian watches, once both epmd and the node are watched."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for folder in set(Path(tempfile.gettempdir()).glob(f"{NODE_PREFIX}*")) - before:
            pids = folder / "pids"
            lines = pids.read_text().splitlines() if pids.exists() else []
            if len(lines) == 2 and re.search(r"\d+ beam\.smp", lines[1]):
                return folder, [(int(pid), name) for pid, _, name in (line.partition(" ") for line in lines)]
        time.sleep(0.05)
    raise AssertionError("no private RabbitMQ node came up within 120 s")


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
