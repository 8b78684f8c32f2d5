"""f: a's pixels through a reliable queue, and every fault that loses tiles in e, survived with nothing lost."""

import random
import time
from pathlib import Path

import pytest

from approaches import f_reliable_queue
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.wire import State
from approaches.core.job import Job
from approaches.core.settings import Settings
from approaches.core.trace import Tracer
from tests.test_e_naive_queue import assert_identical_to_a, make_job
from tests.test_images import assert_bad_inputs_reported, bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on queues: a hang must fail, not stall CI

TILES = {"one": 30, "two": 9, "three": 4}  # at tile size 16: 90x70, 41x33, 25x20


def f_job(image_dir: Path, output: Path, **options) -> Job:
    return make_job(image_dir, output, letter="f", **options)


def crash_once(pod_prefix: str, point: str, nth: int = 1):
    """A fault hook: the nth time a pod whose name starts with pod_prefix passes point, it dies there."""
    seen = []

    def hook(pod: str, at: str) -> bool:
        if pod.startswith(pod_prefix) and at == point:
            seen.append(pod)
            return len(seen) == nth
        return False

    hook.seen = seen
    return hook


def run_killing(tmp_path, image_dir, hook, restart: str | None = None, **settings):
    """Run f with the fault hook; if restart names a pod, restart it once it has died, as Kubernetes would.
    settings: Settings fields (progress_wait_s is 10 s unless given)."""
    job = f_job(image_dir, tmp_path / "out", settings=Settings(**{"progress_wait_s": 10.0, **settings}))
    with open_broker("memory://") as broker:
        with f_reliable_queue.deployment.launched(broker, job, f_reliable_queue.ROLES, hook=hook) as cluster:
            if restart is not None:
                pod = {p.name: p for p in (cluster.coordinator, cluster.assembler, *cluster.workers)}[restart]
                pod.wait()
                pod.restart()
            outcome, reports = cluster.collect(Tracer())
        assert connect(broker.url).dbsize() == 0  # every key of the run is gone
    return outcome, reports


def assert_nothing_lost(outcome, reports, duplicates: int | None = 0) -> None:
    """Every image saved whole with a's pixels; duplicates: how many tiles were stored twice (None: any)."""
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert {name: (r.state, r.expected, r.processed, r.missing) for name, r in reports.items()} == {
        name: (State.SAVED, tiles, tiles, 0) for name, tiles in TILES.items()}
    assert duplicates is None or sum(r.duplicates for r in reports.values()) == duplicates
    assert_identical_to_a(outcome, 5)


@pytest.mark.parametrize("broker,tile_size,workers", [
    ("memory://", 7, 1), ("memory://", 16, 3), ("memory://", 256, 2),
    pytest.param("embedded://", 16, 2, marks=[pytest.mark.timeout(120), pytest.mark.slow]),
])
def test_outputs_are_identical_to_a(tmp_path, image_dir, broker, tile_size, workers):
    outcome = f_reliable_queue.run(f_job(image_dir, tmp_path / "out", broker=broker, tile_size=tile_size,
                                         workers=workers), Tracer())
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)


def test_a_worker_killed_holding_a_tile_loses_nothing_its_tile_goes_to_another(tmp_path, image_dir):
    # Given the fault that loses a tile in e: a worker dies after blurring, before storing the result
    hook = crash_once("worker", "blurred")
    outcome, reports = run_killing(tmp_path, image_dir, hook, visibility_s=0.3)
    # Then once its heartbeat expires, the other worker takes the tile over: every image whole, a's pixels
    assert len(hook.seen) >= 1
    assert_nothing_lost(outcome, reports)


def test_a_worker_killed_after_storing_but_before_acking_makes_a_harmless_duplicate(tmp_path, image_dir):
    # Given a worker that dies after storing its first result, before acking the job, and is restarted
    hook = crash_once("worker-1", "stored")
    outcome, reports = run_killing(tmp_path, image_dir, hook, restart="worker-1", tile_delay_s=0.01)
    # Then its job is done again (it was never acked), and the second result is counted, not pasted
    assert_nothing_lost(outcome, reports, duplicates=1)


def test_a_restarted_worker_hands_back_what_its_earlier_life_held_at_once(tmp_path, image_dir):
    # Given a visibility timeout far longer than the test: only the restart can bring the tile back
    outcome, reports = run_killing(tmp_path, image_dir, crash_once("worker-1", "blurred"), restart="worker-1",
                                   visibility_s=600.0)
    assert_nothing_lost(outcome, reports)


def test_a_restarted_assembler_resumes_from_what_redis_holds(tmp_path, image_dir):
    # Given an assembler killed mid-run, while the (slowed) workers are still storing results
    hook = crash_once("assembler", "step", nth=3)
    outcome, reports = run_killing(tmp_path, image_dir, hook, restart="assembler", tile_delay_s=0.01)
    assert_nothing_lost(outcome, reports)


def test_a_coordinator_killed_mid_split_and_restarted_queues_no_image_twice(tmp_path, image_dir):
    hook = crash_once("coordinator", "queued")  # after the first image was queued whole
    job = f_job(image_dir, tmp_path / "out", settings=Settings(progress_wait_s=10.0))
    tracer = Tracer()
    with open_broker("memory://") as broker, f_reliable_queue.deployment.launched(
            broker, job, f_reliable_queue.ROLES, hook=hook) as cluster:
        cluster.coordinator.wait()
        cluster.coordinator.restart()
        outcome, reports = cluster.collect(tracer)
    assert_nothing_lost(outcome, reports)
    assert sum(span.stage == "blur" for span in tracer.spans) == sum(TILES.values())  # each tile blurred once


def test_a_tile_that_always_fails_is_dead_lettered_its_image_failed_and_the_others_saved(tmp_path, image_dir):
    # Given a kernel that fails on one tile of "two", every time
    started = time.monotonic()
    outcome = f_reliable_queue.run(f_job(image_dir, tmp_path / "out", settings=FAIL_ONE_TILE_ALWAYS), Tracer())
    # Then after the delivery limit its image is failed with the reason, fast, and the others are saved
    (failure,) = outcome.failed
    assert failure.path.endswith("two.png") and "dead-lettered: handed out 5 times without an ack" in failure.reason
    assert sorted(s.name for s in outcome.saved) == ["one", "three"] and time.monotonic() - started < 20
    assert_identical_to_a(outcome, 5)


def fail_on_twos_last_tile(image: str, tile: int) -> None:
    if (image, tile) == ("two", 8):  # two's bottom-right tile (41x33 in tiles of 16)
        raise RuntimeError("the node's GPU fell off the bus")


FAIL_ONE_TILE_ALWAYS = Settings(fault=fail_on_twos_last_tile, backoff_s=0.001)


def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir):
    reasons = bad_inputs(image_dir)
    outcome = f_reliable_queue.run(f_job(image_dir, tmp_path / "out"), Tracer())
    assert_bad_inputs_reported(outcome, reasons)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_worker_process_sigkilled_mid_run_and_restarted_loses_nothing(tmp_path, image_dir):
    # Given f on a real server, with worker processes slowed so that each holds a tile when killed
    job = f_job(image_dir, tmp_path / "out", broker="embedded://",
                settings=Settings(progress_wait_s=30.0, tile_delay_s=0.05))
    with open_broker("embedded://") as broker, f_reliable_queue.deployment.launched(
            broker, job, f_reliable_queue.ROLES) as cluster:
        deadline = time.monotonic() + 60
        while sum(cluster.board.client.llen(cluster.board.key(f"jobs:processing:{p.name}")) for p in cluster.workers) \
                < len(cluster.workers) and time.monotonic() < deadline:
            time.sleep(0.01)
        # When every worker is SIGKILLed holding a tile, then restarted
        for pod in cluster.workers:
            pod.kill()
            assert pod.exitcode == -9
        for pod in cluster.workers:
            pod.restart()
        outcome, reports = cluster.collect(Tracer())
    # Then nothing is lost (a worker killed between storing and acking does its tile again: at-least-once)
    assert_nothing_lost(outcome, reports, duplicates=None)


@pytest.mark.parametrize("seed", range(12))
def test_random_kills_of_any_pod_with_restarts_lose_nothing(tmp_path, image_dir, seed):
    # Given up to three kills, of random pods at random fault points, each pod restarted once it died
    hook = random_kills(seed)
    job = f_job(image_dir, tmp_path / "out",
                settings=Settings(visibility_s=0.3, progress_wait_s=10.0, tile_delay_s=0.002))
    with open_broker("memory://") as broker, f_reliable_queue.deployment.launched(
            broker, job, f_reliable_queue.ROLES, hook=hook) as cluster:
        outcome, reports = restart_the_killed_until_done(cluster)
    # Then every image is saved whole, with a's pixels, however the kills fell
    assert_saved_whole_despite(hook.kills, outcome, reports)


def random_kills(seed: int):
    """A fault hook: up to three kills, of random pods at random fault points; hook.kills says which."""
    rng, kills = random.Random(seed), []

    def hook(pod: str, point: str) -> bool:
        if len(kills) < 3 and rng.random() < 0.03:
            kills.append(f"{pod}@{point}")
            return True
        return False

    hook.kills = kills
    return hook


def restart_the_killed_until_done(cluster):
    """Restart each pod that died, as Kubernetes would, until the assembler ends; then collect the run."""
    pods = (cluster.coordinator, *cluster.workers, cluster.assembler)
    while not (cluster.assembler.wait(0.01) and cluster.assembler.report is not None):
        for pod in pods:
            if pod.wait(0) and pod.report is None:  # it ended without a report: killed
                pod.restart()
    return cluster.collect(Tracer())


def assert_saved_whole_despite(kills, outcome, reports) -> None:
    assert kills, "no pod was killed: the test proved nothing"
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == [], kills
    assert all(r.state is State.SAVED and r.missing == 0 for r in reports.values()), (kills, reports)
    assert_identical_to_a(outcome, 5)


def test_a_worker_slower_than_the_visibility_timeout_delivers_late_and_harmlessly(tmp_path, image_dir):
    # Given workers that take longer per tile (0.06 s) than the visibility timeout (0.02 s): an idle worker
    # reaps a busy one's tile and does it again, and the busy one then stores and acks it late
    outcome, reports = run_killing(tmp_path, image_dir, hook=None, tile_delay_s=0.06, visibility_s=0.02)
    # Then the late results change nothing: each image saved once, whole, with a's pixels
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert all(r.state is State.SAVED and r.missing == 0 for r in reports.values())
    assert_identical_to_a(outcome, 5)
