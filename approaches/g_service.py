"""g — A multithreaded service: one program, run in any number of copies, that survives what f survives.

Delivery guarantee: at-least-once, with idempotent assembly (as f).  The tile jobs are a Redis Stream
read by a consumer group, so Redis itself keeps, for every job, who holds it, since when, and how many
times it was handed out; a job is acked in the same transaction that stores its result.  No tile is
lost, a tile is blurred twice only when its worker was presumed dead, and each image is saved once.

    coordinator --XADD jobs--> worker process(es) x N threads --HSET results:<image> + XACK--> assembler
                 (one transaction   (XREADGROUP; XAUTOCLAIM      (one transaction, with      (f's: saves each
                  per image)         of jobs idle too long)       the done-tile checkpoint)   image once)

The same program takes each role, chosen by --mode, on one machine or many:

    blur-suite service --mode coordinator --broker redis://host:6379/0 --input photos/
    blur-suite service --mode worker      --broker redis://host:6379/0 --run <id> --threads 8
    blur-suite service --mode assembler   --broker redis://host:6379/0 --run <id> --output out/
    blur-suite service --mode all --input photos/ --output out/     (everything, in one process)

(harness/service.py is that command line; this module is the lesson.)

What changes from f:
- the queue (cluster/queues.py, StreamQueue): the consumer group is created at id 0 before anything is
  produced; before taking a new job, a worker takes over one left idle for VISIBILITY_S (XAUTOCLAIM) and
  does it (the original claimed such jobs and then dropped them); the group's delivery count
  dead-letters a job handed out MAX_DELIVERIES times (XADD to the dead-letter stream and XACK in one
  MULTI).  No heartbeat keys and no reaper: the group is the record.
- store and ack are one transaction, so a worker killed between them cannot leave a stored, unacked job.
- checkpoints: before blurring, a worker asks whether the tile's result is already in (the stored-tile
  set of the image), so a job delivered again after its result came in (a producer's retried XADD after
  a lost reply, a take-over crossing the slow holder's ack) is acked, not redone.
- threads: a worker process runs --threads worker threads, one consumer each; the kernel releases the
  GIL, so they blur in parallel.  More machines: start more worker processes anywhere.
- SIGINT/SIGTERM: every thread finishes the tile it holds (result stored, acked) and the process exits;
  the jobs it never took stay in the stream for the others.
The coordinator and the assembler are f's: images are queued whole, results wait in Redis, and an
assembler started again carries on.  `all` mode exits when every image has a report.
"""

import logging
import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from approaches.cluster import deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles, decode_job, hand_back_later
from approaches.cluster.pods import Life
from approaches.cluster.queues import StreamQueue, pending
from approaches.cluster.wire import TileResult
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.trace import Tracer
from approaches.f_reliable_queue import GIVE_UP_S, assembler, queue_images

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, *, pods: int = 1, threads: int | None = None, **options: Any) -> Outcome:
    """As approach g of run_all.py: `pods` worker pods of `threads` threads each (default: one pod with a
    thread per worker asked for, where f has a process per worker)."""
    return deployment.run(job, tracer, ROLES, worker_pods=pods,
                          worker_settings={"threads": threads or job.config.workers}, **options)


def jobs_queue(board: Board, consumer: str, settings: Settings) -> StreamQueue:
    """A job unacked for visibility_s is taken over by an idle worker: its holder is presumed dead."""
    return StreamQueue(board.client, board.key("jobs"), consumer, visibility_s=settings.visibility_s,
                       max_deliveries=settings.max_deliveries)


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int, stop: threading.Event | None = None) -> None:
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name, Settings(**settings)), images, kernel_size, tile_size,
                 stop)


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str, threads: int = 1,
           stop: threading.Event | None = None) -> None:
    """Run `threads` worker threads until the run is done (or stop is set); a crash of one is the pod's."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    stop = stop or threading.Event()
    crashed: list[BaseException] = []

    def serve(lane: str) -> None:
        try:
            blur = partial(blur_tile, truncate=truncate, method=kernel)
            work(life, board, jobs_queue(board, lane, timing), lane, stop, blur, timing)
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


def work(life: Life, board: Board, jobs: StreamQueue, lane: str, stop: threading.Event,
         blur: Callable[[np.ndarray, int], np.ndarray], settings: Settings) -> None:
    """One worker thread: take a job (a new one, or one idle too long), blur it unless its result is in,
    then store the result and ack the job in one transaction."""
    returned = jobs.recover()
    if returned:
        log.info("%s: handed back %d tiles held by its earlier life", lane, returned)
    while not stop.is_set():
        life.checkpoint("idle")
        delivery = jobs.next(settings.poll_s)
        if delivery is None:
            if board.done():
                return
            continue
        life.checkpoint("popped")
        if (job := decode_job(lane, board, jobs, delivery)) is None:
            continue
        if board.is_stored(job.image, job.tile.id):  # a second copy of the job, or a slow holder finished it
            jobs.ack(delivery)
            continue
        name = board.plan(job.image).name
        if settings.tile_delay_s:
            life.sleep(settings.tile_delay_s)
            jobs.heartbeat()
        try:
            life.tile_fault(name, job.tile.id)
            with life.tracer.span(lane, "blur", name, job.tile.id):
                block = blur(job.pixels, job.kernel_size)
        except Exception as error:
            hand_back_later(life, lane, jobs, delivery, f"tile {job.tile.id} of {name}", error, settings)
            continue
        life.checkpoint("blurred")  # a crash here: the job stays pending, is taken over, and done again
        with life.tracer.span(lane, "send", name, job.tile.id):
            board.store_result(job.image, job.tile.id,
                               TileResult(board.run, job.image, job.tile, job.kernel_size, block).encode(),
                               also=lambda pipe, delivery=delivery: jobs.ack_into(pipe, delivery))
        life.checkpoint("stored")


def tiles_in_flight(cluster: Cluster) -> int:
    """Exactly the jobs handed out and not acked: the consumer group's pending count."""
    return pending(cluster.board.client, cluster.board.key("jobs"))


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight, give_up_s=GIVE_UP_S)
