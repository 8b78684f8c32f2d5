"""No record can stop a run: malformed entries in any queue or record are set aside with a reason, workers and
assemblers carry on, and every real image is saved with a's pixels; a finished run keeps only a small summary."""

import contextlib
import itertools
import subprocess
import sys
import threading
import time
from functools import partial

import pytest

from approaches import f_reliable_queue, g_service
from approaches.cluster.assembly import StoredResultsAssembler
from approaches.cluster.board import KEPT, Board, ResumeRefused, new_run_id
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.planning import fingerprint, queue_images
from approaches.cluster.pods import Life
from approaches.cluster.queues import RUN_TTL_S, dead_letters
from approaches.cluster.wire import ImagePlan, ImageReport, State, TileJob
from approaches.cluster.worker import STOP, work
from approaches.core.config import RunConfig
from approaches.core.images import find_images
from approaches.core.kernel import blur_tile
from approaches.core.limits import DEFAULT_MAX_PIXELS
from approaches.core.settings import Settings
from approaches.core.tiling import cut
from approaches.core.trace import Tracer
from approaches.e_naive_queue import NaiveQueue
from approaches.f_reliable_queue import ReliableQueue
from approaches.g_service import StreamQueue
from approaches.harness.chaos import forged_messages, junk, run_scenario
from tests.conftest import photo
from tests.test_e_naive_queue import assert_identical_to_a, make_job

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client():
    with open_broker("memory://") as broker:
        yield connect(broker.url)


def life(name: str) -> Life:
    return Life(name, time.perf_counter(), threading.Event(), None)


@pytest.mark.parametrize("letter", ["e", "f", "g"])
def test_every_kind_of_malformed_record_pushed_mid_run_is_set_aside_and_nothing_is_lost(tmp_path, image_dir, letter):
    # Before: an entry without a body killed every g worker; a bad plan killed the f/g assembler
    config = RunConfig(input_dir=image_dir, output_dir=tmp_path / "out", kernel_size=3, tile_size=16, workers=2,
                       settings=Settings(tile_delay_s=0.01, result_wait_s=5.0, progress_wait_s=5.0))
    said: list[str] = []
    tally = run_scenario(config, find_images(image_dir), letter, "junk", say=said.append)
    assert (tally.missing, tally.unsaved, tally.differ) == (0, 0, 0), said
    reasons = "\n".join(line for line in said if line.startswith("dead-lettered from"))
    assert "too short for a header" in reasons and "is not an id" in reasons, said


@pytest.mark.parametrize("variant", [NaiveQueue, ReliableQueue, StreamQueue])
def test_a_worker_sets_every_malformed_job_aside_with_its_reason_and_blurs_the_good_one(client, variant):
    # Given a plan, every kind of malformed job, then a good one
    board = Board(client, new_run_id())
    plan = ImagePlan("img", 20, 10, "RGB", 3, 8)
    board.publish_plan(0, plan)
    board.mark_coordinated(1)
    jobs = variant(client, board.key("jobs"), *(() if variant is NaiveQueue else ("worker-1",)))
    for message in forged_messages(board, 1).values():
        jobs.put(message)
    if variant is StreamQueue:
        client.xadd(jobs.key, {"not-a-body": b"x"})
    good = TileJob(board.run, 0, plan.tiles[1], 3, cut(photo(10, 20, 3), plan.tiles[1], 1))
    jobs.put(good.encode())
    delivered = []
    # When the one worker loop runs until the queue is empty and the run is done
    board.mark_done()
    work(life("worker-1"), "worker-1", board, jobs, Settings(poll_s=0.01),
         lambda job, block, delivery: delivered.append(job.tile.id), partial(blur_tile, method="separable"))
    # Then the good tile was blurred and delivered, and each bad one set aside with what is wrong with it
    assert delivered == [1]
    reasons = "\n".join(letter.reason for letter in dead_letters(client, jobs.key))
    for why in ("too short for a header", "not this run", "where a job was expected", "no plan for image 8",
                "is 8x8 at 0,0, not", "checksum mismatch", *(["exactly one field, body"] if variant is StreamQueue
                                                            else [])):
        assert why in reasons, (why, reasons)


def test_the_dead_letter_reader_and_the_assembler_survive_malformed_dead_letters(client, tmp_path):
    # Before: a dead letter without its fields made the reader, and so the f/g assembler and the report, crash
    board = Board(client, new_run_id())
    client.xadd(board.key("jobs:dead"), {"what": b"no reason, no body"})
    client.xadd(board.key("jobs:dead"), {"reason": b"x", "head": b"\xff" * 80, "size": b"big", "exhausted": b"1"})
    letters = dead_letters(client, board.key("jobs"))
    assert [letter.reason.startswith("malformed dead letter") for letter in letters] == [True, True]
    board.publish_plan(0, ImagePlan("img", 4, 4, "L", 3, 2))
    board.mark_coordinated(1)
    assembler = StoredResultsAssembler(board, tmp_path, "f", 1, "pillow", 5.0, Tracer(), "assembler", now=0.0)
    assert assembler.step(now=0.0) and not board.reports()  # nothing failed because of them


def test_records_that_cannot_be_read_are_set_aside_never_a_crash(client):
    board = Board(client, new_run_id())
    client.set(board.key("coordinated"), b"many")
    client.hset(board.key("plans"), "../etc", b"{}")
    client.hset(board.key("progress"), 0, b"lots")
    assert board.coordinated() is None and board.planned() == [] and board.assembled() == 0
    board.count_assembled(0)  # a counter that held junk counts again from one
    assert board.assembled() == 1
    reasons = [letter.reason for _, letter in board.dead_letters()]
    assert any("coordinated: not a count" in reason for reason in reasons)
    assert any("plans: field" in reason for reason in reasons)


def test_a_finished_run_keeps_only_a_small_summary_and_its_dead_letters_under_the_ttl(client):
    board = Board(client, new_run_id())
    board.publish_plan(0, ImagePlan("img", 400, 300, "RGB", 3, 64))
    board.report(0, ImageReport(State.SAVED, 30, 30))
    board.store_result(0, 1, b"x" * 100_000)
    jobs = ReliableQueue(client, board.key("jobs"), "w")
    jobs.put(b"bad")
    jobs.put(b"left over")
    jobs.nack(jobs.next(0.1), "why")
    board.finish({"images": {"0": {"state": "saved"}}})
    keys = {key.decode().split(":", 2)[2] for key in client.scan_iter(match=f"blur:{board.run}:*")}
    assert keys == {"summary", "done", "jobs:dead"} and set(KEPT) >= {"summary", "done"}
    assert all(0 < client.ttl(key) <= RUN_TTL_S for key in client.scan_iter(match=f"blur:{board.run}:*"))
    assert board.summary() == {"images": {"0": {"state": "saved"}}}
    assert [letter.size for letter in dead_letters(client, board.key("jobs"))] == [len(b"bad")]


def test_resuming_a_run_with_other_images_is_refused_by_name_and_content(client, image_dir, tmp_path):
    # Before: images were matched by position: another --input mixed two runs' images and overwrote outputs
    board = Board(client, new_run_id())
    images = [[str(source.path), source.name] for source in find_images(image_dir)]
    before = fingerprint(images)
    jobs = StreamQueue(client, board.key("jobs"), "c")
    queue_images(life("coordinator"), board, jobs, images, 3, 16, DEFAULT_MAX_PIXELS)
    queue_images(life("coordinator"), board, jobs, images, 3, 16, DEFAULT_MAX_PIXELS)  # same
    (image_dir / "one.png").write_bytes((image_dir / "two.png").read_bytes())  # same name, other content
    assert fingerprint(images) != before
    with pytest.raises(ResumeRefused, match=r"was started with other images.*one"):
        queue_images(life("coordinator"), board, jobs, images, 3, 16, DEFAULT_MAX_PIXELS)


@pytest.mark.slow
def test_a_service_worker_is_named_apart_from_every_other_process(tmp_path):
    # Before: every g worker process was the consumer "worker": a second one took over a live peer's tiles
    names = {subprocess.run([sys.executable, "-c", "from approaches.harness.service import _parser; "
                             "print(_parser().parse_args([]).name)"], capture_output=True, text=True,
                            check=True).stdout.strip() for _ in range(2)}
    assert len(names) == 2


def test_a_new_consumer_never_takes_over_a_live_peers_messages_but_a_restart_takes_back_its_own(client):
    key = f"blur:{new_run_id()}:jobs"
    first = StreamQueue(client, key, "worker-a.t1", visibility_s=60)
    first.put(b"tile")
    first.next(0.1)
    assert StreamQueue(client, key, "worker-b.t1", visibility_s=60).reclaim() == 0
    assert StreamQueue(client, key, "worker-a.t1", visibility_s=60).reclaim() == 1


@pytest.mark.parametrize("approach", ["e", "f", "g"])
def test_workers_record_their_waits_for_work_as_blocked_spans_between_their_tiles(tmp_path, image_dir, approach):
    from approaches.registry import APPROACHES

    tracer = Tracer()
    outcome = APPROACHES[approach].run(make_job(image_dir, tmp_path / "out", letter=approach), tracer)
    assert len(outcome.saved) == 3
    lanes: dict[str, list] = {}
    for span in tracer.spans:
        if span.lane.startswith("worker") and span.stage in ("blocked", "blur"):
            lanes.setdefault(span.lane, []).append(span)
    assert any(span.stage == "blocked" for spans in lanes.values() for span in spans)
    for spans in lanes.values():  # a wait is the time between tiles: never over a blur of the same lane
        spans.sort(key=lambda span: span.start)
        assert all(one.end <= two.start + 1e-6 for one, two in itertools.pairwise(spans))


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("module", [f_reliable_queue, g_service], ids=["f", "g"])
def test_on_a_real_server_a_client_pushing_junk_all_along_changes_nothing_and_little_is_left(tmp_path, image_dir,
                                                                                            module):
    job = make_job(image_dir, tmp_path / "out", broker="embedded://", letter=module.__name__[11],
                   settings=Settings(tile_delay_s=0.01, progress_wait_s=20.0))
    with open_broker("embedded://") as broker, module.deployment.launched(broker, job, module.ROLES) as cluster:
        stop = threading.Event()
        pusher = threading.Thread(target=_push_junk_until, args=(connect(broker.url), cluster.board, stop))
        pusher.start()
        try:
            outcome, _ = cluster.collect(Tracer())
        finally:
            stop.set()
            pusher.join()
        client = connect(broker.url)
        left = sum(client.memory_usage(key) or 0 for key in client.scan_iter(match=f"blur:{cluster.board.run}:*"))
    assert sorted(s.name for s in outcome.saved) == ["one", "three", "two"] and outcome.failed == []
    assert_identical_to_a(outcome, 5)
    assert left < 1_000_000


def _push_junk_until(client, board: Board, stop: threading.Event) -> None:
    """Another client: junk into every list and stream of the run, every few milliseconds (bounded)."""
    for _ in range(2000):
        if stop.is_set():
            return
        if board.planned() and not board.done():
            with contextlib.suppress(Exception):  # the run finished between two writes: its keys are going
                junk(board, 3)
        time.sleep(0.02)


@pytest.mark.parametrize("variant", [NaiveQueue, ReliableQueue, StreamQueue])
def test_a_stop_pill_ends_only_an_e_worker_and_only_once_the_coordinator_has_queued_every_tile(client, variant):
    # Before: a STOP pushed by anyone, into any run's queue, ended the worker that took it, tiles left or not
    board = Board(client, new_run_id())
    plan = ImagePlan("img", 20, 10, "RGB", 3, 8)
    board.publish_plan(0, plan)
    pills = variant is NaiveQueue
    jobs = variant(client, board.key("jobs"), *(() if pills else ("worker-1",)))
    jobs.put(STOP)  # before the coordinator is done: not its pill
    jobs.put(TileJob(board.run, 0, plan.tiles[1], 3, cut(photo(10, 20, 3), plan.tiles[1], 1)).encode())
    delivered = []

    def deliver(job, block, delivery):  # the coordinator finishes, and (e) sends its real pill
        delivered.append(job.tile.id)
        jobs.ack(delivery)
        board.mark_coordinated(1)
        jobs.put(STOP) if pills else board.mark_done()

    work(life("worker-1"), "worker-1", board, jobs, Settings(poll_s=0.01), deliver,
         partial(blur_tile, method="separable"), pills=pills)
    assert delivered == [1]
    (letter,) = dead_letters(client, jobs.key)
    assert ("before the coordinator" if pills else "too short for a header") in letter.reason
