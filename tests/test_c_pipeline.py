"""c: a's pixels for any tiling, stages overlapping across images, bounded memory, no fault hangs a run."""

import json
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import main, photo
from tests.test_b_tile_parallel import assert_identical_to_a, raise_on, run_approach
from tests.test_images import bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on queues: a hang must fail, not stall CI


@pytest.fixture
def many_images(tmp_path: Path) -> Path:
    """Eight small RGB images, img0 … img7."""
    directory = tmp_path / "many"
    directory.mkdir()
    for i in range(8):
        Image.fromarray(photo(24 + i, 30, 3, seed=i)).save(directory / f"img{i}.png")
    return directory


@pytest.mark.parametrize("tile_size,workers,loaders,savers", [
    (7, 1, 1, 1), (7, 4, 2, 2), (16, 2, 3, 1), (33, 3, 1, 2), (256, 1, 2, 2), (256, 4, 1, 1),
])
def test_outputs_are_identical_to_a_for_any_tiling_and_stage_counts(tmp_path, image_dir, tile_size, workers,
                                                                    loaders, savers):
    outcome, _ = run_approach("c", image_dir, tmp_path / "out", tile_size=tile_size, workers=workers,
                              loaders=loaders, savers=savers)
    assert [s.name for s in outcome.saved] == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)


def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir):
    reasons = bad_inputs(image_dir)
    outcome, _ = run_approach("c", image_dir, tmp_path / "out")
    assert [s.name for s in outcome.saved] == ["one", "three", "two"]
    failed = {Path(f.path).name: f.reason for f in outcome.failed}
    assert set(failed) == set(reasons)
    for name, reason in reasons.items():
        assert reason in failed[name]
    assert_identical_to_a(outcome, 5)


def test_a_tile_that_raises_fails_its_image_and_the_others_complete(tmp_path, many_images):
    outcome, _ = run_approach("c", many_images, tmp_path / "out", tile_size=8, loaders=1, savers=1,
                              fault=raise_on("img2", 1, RuntimeError("boom")))
    (failure,) = outcome.failed
    assert failure.path.endswith("img2.png") and failure.reason == "tile 1: RuntimeError: boom"
    assert [s.name for s in outcome.saved] == [f"img{i}" for i in range(8) if i != 2]
    assert_identical_to_a(outcome, 5)


def test_outputs_are_named_from_their_inputs_when_one_input_is_bad(tmp_path, many_images):
    # Regression: the original numbered outputs by position, so with img2 missing it saved img3 as img2.
    (many_images / "img2.png").write_text("not an image")
    outcome, _ = run_approach("c", many_images, tmp_path / "out")
    assert not (tmp_path / "out" / "c" / "img2_blurred.png").exists()
    assert (tmp_path / "out" / "c" / "img3_blurred.png").exists()
    assert_identical_to_a(outcome, 5)  # each output holds its own input's pixels, blurred


def test_images_overlap_each_is_saved_when_whole_and_memory_is_bounded(tmp_path, many_images):
    # One loader and one saver give 3 permits for 8 images, which makes the order of events certain.
    _, tracer = run_approach("c", many_images, tmp_path / "out", tile_size=8, loaders=1, savers=1)
    load = {s.image: s for s in tracer.spans if s.stage == "load"}
    save = {s.image: s for s in tracer.spans if s.stage == "save"}
    last_load = max(span.start for span in load.values())
    assert min(s.start for s in tracer.spans if s.stage == "blur") < last_load  # blurring began before it
    assert min(span.end for span in save.values()) < last_load  # so did saving: not all at the end
    # At most loaders + savers + 1 images are between loading and saved at any moment.
    lives = [(load[image].start, save[image].end) for image in load]
    assert max(sum(start <= t < end for start, end in lives) for t, _ in lives) <= 3
    # Which workers got a tile is the scheduler's choice: on a busy machine one worker may take them all.
    workers = {s.lane for s in tracer.spans if s.stage == "blur"}
    assert workers and workers <= {"worker-1", "worker-2"}
    assert {s.lane for s in tracer.spans} == {"loader-1", "assembler", "saver-1"} | workers
    # A lane waiting for work or for room (a permit, a tile) records it as "blocked"
    assert {"loader-1"} | workers <= {s.lane for s in tracer.spans if s.stage == "blocked"}


def test_a_loader_decodes_the_next_image_while_the_workers_still_blur_the_last(tmp_path, many_images):
    # A queued tile is only a reference, so the tile queue takes a whole image's tiles: the loader does
    # not wait for the (here slowed) workers before it decodes the next image.
    _, tracer = run_approach("c", many_images, tmp_path / "out", tile_size=4, workers=1, loaders=1, savers=1,
                             fault=lambda image, tile: time.sleep(0.002))
    blurs = sorted(s.end for s in tracer.spans if s.stage == "blur" and s.image == "img0")
    second_load = min(s.start for s in tracer.spans if s.stage == "load" and s.image != "img0")
    assert len(blurs) == 6 * 8 and second_load < blurs[len(blurs) // 2]


def test_run_all_checks_b_and_c_against_a_and_draws_their_timelines(tmp_path, image_dir):
    status = main(["--approaches", "a,b,c", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                   "--kernel-size", "5", "--tile-size", "16", "--workers", "2", "--json", str(tmp_path / "r.json"),
                   "--logs", str(tmp_path / "logs"), "--charts", str(tmp_path / "charts"), "--quiet"], env={})
    assert status == 0
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["approach"] for r in results] == ["a", "b.threads", "b.processes", "b.shm", "c"]
    assert all(r["identical_to_a"] for r in results)
    for name in ("b.threads", "b.processes", "b.shm", "c"):
        assert (tmp_path / "charts" / f"timeline_{name}.png").exists()
