"""The work-queue interface, over every variant and broker; each variant's guarantee sentence, proven."""

import pytest

from approaches.cluster.board import RUN_TTL_S
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.queues import Delivery, NaiveQueue, WorkQueue, dead_letters

pytestmark = pytest.mark.timeout(60)

VARIANTS = {"naive": NaiveQueue}


@pytest.fixture(scope="module", params=["memory://", "embedded://"])
def broker_url(request):
    with open_broker(request.param) as broker:
        yield broker.url


@pytest.fixture(params=list(VARIANTS))
def queue(request, broker_url) -> WorkQueue:
    client = connect(broker_url)
    key = f"blur:test-{request.node.name}:jobs"
    client.delete(key, f"{key}:dead")
    return VARIANTS[request.param](client, key)


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
    assert (letter.reason, letter.body) == ("bad magic", b"bad") and queue.next(0.05) is None


def test_requeue_hands_the_message_out_again_before_the_others(queue):
    queue.put(b"first")
    queue.put(b"second")
    queue.requeue(queue.next(0.1))
    assert queue.next(0.1).body == b"first"


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
    # Then no other consumer ever gets it: Redis no longer has it
    assert NaiveQueue(connect(broker_url), queue.key).next(0.2) is None and queue.waiting() == 0
