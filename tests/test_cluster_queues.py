"""The work-queue interface, over every variant and broker; each variant's guarantee sentence, proven."""

import time

import pytest

from approaches.cluster.board import RUN_TTL_S
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.queues import Delivery, WorkQueue, dead_letters
from approaches.e_naive_queue import NaiveQueue
from approaches.f_reliable_queue import ReliableQueue
from approaches.g_service import StreamQueue

pytestmark = pytest.mark.timeout(60)

VARIANTS = {"naive": NaiveQueue, "reliable": ReliableQueue, "stream": StreamQueue}


@pytest.fixture(scope="module", params=["memory://", "embedded://"])
def broker_url(request):
    with open_broker(request.param) as broker:
        yield broker.url


@pytest.fixture(params=list(VARIANTS))
def queue(request, broker_url) -> WorkQueue:
    client = connect(broker_url)
    key = f"blur:test-{request.node.name}:jobs"
    _clear(client, key)
    return VARIANTS[request.param](client, key)


def _clear(client, key: str) -> None:
    """Remove what an earlier test left under key (the embedded server lives for the whole module)."""
    if stale := client.keys(f"{key}*"):
        client.delete(*stale)


def test_messages_come_out_in_the_order_they_went_in(queue):
    for body in (b"1", b"2", b"3"):
        queue.put(body)
    assert queue.waiting() == 3
    assert [queue.next(0.1).body for _ in range(3)] == [b"1", b"2", b"3"]


def test_next_returns_none_within_its_timeout_and_refuses_unbounded_waits(queue):
    assert queue.next(0.05) is None
    for timeout in (0, -1, 60):
        with pytest.raises(ValueError):
            queue.next(timeout)


def test_nack_sets_the_message_aside_with_its_reason(queue):
    queue.put(b"bad")
    delivery = queue.next(0.1)
    queue.nack(delivery, "bad magic")
    (letter,) = dead_letters(queue.client, queue.key)
    assert (letter.reason, letter.head, letter.size) == ("bad magic", b"bad", 3) and queue.next(0.05) is None


def test_requeue_hands_the_message_out_again_before_the_others_unless_the_queue_hands_nothing_out_twice(queue):
    queue.put(b"first")
    queue.put(b"second")
    queue.requeue(queue.next(0.1))
    if queue.guarantee == "at-most-once":  # given back to a naive queue: set aside, with why
        (letter,) = dead_letters(queue.client, queue.key)
        assert letter.head == b"first" and letter.exhausted and queue.next(0.1).body == b"second"
    else:
        assert queue.next(0.1).body == b"first"


def test_a_queue_whose_run_has_finished_and_deleted_its_keys_reads_as_empty_never_an_error(queue):
    # Before: a g worker that found the queue empty just as the run finished called reclaim() on the deleted
    # stream and crashed on NOGROUP (seen in benchmarks/h_vs_g.py)
    queue.put(b"x")
    queue.client.flushdb()  # what Board.finish does to the run's work keys (this broker serves only these tests)
    assert queue.next(0.01) is None and queue.reclaim() == 0 and queue.waiting() == 0
    assert queue.in_flight() in (0, None) and queue.in_flight_bodies() in ([], None) and queue.held() in (0, None)
    queue.heartbeat()


def test_every_write_sets_the_run_ttl(queue):
    queue.put(b"x")
    queue.nack(Delivery(b"y"), "why")
    assert 0 < queue.client.ttl(queue.key) <= RUN_TTL_S and 0 < queue.client.ttl(f"{queue.key}:dead") <= RUN_TTL_S


def test_naive_is_at_most_once_a_consumer_that_dies_holding_a_message_loses_it(broker_url):
    # Given a message handed out to a consumer that then dies without acking it
    client = connect(broker_url)
    queue = NaiveQueue(client, "blur:test-at-most-once:jobs")
    queue.put(b"tile")
    assert queue.guarantee == "at-most-once" and queue.next(0.1).body == b"tile"
    # Then no other consumer ever gets it, however it reclaims: Redis no longer has it
    other = NaiveQueue(connect(broker_url), queue.key)
    assert other.reclaim() == 0 and other.next(0.2) is None and queue.waiting() == 0 and queue.in_flight() is None


@pytest.fixture
def reliable_key(request, broker_url):
    client = connect(broker_url)
    key = f"blur:test-{request.node.name}:jobs"
    _clear(client, key)
    return key


def test_reliable_is_at_least_once_a_dead_consumers_message_goes_to_another_after_its_heartbeat_expires(
        broker_url, reliable_key):
    # Given a message handed out to a consumer that then dies without acking it
    dying = ReliableQueue(connect(broker_url), reliable_key, "dying", visibility_s=0.1)
    dying.put(b"tile")
    assert dying.guarantee == "at-least-once" and dying.next(0.1).body == b"tile"
    other = ReliableQueue(connect(broker_url), reliable_key, "other")
    # Then it is not lost: Redis holds it on the dead consumer's list, and nobody else gets it yet
    assert dying.held() == 1 and other.in_flight() == 1 and other.reclaim() == 0 and other.next(0.05) is None
    # And once its heartbeat has expired (long past its 0.1 s), another consumer's reclaim hands it back
    time.sleep(0.5)
    assert other.reclaim() == 1
    assert other.next(0.1).body == b"tile" and dying.held() == 0


def test_reclaim_leaves_the_messages_of_live_consumers_alone_and_acked_ones_are_gone_for_good(broker_url,
                                                                                              reliable_key):
    queue = ReliableQueue(connect(broker_url), reliable_key, "alive")
    for body in (b"held", b"done"):
        queue.put(body)
    held, done = queue.next(0.1), queue.next(0.1)
    queue.ack(done)
    other = ReliableQueue(connect(broker_url), reliable_key, "other")
    assert other.reclaim() == 0 and queue.held() == 1 and queue.waiting() == 0
    queue.client.delete(f"{reliable_key}:alive:alive")  # its heartbeat expires
    assert other.reclaim() == 1 and other.next(0.1).body == held.body
    assert other.next(0.05) is None


def test_a_message_handed_out_too_often_is_dead_lettered_and_the_others_still_flow(broker_url, reliable_key):
    # Given a message that is taken and handed back again and again (a worker that crashes on it)
    queue = ReliableQueue(connect(broker_url), reliable_key, "w", max_deliveries=3)
    queue.put(b"poison")
    for _ in range(3):
        queue.requeue(queue.next(0.1))
    queue.put(b"good")
    # Then the fourth delivery dead-letters it with the reason, and the next message is handed out
    assert queue.next(0.1) is None
    (letter,) = dead_letters(queue.client, reliable_key)
    assert letter.head == b"poison" and letter.reason == "handed out 3 times without an ack" and letter.exhausted
    assert queue.next(0.1).body == b"good" and queue.held() == 1


def test_a_slow_consumers_late_ack_after_its_message_was_handed_back_is_harmless(broker_url, reliable_key):
    slow = ReliableQueue(connect(broker_url), reliable_key, "slow")
    slow.put(b"tile")
    late = slow.next(0.1)
    slow.client.delete(f"{reliable_key}:alive:slow")
    fast = ReliableQueue(connect(broker_url), reliable_key, "fast")
    assert fast.reclaim() == 1
    taken = fast.next(0.1)
    slow.ack(late)  # the slow one finishes after all
    assert fast.held() == 1  # the copy the fast one holds is untouched
    fast.ack(taken)
    assert fast.held() == 0 and fast.waiting() == 0


def test_stream_is_at_least_once_a_dead_consumers_message_is_claimed_and_handed_out_after_visibility(
        broker_url, reliable_key):
    # Given a message handed out to a consumer that then dies without acking it
    dying = StreamQueue(connect(broker_url), reliable_key, "dying", visibility_s=0.2)
    dying.put(b"tile")
    assert dying.guarantee == "at-least-once" and dying.next(0.1).body == b"tile"
    other = StreamQueue(connect(broker_url), reliable_key, "other", visibility_s=0.2)
    # Then nobody else gets it while it is fresh, but it is not lost: it is pending under the dead consumer
    assert other.next(0.05) is None and dying.held() == 1 and other.in_flight() == 1
    # And once idle for the visibility timeout, the next consumer to ask takes it over: its second delivery
    time.sleep(0.3)
    claimed = other.next(0.1)
    assert (claimed.body, claimed.attempt) == (b"tile", 2) and dying.held() == 0 and other.held() == 1
    other.ack(claimed)
    assert other.in_flight() == 0 and other.client.xlen(reliable_key) == 0


def test_stream_group_exists_before_the_first_message_so_a_consumer_started_later_sees_everything(
        broker_url, reliable_key):
    # The original created its group at "$" after producing, and its workers never saw those tiles
    producer = StreamQueue(connect(broker_url), reliable_key, "coordinator")
    for body in (b"1", b"2"):
        producer.put(body)
    late = StreamQueue(connect(broker_url), reliable_key, "late-worker")
    assert late.waiting() == 2 and [late.next(0.1).body for _ in range(2)] == [b"1", b"2"]


def test_stream_recover_makes_an_earlier_lifes_messages_claimable_at_once(broker_url, reliable_key):
    first_life = StreamQueue(connect(broker_url), reliable_key, "worker-1")
    first_life.put(b"held")
    first_life.next(0.1)
    # A restarted consumer comes back under its old name: its message need not wait out the 30 s visibility
    second_life = StreamQueue(connect(broker_url), reliable_key, "worker-1")
    assert second_life.reclaim() == 1
    assert second_life.next(0.1).body == b"held"


def test_stream_heartbeat_keeps_a_slow_consumers_message_from_being_claimed(broker_url, reliable_key):
    slow = StreamQueue(connect(broker_url), reliable_key, "slow", visibility_s=0.3)
    slow.put(b"tile")
    slow.next(0.1)
    other = StreamQueue(connect(broker_url), reliable_key, "other", visibility_s=0.3)
    for _ in range(4):  # 0.6 s busy, beating every 0.15 s
        time.sleep(0.15)
        slow.heartbeat()
    assert other.next(0.05) is None and slow.held() == 1


def test_stream_a_message_handed_out_too_often_is_dead_lettered_in_one_transaction_with_its_ack(
        broker_url, reliable_key):
    queue = StreamQueue(connect(broker_url), reliable_key, "w", max_deliveries=3)
    queue.put(b"poison")
    for _ in range(3):
        queue.requeue(queue.next(0.1))
    queue.put(b"good")
    assert queue.next(0.1).body == b"good"  # the poison message was dead-lettered on its fourth delivery
    (letter,) = dead_letters(queue.client, reliable_key)
    assert letter.head == b"poison" and letter.reason == "handed out 3 times without an ack" and letter.exhausted
    assert queue.held() == 1 and queue.waiting() == 0


def test_stream_a_slow_consumers_late_ack_after_its_message_was_claimed_is_harmless(broker_url, reliable_key):
    slow = StreamQueue(connect(broker_url), reliable_key, "slow", visibility_s=0.1)
    slow.put(b"tile")
    late = slow.next(0.1)
    time.sleep(0.2)
    fast = StreamQueue(connect(broker_url), reliable_key, "fast", visibility_s=0.1)
    taken = fast.next(0.1)
    assert taken.body == b"tile"
    slow.ack(late)  # the slow one finishes (its result stored) after all: the work is done, so the message goes
    fast.ack(taken)  # and the claimer's ack finds nothing to do
    assert fast.in_flight() == 0 and fast.waiting() == 0 and fast.next(0.05) is None
