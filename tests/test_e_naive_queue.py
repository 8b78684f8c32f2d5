"""e: a's pixels through Redis lists; at-most-once, proven; hostile messages refused; never a hang."""

import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from approaches import e_naive_queue
from approaches.cluster.assembly import InMemoryAssembler
from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.pods import Life
from approaches.cluster.queues import dead_letters
from approaches.cluster.wire import ImagePlan, State, TileJob, TileResult
from approaches.cluster.worker import STOP
from approaches.core.config import RunConfig
from approaches.core.images import find_images, load_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur
from approaches.core.limits import DEFAULT_MAX_PIXELS
from approaches.core.settings import Settings
from approaches.core.tiling import cut
from approaches.core.trace import Tracer
from approaches.e_naive_queue import NaiveQueue
from tests.conftest import photo
from tests.test_images import assert_bad_inputs_reported, bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on queues: a hang must fail, not stall CI


def make_job(image_dir: Path, output: Path, *, broker: str = "memory://", kernel_size: int = 5, tile_size: int = 16,
             workers: int = 2, letter: str = "e", settings: Settings | None = None) -> Job:
    config = RunConfig(input_dir=image_dir, output_dir=output, kernel_size=kernel_size, tile_size=tile_size,
                       workers=workers, broker=broker, settings=settings or Settings())
    return Job(config, tuple(find_images(image_dir)), letter)


def assert_identical_to_a(outcome: Outcome, kernel_size: int) -> None:
    for saved in outcome.saved:
        expected = blur(load_image(saved.source).pixels, kernel_size)
        assert np.array_equal(load_image(saved.output).pixels, expected), saved.name


@pytest.mark.parametrize("broker,tile_size,workers", [
    ("memory://", 7, 1), ("memory://", 16, 3), ("memory://", 256, 2),  # 256: each image is one tile
    pytest.param("embedded://", 16, 2, marks=[pytest.mark.timeout(120), pytest.mark.slow]),
])
def test_outputs_are_identical_to_a_and_every_pod_leaves_its_spans(tmp_path, image_dir, broker, tile_size, workers):
    tracer = Tracer()
    outcome = e_naive_queue.run(make_job(image_dir, tmp_path / "out", broker=broker, tile_size=tile_size,
                                         workers=workers), tracer)
    assert [s.name for s in outcome.saved] == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)
    lanes = {"coordinator", "assembler", *(f"worker-{i}" for i in range(1, workers + 1))}
    assert {span.lane for span in tracer.spans if span.stage == "start"} == lanes
    tiles = sum(-(-w // tile_size) * -(-h // tile_size) for w, h in ((90, 70), (41, 33), (25, 20)))
    assert sum(span.stage == "blur" for span in tracer.spans) == tiles


def test_at_most_once_a_worker_killed_holding_a_tile_loses_it_and_its_image_is_reported_not_saved(tmp_path,
                                                                                                 image_dir):
    # Given a fault that crashes the first worker to finish blurring a tile, before it pushes the result
    killed = []

    def crash_first_blurred(pod: str, point: str) -> bool:
        if point == "blurred" and not killed:
            killed.append(pod)
            return True
        return False

    job = make_job(image_dir, tmp_path / "out", settings=Settings(result_wait_s=0.5))
    started = time.monotonic()
    with open_broker("memory://") as broker:
        with e_naive_queue.launched(broker, job, hook=crash_first_blurred) as cluster:
            outcome, reports = cluster.collect(Tracer())
        assert connect(broker.url).dbsize() == 0  # every key of the run is gone
    # Then that tile is lost: the first tiles queued are image one's, so one is incomplete by exactly one
    assert len(killed) == 1 and time.monotonic() - started < 20  # and e did not hang
    one = reports["one"]
    assert (one.state, one.expected, one.processed, one.missing, one.duplicates) == (State.INCOMPLETE, 30, 29, 1, 0)
    (failure,) = outcome.failed
    assert failure.path.endswith("one.png") and "incomplete: 29 of 30 tiles" in failure.reason
    assert not (tmp_path / "out" / "e" / "one_blurred.png").exists()
    # And the surviving worker did the other images, with a's pixels
    assert [s.name for s in outcome.saved] == ["three", "two"]
    assert_identical_to_a(outcome, 5)


def test_a_coordinator_that_dies_fails_the_images_it_never_queued_and_e_does_not_hang(tmp_path, image_dir):
    def crash_on_third_tile(pod: str, point: str, queued=[]) -> bool:  # noqa: B006 (a counter across calls)
        if pod == "coordinator" and point == "queued":
            queued.append(point)
            return len(queued) == 3
        return False

    outcome = e_naive_queue.run(make_job(image_dir, tmp_path / "out", settings=Settings(result_wait_s=0.5)), Tracer(),
                                hook=crash_on_third_tile)
    reasons = {Path(f.path).stem: f.reason for f in outcome.failed}
    assert outcome.saved == [] and set(reasons) == {"one", "two", "three"}
    assert "incomplete: 3 of 30 tiles" in reasons["one"]
    assert reasons["two"] == reasons["three"] == "the coordinator died before queuing it"


def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir):
    reasons = bad_inputs(image_dir)
    outcome = e_naive_queue.run(make_job(image_dir, tmp_path / "out"), Tracer())
    assert_bad_inputs_reported(outcome, reasons)
    assert_identical_to_a(outcome, 5)


def test_an_unreachable_broker_fails_every_image_with_the_reason(tmp_path, image_dir):
    outcome = e_naive_queue.run(make_job(image_dir, tmp_path / "out", broker="redis://127.0.0.1:1/0"), Tracer())
    assert outcome.saved == [] and len(outcome.failed) == 3
    assert all("cannot reach redis://127.0.0.1:1/0" in f.reason for f in outcome.failed)


# --- the pods one at a time, on a board the test sets up -----------------------------------------------


@pytest.fixture
def memory_url():
    with open_broker("memory://") as broker:
        yield broker.url


@pytest.fixture
def board(memory_url) -> Board:
    return Board(connect(memory_url), new_run_id())


def life(name: str) -> Life:
    return Life(name, time.perf_counter(), threading.Event(), None)


def test_a_worker_dead_letters_hostile_jobs_with_their_reasons_and_blurs_the_good_one(memory_url, board):
    # Given a plan, one good job and three bad ones, then the coordinator's STOP pill
    plan = ImagePlan("img", 20, 10, "RGB", 3, 8)
    board.publish_plan(0, plan)
    board.mark_coordinated(1)
    pixels = photo(10, 20, 3)
    jobs = NaiveQueue(board.client, board.key("jobs"))
    good = TileJob(board.run, 0, plan.tiles[1], 3, cut(pixels, plan.tiles[1], 1))
    for body in (b"garbage", TileJob(new_run_id(), 0, good.tile, 3, good.pixels).encode(),
                 TileJob(board.run, 5, good.tile, 3, good.pixels).encode(), good.encode(), STOP):
        jobs.put(body)
    # When a worker runs until its pill
    e_naive_queue.worker(life("worker-1"), url=memory_url, run=board.run, settings=Settings().plain(),
                         truncate=False, kernel="separable")
    # Then the good tile is blurred exactly as a blurs it, and each bad job is set aside with its reason
    (body,) = board.client.lrange(board.key("results"), 0, -1)
    result = TileResult.decode(body, board.run, board.plan)
    assert np.array_equal(result.pixels, blur(pixels, 3)[0:8, 8:16])
    reasons = [letter.reason for letter in dead_letters(board.client, board.key("jobs"))]
    assert len(reasons) == 3
    assert "too short" in reasons[0] and "not this run" in reasons[1] and "no plan for image 5" in reasons[2]


def test_the_assembler_pastes_each_tile_once_counts_duplicates_and_saves_the_image(tmp_path, board):
    plan, pixels, results = two_tiles(board)
    first, second = (TileResult(board.run, 0, tile, 3, pixels[:, tile.x:tile.x + tile.width]) for tile in plan.tiles)
    for result in (first, first, second):
        results.put(result.encode())
    board.mark_coordinated(1)
    assembler = make_assembler(board, results, tmp_path)
    assert [assembler.step(now=t) for t in (0, 1, 2)] == [True, True, False]
    report = board.reports()[0]
    assert (report.state, report.processed, report.duplicates) == (State.SAVED, 2, 1)
    assert np.array_equal(load_image(tmp_path / "e" / "img_blurred.png").pixels, pixels)


def test_the_assembler_gives_up_result_wait_s_after_the_last_result_without_waiting_that_long(tmp_path, board):
    plan, pixels, results = two_tiles(board)
    tile = plan.tiles[0]
    results.put(TileResult(board.run, 0, tile, 3, pixels[:, :tile.width]).encode())
    board.mark_coordinated(1)
    assembler = make_assembler(board, results, tmp_path, result_wait_s=5.0)
    # The clock is passed in: 100 s of quiet take no time here
    assert assembler.step(now=100.0) and assembler.step(now=104.9)
    assert not assembler.step(now=105.0)
    report = board.reports()[0]
    assert (report.state, report.expected, report.processed, report.missing) == (State.INCOMPLETE, 2, 1, 1)
    assert not (tmp_path / "e" / "img_blurred.png").exists()


def test_the_assembler_refuses_results_of_a_plan_whose_name_is_a_path(tmp_path, board):
    # Given a plan record naming its image with a path out of the output folder, and a result for it
    hostile = ImagePlan("../../evil", 8, 8, "L", 3, 8)
    board.client.hset(board.key("plans"), 0, hostile.encode())
    results = NaiveQueue(board.client, board.key("results"))
    results.put(TileResult(board.run, 0, hostile.tiles[0], 3, np.zeros((8, 8, 1), np.uint8)).encode())
    board.mark_coordinated(1)
    assembler = make_assembler(board, results, tmp_path / "out", result_wait_s=1.0)
    # Then the result is set aside with the reason, and the image fails, with nothing written anywhere
    assert assembler.step(now=0.0) and not assembler.step(now=2.0)
    (letter,) = dead_letters(board.client, board.key("results"))
    assert "not a plain file name" in letter.reason
    assert board.reports()[0].state is State.FAILED and "not a plain file name" in board.reports()[0].reason
    assert not list(tmp_path.rglob("*.png"))


def two_tiles(board: Board) -> tuple[ImagePlan, np.ndarray, NaiveQueue]:
    plan = ImagePlan("img", 12, 6, "RGB", 3, 8)  # tiles 8x6 and 4x6
    board.publish_plan(0, plan)
    return plan, photo(6, 12, 3), NaiveQueue(board.client, board.key("results"))


def make_assembler(board: Board, results: NaiveQueue, output: Path, result_wait_s: float = 5.0):
    return InMemoryAssembler(board, results, output, "e", 1, Settings(poll_s=0.01, result_wait_s=result_wait_s),
                             Tracer(), "assembler", now=0.0)



def test_tiles_in_flight_counted_from_outside_never_sees_the_stop_pills_missing(memory_url, board, image_dir,
                                                                                 monkeypatch):
    # Before: the run was marked coordinated, then the pills were pushed; in between, counting from outside
    # (queued - waiting, the pills taken off the waiting) saw 2 tiles in flight with no worker started, and the
    # chaos demo killed workers that held nothing
    seen = []
    observer = types.SimpleNamespace(board=Board(connect(memory_url), board.run), workers=[None, None])
    put = NaiveQueue.put

    def looking(queue, body, pipe=None):
        if body == STOP:
            seen.append(e_naive_queue.tiles_in_flight(observer))
        put(queue, body, pipe)

    monkeypatch.setattr(NaiveQueue, "put", looking)
    images = [[str(source.path), source.name] for source in find_images(image_dir)]
    e_naive_queue.coordinator(life("coordinator"), url=memory_url, run=board.run, settings=Settings().plain(),
                              images=images, kernel_size=3, tile_size=16, max_pixels=DEFAULT_MAX_PIXELS,
                              workers=2)
    assert len(seen) == 2 and set(seen) <= {None, 0}  # nobody took a tile: none is in flight, ever
    assert e_naive_queue.tiles_in_flight(observer) == 0
