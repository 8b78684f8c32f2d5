"""The work queue of the cluster approaches: one protocol, three Redis structures (and RabbitMQ) behind it.

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

The variants live in their lessons, each with its guarantee in one sentence (the class docstring's first
line) and a test that proves exactly that sentence (tests/test_cluster_queues.py):

    NaiveQueue     a list, BRPOP                                   at-most-once   (e_naive_queue.py)
    ReliableQueue  a list, BRPOPLPUSH onto a per-consumer list     at-least-once  (f_reliable_queue.py)
    StreamQueue    a stream read by a consumer group, XAUTOCLAIM   at-least-once  (g_service.py)
    RabbitQueue    a RabbitMQ quorum queue, manual acks (not Redis) at-least-once  (j_rabbitmq.py)

Callers never see a Redis command, so the approaches read alike (cluster/worker.py is the one worker
loop of all three, given the lesson's queue).  next() always returns within its timeout (at most
MAX_BLOCK_S, checked by `block_timeout`): a consumer must get control back regularly to notice that it is
asked to stop, and a block longer than the client's socket timeout would fail on a real server (see broker.py).

A queue trusts nothing it reads: a stream entry without a body, like any message a worker cannot decode,
is dead-lettered with the reason, and the queue goes on.  Dead letters go to a stream, whatever the
variant: XADD needs no blocking read, so it behaves the same on fakeredis and a real server, and a stream
keeps each reason beside its message.  A dead letter keeps the reason, the message's size and its first
DEAD_HEAD_BYTES (a tile's whole header, so the image it belonged to can be named), never the pixels.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis

RUN_TTL_S = 24 * 3600  # every key a run writes expires this long after its last write
MAX_BLOCK_S = 10.0
DEAD_LETTERS_KEPT = 500  # each dead-letter stream is trimmed to about this many entries
DEAD_HEAD_BYTES = 64  # what a dead letter keeps of its message: enough for a tile's header

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


def dead_letter(client: redis.Redis, key: str, body: bytes, reason: str, *, exhausted: bool = False) -> None:
    """Set body aside on <key>:dead with the reason (see the module docstring for what is kept)."""
    pipe = client.pipeline(transaction=False)
    dead_letter_into(pipe, key, body, reason, exhausted)
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


def dead_letter_into(pipe: Pipe, key: str, body: bytes, reason: str, exhausted: bool = False) -> None:
    """dead_letter's writes, queued into pipe: a variant sets a message aside in the transaction that lets it go."""
    dead = f"{key}:dead"
    pipe.xadd(dead, {"reason": reason, "size": len(body), "head": body[:DEAD_HEAD_BYTES],
                     "exhausted": int(exhausted)}, maxlen=DEAD_LETTERS_KEPT, approximate=True)
    pipe.expire(dead, RUN_TTL_S)


def in_pipe(client: redis.Redis, pipe: Pipe | None, writes: Callable[[Pipe], Pipe], transaction: bool = False) -> None:
    """Queue writes(pipe) into the caller's pipe, or run them at once in a pipeline of their own."""
    if pipe is not None:
        writes(pipe)
    else:
        writes(client.pipeline(transaction=transaction)).execute()


def unless_gone(read: Callable[[], T], empty: T) -> T:
    """read(), or empty when the stream or its group no longer exists: a finished run deleted it, and a
    consumer may look just after."""
    try:
        return read()
    except redis.ResponseError as error:
        if "NOGROUP" in str(error) or "requires the key to exist" in str(error):
            return empty
        raise


def block_timeout(timeout: float) -> float:
    """timeout, checked: a queue blocks for more than 0 and at most MAX_BLOCK_S seconds (see above)."""
    if not 0 < timeout <= MAX_BLOCK_S:
        raise ValueError(f"a queue blocks between 0 and {MAX_BLOCK_S} s, not {timeout}")
    return timeout
