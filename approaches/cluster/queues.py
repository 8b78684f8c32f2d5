"""The work queue of the cluster approaches: one protocol, three Redis structures behind it.

    put(body[, pipe])       add a message; with pipe, inside the caller's transaction
    next(timeout)           the next message as a Delivery, or None after at most `timeout` seconds
    ack(delivery[, pipe])   it is done: forget it; with pipe, in the same transaction as the caller's writes
    nack(delivery, why)     it is bad: set it aside on the dead-letter stream <key>:dead with the reason
    requeue(delivery)       give it back, for this or another consumer to take again
    reclaim()               take back what consumers that died were holding, so it is handed out again
    heartbeat()             a consumer busy on one message says it is still alive
    waiting(), in_flight()  messages not handed out yet; handed out and not acked (None: not known)
    in_flight_bodies()      those messages themselves (what the chaos demo watches being done again)
    held()                  how many of them this consumer holds

The variants, each with its guarantee in one sentence (the class docstring's first line) and a test that
proves exactly that sentence (tests/test_cluster_queues.py):

    NaiveQueue     a list, BRPOP                                   at-most-once   (approach e)
    ReliableQueue  a list, BRPOPLPUSH onto a per-consumer list     at-least-once  (approach f)
    StreamQueue    a stream read by a consumer group, XAUTOCLAIM   at-least-once  (approach g)

Callers never see a Redis command, so the approaches read alike (cluster/worker.py is the one worker
loop of all three).  next() always returns within its timeout (at most MAX_BLOCK_S): a consumer must get
control back regularly to notice that it is asked to stop, and a block longer than the client's socket
timeout would fail on a real server (see broker.py).

A queue trusts nothing it reads: a stream entry without a body, like any message a worker cannot decode,
is dead-lettered with the reason, and the queue goes on.  Dead letters go to a stream, whatever the
variant: XADD needs no blocking read, so it behaves the same on fakeredis and a real server, and a stream
keeps each reason beside its message.  A dead letter keeps the reason, the message's size and its first
DEAD_HEAD_BYTES (a tile's whole header, so the image it belonged to can be named), never the pixels.
"""

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis

from approaches.cluster.broker import streams_block
from approaches.core.settings import Settings

RUN_TTL_S = 24 * 3600  # every key a run writes expires this long after its last write
MAX_BLOCK_S = 10.0
DEAD_LETTERS_KEPT = 500  # each dead-letter stream is trimmed to about this many entries
DEAD_HEAD_BYTES = 64  # what a dead letter keeps of its message: enough for a tile's header
POLL_STEP_S = 0.005  # how often a stream reader polls where BLOCK does not wait (fakeredis)
CLAIM_EVERY = 0.1  # of the visibility timeout: how often a stream consumer looks for messages to take over

Pipe = redis.client.Pipeline
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a consumer; receipt is what the variant needs to ack it (None: nothing)."""

    body: bytes
    receipt: bytes | None = None
    attempt: int = 1  # how many times this message has been handed out, this time included


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message set aside: why, how large it was, its first bytes (its header, for a tile), and whether the
    queue gave up on it (exhausted: handed out too often, or given back to a queue that never hands out twice)
    rather than refusing it unread."""

    reason: str
    head: bytes
    size: int
    id: str = ""
    exhausted: bool = False


class WorkQueue(Protocol):
    key: str
    guarantee: str

    def put(self, body: bytes, pipe: Pipe | None = None) -> None: ...
    def next(self, timeout: float) -> Delivery | None: ...
    def ack(self, delivery: Delivery, pipe: Pipe | None = None) -> None: ...
    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None: ...
    def requeue(self, delivery: Delivery) -> None: ...
    def reclaim(self) -> int: ...
    def heartbeat(self) -> None: ...
    def waiting(self) -> int: ...
    def in_flight(self) -> int | None: ...
    def in_flight_bodies(self) -> list[bytes] | None: ...
    def held(self) -> int | None: ...


class NaiveQueue:
    """At-most-once: BRPOP removes a message from Redis as it hands it out, so a consumer that dies holding it loses it.

    A Redis list: put is LPUSH and next is BRPOP, so messages come out in the order they went in.  It
    keeps no record of what it handed out, so there is nothing to reclaim, in flight is not known, and a
    message given back is dead-lettered rather than handed out a second time.
    Why BRPOP and not BLMOVE: fakeredis's BLMOVE returns at once instead of blocking, and this queue keeps
    no copy of what it hands out anyway (approach f's reliable queue does).
    """

    guarantee = "at-most-once"

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def put(self, body: bytes, pipe: Pipe | None = None) -> None:
        _in(self.client, pipe, lambda p: p.lpush(self.key, body).expire(self.key, RUN_TTL_S))

    def next(self, timeout: float) -> Delivery | None:
        popped = self.client.brpop([self.key], _block(timeout))
        return None if popped is None else Delivery(popped[1])

    def ack(self, delivery: Delivery, pipe: Pipe | None = None) -> None:
        """Nothing to do: the message left Redis when it was handed out.  That is the whole problem."""

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        dead_letter(self.client, self.key, delivery.body, reason, exhausted=exhausted)

    def requeue(self, delivery: Delivery) -> None:
        """At-most-once hands nothing out twice: a message given back is set aside, with that reason."""
        self.nack(delivery, "given back, and an at-most-once queue hands nothing out twice", exhausted=True)

    def reclaim(self) -> int:
        """Nothing to take back: a dead consumer's message left Redis with it."""
        return 0

    def heartbeat(self) -> None:
        """Nobody watches a naive consumer."""

    def waiting(self) -> int:
        return self.client.llen(self.key)

    def in_flight(self) -> None:
        """Not known: nothing records what was handed out."""
        return None

    def in_flight_bodies(self) -> None:
        """Not known either: which work a killed consumer held is gone with it."""
        return None

    def held(self) -> None:
        """Not known: a consumer's message is only in its own memory."""
        return None


class ReliableQueue:
    """At-least-once: a message stays in Redis, on its consumer's processing list, until that consumer acks it.

    next() is BRPOPLPUSH from the queue onto <key>:processing:<consumer>, one atomic step, so there is no
    moment at which a message is in neither place.  Each consumer keeps a heartbeat key that expires
    visibility_s after its last sign of life; reclaim() returns to the queue what an earlier life of this
    consumer held (a restarted pod comes back under its old name), and the messages of every consumer whose
    heartbeat has expired.  A consumer that was only slow may still deliver its result afterwards, so the
    same work can be done twice: whoever consumes results must de-duplicate.  A message handed out
    max_deliveries times without an ack is dead-lettered on the next, so one that crashes every worker
    cannot cycle forever.  Identical bodies count as one message for the delivery count: they are the same
    work.  Why BRPOPLPUSH and not its successor BLMOVE: fakeredis's BLMOVE returns at once instead of blocking.
    """

    guarantee = "at-least-once"

    def __init__(self, client: redis.Redis, key: str, consumer: str | None = None, *,
                 visibility_s: float = Settings.visibility_s, max_deliveries: int = Settings.max_deliveries) -> None:
        self.client, self.key = client, key
        self.consumer = consumer or secrets.token_hex(4)
        self.processing = _processing(key, self.consumer)
        self.visibility_s, self.max_deliveries = visibility_s, max_deliveries

    def put(self, body: bytes, pipe: Pipe | None = None) -> None:
        _in(self.client, pipe, lambda p: p.lpush(self.key, body).expire(self.key, RUN_TTL_S))

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
            self.nack(delivery, f"handed out {delivered - 1} times without an ack", exhausted=True)
            return None
        return delivery

    def ack(self, delivery: Delivery, pipe: Pipe | None = None) -> None:
        """Forget it.  Harmless when reclaim() has handed it back meanwhile: it is no longer on our list."""
        _in(self.client, pipe, lambda p: p.lrem(self.processing, 1, delivery.receipt)
            .hdel(f"{self.key}:deliveries", _digest(delivery.body)), transaction=True)

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        """Onto the dead-letter stream and off our list, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        _dead_letter_into(pipe, self.key, delivery.body, reason, exhausted)
        (pipe.lrem(self.processing, 1, delivery.receipt or delivery.body)
         .hdel(f"{self.key}:deliveries", _digest(delivery.body)).execute())  # a copy put later starts afresh

    def requeue(self, delivery: Delivery) -> None:
        """Back at the end BRPOPLPUSH takes from, in one transaction with taking it off our list."""
        (self.client.pipeline(transaction=True).lrem(self.processing, 1, delivery.receipt)
         .rpush(self.key, delivery.body).execute())

    def reclaim(self) -> int:
        """Hand back, to be handed out next, what an earlier life of this consumer held and what every
        consumer whose heartbeat expired holds; how many.  Several consumers may reclaim at once: LMOVE moves
        each message atomically, so each is moved by exactly one of them, and a crash midway loses nothing."""
        returned = self._return(self.consumer)
        for consumer in self.client.smembers(f"{self.key}:consumers"):
            name = consumer.decode(errors="replace")
            if name != self.consumer and not self.client.exists(f"{self.key}:alive:{name}"):
                returned += self._return(name)
                self.client.srem(f"{self.key}:consumers", consumer)
        return returned

    def heartbeat(self) -> None:
        """Say this consumer is alive for another visibility_s."""
        consumers = f"{self.key}:consumers"
        (self.client.pipeline(transaction=False).set(f"{self.key}:alive:{self.consumer}", 1,
                                                     px=max(1, int(self.visibility_s * 1000)))
         .sadd(consumers, self.consumer).expire(consumers, RUN_TTL_S).execute())

    def waiting(self) -> int:
        return self.client.llen(self.key)

    def in_flight(self) -> int:
        """Messages on the processing lists of every consumer that has said it exists."""
        return sum(self.client.llen(_processing(self.key, consumer.decode(errors="replace")))
                   for consumer in self.client.smembers(f"{self.key}:consumers"))

    def in_flight_bodies(self) -> list[bytes]:
        """The messages in_flight counts: what the chaos demo watches being done again after a kill."""
        return [body for consumer in self.client.smembers(f"{self.key}:consumers")
                for body in self.client.lrange(_processing(self.key, consumer.decode(errors="replace")), 0, -1)]

    def held(self) -> int:
        """Messages this consumer holds and has not acked."""
        return self.client.llen(self.processing)

    def _return(self, consumer: str) -> int:
        returned, processing = 0, _processing(self.key, consumer)
        while self.client.lmove(processing, self.key, "RIGHT", "RIGHT") is not None:
            returned += 1
        return returned


class StreamQueue:
    """At-least-once on a Redis Stream read by a consumer group: a message stays in the group's pending
    list, under its consumer's name, until that consumer acks it.

    The group is created at id 0 whenever a queue object is made, by producers and consumers alike, so
    it exists before the first message is added and sees every message.  (The original created it at
    ``$`` after producing, and its workers never saw the tiles already in the stream.)
    next() first takes over a message that has sat unacked for visibility_s (XAUTOCLAIM: its consumer
    is presumed dead) and returns it, so claimed work is done, not just moved; only then does it read a
    new one.  Having found none to take over, a consumer looks again only after CLAIM_EVERY of the
    visibility timeout (or at once after a requeue or reclaim), which keeps that extra round trip off most
    tiles.  The group counts deliveries itself: a message handed out max_deliveries times without an ack is
    dead-lettered on the next, with XADD to the dead-letter stream and XACK in one transaction.  A consumer
    that is only slow may still ack afterwards; that ack is valid, as the work is done (it stores its
    result before or with its ack), and the claimer's own ack then does nothing.  Acked messages are deleted
    from the stream (XDEL), so Redis holds only work not done yet.
    """

    guarantee = "at-least-once"
    GROUP = "workers"

    def __init__(self, client: redis.Redis, key: str, consumer: str | None = None, *,
                 visibility_s: float = Settings.visibility_s, max_deliveries: int = Settings.max_deliveries) -> None:
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

    def put(self, body: bytes, pipe: Pipe | None = None) -> None:
        _in(self.client, pipe, lambda p: p.xadd(self.key, {"body": body}).expire(self.key, RUN_TTL_S))

    def next(self, timeout: float) -> Delivery | None:
        """The next message: one left idle too long by its consumer, or a new one; None after the timeout,
        or at once if the stream is gone (a finished run deletes it: the caller then sees the run done)."""
        return _unless_gone(lambda: self._next(timeout), None)

    def _next(self, timeout: float) -> Delivery | None:
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
                if (delivery := self._handed(entry, fields, attempt=1)) is not None:
                    return delivery
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._blocks:
                return None
            time.sleep(min(POLL_STEP_S, remaining))  # fakeredis: poll in short steps, see streams_block

    def ack(self, delivery: Delivery, pipe: Pipe | None = None) -> None:
        """Forget it, and delete it from the stream (with pipe: as part of the caller's transaction)."""
        _in(self.client, pipe, lambda p: p.xack(self.key, self.GROUP, delivery.receipt)
            .xdel(self.key, delivery.receipt), transaction=True)
        self._held.discard(delivery.receipt)

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        """Onto the dead-letter stream and acked, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        _dead_letter_into(pipe, self.key, delivery.body, reason, exhausted)
        if delivery.receipt is not None:
            self.ack(delivery, pipe)
        pipe.execute()

    def requeue(self, delivery: Delivery) -> None:
        """Mark it as idle for visibility_s already: this consumer takes it over at its next next(), any
        other at its next look."""
        self.client.xclaim(self.key, self.GROUP, self.consumer, 0, [delivery.receipt],
                           idle=int(self.visibility_s * 1000), justid=True)
        self._held.discard(delivery.receipt)
        self._claim_at = 0.0  # take it over at the next next(), before anything new

    def reclaim(self) -> int:
        """Make what an earlier life of this consumer held claimable at once; how many.  A restarted
        instance comes back under its old name, and its messages would otherwise wait out visibility_s.
        Other consumers' messages need no reaper: next() takes over any left idle for visibility_s."""
        mine = [pending["message_id"] for pending in self._pending(consumer=self.consumer)
                if pending["message_id"] not in self._held]
        for receipt in mine:
            self.requeue(Delivery(b"", receipt=receipt))
        return len(mine)

    def heartbeat(self) -> None:
        """Reset the idle time of what this consumer holds."""
        if self._held:  # the stream is gone: nothing to keep
            _unless_gone(lambda: self.client.xclaim(self.key, self.GROUP, self.consumer, 0, list(self._held),
                                                    justid=True), None)

    def waiting(self) -> int:
        """Messages not handed out yet: acked ones are deleted, so every other entry is pending."""
        return self.client.xlen(self.key) - self.in_flight()

    def in_flight(self) -> int:
        """Messages handed out and not acked, over all consumers: the group's pending count."""
        return _unless_gone(lambda: int(self.client.xpending(self.key, self.GROUP)["pending"]), 0)

    def in_flight_bodies(self) -> list[bytes]:
        """The messages in_flight counts: what the chaos demo watches being done again after a kill."""
        bodies = []
        for pending in self._pending():
            entry = pending["message_id"]
            for _, fields in self.client.xrange(self.key, entry, entry):
                if b"body" in fields:
                    bodies.append(fields[b"body"])
        return bodies

    def held(self) -> int:
        """Messages this consumer holds and has not acked."""
        return len(self._pending(consumer=self.consumer))

    def _pending(self, consumer: str | None = None) -> list[dict]:
        """XPENDING's detail (of one consumer's messages, or all); none once a finished run deleted the stream:
        a worker may look just after the run ended."""
        return _unless_gone(lambda: self.client.xpending_range(self.key, self.GROUP, "-", "+", 100_000,
                                                               consumername=consumer), [])

    def _claim_stale(self) -> Delivery | None:
        """A message idle for visibility_s, now ours; None if there is none.  One handed out too often,
        or without a body, is dead-lettered instead, and the next one is looked at."""
        while True:
            _, claimed, *_ = self.client.xautoclaim(self.key, self.GROUP, self.consumer,
                                                    int(self.visibility_s * 1000), "0-0", count=1)
            if not claimed:
                return None
            entry, fields = claimed[0]
            still = self.client.xpending_range(self.key, self.GROUP, entry, entry, 1)
            if not fields or not still:  # deleted or acked meanwhile, by the slow holder it was taken from
                continue
            delivery = self._handed(entry, fields, attempt=still[0]["times_delivered"])
            if delivery is None:
                continue
            if delivery.attempt <= self.max_deliveries:
                return delivery
            self.nack(delivery, f"handed out {delivery.attempt - 1} times without an ack", exhausted=True)

    def _handed(self, entry: bytes, fields: dict, attempt: int) -> Delivery | None:
        """The delivery of an entry now held by this consumer; None (and dead-lettered) if it has no body."""
        body = fields.get(b"body")
        if body is None or set(fields) != {b"body"}:
            shown = b"; ".join(key + b"=" + value[:16] for key, value in fields.items())
            self.nack(Delivery(shown, receipt=entry), f"a stream entry needs exactly one field, body; got "
                      f"{sorted(key.decode(errors='replace') for key in fields)}")
            return None
        self._held.add(entry)
        return Delivery(body, receipt=entry, attempt=attempt)


def dead_letter(client: redis.Redis, key: str, body: bytes, reason: str, *, exhausted: bool = False) -> None:
    """Set body aside on <key>:dead with the reason (see the module docstring for what is kept)."""
    pipe = client.pipeline(transaction=False)
    _dead_letter_into(pipe, key, body, reason, exhausted)
    pipe.execute()


def dead_letters(client: redis.Redis, key: str) -> list[DeadLetter]:
    """The messages set aside from the queue at key, oldest first; an entry that is not a dead letter
    (written there by someone else) is read as one whose reason says so, never a crash."""
    letters = []
    for entry, fields in client.xrange(f"{key}:dead"):
        reason, head, size = fields.get(b"reason"), fields.get(b"head"), fields.get(b"size", b"")
        ident = entry.decode(errors="replace")
        if reason is None or head is None or not size.isdigit():
            names = sorted(name.decode(errors="replace")[:32] for name in fields)
            letters.append(DeadLetter(f"malformed dead letter with fields {names}", b"", 0, ident))
        else:
            letters.append(DeadLetter(reason.decode(errors="replace"), head, int(size), ident,
                                      fields.get(b"exhausted") == b"1"))
    return letters


def _dead_letter_into(pipe: Pipe, key: str, body: bytes, reason: str, exhausted: bool = False) -> None:
    dead = f"{key}:dead"
    pipe.xadd(dead, {"reason": reason, "size": len(body), "head": body[:DEAD_HEAD_BYTES],
                     "exhausted": int(exhausted)}, maxlen=DEAD_LETTERS_KEPT, approximate=True)
    pipe.expire(dead, RUN_TTL_S)


def _in(client: redis.Redis, pipe: Pipe | None, writes, transaction: bool = False) -> None:
    """Queue writes(pipe) into the caller's pipe, or run them at once in a pipeline of their own."""
    if pipe is not None:
        writes(pipe)
    else:
        writes(client.pipeline(transaction=transaction)).execute()


def _unless_gone(read: Callable[[], T], empty: T) -> T:
    """read(), or empty when the stream or its group no longer exists: a finished run deleted it, and a
    consumer may look just after."""
    try:
        return read()
    except redis.ResponseError as error:
        if "NOGROUP" in str(error) or "requires the key to exist" in str(error):
            return empty
        raise


def _processing(key: str, consumer: str) -> str:
    return f"{key}:processing:{consumer}"


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def _block(timeout: float) -> float:
    if not 0 < timeout <= MAX_BLOCK_S:
        raise ValueError(f"a queue blocks between 0 and {MAX_BLOCK_S} s, not {timeout}")
    return timeout
