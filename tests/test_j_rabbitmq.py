"""j: a's pixels through RabbitMQ, and the faults f survives by hand, survived by the broker.

Every test shares one RabbitMQ (the session's `rabbit` fixture: a private node boots in seconds) and runs j's
pods as threads on memory:// for the results, so each run takes a fraction of a second.  The chaos matrix, with
process pods, SIGKILL and broker restarts, is tests/test_j_rabbitmq_chaos.py
(python -m pytest -m slow).
"""

import secrets
import time
from dataclasses import replace
from pathlib import Path

import pika
import pytest

from approaches import j_rabbitmq
from approaches.cluster import deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.pods import PodKilled
from approaches.cluster.wire import State
from approaches.core.job import Job
from approaches.core.settings import Settings
from approaches.core.trace import Tracer
from tests.conftest import main
from tests.test_e_naive_queue import assert_identical_to_a, make_job
from tests.test_f_reliable_queue import FAIL_ONE_TILE_ALWAYS, TILES, assert_nothing_lost, crash_once
from tests.test_web import assert_killed_worker_s_tiles_come_back

pytestmark = [pytest.mark.timeout(90), pytest.mark.xdist_group("rabbitmq")]  # one xdist worker: one node booted


def j_job(image_dir: Path, output: Path, rabbit, **options) -> Job:
    job = make_job(image_dir, output, letter="j", **options)
    return replace(job, config=replace(job.config, amqp=rabbit.url))


def run_launched(rabbit, job: Job, hook=None, restart: str | None = None, during=None):
    """j's pods as threads on memory://, with the fault hook; restart: a pod to start again once it has died;
    during(cluster): done once the pods are started.  Every key of the run and both its queues are gone after."""
    with open_broker("memory://") as broker:
        with deployment.launched(broker, job, j_rabbitmq.roles(rabbit), hook=hook) as cluster:
            if during is not None:
                during(cluster)
            if restart is not None:
                pod = {p.name: p for p in (cluster.coordinator, cluster.assembler, *cluster.workers)}[restart]
                pod.wait()
                pod.restart()
            outcome, reports = cluster.collect(Tracer())
            summary = cluster.board.summary()
            key = cluster.board.key("jobs")
        assert connect(broker.url).dbsize() == 0
    assert not queue_exists(rabbit, key) and not queue_exists(rabbit, f"{key}:dead")
    return outcome, reports, summary


def queue_exists(rabbit, name: str) -> bool:
    connection = pika.BlockingConnection(pika.URLParameters(rabbit.url))
    try:
        connection.channel().queue_declare(name, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker:  # 404 NOT_FOUND
        return False
    finally:
        connection.close()


@pytest.mark.parametrize("tile_size,workers", [(16, 2), (256, 1)])
def test_outputs_are_identical_to_a_and_the_run_leaves_no_queue(tmp_path, image_dir, rabbit, tile_size, workers):
    outcome, _, _ = run_launched(rabbit, j_job(image_dir, tmp_path / "out", rabbit, tile_size=tile_size,
                                               workers=workers))
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)


def test_run_opens_the_broker_itself(tmp_path, image_dir, rabbit):
    outcome = j_rabbitmq.run(j_job(image_dir, tmp_path / "out", rabbit), Tracer())
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []


def test_a_delivery_whose_consumer_closes_its_connection_goes_to_the_next_counted(rabbit):
    # Given a message taken by one consumer and never acked
    board = Board(connect_fake(), secrets.token_hex(8))
    with j_rabbitmq.RabbitQueue(rabbit.url, board, "first") as first, \
            j_rabbitmq.RabbitQueue(rabbit.url, board, "second") as second:
        first.put(b"a tile")
        taken = first.next(5.0)
        assert (taken.body, taken.attempt, first.held(), second.next(0.2)) == (b"a tile", 1, 1, None)
        # When its connection closes (a killed process's would be reset by the kernel)
        first.close()
        # Then the broker hands it to the other consumer at once, its delivery counted
        again = second.next(5.0)
        assert (again.body, again.attempt) == (b"a tile", 2)
        second.ack(again)
        assert second.waiting() == 0 and second.in_flight() == 0
        second.remove()


def test_a_consumer_silent_for_visibility_s_loses_its_delivery_within_twice_that(rabbit):
    # Given a message taken by a consumer that then says nothing (a blocking connection answers heartbeats only
    # when called: as silent as a stopped process), and visibility_s 3 s
    board = Board(connect_fake(), secrets.token_hex(8))
    with j_rabbitmq.RabbitQueue(rabbit.url, board, "silent", visibility_s=3.0) as silent, \
            j_rabbitmq.RabbitQueue(rabbit.url, board, "other", visibility_s=3.0) as other:
        silent.put(b"a tile")
        assert silent.next(5.0).body == b"a tile"
        started = time.monotonic()
        # Then the broker presumes it dead and hands the tile on within the visibility timeout (a margin as
        # long again for a busy machine); its heartbeats set to visibility_s, it took three times that
        again = None
        while again is None and time.monotonic() - started < 30:
            again = other.next(1.0)
        assert again is not None and again.body == b"a tile"
        assert time.monotonic() - started < 2 * 3.0
        other.ack(again)
        other.remove()


def connect_fake():
    import fakeredis

    return fakeredis.FakeRedis()


def test_a_worker_killed_holding_a_tile_loses_nothing(tmp_path, image_dir, rabbit):
    # Given a worker that dies after blurring, before storing the result (the fault that loses a tile in e),
    # and a visibility timeout the run would not sit out: RabbitMQ needs none
    job = j_job(image_dir, tmp_path / "out", rabbit, settings=Settings(progress_wait_s=10.0, visibility_s=60.0))
    outcome, reports, _ = run_launched(rabbit, job, hook=crash_once("worker", "blurred"))
    # Then its connection closed with it, the broker gave its tile to the other worker: every image whole
    assert_nothing_lost(outcome, reports)


def test_the_coordinator_killed_between_a_plan_and_its_tiles_and_restarted_loses_nothing(tmp_path, image_dir,
                                                                                         rabbit):
    # Given a coordinator that dies once the second image's plan is out, before any of its tiles is published
    job = j_job(image_dir, tmp_path / "out", rabbit, settings=Settings(progress_wait_s=10.0))
    outcome, reports, _ = run_launched(rabbit, job, hook=crash_once("coordinator", "cut", nth=2),
                                       restart="coordinator")
    # Then restarted, it queues that image again, whole: nothing lost
    assert_nothing_lost(outcome, reports, duplicates=None)


def test_a_tile_that_always_fails_is_dead_lettered_with_its_reason_and_the_others_saved(tmp_path, image_dir,
                                                                                        rabbit):
    outcome, _, _ = run_launched(rabbit, j_job(image_dir, tmp_path / "out", rabbit,
                                               settings=FAIL_ONE_TILE_ALWAYS))
    (failure,) = outcome.failed
    assert failure.path.endswith("two.png") and "dead-lettered: failed on each of its 5 deliveries" in failure.reason
    assert sorted(s.name for s in outcome.saved) == ["one", "three"]
    assert_identical_to_a(outcome, 5)


def kill_on_twos_last_tile(image: str, tile: int) -> None:
    if (image, tile) == ("two", 8):
        raise PodKilled("this tile kills the worker that takes it")


def test_a_tile_that_kills_its_workers_is_dead_lettered_by_the_queue_and_the_others_saved(tmp_path, image_dir,
                                                                                          rabbit):
    # Given a tile that kills every worker that takes it, and a queue that allows it two deliveries
    settings = Settings(fault=kill_on_twos_last_tile, max_deliveries=2, progress_wait_s=10.0)
    outcome, _, _ = run_launched(rabbit, j_job(image_dir, tmp_path / "out", rabbit, workers=3, settings=settings))
    # Then after two workers died with it, the quorum queue's delivery limit dead-letters it: its image fails
    (failure,) = outcome.failed
    assert failure.path.endswith("two.png") and "returned 2 times unacked" in failure.reason
    assert "delivery_limit" in failure.reason and sorted(s.name for s in outcome.saved) == ["one", "three"]


def test_junk_published_to_the_queue_is_dead_lettered_with_its_reason_and_nothing_lost(tmp_path, image_dir, rabbit):
    def publish_junk(cluster):
        with j_rabbitmq.jobs_queue(rabbit.url, cluster.board, "junk", cluster.job.config.settings) as queue:
            queue.put(b"\x00junk")

    _, reports, summary = run_launched(rabbit, j_job(image_dir, tmp_path / "out", rabbit), during=publish_junk)
    assert {name: (r.state, r.processed) for name, r in reports.items()} == {
        name: (State.SAVED, tiles) for name, tiles in TILES.items()}
    ((source, _, reason),) = summary["dead_letters"]
    assert source == "jobs" and reason


def test_a_job_set_aside_after_the_assembler_finished_is_on_the_board_once_collected(tmp_path, image_dir, rabbit):
    # Given a run whose assembler has finished, and then a worker sets a job aside (the junk a stream hands out
    # behind the real tiles): its dead letter lands on RabbitMQ's dead-letter queue, which no assembler drains now
    def late_dead_letter(cluster):
        cluster.assembler.wait()
        connection = pika.BlockingConnection(pika.URLParameters(rabbit.url))
        try:
            connection.channel().basic_publish("", f"{cluster.board.key('jobs')}:dead", b"\x00junk",
                                               pika.BasicProperties(headers={j_rabbitmq.REASON: "late junk"}))
        finally:
            connection.close()

    job = j_job(image_dir, tmp_path / "out", rabbit)
    with open_broker("memory://") as broker, deployment.launched(broker, job, j_rabbitmq.roles(rabbit)) as cluster:
        late_dead_letter(cluster)
        cluster.collect(Tracer())
        letters = [(source, letter.reason) for source, letter in cluster.board.dead_letters()]
    # Then once collected, the board has it with its reason (the chaos demo reads the board then)
    assert letters == [("jobs", "late junk")]


def test_on_the_page_tiles_come_live_and_a_killed_worker_s_tiles_come_back(tmp_path, image_dir, rabbit):
    assert_killed_worker_s_tiles_come_back(tmp_path, image_dir, "j", rabbit.url)


def test_an_unreachable_amqp_url_is_one_line_without_its_password(tmp_path, image_dir, capsys):
    status = main(["--approaches", "j", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                   "--amqp", "amqp://user:hunter2@127.0.0.1:1/%2F", "--no-charts", "--logs", str(tmp_path / "logs")])
    err = capsys.readouterr().err
    assert status == 2 and "cannot reach RabbitMQ at amqp://user:***@127.0.0.1:1/%2F" in err
    assert "hunter2" not in err and "Traceback" not in err
