"""The work queue of the cluster approaches: four verbs, whatever Redis structure is behind them.

    next(timeout)        the next message as a Delivery, or None after at most `timeout` seconds
    ack(delivery)        it is done: forget it
    nack(delivery, why)  it is bad: set it aside with the reason on the dead-letter stream <key>:dead
    requeue(delivery)    give it back, for this or another consumer to take again

plus put(body) for producers and waiting() for the number not yet handed out.  Callers never see a
Redis command, so the approaches read alike and one set of tests runs over every variant.  Each
variant states its delivery guarantee in one sentence, and a test proves exactly that sentence.

next() always returns within its timeout (at most MAX_BLOCK_S): a consumer must get control back
regularly to notice that it is asked to stop, and a block longer than the client's socket timeout
would fail on a real server (see broker.py).

Dead letters go to a stream, whatever the variant: XADD needs no blocking read, so it behaves the same
on fakeredis and a real server, and a stream keeps each reason beside its message.
"""

from dataclasses import dataclass
from typing import Protocol

import redis

from approaches.cluster.board import RUN_TTL_S

MAX_BLOCK_S = 10.0
DEAD_LETTERS_KEPT = 1000  # the dead-letter stream is trimmed to about this many entries


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message handed to a consumer; receipt is what the variant needs to ack it (None: nothing)."""

    body: bytes
    receipt: bytes | None = None


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


class NaiveQueue:
    """At-most-once: BRPOP removes a message from Redis as it hands it out, so a consumer that dies holding it loses it.

    A Redis list: put is LPUSH and next is BRPOP, so messages come out in the order they went in.
    Why BRPOP and not BLMOVE: fakeredis's BLMOVE returns at once instead of blocking, and this queue
    keeps no copy of what it hands out anyway (approach f's reliable queue does).
    """

    guarantee = "at-most-once"

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def put(self, body: bytes) -> None:
        self.client.pipeline(transaction=False).lpush(self.key, body).expire(self.key, RUN_TTL_S).execute()

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

    def waiting(self) -> int:
        return self.client.llen(self.key)


def dead_letter(client: redis.Redis, key: str, body: bytes, reason: str) -> None:
    dead = f"{key}:dead"
    pipe = client.pipeline(transaction=False)
    pipe.xadd(dead, {"reason": reason, "body": body}, maxlen=DEAD_LETTERS_KEPT, approximate=True)
    pipe.expire(dead, RUN_TTL_S).execute()


def dead_letters(client: redis.Redis, key: str) -> list[DeadLetter]:
    """The messages set aside from the queue at key, oldest first."""
    return [DeadLetter(fields[b"reason"].decode(errors="replace"), fields[b"body"])
            for _, fields in client.xrange(f"{key}:dead")]


def _block(timeout: float) -> float:
    if not 0 < timeout <= MAX_BLOCK_S:
        raise ValueError(f"a queue blocks between 0 and {MAX_BLOCK_S} s, not {timeout}")
    return timeout
