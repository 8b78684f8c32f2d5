"""g: a's pixels through Streams and a consumer group, every fault of the chaos matrix survived, the service's modes."""

import time
from pathlib import Path

import pytest

from approaches import g_service
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.wire import State
from approaches.core.job import Job
from approaches.core.settings import Settings
from approaches.core.trace import Tracer
from approaches.g_service import StreamQueue
from tests.test_e_naive_queue import assert_identical_to_a, make_job
from tests.test_f_reliable_queue import (
    FAIL_ONE_TILE_ALWAYS,
    TILES,
    assert_nothing_lost,
    assert_saved_whole_despite,
    crash_once,
    random_kills,
    restart_the_killed_until_done,
)
from tests.test_images import assert_bad_inputs_reported, bad_inputs

pytestmark = pytest.mark.timeout(60)  # every test here waits on queues: a hang must fail, not stall CI


def g_job(image_dir: Path, output: Path, **options) -> Job:
    return make_job(image_dir, output, letter="g", **options)


def launched(broker, job, **options):
    return g_service.deployment.launched(broker, job, g_service.ROLES, **options)


def settings(**fields) -> Settings:
    """Settings for these tests: the assembler gives up after 10 s unless told otherwise."""
    return Settings(**{"progress_wait_s": 10.0, **fields})


def run_killing(tmp_path, image_dir, hook, restart: str | None = None, *, pods: int = 2, threads: int = 2,
                **fields):
    """Run g with the fault hook; if restart names a pod, restart it once it has died, as Kubernetes would.
    fields: Settings fields."""
    job, tracer = g_job(image_dir, tmp_path / "out", settings=settings(**fields)), Tracer()
    with open_broker("memory://") as broker:
        with launched(broker, job, hook=hook, worker_pods=pods, worker_settings={"threads": threads}) as cluster:
            if restart is not None:
                pod = {p.name: p for p in (cluster.coordinator, cluster.assembler, *cluster.workers)}[restart]
                pod.wait()
                pod.restart()
            outcome, reports = cluster.collect(tracer)
        assert connect(broker.url).dbsize() == 0  # every key of the run is gone
    return outcome, reports, tracer


def blurs(tracer: Tracer) -> int:
    return sum(span.stage == "blur" for span in tracer.spans)


@pytest.mark.parametrize("broker,tile_size,pods,threads", [
    ("memory://", 7, 1, 1), ("memory://", 16, 1, 3), ("memory://", 256, 2, 2),
    pytest.param("embedded://", 16, 2, 2, marks=[pytest.mark.timeout(120), pytest.mark.slow]),
])
def test_outputs_are_identical_to_a_and_each_thread_is_a_lane(tmp_path, image_dir, broker, tile_size, pods, threads):
    tracer = Tracer()
    outcome = g_service.run(g_job(image_dir, tmp_path / "out", broker=broker, tile_size=tile_size), tracer,
                            pods=pods, threads=threads)
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)
    lanes = {span.lane for span in tracer.spans if span.stage == "blur"}
    assert lanes <= {f"worker-{p}" if threads == 1 else f"worker-{p}.t{t}"
                     for p in range(1, pods + 1) for t in range(1, threads + 1)}


def test_a_worker_killed_holding_a_tile_loses_nothing_its_tile_is_claimed_and_done(tmp_path, image_dir):
    # Given a worker pod that dies after blurring a tile, before storing it (both its threads die with it)
    hook = crash_once("worker-1", "blurred")
    # (slow enough that both pods take tiles: an idle worker-1 would never reach the fault point)
    outcome, reports, _ = run_killing(tmp_path, image_dir, hook, visibility_s=0.3, tile_delay_s=0.01)
    # Then once the job has been idle for the visibility timeout, the other pod claims it: nothing lost
    assert hook.seen  # (its other thread may have passed the same point before it died)
    assert_nothing_lost(outcome, reports)


def test_store_and_ack_are_one_transaction_so_a_worker_killed_right_after_leaves_nothing_to_redo(tmp_path,
                                                                                                image_dir):
    # Given the kill that makes f do a tile twice: after the result is stored (in f, before the ack)
    crash, blurred = crash_once("worker-1", "stored"), []

    def hook(pod: str, point: str) -> bool:
        if point == "blurred":
            blurred.append(pod)  # counted here: a killed pod's spans die with it
        return crash(pod, point)

    outcome, reports, _ = run_killing(tmp_path, image_dir, hook, restart="worker-1", tile_delay_s=0.01, threads=1)
    # Then in g the job was acked with it: no duplicate, every tile blurred once
    assert_nothing_lost(outcome, reports, duplicates=0)
    assert crash.seen and len(blurred) == sum(TILES.values())


def test_a_restarted_worker_hands_back_what_its_earlier_life_held_at_once(tmp_path, image_dir):
    # Given a visibility timeout far longer than the test: only the restart can bring the tile back
    outcome, reports, _ = run_killing(tmp_path, image_dir, crash_once("worker-1", "blurred"), restart="worker-1",
                                      pods=1, visibility_s=600.0)
    assert_nothing_lost(outcome, reports)


def test_every_worker_killed_mid_run_and_restarted_loses_nothing(tmp_path, image_dir):
    job = g_job(image_dir, tmp_path / "out", settings=settings(visibility_s=600.0, tile_delay_s=0.01))
    with open_broker("memory://") as broker, launched(broker, job, worker_pods=2,
                                                      worker_settings={"threads": 2}) as cluster:
        while g_service.tiles_in_flight(cluster) < 2:
            time.sleep(0.005)
        for pod in cluster.workers:
            pod.kill()
        for pod in cluster.workers:
            pod.restart()
        outcome, reports = cluster.collect(Tracer())
    assert_nothing_lost(outcome, reports)


def test_a_restarted_assembler_resumes_from_what_redis_holds(tmp_path, image_dir):
    hook = crash_once("assembler", "step", nth=3)
    outcome, reports, _ = run_killing(tmp_path, image_dir, hook, restart="assembler", tile_delay_s=0.01)
    assert_nothing_lost(outcome, reports)


def test_a_coordinator_killed_mid_split_and_restarted_queues_no_image_twice(tmp_path, image_dir):
    hook = crash_once("coordinator", "queued")  # after the first image was queued whole
    outcome, reports, tracer = run_killing(tmp_path, image_dir, hook, restart="coordinator")
    assert_nothing_lost(outcome, reports)
    assert blurs(tracer) == sum(TILES.values())  # each tile blurred once


def test_duplicate_deliveries_are_harmless_and_the_checkpoint_skips_finished_tiles(tmp_path, image_dir,
                                                                                   monkeypatch):
    # Given a producer that adds every job twice (a client retrying an XADD whose reply was lost)
    put = StreamQueue.put

    def put_twice(self, body, pipe=None):
        put(self, body, pipe)
        put(self, body, pipe)

    monkeypatch.setattr(StreamQueue, "put", put_twice)
    outcome, reports, tracer = run_killing(tmp_path, image_dir, None, pods=1, threads=1)
    # Then the second copy of each job finds its tile in the done-tile checkpoint: acked, not blurred again
    assert_nothing_lost(outcome, reports)
    assert blurs(tracer) == sum(TILES.values())


def test_a_tile_that_always_fails_is_dead_lettered_its_image_failed_and_the_others_saved(tmp_path, image_dir):
    started = time.monotonic()
    outcome = g_service.run(g_job(image_dir, tmp_path / "out", settings=FAIL_ONE_TILE_ALWAYS), Tracer())
    (failure,) = outcome.failed
    assert failure.path.endswith("two.png") and "dead-lettered: handed out 5 times without an ack" in failure.reason
    assert sorted(s.name for s in outcome.saved) == ["one", "three"] and time.monotonic() - started < 20
    assert_identical_to_a(outcome, 5)


def test_bad_images_are_reported_and_the_others_saved(tmp_path, image_dir):
    reasons = bad_inputs(image_dir)
    outcome = g_service.run(g_job(image_dir, tmp_path / "out"), Tracer())
    assert_bad_inputs_reported(outcome, reasons)


def test_a_worker_slower_than_the_visibility_timeout_delivers_late_and_harmlessly(tmp_path, image_dir):
    outcome, reports, _ = run_killing(tmp_path, image_dir, None, tile_delay_s=0.06, visibility_s=0.02)
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert all(r.state is State.SAVED and r.missing == 0 for r in reports.values())
    assert_identical_to_a(outcome, 5)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_every_worker_process_sigkilled_mid_tile_and_restarted_loses_nothing(tmp_path, image_dir):
    # Given g on a real server, two worker processes of two threads, slowed so that they hold tiles when killed
    job = g_job(image_dir, tmp_path / "out", broker="embedded://",
                settings=settings(tile_delay_s=0.05, progress_wait_s=30.0))
    with open_broker("embedded://") as broker, launched(broker, job, worker_pods=2,
                                                        worker_settings={"threads": 2}) as cluster:
        deadline = time.monotonic() + 60
        while (held := g_service.tiles_in_flight(cluster)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert held >= 3
        # When every worker is SIGKILLed, then restarted (a tile may be acked between that count and the kill:
        # re-counting first was a flake on a busy machine)
        for pod in cluster.workers:
            pod.kill()
            assert pod.exitcode == -9
        assert g_service.tiles_in_flight(cluster) >= 1  # what the dead held stays pending: nobody acked it
        for pod in cluster.workers:
            pod.restart()
        outcome, reports = cluster.collect(Tracer())
    assert_nothing_lost(outcome, reports)


@pytest.mark.parametrize("seed", range(12))
def test_random_kills_of_any_pod_with_restarts_lose_nothing(tmp_path, image_dir, seed):
    # Given up to three kills, of random pods at random fault points, each pod restarted once it died
    hook = random_kills(seed)
    job = g_job(image_dir, tmp_path / "out", settings=settings(visibility_s=0.3, tile_delay_s=0.002))
    with open_broker("memory://") as broker, launched(broker, job, hook=hook, worker_pods=2,
                                                      worker_settings={"threads": 2}) as cluster:
        outcome, reports = restart_the_killed_until_done(cluster)
    assert_saved_whole_despite(hook.kills, outcome, reports)
