"""g as a service: `blur-suite service` (python -m approaches.harness.service), its modes as separate processes on
one server, a graceful SIGTERM, and one-line errors."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import connect, open_broker
from approaches.core.images import find_images, load_image, output_path
from approaches.core.kernel import blur
from approaches.g_service import StreamQueue
from approaches.harness.service import main as service_main
from tests.conftest import photo

pytestmark = pytest.mark.timeout(180)


def service(*args: str) -> list[str]:
    return [sys.executable, "-m", "approaches.harness.service", "--kernel-size", "5", "--tile-size", "16", *args]


def assert_outputs_identical_to_a(image_dir: Path, output: Path) -> None:
    sources = find_images(image_dir)
    for source in sources:
        expected = blur(load_image(source.path).pixels, 5)
        assert np.array_equal(load_image(output_path(output, "g", source.name)).pixels, expected), source.name


@pytest.mark.slow
def test_all_mode_runs_every_role_in_one_process_and_exits_when_every_image_is_done(tmp_path, image_dir):
    done = subprocess.run(service("--mode", "all", "--broker", "memory://", "--input", str(image_dir),
                                  "--output", str(tmp_path / "out"), "--threads", "2"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 of 3 images saved" in done.stdout
    assert_outputs_identical_to_a(image_dir, tmp_path / "out")


@pytest.mark.slow
def test_each_mode_as_its_own_process_on_one_server_gives_as_pixels(tmp_path, image_dir):
    run, output = new_run_id(), tmp_path / "out"
    with open_broker("embedded://") as broker:
        common = ("--broker", broker.url, "--run", run)
        coordinator = subprocess.run(service("--mode", "coordinator", *common, "--input", str(image_dir)),
                                     capture_output=True, text=True, timeout=120)
        assert coordinator.returncode == 0, coordinator.stderr
        assert f"--run {run}" in coordinator.stdout
        workers = [subprocess.Popen(service("--mode", "worker", *common, "--threads", "2"),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        assembler = subprocess.run(service("--mode", "assembler", *common, "--output", str(output)),
                                   capture_output=True, text=True, timeout=120)
        said = [worker.communicate(timeout=60) for worker in workers]
        assert [worker.returncode for worker in workers] == [0, 0], said  # they stop once the run is done
        # A finished run keeps a small summary, which --status reads, and --clean deletes
        status = subprocess.run(service("--status", run, "--broker", broker.url), capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == 0 and f"run {run}: finished; 3 of 3 images saved" in status.stdout, status
        kib = float(status.stdout.split(" KiB")[0].rsplit(" ", 1)[1])
        assert kib < 1024
        other = tmp_path / "other"
        other.mkdir()
        Image.fromarray(photo(20, 20, 3)).save(other / "one.png")
        resumed = subprocess.run(service("--mode", "coordinator", *common, "--input", str(other)),
                                 capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 2 and "was started with other images" in resumed.stderr, resumed
        assert len(resumed.stderr.strip().splitlines()) == 1
        cleaned = subprocess.run(service("--clean", run, "--broker", broker.url), capture_output=True, text=True,
                                 timeout=60)
        assert cleaned.returncode == 0 and not connect(broker.url).keys(f"blur:{run}:*")
    assert assembler.returncode == 0, assembler.stderr
    assert "3 of 3 images saved" in assembler.stdout
    assert_outputs_identical_to_a(image_dir, output)


@pytest.mark.slow
def test_sigterm_makes_a_worker_finish_the_tile_in_hand_and_leave_the_rest_to_others(tmp_path):
    # Given a run with many tiles and one single-threaded worker at work on it
    image_dir = tmp_path / "input"
    image_dir.mkdir()
    Image.fromarray(photo(640, 640, 3)).save(image_dir / "big.png")  # 1600 tiles of 16
    run, output = new_run_id(), tmp_path / "out"
    with open_broker("embedded://") as broker:
        common = ("--broker", broker.url, "--run", run)
        subprocess.run(service("--mode", "coordinator", *common, "--input", str(image_dir)), check=True,
                       capture_output=True, timeout=120)
        board = Board(connect(broker.url), run)
        worker = subprocess.Popen(service("--mode", "worker", *common, "--threads", "1"),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(board.result_tiles(0, 1600)) < 10 and time.monotonic() < deadline:
            time.sleep(0.01)
        # When it is sent SIGTERM mid-run
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
        # Then it exits at once, saying so, holding no tile (the one in hand was stored and acked), with work left
        assert worker.returncode == 130 and "stopped on request" in stderr
        jobs = StreamQueue(board.client, board.key("jobs"), "worker")
        assert jobs.in_flight() == 0 and 10 <= len(board.result_tiles(0, 1600)) < 1600 and jobs.waiting() > 0
        # And the others finish the run: nothing lost
        finisher = subprocess.Popen(service("--mode", "worker", *common, "--threads", "2"))
        assembler = subprocess.run(service("--mode", "assembler", *common, "--output", str(output)),
                                   capture_output=True, text=True, timeout=120)
        assert finisher.wait(timeout=60) == 0
    assert assembler.returncode == 0, assembler.stderr
    assert "1 of 1 images saved" in assembler.stdout
    assert_outputs_identical_to_a(image_dir, output)


@pytest.mark.parametrize("args,message", [
    (("--mode", "worker", "--broker", "redis://localhost:6379/0"), "--mode worker needs --run"),
    (("--mode", "worker", "--run", "0123456789abcdef"), "give a redis:// URL"),
    (("--mode", "assembler", "--run", "nope", "--broker", "redis://localhost:6379/0"), "--run: 'nope' is not a run id"),
    (("--mode", "worker", "--run", "0123456789abcdef", "--broker", "redis://localhost:1/0"), "cannot reach"),
    (("--threads", "0"), "--threads must be between"),
    (("--tile-size", "1"), "--tile-size must be at least 16"),  # a queue of 1-pixel tiles carries only messages
    (("--input", "/no/such/folder"), "does not exist"),
])
def test_a_user_mistake_is_one_line_and_status_2(capsys, args, message):
    # In this process, as the command line calls it: the same code, without an interpreter's start per case
    assert service_main(["--kernel-size", "5", "--tile-size", "16", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_coordinator_whose_broker_is_down_says_so_and_nothing_else(image_dir, capsys):
    # Before: it printed "run ...: queuing 3 images; start workers ..." for a run it then never queued
    assert service_main(["--mode", "coordinator", "--broker", "redis://localhost:1/0", "--input", str(image_dir)]) == 2
    said = capsys.readouterr()
    assert "cannot reach" in said.err and said.out == ""
