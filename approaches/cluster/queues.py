"""The work queue of the cluster approaches: four verbs, whatever Redis structure is behind them.

    next(timeout)        the next message as a Delivery, or None after at most `timeout` seconds
    ack(delivery)        it is done: forget it
    nack(delivery, why)  it is bad: set it aside with the reason on the dead-letter stream <key>:dead
    requeue(delivery)    give it back, for this or another consumer to take again

plus put(body) for producers and waiting() for the number not yet handed out.  The variants:

    NaiveQueue     a list, BRPOP                                   at-most-once   (approach e)
    ReliableQueue  a list, BRPOPLPUSH onto a per-consumer list     at-least-once  (approach f)
    StreamQueue    a stream read by a consumer group, XAUTOCLAIM   at-least-once  (approach g)

Callers never see a Redis command, so the approaches read alike and one set of tests runs over every
variant.  Each variant states its delivery guarantee in one sentence, and a test proves exactly that
sentence.

next() always returns within its timeout (at most MAX_BLOCK_S): a consumer must get control back
regularly to notice that it is asked to stop, and a block longer than the client's socket timeout
would fail on a real server (see broker.py).

Dead letters go to a stream, whatever the variant: XADD needs no blocking read, so it behaves the same
on fakeredis and a real server, and a stream keeps each reason beside its message.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Protocol

import redis

from approaches.cluster.board import RUN_TTL_S
from approaches.cluster.broker import streams_block

MAX_BLOCK_S = 10.0
VISIBILITY_S = 30.0  # a consumer silent this long is presumed dead, and reap() hands its messages back
MAX_DELIVERIES = 5  # a message handed out this many times without an ack is dead-lettered on the next
DEAD_LETTERS_KEPT = 1000  # the dead-letter stream is trimmed to about this many entries
POLL_STEP_S = 0.005  # how often a stream reader polls where BLOCK does not wait (fakeredis)
CLAIM_EVERY = 0.1  # of the visibility timeout: how often a stream consumer looks for messages to take over


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a consumer; receipt is what the variant needs to ack it (None: nothing)."""

    body: bytes
    receipt: bytes | None = None
    attempt: int = 1  # how many times this message has been handed out, this time included


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    body: bytes


class WorkQueue(Protocol):
    guarantee: str

    def put(self, body: bytes) -> None: ...
    def next(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery) -> None: ...
    def nack(self, delivery: Delivery, reason: str) -> None: ...
    def requeue(self, delivery: Delivery) -> None: ...
    def waiting(self) -> int: ...


class _ListQueue:
    """A Redis list that producers LPUSH onto: what both variants share."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def put(self, body: bytes) -> None:
        self.client.pipeline(transaction=False).lpush(self.key, body).expire(self.key, RUN_TTL_S).execute()

    def waiting(self) -> int:
        return self.client.llen(self.key)


class NaiveQueue(_ListQueue):
    """At-most-once: BRPOP removes a message from Redis as it hands it out, so a consumer that dies holding it loses it.

    A Redis list: put is LPUSH and next is BRPOP, so messages come out in the order they went in.
    Why BRPOP and not BLMOVE: fakeredis's BLMOVE returns at once instead of blocking, and this queue
    keeps no copy of what it hands out anyway (approach f's reliable queue does).
    """

    guarantee = "at-most-once"

    def next(self, timeout: float) -> Delivery | None:
        popped = self.client.brpop([self.key], _block(timeout))
        return None if popped is None else Delivery(popped[1])

    def ack(self, delivery: Delivery) -> None:
        """Nothing to do: the message left Redis when it was handed out.  That is the whole problem."""

    def nack(self, delivery: Delivery, reason: str) -> None:
        dead_letter(self.client, self.key, delivery.body, reason)

    def requeue(self, delivery: Delivery) -> None:
        """Back at the end BRPOP takes from: it is the next message handed out."""
        self.client.rpush(self.key, delivery.body)


class ReliableQueue(_ListQueue):
    """At-least-once: a message stays in Redis, on its consumer's processing list, until that consumer acks it.

    next() is BRPOPLPUSH from the queue onto <key>:processing:<consumer>, one atomic step, so there is no
    moment at which a message is in neither place.  Each consumer keeps a heartbeat key that expires
    visibility_s after its last sign of life; reap() returns the messages of consumers whose heartbeat
    has expired to the queue, for others to take.  A consumer that was only slow may still deliver its
    result afterwards, so the same work can be done twice: whoever consumes results must de-duplicate.
    A message handed out max_deliveries times without an ack is dead-lettered on the next, so one that
    crashes every worker cannot cycle forever.

    Why BRPOPLPUSH and not its successor BLMOVE: fakeredis's BLMOVE returns at once instead of blocking.
    Identical bodies count as one message for the delivery count: they are the same work.
    """

    guarantee = "at-least-once"

    def __init__(self, client: redis.Redis, key: str, consumer: str | None = None, *,
                 visibility_s: float = VISIBILITY_S, max_deliveries: int = MAX_DELIVERIES) -> None:
        super().__init__(client, key)
        self.consumer = consumer or secrets.token_hex(4)
        self.processing = f"{key}:processing:{self.consumer}"
        self.visibility_s, self.max_deliveries = visibility_s, max_deliveries

    def put_all(self, bodies: list[bytes], pipe: redis.client.Pipeline) -> None:
        """Queue the messages as part of pipe, a transaction the caller executes (with the image's plan)."""
        pipe.lpush(self.key, *bodies).expire(self.key, RUN_TTL_S)

    def recover(self) -> int:
        """Return what an earlier life of this consumer held, unacked, to the queue, to be handed out next;
        how many.  A restarted pod comes back under its old name, and its own fresh heartbeat would keep
        reap() away from those messages forever.  LMOVE moves one message atomically, so a crash midway
        loses nothing."""
        returned = 0
        while self.client.lmove(self.processing, self.key, "RIGHT", "RIGHT") is not None:
            returned += 1
        return returned

    def next(self, timeout: float) -> Delivery | None:
        """The next message, now on this consumer's processing list; None after the timeout, or when the
        message taken had used up its deliveries (it is then dead-lettered)."""
        self.heartbeat()
        body = self.client.brpoplpush(self.key, self.processing, _block(timeout))
        if body is None:
            return None
        counts = f"{self.key}:deliveries"
        delivered, *_ = (self.client.pipeline(transaction=False).hincrby(counts, _digest(body), 1)
                         .expire(counts, RUN_TTL_S).expire(self.processing, RUN_TTL_S).execute())
        delivery = Delivery(body, receipt=body, attempt=delivered)
        if delivered > self.max_deliveries:
            self.nack(delivery, f"handed out {delivered - 1} times without an ack")
            return None
        return delivery

    def ack(self, delivery: Delivery) -> None:
        """Forget it.  Harmless when reap() has handed it back meanwhile: it is no longer on our list."""
        (self.client.pipeline(transaction=True).lrem(self.processing, 1, delivery.receipt)
         .hdel(f"{self.key}:deliveries", _digest(delivery.body)).execute())

    def nack(self, delivery: Delivery, reason: str) -> None:
        """Onto the dead-letter stream and off our list, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        _dead_letter_into(pipe, self.key, delivery.body, reason)
        pipe.lrem(self.processing, 1, delivery.receipt or delivery.body).execute()

    def requeue(self, delivery: Delivery) -> None:
        """Back at the end BRPOPLPUSH takes from, in one transaction with taking it off our list."""
        (self.client.pipeline(transaction=True).lrem(self.processing, 1, delivery.receipt)
         .rpush(self.key, delivery.body).execute())

    def heartbeat(self) -> None:
        """Say this consumer is alive for another visibility_s; a worker busy on one message calls it as it goes."""
        consumers = f"{self.key}:consumers"
        (self.client.pipeline(transaction=False).set(f"{self.key}:alive:{self.consumer}", 1,
                                                     px=int(self.visibility_s * 1000))
         .sadd(consumers, self.consumer).expire(consumers, RUN_TTL_S).execute())

    def in_flight(self) -> int:
        """Messages this consumer holds and has not acked."""
        return self.client.llen(self.processing)


class StreamQueue:
    """At-least-once on a Redis Stream read by a consumer group: a message stays in the group's pending
    list, under its consumer's name, until that consumer acks it.

    The group is created at id 0 whenever a queue object is made, by producers and consumers alike, so
    it exists before the first message is added and sees every message.  (The original created it at
    ``$`` after producing, and its workers never saw the tiles already in the stream.)
    next() first takes over a message that has sat unacked for visibility_s (XAUTOCLAIM: its consumer
    is presumed dead) and returns it, so claimed work is done, not just moved; only then does it read a
    new one.  Having found none to take over, a consumer looks again only after CLAIM_EVERY of the
    visibility timeout (or at once after its own requeue), which keeps that extra round trip off most
    tiles: a message claimable for a moment longer changes nothing.
    The group counts deliveries itself: a message handed out max_deliveries times without an ack is
    dead-lettered on the next, with XADD to the dead-letter stream and XACK in one transaction.
    A consumer that is only slow may still ack afterwards; that ack is valid, as the work is done (it
    stores its result before acking), and the claimer's own ack then does nothing.

    Acked messages are deleted from the stream (XDEL), so Redis holds only work not done yet.
    """

    guarantee = "at-least-once"
    GROUP = "workers"

    def __init__(self, client: redis.Redis, key: str, consumer: str | None = None, *,
                 visibility_s: float = VISIBILITY_S, max_deliveries: int = MAX_DELIVERIES) -> None:
        self.client, self.key = client, key
        self.consumer = consumer or secrets.token_hex(4)
        self.visibility_s, self.max_deliveries = visibility_s, max_deliveries
        self._blocks = streams_block(client)
        self._held: set[bytes] = set()  # ids handed to this consumer and not yet acked, for heartbeat()
        self._claim_at = 0.0  # monotonic time of the next look for messages to take over
        try:
            client.xgroup_create(key, self.GROUP, id="0", mkstream=True)
            client.expire(key, RUN_TTL_S)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def put(self, body: bytes) -> None:
        pipe = self.client.pipeline(transaction=False)
        self.put_all([body], pipe)
        pipe.execute()

    def put_all(self, bodies: list[bytes], pipe: redis.client.Pipeline) -> None:
        """Queue the messages as part of pipe, a transaction the caller executes (with the image's plan)."""
        for body in bodies:
            pipe.xadd(self.key, {"body": body})
        pipe.expire(self.key, RUN_TTL_S)

    def waiting(self) -> int:
        """Messages not handed out yet: acked ones are deleted, so every other entry is pending."""
        return self.client.xlen(self.key) - pending(self.client, self.key)

    def next(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + _block(timeout)
        while True:
            if time.monotonic() >= self._claim_at:
                if (stale := self._claim_stale()) is not None:
                    return stale
                self._claim_at = time.monotonic() + CLAIM_EVERY * self.visibility_s
            block = max(1, int((deadline - time.monotonic()) * 1000)) if self._blocks else None
            read = self.client.xreadgroup(self.GROUP, self.consumer, {self.key: ">"}, count=1, block=block)
            if read and read[0][1]:
                entry, fields = read[0][1][0]
                return self._handed(Delivery(fields[b"body"], receipt=entry, attempt=1))
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._blocks:
                return None
            time.sleep(min(POLL_STEP_S, remaining))  # fakeredis: poll in short steps, see streams_block

    def ack(self, delivery: Delivery) -> None:
        """Forget it, and delete it from the stream."""
        pipe = self.client.pipeline(transaction=True)
        self.ack_into(pipe, delivery)
        pipe.execute()

    def ack_into(self, pipe: redis.client.Pipeline, delivery: Delivery) -> None:
        """Ack as part of pipe: a worker acks in the same transaction that stores its result."""
        pipe.xack(self.key, self.GROUP, delivery.receipt).xdel(self.key, delivery.receipt)
        self._held.discard(delivery.receipt)

    def nack(self, delivery: Delivery, reason: str) -> None:
        """Onto the dead-letter stream and acked, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        _dead_letter_into(pipe, self.key, delivery.body, reason)
        if delivery.receipt is not None:
            self.ack_into(pipe, delivery)
        pipe.execute()

    def requeue(self, delivery: Delivery) -> None:
        """Mark it as idle for visibility_s already: this consumer takes it over at its next next(), any
        other at its next look."""
        self.client.xclaim(self.key, self.GROUP, self.consumer, 0, [delivery.receipt],
                           idle=int(self.visibility_s * 1000), justid=True)
        self._held.discard(delivery.receipt)
        self._claim_at = 0.0  # take it over at the next next(), before anything new

    def recover(self) -> int:
        """Make what an earlier life of this consumer held claimable at once; how many.  A restarted
        instance comes back under its old name, and its messages would otherwise wait out visibility_s."""
        mine = self.client.xpending_range(self.key, self.GROUP, "-", "+", 10_000, consumername=self.consumer)
        for pending in mine:
            self.requeue(Delivery(b"", receipt=pending["message_id"]))
        return len(mine)

    def heartbeat(self) -> None:
        """Reset the idle time of what this consumer holds: a worker busy on one message calls it as it goes."""
        if self._held:
            self.client.xclaim(self.key, self.GROUP, self.consumer, 0, list(self._held), justid=True)

    def in_flight(self) -> int:
        """Messages this consumer holds and has not acked."""
        return len(self.client.xpending_range(self.key, self.GROUP, "-", "+", 10_000, consumername=self.consumer))

    def _claim_stale(self) -> Delivery | None:
        """A message idle for visibility_s, now ours; None if there is none.  One handed out too often
        is dead-lettered instead, and the next one is looked at."""
        while True:
            _, claimed, *_ = self.client.xautoclaim(self.key, self.GROUP, self.consumer,
                                                    int(self.visibility_s * 1000), "0-0", count=1)
            if not claimed:
                return None
            entry, fields = claimed[0]
            still = self.client.xpending_range(self.key, self.GROUP, entry, entry, 1)
            if not fields or not still:  # deleted or acked meanwhile, by the slow holder it was taken from
                continue
            delivery = self._handed(Delivery(fields[b"body"], receipt=entry, attempt=still[0]["times_delivered"]))
            if delivery.attempt <= self.max_deliveries:
                return delivery
            self.nack(delivery, f"handed out {delivery.attempt - 1} times without an ack")

    def _handed(self, delivery: Delivery) -> Delivery:
        self._held.add(delivery.receipt)
        return delivery


def pending(client: redis.Redis, key: str) -> int:
    """Messages of the stream queue at key handed out and not acked, over all consumers."""
    return int(client.xpending(key, StreamQueue.GROUP)["pending"]) if client.exists(key) else 0


def reap(client: redis.Redis, key: str) -> int:
    """Hand the messages of every consumer whose heartbeat expired back to the queue at key, to be handed
    out next (they are the oldest work); how many.  Several reapers may run at once: each message is
    moved by exactly one of them.
    """
    returned = 0
    for consumer in client.smembers(f"{key}:consumers"):
        name = consumer.decode()
        if client.exists(f"{key}:alive:{name}"):
            continue
        returned += ReliableQueue(client, key, name).recover()
        client.srem(f"{key}:consumers", consumer)
    return returned


def dead_letter(client: redis.Redis, key: str, body: bytes, reason: str) -> None:
    pipe = client.pipeline(transaction=False)
    _dead_letter_into(pipe, key, body, reason)
    pipe.execute()


def _dead_letter_into(pipe: redis.client.Pipeline, key: str, body: bytes, reason: str) -> None:
    dead = f"{key}:dead"
    pipe.xadd(dead, {"reason": reason, "body": body}, maxlen=DEAD_LETTERS_KEPT, approximate=True)
    pipe.expire(dead, RUN_TTL_S)


def dead_letters(client: redis.Redis, key: str) -> list[DeadLetter]:
    """The messages set aside from the queue at key, oldest first."""
    return [DeadLetter(fields[b"reason"].decode(errors="replace"), fields[b"body"])
            for _, fields in client.xrange(f"{key}:dead")]


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def _block(timeout: float) -> float:
    if not 0 < timeout <= MAX_BLOCK_S:
        raise ValueError(f"a queue blocks between 0 and {MAX_BLOCK_S} s, not {timeout}")
    return timeout
