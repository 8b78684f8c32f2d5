"""The one worker loop of e, f, g and j: what a worker does is the same; what the queue promises differs.

    reclaim what this worker's earlier life held
    until a STOP pill (e: only once the coordinator has queued every tile), the run's end (f, g) or a stop
    request (g's service):
        delivery = jobs.next()              a span "blocked" while the queue is empty
        nothing came: reclaim()             f: the tiles of workers whose heartbeat expired
        undecodable: nack(reason)           set aside, never a crash, and the worker goes on
        already done (g's checkpoint): ack
        blur it; failed: requeue after a backoff (the queue's delivery limit ends a poison tile)
        deliver(job, block, delivery)       e: push the result, ack (a no-op: the tile left Redis already)
                                            f, j: store the result, then ack: a crash between the two, a duplicate
                                            g: store the result and ack in one transaction

The fault points (``life.checkpoint``) are where a crash loses something in e and nothing in f or g.
"""

import logging
import random
import threading
import time
from collections.abc import Callable

import numpy as np

from approaches.cluster.board import Board
from approaches.cluster.pods import Life
from approaches.cluster.queues import Delivery, WorkQueue
from approaches.cluster.wire import TileJob, WireError
from approaches.core.settings import Settings
from approaches.core.trace import Span

STOP = b"STOP"  # e's poison pill: not a tile message, so it can never be mistaken for one

Deliver = Callable[[TileJob, np.ndarray, Delivery], None]
"""Hand a blurred tile on and ack its job: the one step in which e, f and g differ."""

Blur = Callable[[np.ndarray, int], np.ndarray]
"""blur(padded tile, kernel size) -> blurred tile."""

log = logging.getLogger(__name__)


def work(life: Life, lane: str, board: Board, jobs: WorkQueue, settings: Settings, deliver: Deliver, blur: Blur, *,
         pills: bool = False, skip_done: bool = False, stop: threading.Event | None = None) -> None:
    """Take tile jobs from jobs until a STOP pill, the run's end or stop; see the module docstring.
    pills: the coordinator ends the queue with STOP pills (e); elsewhere a STOP is just a malformed job.
    skip_done: ack a job whose result is already stored instead of blurring it again (g's checkpoint)."""
    if returned := jobs.reclaim():
        log.info("%s: handed back %d tiles held by its earlier life", lane, returned)
    waiting = time.perf_counter()
    while stop is None or not stop.is_set():
        life.checkpoint("idle")
        delivery = jobs.next(settings.poll_s)
        if delivery is None:  # nothing to do: is the run over, or do dead workers hold what is left?
            if board.done():
                return
            jobs.reclaim()
            continue
        life.tracer.spans.append(Span(lane, "blocked", "", None, waiting, time.perf_counter()))
        life.checkpoint("popped")
        if pills and delivery.body == STOP:
            if board.coordinated() is not None:  # the coordinator's pills follow its last tile
                return
            jobs.nack(delivery, "a STOP pill before the coordinator had queued every tile: not the coordinator's")
        elif (job := decode_job(lane, board, jobs, delivery)) is not None:
            if skip_done and board.is_stored(job.image, job.tile.id):  # a second copy, or a slow holder did it
                jobs.ack(delivery)
            else:
                _do(life, lane, board, jobs, settings, deliver, blur, job, delivery)
        waiting = time.perf_counter()


def _do(life: Life, lane: str, board: Board, jobs: WorkQueue, settings: Settings, deliver: Deliver, blur: Blur,
        job: TileJob, delivery: Delivery) -> None:
    name = board.plan(job.image).name
    if settings.tile_delay_s:  # a slow node (the chaos demo): still alive, so it says so
        life.sleep(settings.tile_delay_s)
        jobs.heartbeat()
    try:
        life.tile_fault(name, job.tile.id)
        with life.tracer.span(lane, "blur", name, job.tile.id):
            block = blur(job.pixels, job.kernel_size)
    except Exception as error:
        hand_back_later(life, lane, jobs, delivery, f"tile {job.tile.id} of {name}", error, settings)
        return
    life.checkpoint("blurred")  # a crash here: e loses the tile; f and g hold it and do it again
    with life.tracer.span(lane, "send", name, job.tile.id):
        deliver(job, block, delivery)


def decode_job(lane: str, board: Board, jobs: WorkQueue, delivery: Delivery) -> TileJob | None:
    """A delivery's tile job, or None once a malformed one is set aside (dead-lettered with why), so one
    bad message never stops a worker."""
    try:
        return TileJob.decode(delivery.body, board.run, board.plan)
    except WireError as error:
        log.warning("%s: rejected a job: %s", lane, error)
        jobs.nack(delivery, str(error))
        return None


def hand_back_later(life: Life, lane: str, jobs: WorkQueue, delivery: Delivery, what: str, error: Exception,
                    settings: Settings) -> None:
    """A tile failed, and may succeed later or elsewhere: requeue it after an exponential backoff with
    jitter, so a failing tile does not spin through the workers; the queue's delivery limit ends it."""
    pause = settings.backoff(delivery.attempt) * random.uniform(0.5, 1.0)
    log.warning("%s: %s failed (%s); handing it back in %.2f s", lane, what, error, pause)
    life.sleep(pause)
    jobs.requeue(delivery)
