"""h: a's pixels from dask tasks, on its own LocalCluster or a scheduler given; dask's task stream as spans;
lost tiles recomputed when one worker process, or every one, is killed mid-run."""

import logging
import socket
from collections import Counter

import numpy as np
import pytest

from approaches import h_dask
from approaches.cluster.dask_cluster import scratch_space
from approaches.core.config import RunConfig
from approaches.core.errors import ConfigError
from approaches.core.images import find_images, load_image
from approaches.core.job import Failure, Job
from approaches.core.tasks import Assembly
from approaches.core.tiling import Tile
from approaches.core.trace import Tracer
from approaches.harness.chaos import DaskFaults
from tests.conftest import main
from tests.test_b_tile_parallel import assert_identical_to_a, run_approach
from tests.test_images import assert_bad_inputs_reported, bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on a cluster: a hang must fail, not stall CI

TILES_16 = 5 * 6 + 3 * 3 + 2 * 2  # 16-px tiles of the three images of image_dir (70x90, 33x41, 20x25)
DELAY_ERROR_S = 0.25  # dask's worker times carry its estimated clock delay to the scheduler: see the task stream test


@pytest.fixture(scope="module")
def scheduler():
    """One LocalCluster of 2 worker processes for the tests that pass h a scheduler address (it starts in ~1 s)."""
    from distributed import LocalCluster

    with scratch_space(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def run_h(image_dir, output, **options):
    return run_approach("h", image_dir, output, **options)


@pytest.mark.parametrize("tile_size,kernel_size", [(33, 9), (256, 5), *(pytest.param(*case, marks=pytest.mark.slow)
                                                                    for case in [(7, 5), (16, 5), (5, 21)])])
def test_outputs_are_identical_to_a_for_any_tiling_on_a_scheduler_given(tmp_path, image_dir, scheduler, tile_size,
                                                                        kernel_size):
    # 7 and 33 divide none of the images; 256 makes each one tile; with 5 the halo (10) is wider than the tile.
    outcome, _ = run_h(image_dir, tmp_path / "out", tile_size=tile_size, kernel_size=kernel_size,
                       scheduler=scheduler)
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, kernel_size)
    assert {s.mode for s in outcome.saved} == {"RGBA", "RGB", "L"}


@pytest.mark.slow
def test_its_own_local_cluster_gives_a_pixels_with_its_start_up_apart(tmp_path, image_dir):
    # One worker process here; the shared cluster above has two, and the chaos tests start two of their own.
    outcome, tracer = run_h(image_dir, tmp_path / "out", workers=1, tile_size=16)
    assert len(outcome.saved) == 3 and outcome.failed == []
    assert_identical_to_a(outcome, 5)
    (start,) = [span for span in tracer.spans if span.stage == "start"]
    assert start.lane == h_dask.COORDINATOR
    assert all(span.start >= start.end for span in tracer.spans if span is not start)  # the work comes after
    assert {span.lane for span in tracer.spans if span.stage == "blur"} == {"worker-1"}


def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir, scheduler):
    reasons = bad_inputs(image_dir)
    outcome, _ = run_h(image_dir, tmp_path / "out", scheduler=scheduler)
    assert_bad_inputs_reported(outcome, reasons)
    assert_identical_to_a(outcome, 5)


def test_the_task_stream_becomes_blur_spans_in_worker_lanes_on_this_process_clock(tmp_path, image_dir, scheduler):
    _, tracer = run_h(image_dir, tmp_path / "out", scheduler=scheduler)
    blurs = [span for span in tracer.spans if span.stage == "blur"]
    assert len(blurs) == TILES_16 and len({(span.image, span.tile) for span in blurs}) == TILES_16
    # the cluster's two worker processes (how dask shares the tiles between them is its scheduler's choice)
    assert {span.lane for span in blurs} <= {"worker-1", "worker-2"}
    stages = Counter((span.lane, span.stage) for span in tracer.spans)
    coordinator, assembler = h_dask.COORDINATOR, h_dask.ASSEMBLER
    assert stages[coordinator, "load"] == stages[assembler, "save"] == 3
    assert stages[coordinator, "cut"] == stages[assembler, "assemble"] == TILES_16
    # dask's time.time() moved onto perf_counter: each tile is blurred after it is cut and before it is pasted,
    # within the error of the clock delay dask's worker adds to its times (estimated from heartbeats: milliseconds,
    # tens of them on a loaded machine; a wrong move would be off by decades)
    cut = {(s.image, s.tile): s for s in tracer.spans if s.stage == "cut"}
    pasted = {(s.image, s.tile): s for s in tracer.spans if s.stage == "assemble"}
    for span in blurs:
        assert cut[span.image, span.tile].end - DELAY_ERROR_S <= span.start <= span.end
        assert span.end <= pasted[span.image, span.tile].start + DELAY_ERROR_S


def test_an_unreachable_scheduler_fails_every_image_with_its_address(tmp_path, image_dir):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    outcome, _ = run_h(image_dir, tmp_path / "out", scheduler=address, start_timeout_s=1.0)
    assert outcome.saved == [] and len(outcome.failed) == 3
    assert all(failure.reason.startswith(f"dask: no cluster to run on at {address}") for failure in outcome.failed)


@pytest.mark.parametrize("address", ["tcp://127.0.0.1:{closed}", "tcp://nohost.invalid:8786"])
def test_run_all_refuses_a_scheduler_nobody_answers_at_in_one_line_before_any_work(tmp_path, image_dir, capsys,
                                                                                  address):
    # Before: h waited 30 s for the scheduler, then failed every image one line each and printed a table row
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = address.format(closed=probe.getsockname()[1])
    status = main(["--approaches", "a,h", "--scheduler", address, "--input", str(image_dir), "--output",
                   str(tmp_path / "out"), "--logs", str(tmp_path / "logs"), "--no-charts"], env={})
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and f"cannot reach the dask scheduler at {address}: " in err[0], err
    assert not (tmp_path / "out").exists()  # not even a's outputs: nothing ran


def test_chaos_is_refused_on_a_scheduler_it_did_not_start(tmp_path, image_dir, scheduler):
    with pytest.raises(ConfigError, match="LocalCluster it starts"):
        run_h(image_dir, tmp_path / "out", scheduler=scheduler, chaos=DaskFaults("one-worker"))


def test_a_tile_whose_task_failed_fails_its_image_with_the_reason_and_saves_nothing(tmp_path, image_dir):
    # What as_completed gives for a task that raised, or whose workers kept dying (KilledWorker): the exception.
    source = find_images(image_dir)[0]
    job = Job(RunConfig(output_dir=tmp_path / "out"), (source,), "h")
    image = load_image(source.path)
    assembly = Assembly(source, image.mode, np.zeros_like(image.pixels), 2)
    tiles = [Tile(0, 0, 0, 1, 1), Tile(1, 1, 0, 1, 1)]
    assert not h_dask._paste(assembly, tiles[0], ValueError("boom"), Tracer())
    assert h_dask._paste(assembly, tiles[1], np.zeros((1, 1, 4), np.uint8), Tracer())
    failure = h_dask._save(assembly, job, Tracer())
    assert failure == Failure(str(source.path), "tile 0: ValueError: boom")
    assert not (tmp_path / "out" / "h").exists()


def test_the_coordinator_stops_waiting_on_a_full_handover_once_the_assembler_has_gone():
    handover = h_dask.Handover()
    for _ in range(h_dask.IMAGES_AHEAD):
        handover.put(None)
    handover.close()  # what the assembler does when it stops, for whatever reason
    handover.put(None)  # the handover is full: without close() this would wait for ever
