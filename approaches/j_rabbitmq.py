"""j — RabbitMQ: f's pods, with a broker built for work queues carrying the tile jobs.

Delivery guarantee: at-least-once, with idempotent assembly (as f).  What f builds by hand on Redis
(processing lists, heartbeats, a reaper, a delivery count), RabbitMQ does itself: a message stays on the
broker, unacked, until its consumer acks it, and goes back to the queue the moment that consumer's
connection closes.  Results stay in the run's Redis (--broker), as f keeps them.

    coordinator --publish, confirmed--> quorum queue --prefetch=1--> worker pods x N --HSET results:<image>,
    (plan in Redis first,               blur:<run>:jobs              (manual ack)      then ack--> assembler
     then each tile)                        |  x-delivery-limit                                  (f's: saves each
                                            v                                                    image once)
                                        blur:<run>:jobs:dead  <--publish with x-blur-reason-- a worker

The mechanism is RabbitQueue below, cluster/queues.py's WorkQueue on AMQP (pika, RabbitMQ's own Python
client, synchronous like the rest of the suite):

- the coordinator publishes each tile with publisher confirms: basic_publish returns once the broker has
  written the message (a quorum queue: to a majority of its nodes), so a coordinator that dies loses
  nothing it was told was queued; started again, it publishes again every image it had not finished (some
  tiles twice: duplicates, counted);
- a worker takes one tile at a time (prefetch=1: the broker hands a worker no second tile until it acks the
  first, so a dead worker holds at most one), stores its result in Redis, then acks (f's store_then_ack);
- a worker killed, its connection reset, has its tile back in the queue at once: no heartbeat to expire,
  no reaper.  A worker that hangs, alive and holding its tile, is noticed only when its connection's AMQP
  heartbeats stop (within Settings.visibility_s here; at RabbitMQ's default, minutes), or, if a thread of it still
  answers heartbeats, by the broker's consumer-ack timeout (30 min by default; cluster/amqp.py shortens it
  on a private node);
- the queue is a quorum queue: it is written to disk, survives a broker restart, and counts deliveries
  (x-delivery-count), so a tile that kills every worker it reaches is dead-lettered by the broker once it
  has been returned Settings.max_deliveries times (x-delivery-limit), and a tile that keeps failing is
  dead-lettered by its worker with the reason in a header (x-blur-reason);
- the assembler moves dead letters from RabbitMQ onto the run's board in Redis, where f's assembler fails
  the image of a tile given up on; the others complete.

What RabbitMQ cannot tell a client is what each consumer holds (its management API can, over HTTP): the
workers write down the tile they hold in Redis (`holding`), so the chaos demo can kill them mid-tile.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial
from typing import Any

import pika
import pika.exceptions

from approaches.cluster import assembly, deployment
from approaches.cluster.amqp import AmqpBroker, AmqpError, open_amqp
from approaches.cluster.board import Board, ResumeRefused
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import fingerprint, load_and_plan
from approaches.cluster.pods import Life
from approaches.cluster.queues import DEAD_HEAD_BYTES, RUN_TTL_S, Delivery, Pipe, block_timeout, dead_letter
from approaches.cluster.wire import Kind, TileJob, peek
from approaches.cluster.worker import work
from approaches.core.job import Failure, Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.tiling import cut
from approaches.core.trace import Tracer
from approaches.f_reliable_queue import store_then_ack

RECONNECT_S = 60.0  # how long a client tries to reconnect (a broker restart takes seconds, more when busy)
RECONNECT_PAUSE_S = 0.25
REASON, EXHAUSTED = "x-blur-reason", "x-blur-exhausted"  # the headers of a dead letter a worker publishes

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    """Run j on --amqp's broker, or this process's private RabbitMQ node (started on its first j run: a node
    boots in seconds, which a run's timing would otherwise count every time), with the job's Redis for results;
    a broker that cannot be had fails every image with why."""
    try:
        with open_amqp(job.config.amqp, shared=True) as amqp:
            return deployment.run(job, tracer, roles(amqp), **options)
    except AmqpError as error:
        return Outcome(failed=[Failure(str(source.path), str(error)) for source in job.images])


# --- the queue: cluster/queues.py's WorkQueue, at-least-once on a RabbitMQ quorum queue -----------------


class RabbitQueue:
    """At-least-once: RabbitMQ keeps a delivered message until its consumer acks it, and requeues it the moment
    that consumer's connection closes.

    One connection and channel per queue object, opened on first use and opened again (for up to RECONNECT_S)
    after the broker drops it: a delivery taken on a connection that has since closed cannot be acked (the
    broker requeued it already, and it will be done again: a duplicate).  The channel is in confirm mode, so
    put() and nack() return once the broker has the message; prefetch=1, so a consumer holds one message at
    most.  A message whose consumer returns it max_deliveries times (x-delivery-limit) is dead-lettered by
    the broker itself; one requeued on its last delivery is dead-lettered here with the reason.
    """

    guarantee = "at-least-once"

    def __init__(self, url: str, board: Board, consumer: str, *, max_deliveries: int = Settings.max_deliveries,
                 visibility_s: float = Settings.visibility_s) -> None:
        self.url, self.board, self.consumer = url, board, consumer
        self.key = board.key("jobs")
        self.dead = f"{self.key}:dead"
        self.max_deliveries = max_deliveries
        # RabbitMQ closes a silent connection about three heartbeat timeouts after its last frame (measured in
        # docs/lessons/j-rabbitmq.md), so a worker silent for visibility_s is presumed dead within it, as f's and
        # g's are: a third of it, in AMQP's whole seconds, at least one
        self.heartbeat_s = max(1, int(visibility_s // 3))
        self._holding = board.key("holding")  # consumer -> the head of the message it holds (see the module doc)
        self._connection: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._messages: Iterator | None = None
        self._generation = 0  # which connection a delivery came on: an older one's cannot be acked

    def __enter__(self) -> "RabbitQueue":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, body: bytes, pipe: Pipe | None = None) -> None:
        """Publish persistently and wait for the broker's confirm; AMQP has no part in a Redis transaction."""
        if pipe is not None:
            raise ValueError("a RabbitMQ publish cannot join a Redis transaction")
        self._retrying(lambda channel: channel.basic_publish(
            "", self.key, body, pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent), mandatory=True))

    def next(self, timeout: float) -> Delivery | None:
        """The next message (this consumer holds it until ack, nack or requeue), or None after the timeout."""
        block_timeout(timeout)
        try:
            channel = self._open()
            if self._messages is None:
                self._messages = channel.consume(self.key, inactivity_timeout=timeout)
            method, properties, body = next(self._messages)
        except pika.exceptions.AMQPError as error:
            self._lost(error)
            return None
        if method is None:
            return None
        attempt = 1 + int((properties.headers or {}).get("x-delivery-count", 0))
        (self.board.client.pipeline(transaction=False).hset(self._holding, self.consumer, body[:DEAD_HEAD_BYTES])
         .expire(self._holding, RUN_TTL_S).execute())
        return Delivery(body, receipt=f"{self._generation} {method.delivery_tag}".encode(), attempt=attempt)

    def ack(self, delivery: Delivery, pipe: Pipe | None = None) -> None:
        """Done with it: the broker forgets it (unless the connection it came on has closed meanwhile)."""
        self._settle(delivery, lambda channel, tag: channel.basic_ack(tag))

    def nack(self, delivery: Delivery, reason: str, *, exhausted: bool = False) -> None:
        """Onto the dead-letter queue with the reason in a header, confirmed; then acked: never neither."""
        headers = {REASON: reason[:500], EXHAUSTED: int(exhausted)}
        self._retrying(lambda channel: channel.basic_publish(
            "", self.dead, delivery.body, pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent,
                                                               headers=headers), mandatory=True))
        self.ack(delivery)

    def requeue(self, delivery: Delivery) -> None:
        """Back to the queue, for any consumer; on its last delivery, dead-lettered here instead, with why."""
        if delivery.attempt >= self.max_deliveries:
            self.nack(delivery, f"failed on each of its {delivery.attempt} deliveries", exhausted=True)
        else:
            self._settle(delivery, lambda channel, tag: channel.basic_nack(tag, requeue=True))

    def reclaim(self) -> int:
        """Nothing to reclaim: the broker requeued a dead consumer's messages as its connection closed."""
        self.board.client.hdel(self._holding, self.consumer)  # what an earlier life of this consumer held
        return 0

    def heartbeat(self) -> None:
        """Let the connection answer the broker's heartbeats during a slow tile (pika does so only when asked)."""
        if self._connection is not None:
            with suppress(pika.exceptions.AMQPError):
                self._connection.process_data_events(0)

    def waiting(self) -> int:
        return self._retrying(lambda channel: channel.queue_declare(self.key, passive=True).method.message_count)

    def in_flight(self) -> int:
        """Tiles the workers say they hold whose result is not stored yet (a dead worker's stale word aside)."""
        return len(self._held_tiles())

    def in_flight_bodies(self) -> list[bytes]:
        """The first bytes of each message workers hold: enough to name its tile (wire.peek)."""
        return list(self.board.client.hvals(self._holding))

    def held(self) -> int:
        return int(self.board.client.hexists(self._holding, self.consumer))

    def drain_dead_letters(self) -> None:
        """Move the messages on the dead-letter queue onto the run's board (queues.dead_letter), each acked once
        written: the assembler fails the image of a tile given up on, and the summary names every reason."""
        while (got := self._retrying(lambda channel: channel.basic_get(self.dead)))[0] is not None:
            method, properties, body = got
            headers = properties.headers or {}
            if REASON in headers:
                reason, exhausted = _text(headers[REASON]), bool(headers.get(EXHAUSTED))
            else:  # dead-lettered by the broker: x-first-death-reason is delivery_limit
                reason = (f"returned {self.max_deliveries} times unacked: its workers died holding it "
                          f"({_text(headers.get('x-first-death-reason', 'unknown'))})")
                exhausted = True
            dead_letter(self.board.client, self.key, body, reason, exhausted=exhausted)
            self._settle(Delivery(body, f"{self._generation} {method.delivery_tag}".encode()),
                         lambda channel, tag: channel.basic_ack(tag), holding=False)

    def remove(self) -> None:
        """Delete the run's queues (its pods are stopped)."""
        self._retrying(lambda channel: (channel.queue_delete(self.key), channel.queue_delete(self.dead)))

    def close(self) -> None:
        """Close the connection: the broker requeues whatever this consumer still holds."""
        if self._connection is not None:
            with suppress(pika.exceptions.AMQPError):
                self._connection.close()
        self._connection = self._channel = self._messages = None

    # --- the connection -------------------------------------------------------------------------------------

    def _open(self) -> Any:
        """The channel, connected and the queues declared (idempotent: every pod declares them alike)."""
        if self._channel is not None:
            return self._channel
        deadline = time.monotonic() + RECONNECT_S
        while True:
            try:
                parameters = pika.URLParameters(self.url)
                parameters.heartbeat = self.heartbeat_s
                parameters.blocked_connection_timeout = RECONNECT_S
                self._connection = pika.BlockingConnection(parameters)
                channel = self._connection.channel()
                channel.confirm_delivery()
                channel.basic_qos(prefetch_count=1)
                _declare(channel, self.key, self.dead, self.max_deliveries)
                self._channel, self._generation = channel, self._generation + 1
                return channel
            except pika.exceptions.ChannelClosedByBroker as error:  # refused, not lost: trying again won't help
                self.close()
                raise AmqpError(f"RabbitMQ refused {self.key}: {error.reply_text}") from None
            except pika.exceptions.AMQPError as error:
                self.close()
                if time.monotonic() > deadline:
                    raise AmqpError(f"lost RabbitMQ for {RECONNECT_S:g} s: {error!r}") from None
                time.sleep(RECONNECT_PAUSE_S)

    def _retrying(self, operation: Callable[[Any], Any]) -> Any:
        """operation(channel), done again on a fresh connection if the broker dropped this one (a publish may
        then be done twice: at-least-once)."""
        while True:
            channel = self._open()
            try:
                return operation(channel)
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as error:
                self._lost(error)

    def _settle(self, delivery: Delivery, settle: Callable[[Any, int], None], holding: bool = True) -> None:
        generation, _, tag = (delivery.receipt or b"").decode().partition(" ")
        if self._channel is not None and generation == str(self._generation):
            try:
                settle(self._channel, int(tag))
            except pika.exceptions.AMQPError as error:
                self._lost(error)
        else:
            log.info("%s: a delivery from a closed connection: the broker has requeued it", self.consumer)
        if holding:
            self.board.client.hdel(self._holding, self.consumer)

    def _lost(self, error: Exception) -> None:
        log.warning("%s: RabbitMQ connection lost (%r); reconnecting", self.consumer, error)
        self.close()

    def _held_tiles(self) -> set[tuple[int, int]]:
        tiles = set()
        for head in self.in_flight_bodies():
            header = peek(head, self.board.run)
            if header is not None and header[0] is Kind.JOB and not self.board.is_stored(header[1], header[2]):
                tiles.add((header[1], header[2]))
        return tiles


def _declare(channel: Any, key: str, dead: str, max_deliveries: int) -> None:
    """The run's queues: quorum queues (replicated, on disk, delivery counts), expiring if left unused a day."""
    expires = {"x-queue-type": "quorum", "x-expires": RUN_TTL_S * 1000}
    channel.queue_declare(dead, durable=True, arguments=expires)
    channel.queue_declare(key, durable=True, arguments={
        **expires, "x-delivery-limit": max_deliveries - 1,  # returned more often than this: dead-lettered
        "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead,
        "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"})


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def jobs_queue(amqp: str, board: Board, consumer: str, settings: Settings) -> RabbitQueue:
    """A worker silent for visibility_s (no AMQP heartbeat) is presumed dead by the broker."""
    return RabbitQueue(amqp, board, consumer, max_deliveries=settings.max_deliveries,
                       visibility_s=settings.visibility_s)


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, amqp: str, url: str, run: str, settings: dict, images: list[list[str]],
                kernel_size: int, tile_size: int, max_pixels: int) -> None:
    """Each image's plan into Redis, then its tiles to RabbitMQ, each confirmed; then the image is marked
    queued.  Started again, it queues again every image not marked: some tiles twice, none lost."""
    board = Board(connect(url), run)
    board.claim_inputs(fingerprint(images))
    if board.done():
        raise ResumeRefused(f"run {run} is finished already; start a new run")
    queued = board.key("queued")
    with jobs_queue(amqp, board, life.name, Settings(**settings)) as jobs:
        life.ready()
        dealt_with = {int(image) for image in board.client.smembers(queued)} | set(board.reports())
        for image, (path, name) in enumerate(images):
            if image in dealt_with or (planned := load_and_plan(life, board, image, path, name, kernel_size,
                                                                tile_size, max_pixels)) is None:
                continue
            loaded, plan = planned
            with life.tracer.span(life.name, "cut", name):
                bodies = [TileJob(run, image, tile, kernel_size, cut(loaded.pixels, tile, plan.halo)).encode()
                          for tile in plan.tiles]
            board.publish_plan(image, plan)  # before its tiles: a worker must find the plan of any tile it gets
            life.checkpoint("cut")
            with life.tracer.span(life.name, "send", name):
                for body in bodies:
                    jobs.put(body)
            board.client.pipeline(transaction=False).sadd(queued, image).expire(queued, RUN_TTL_S).execute()
            life.checkpoint("queued")
    board.mark_coordinated(len(images))


def worker(life: Life, *, amqp: str, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """The one worker loop (cluster/worker.py) with f's store-then-ack; it stops at the run's end, and closing
    its connection hands back whatever it still holds."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    with jobs_queue(amqp, board, life.name, timing) as jobs:
        jobs.waiting()  # connect and declare now: start-up, not the first tile
        life.ready()
        work(life, life.name, board, jobs, timing, store_then_ack(life, board, jobs),
             partial(blur_tile, truncate=truncate, method=kernel))


def assembler(life: Life, *, amqp: str, **options: Any) -> None:
    """f's assembler (cluster/assembly.py), which first moves RabbitMQ's dead letters onto the board."""
    board = Board(connect(options["url"]), options["run"])
    with jobs_queue(amqp, board, life.name, Settings(**options["settings"])) as jobs:
        assembly.assembler(life, jobs=lambda _: jobs, each_step=jobs.drain_dead_letters, **options)


def tiles_in_flight(cluster: Cluster) -> int:
    """The tiles the workers say they hold (RabbitMQ tells only its management API); read from Redis."""
    return cluster.roles.jobs_queue(cluster.board, "chaos", cluster.job.config.settings).in_flight()


def roles(amqp: AmqpBroker) -> Roles:
    """j's pods on this AMQP broker (each is given its URL: a spawned pod connects itself)."""
    def settled(cluster: Cluster) -> None:
        """The pods are stopped: a job a worker set aside after the assembler's last look is still on the
        dead-letter queue; move it onto the board, beside the others, for whoever reads them now."""
        try:
            with jobs_queue(amqp.url, cluster.board, "settle", cluster.job.config.settings) as queue:
                queue.drain_dead_letters()
        except AmqpError as error:
            log.warning("the run's last dead letters stay on %s: %s", amqp.shown, error)

    def ended(cluster: Cluster) -> None:
        """The run is over and its pods stopped: delete its queues (left alone, they expire in a day)."""
        try:
            with jobs_queue(amqp.url, cluster.board, "cleanup", cluster.job.config.settings) as queue:
                queue.remove()
        except AmqpError as error:
            log.warning("the run's queues stay on %s until they expire: %s", amqp.shown, error)

    return Roles(partial(coordinator, amqp=amqp.url), partial(worker, amqp=amqp.url),
                 partial(assembler, amqp=amqp.url), pills=False, in_flight=tiles_in_flight,
                 gives_up_after=lambda settings: settings.progress_wait_s, settled=settled, ended=ended,
                 jobs_queue=partial(jobs_queue, amqp.url))
