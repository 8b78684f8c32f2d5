"""b: threads, processes and shared memory give a's pixels for any tiling, and no fault hangs a run."""

import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches import b_tile_parallel
from approaches.core import pool
from approaches.core.config import RunConfig
from approaches.core.images import find_images, load_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur
from approaches.core.settings import Settings, TileFault
from approaches.core.tasks import TileTask
from approaches.core.tiling import Tile, cut
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from tests.conftest import photo
from tests.test_images import assert_bad_inputs_reported, bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on queues: a hang must fail, not stall CI

VARIANTS = ("b.threads", "b.processes", "b.shm")


def run_approach(key: str, image_dir: Path, output: Path, *, kernel_size: int = 5, tile_size: int = 16,
                 workers: int = 2, fault: TileFault | None = None, **options) -> tuple[Outcome, Tracer]:
    config = RunConfig(input_dir=image_dir, output_dir=output, kernel_size=kernel_size, tile_size=tile_size,
                       workers=workers, settings=Settings(fault=fault))
    tracer = Tracer()
    job = Job(config, tuple(find_images(image_dir)), key)
    run = APPROACHES[key].run
    return (run(job, tracer, **options) if options else run(job, tracer)), tracer


def assert_identical_to_a(outcome: Outcome, kernel_size: int) -> None:
    for saved in outcome.saved:
        expected = blur(load_image(saved.source).pixels, kernel_size)
        assert np.array_equal(load_image(saved.output).pixels, expected), saved.name


def raise_on(image: str, tile: int, error: BaseException) -> TileFault:
    def fault(name: str, tile_id: int) -> None:
        if (name, tile_id) == (image, tile):
            raise error

    return fault


@pytest.mark.parametrize("key,tile_size,workers,kernel_size", [
    *(("b.threads", size, workers, 5) for size in (7, 16, 33, 256) for workers in (1, 4)),
    ("b.threads", 5, 3, 21),  # the halo (10) is wider than the tile
    ("b.processes", 7, 1, 5), ("b.processes", 33, 3, 9),
    ("b.shm", 7, 1, 5), ("b.shm", 33, 3, 9),
])
def test_outputs_are_identical_to_a_for_any_tiling_and_worker_count(tmp_path, image_dir, key, tile_size, workers,
                                                                    kernel_size):
    # 7 and 33 divide none of the images (70x90, 33x41, 20x25); 256 makes each image a single tile.
    outcome, _ = run_approach(key, image_dir, tmp_path / "out", kernel_size=kernel_size, tile_size=tile_size,
                              workers=workers)
    assert [s.name for s in outcome.saved] == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, kernel_size)
    assert {s.mode for s in outcome.saved} == {"RGBA", "RGB", "L"}


@pytest.mark.parametrize("key", VARIANTS)
def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir, key):
    reasons = bad_inputs(image_dir)
    outcome, _ = run_approach(key, image_dir, tmp_path / "out")
    assert_bad_inputs_reported(outcome, reasons)
    assert_identical_to_a(outcome, 5)


@pytest.mark.parametrize("key", VARIANTS)
def test_a_tile_that_raises_fails_its_image_and_the_others_complete(tmp_path, image_dir, key):
    # Given a worker that raises on one tile of "three"
    fault = raise_on("three", 2, ValueError("boom"))
    # When b runs
    outcome, _ = run_approach(key, image_dir, tmp_path / "out", tile_size=8, fault=fault)
    # Then "three" is reported failed with the reason, and nothing is saved for it
    (failure,) = outcome.failed
    assert failure.path.endswith("three.png") and failure.reason == "tile 2: ValueError: boom"
    assert not (tmp_path / "out" / key / "three_blurred.png").exists()
    # And the images before and after it are saved, with a's pixels
    assert [s.name for s in outcome.saved] == ["one", "two"]
    assert_identical_to_a(outcome, 5)


@pytest.mark.parametrize("key", ["b.processes", "b.shm"])
def test_a_worker_process_that_dies_fails_its_image_and_a_fresh_pool_does_the_rest(tmp_path, image_dir, key):
    # Given a worker process that exits outright (as if killed) while holding a tile of the first image
    def die(image: str, tile: int) -> None:
        if (image, tile) == ("one", 1):
            os._exit(3)

    outcome, _ = run_approach(key, image_dir, tmp_path / "out", tile_size=8, fault=die)
    (failure,) = outcome.failed
    assert failure.path.endswith("one.png") and "died (exit code 3)" in failure.reason
    assert [s.name for s in outcome.saved] == ["three", "two"]
    assert_identical_to_a(outcome, 5)


def test_worker_process_logs_reach_the_parents_handlers(tmp_path, image_dir, caplog):
    # multiprocessing-logging: the record is made in a worker process and handled by caplog here.
    with caplog.at_level(logging.ERROR, logger=pool.__name__):
        run_approach("b.processes", image_dir, tmp_path / "out", fault=raise_on("two", 0, ValueError("boom")))
    (record,) = [r for r in caplog.records if "boom" in r.getMessage()]
    assert record.process != os.getpid() and record.getMessage().startswith("worker-")
    assert "ValueError: boom" in (record.exc_text or "")


def test_threads_record_every_stage_in_its_lane(tmp_path, image_dir):
    _, tracer = run_approach("b.threads", image_dir, tmp_path / "out", workers=3)
    lanes = {(span.lane, span.stage) for span in tracer.spans}
    assert {("coordinator", s) for s in ("load", "blocked")} <= lanes
    assert ("coordinator", "cut") not in lanes  # threads share the image: the worker reads the tile in place
    assert {("assembler", "assemble"), ("assembler", "save")} <= lanes
    assert {lane for lane, stage in lanes if stage == "blur"} <= {"worker-1", "worker-2", "worker-3"}
    tiles = 5 * 6 + 3 * 3 + 2 * 2  # 16-px tiles of 70x90, 33x41 and 20x25
    assert sum(span.stage == "blur" for span in tracer.spans) == tiles
    assert all(span.start <= span.end for span in tracer.spans)


@pytest.mark.parametrize("key", ["b.processes", "b.shm"])
def test_worker_processes_send_their_spans_back(tmp_path, image_dir, key):
    _, tracer = run_approach(key, image_dir, tmp_path / "out")
    by_worker = {span.stage for span in tracer.spans if span.lane.startswith("worker-")}
    assert by_worker == {"blur", "blocked"}
    assert sum(span.stage == "blur" for span in tracer.spans) == 5 * 6 + 3 * 3 + 2 * 2
    coordinator_cuts = any(span.lane == "coordinator" and span.stage == "cut" for span in tracer.spans)
    assert coordinator_cuts == (key == "b.processes")  # b.shm hands out coordinates only


def test_a_shared_memory_task_carries_coordinates_whatever_the_tile_size():
    # The b.shm lesson in bytes: a b.processes task pickles the padded tile, a b.shm task does not.
    image = photo(600, 600, 4)
    with b_tile_parallel.SharedPixels() as arena:
        _, _, where = arena.hold(image)
        for size in (64, 512):
            tile = Tile(0, 0, 0, size, size)
            copied = len(pickle.dumps(TileTask("img", tile, cut(image, tile, 10))))
            shared = len(pickle.dumps(TileTask("img", tile, where)))
            assert copied > (size + 20) ** 2 * 4 and shared < 400


def test_shared_memory_grows_for_larger_images_and_leaves_nothing_behind(tmp_path, monkeypatch):
    # Images in growing sizes make b.shm replace its segment (closing it while views of it live would fail).
    made = []

    class Recorded(b_tile_parallel.SharedMemory):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            if kwargs.get("create"):
                made.append(self.name)

    monkeypatch.setattr(b_tile_parallel, "SharedMemory", Recorded)
    directory = tmp_path / "input"
    directory.mkdir()
    for name, size in (("a", 12), ("b", 40), ("c", 25)):
        Image.fromarray(photo(size, size + 5, 3, seed=size)).save(directory / f"{name}.png")
    outcome, _ = run_approach("b.shm", directory, tmp_path / "out", workers=2)
    assert [s.name for s in outcome.saved] == ["a", "b", "c"]
    assert_identical_to_a(outcome, 5)
    assert len(made) == 2  # one for a, a larger one for b, reused for c
    assert not [name for name in made if Path("/dev/shm", name.lstrip("/")).exists()]
