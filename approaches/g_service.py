"""g — A multithreaded service: one program, run in any number of copies, that survives what f survives.

Delivery guarantee: at-least-once, with idempotent assembly (as f).  The tile jobs are a Redis Stream
read by a consumer group, so Redis itself keeps, for every job, who holds it, since when, and how many
times it was handed out; a job is acked in the same transaction that stores its result.  No tile is
lost, a tile is blurred twice only when its worker was presumed dead, and each image is saved once.

    coordinator --XADD jobs--> worker process(es) x N threads --HSET results:<image> + XACK--> assembler
                 (one transaction   (XREADGROUP; XAUTOCLAIM      (one transaction, with      (f's: saves each
                  per image)         of jobs idle too long)       the done-tile checkpoint)   image once)

The mechanism is StreamQueue below: the consumer group created at id 0, XAUTOCLAIM of jobs idle for
Settings.visibility_s (taken over and done), the group's delivery count to dead-letter a poison tile.
A worker process runs several threads, one consumer each (the kernel releases the GIL).  The same
program takes each role (`blur-suite service --mode coordinator|worker|assembler|all`, harness/service.py);
the worker loop is e's and f's, the coordinator and assembler f's (cluster/).
"""

import secrets
import threading
import time
from functools import partial
from typing import Any

import numpy as np
import redis

from approaches.cluster import assembly, deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect, streams_block
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import queue_images
from approaches.cluster.pods import Life
from approaches.cluster.queues import (
    RUN_TTL_S,
    Delivery,
    Pipe,
    block_timeout,
    dead_letter_into,
    in_pipe,
    unless_gone,
)
from approaches.cluster.wire import TileJob, TileResult
from approaches.cluster.worker import work
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.trace import Tracer

POLL_STEP_S = 0.005  # how often a stream reader polls where BLOCK does not wait (fakeredis)
CLAIM_EVERY = 0.1  # of the visibility timeout: how often a consumer looks for messages to take over


def run(job: Job, tracer: Tracer, *, pods: int = 1, threads: int | None = None, **options: Any) -> Outcome:
    """As approach g of run_all.py: `pods` worker pods of `threads` threads each (default: one pod with a
    thread per worker asked for, where f has a process per worker)."""
    return deployment.run(job, tracer, ROLES, worker_pods=pods,
                          worker_settings={"threads": threads or job.config.workers}, **options)


# --- the queue: cluster/queues.py's WorkQueue on a stream read by a consumer group --------------------------


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
        in_pipe(self.client, pipe, lambda p: p.xadd(self.key, {"body": body}).expire(self.key, RUN_TTL_S))

    def next(self, timeout: float) -> Delivery | None:
        """The next message: one left idle too long by its consumer, or a new one; None after the timeout,
        or at once if the stream is gone (a finished run deletes it: the caller then sees the run done)."""
        return unless_gone(lambda: self._next(timeout), None)

    def _next(self, timeout: float) -> Delivery | None:
        deadline = time.monotonic() + block_timeout(timeout)
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
        in_pipe(self.client, pipe, lambda p: p.xack(self.key, self.GROUP, delivery.receipt)
            .xdel(self.key, delivery.receipt), transaction=True)
        self._held.discard(delivery.receipt)

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        """Onto the dead-letter stream and acked, in one transaction: never both, never neither."""
        pipe = self.client.pipeline(transaction=True)
        dead_letter_into(pipe, self.key, delivery.body, reason, exhausted)
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
            unless_gone(lambda: self.client.xclaim(self.key, self.GROUP, self.consumer, 0, list(self._held),
                                                    justid=True), None)

    def waiting(self) -> int:
        """Messages not handed out yet: acked ones are deleted, so every other entry is pending."""
        return self.client.xlen(self.key) - self.in_flight()

    def in_flight(self) -> int:
        """Messages handed out and not acked, over all consumers: the group's pending count."""
        return unless_gone(lambda: int(self.client.xpending(self.key, self.GROUP)["pending"]), 0)

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
        return unless_gone(lambda: self.client.xpending_range(self.key, self.GROUP, "-", "+", 100_000,
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


def jobs_queue(board: Board, consumer: str, settings: Settings) -> StreamQueue:
    """A job unacked for visibility_s is taken over by an idle worker: its holder is presumed dead."""
    return StreamQueue(board.client, board.key("jobs"), consumer, visibility_s=settings.visibility_s,
                       max_deliveries=settings.max_deliveries)


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int, max_pixels: int, stop: threading.Event | None = None) -> None:
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name, Settings(**settings)), images, kernel_size, tile_size,
                 max_pixels, stop)


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str, threads: int = 1,
           stop: threading.Event | None = None) -> None:
    """Run `threads` worker threads, each the one worker loop, until the run is done or stop is set (the
    service's SIGINT/SIGTERM: each thread finishes the tile in hand); a crash of one is the pod's.

    Each thread is a consumer named by the pod's stable name and its thread (worker-1.t2), so a pod restarted
    under its old name takes back at once what its earlier life held, and a new one never a live peer's.  A
    result is stored and its job acked in one transaction, and a job whose result is already stored is acked,
    not redone (the checkpoint, skip_done)."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    stop = stop or threading.Event()
    crashed: list[BaseException] = []
    blur = partial(blur_tile, truncate=truncate, method=kernel)

    def serve(lane: str) -> None:
        jobs = jobs_queue(board, lane, timing)

        def store_and_ack(job: TileJob, block: np.ndarray, delivery: Delivery) -> None:
            board.store_result(job.image, job.tile.id,
                               TileResult(board.run, job.image, job.tile, job.kernel_size, block).encode(),
                               also=lambda pipe: jobs.ack(delivery, pipe))
            life.checkpoint("stored")  # a crash here: stored and acked already, nothing to redo

        try:
            work(life, lane, board, jobs, timing, store_and_ack, blur, skip_done=True, stop=stop)
        except BaseException as error:  # PodKilled included: the whole pod goes down with it
            crashed.append(error)
            stop.set()

    lanes = [life.name if threads == 1 else f"{life.name}.t{i}" for i in range(1, threads + 1)]
    units = [threading.Thread(target=serve, args=(lane,), name=lane) for lane in lanes]
    life.ready()
    for unit in units:
        unit.start()
    for unit in units:
        unit.join()
    if crashed:
        raise crashed[0]


def assembler(life: Life, **options: Any) -> None:
    """f's assembler (cluster/assembly.py), counting what is left in g's stream at the end."""
    timing = Settings(**options["settings"])
    assembly.assembler(life, jobs=lambda board: jobs_queue(board, life.name, timing), **options)


def tiles_in_flight(cluster: Cluster) -> int:
    """Exactly the jobs handed out and not acked: the consumer group's pending count."""
    return jobs_queue(cluster.board, "chaos", cluster.job.config.settings).in_flight()


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight,
              gives_up_after=lambda settings: settings.progress_wait_s)
