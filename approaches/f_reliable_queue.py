"""f — Reliable queue: e's pods, made to survive the faults that make e lose tiles.

Delivery guarantee: at-least-once, with idempotent assembly.  A tile job stays in Redis until the worker
that took it has stored the result and acks it; a job whose worker dies (or falls silent for longer than
the visibility timeout) is handed to another; a result stored twice counts as a duplicate and changes
nothing.  So no tile is lost, some may be blurred twice, and each image is saved once, whole.

    coordinator --LPUSH jobs--> worker pods x N --HSET results:<image>, then ack--> assembler --> <output>/f/
                 (one transaction   (BRPOPLPUSH onto      (a tile's result is kept     (saves an image once
                  per image)         its own list)         in Redis, keyed by tile)     all its tiles are in)

The mechanism is ReliableQueue below: a processing list per worker, a heartbeat that expires, reclaim()
of a dead worker's tiles, and a delivery count that dead-letters a poison tile after
Settings.max_deliveries (a failed tile is handed back after a backoff: cluster/worker.py).  The worker
stores its result before it acks; results wait in Redis until their image is saved, so the assembler can
be restarted (cluster/assembly.py), and each image is queued in one transaction, so can the coordinator.
"""

import hashlib
import secrets
from functools import partial
from typing import Any

import numpy as np
import redis

from approaches.cluster import assembly, deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import queue_images
from approaches.cluster.pods import Life
from approaches.cluster.queues import RUN_TTL_S, Delivery, Pipe, WorkQueue, block_timeout, dead_letter_into, in_pipe
from approaches.cluster.wire import TileJob, TileResult
from approaches.cluster.worker import Deliver, work
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.trace import Tracer


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    return deployment.run(job, tracer, ROLES, **options)


# --- the queue: cluster/queues.py's WorkQueue, at-least-once on Redis lists --------------------------------


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
        in_pipe(self.client, pipe, lambda p: p.lpush(self.key, body).expire(self.key, RUN_TTL_S))

    def next(self, timeout: float) -> Delivery | None:
        """The next message, now on this consumer's processing list; None after the timeout, or when the
        message taken had used up its deliveries (it is then dead-lettered)."""
        self.heartbeat()
        body = self.client.brpoplpush(self.key, self.processing, block_timeout(timeout))
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
        in_pipe(self.client, pipe, lambda p: p.lrem(self.processing, 1, delivery.receipt)
            .hdel(f"{self.key}:deliveries", _digest(delivery.body)), transaction=True)

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        """Onto the dead-letter stream and off our list, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        dead_letter_into(pipe, self.key, delivery.body, reason, exhausted)
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


def _processing(key: str, consumer: str) -> str:
    return f"{key}:processing:{consumer}"


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()


def jobs_queue(board: Board, consumer: str, settings: Settings) -> ReliableQueue:
    """A live worker beats at least every poll_s; one silent for visibility_s is presumed dead."""
    return ReliableQueue(board.client, board.key("jobs"), consumer, visibility_s=settings.visibility_s,
                         max_deliveries=settings.max_deliveries)


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int, max_pixels: int) -> None:
    """Queue each image whole: its plan and all its tiles in one transaction (cluster/planning.py)."""
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name, Settings(**settings)), images, kernel_size, tile_size,
                 max_pixels)


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """The one worker loop (cluster/worker.py): store the result, then ack; reclaim dead workers' tiles.  It
    stops at the run's end, not at pills: a tile handed back after the pills would wait for a worker gone."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    jobs = jobs_queue(board, life.name, timing)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    life.ready()
    work(life, life.name, board, jobs, timing, store_then_ack(life, board, jobs),
         partial(blur_tile, truncate=truncate, method=kernel))


def store_then_ack(life: Life, board: Board, jobs: WorkQueue) -> Deliver:
    """f's delivery (and j's): keep the result in Redis, then ack its job."""
    def deliver(job: TileJob, block: np.ndarray, delivery: Delivery) -> None:
        board.store_result(job.image, job.tile.id, TileResult(board.run, job.image, job.tile, job.kernel_size,
                                                              block).encode())
        life.checkpoint("stored")  # a crash here: the job is done again, stored twice, counted as a duplicate
        jobs.ack(delivery)

    return deliver


def assembler(life: Life, **options: Any) -> None:
    """The assembler of f and g (cluster/assembly.py): results wait in Redis, so it can be restarted."""
    timing = Settings(**options["settings"])
    assembly.assembler(life, jobs=lambda board: jobs_queue(board, life.name, timing), **options)


def tiles_in_flight(cluster: Cluster) -> int:
    """Exactly the tiles on the workers' processing lists: f knows what each worker holds."""
    return jobs_queue(cluster.board, "chaos", cluster.job.config.settings).in_flight()


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight,
              gives_up_after=lambda settings: settings.progress_wait_s)
