"""e — Naive queue: coordinator, worker and assembler pods around two Redis lists.

Delivery guarantee: at-most-once.  BRPOP removes a tile from Redis as it hands it to a worker, so a
worker that dies holding a tile loses it, and that tile's image is reported incomplete, never saved.

    coordinator --LPUSH jobs--> worker pods x N --LPUSH results--> assembler --> <output>/e/<name>_blurred.png

The coordinator loads each image, publishes its plan and LPUSHes every tile, then one STOP pill per
worker.  Workers BRPOP a tile, blur it and push the result: the one worker loop of e, f and g
(cluster/worker.py), so what makes e naive is its queue, NaiveQueue below.  The assembler pastes
results as they come (cluster/assembly.py, InMemoryAssembler), saves each image as its last tile comes
in, and after Settings.result_wait_s without a result reports the images still open incomplete.  Naive
on purpose: nothing is acknowledged, so a lost tile stays lost (f fixes that), and every tile is pushed
at once, without backpressure.
"""

import time
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import redis

from approaches.cluster import deployment
from approaches.cluster.assembly import InMemoryAssembler, summarise
from approaches.cluster.board import Board
from approaches.cluster.broker import Broker, connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import load_and_plan
from approaches.cluster.pods import Life
from approaches.cluster.queues import RUN_TTL_S, Delivery, Pipe, block_timeout, dead_letter, in_pipe
from approaches.cluster.wire import TileJob, TileResult
from approaches.cluster.worker import STOP, work
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.tiling import cut
from approaches.core.trace import Tracer


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    return deployment.run(job, tracer, ROLES, **options)


def launched(broker: Broker, job: Job, **options: Any) -> AbstractContextManager[Cluster]:
    """e's pods started on broker (cluster/deployment.py); the chaos demo uses this to kill them."""
    return deployment.launched(broker, job, ROLES, **options)


# --- the queue: cluster/queues.py's WorkQueue on a Redis list -------------------------------------------


class NaiveQueue:
    """At-most-once: BRPOP removes a message from Redis as it hands it out, so a consumer that dies holding it
    loses it.

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
        in_pipe(self.client, pipe, lambda p: p.lpush(self.key, body).expire(self.key, RUN_TTL_S))

    def next(self, timeout: float) -> Delivery | None:
        popped = self.client.brpop([self.key], block_timeout(timeout))
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


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int, max_pixels: int, workers: int) -> None:
    """Load each image, publish its plan, LPUSH its tiles; then say so, and send one STOP per worker."""
    board = Board(connect(url), run)
    jobs = NaiveQueue(board.client, board.key("jobs"))
    life.ready()
    for image, (path, name) in enumerate(images):
        if (planned := load_and_plan(life, board, image, path, name, kernel_size, tile_size, max_pixels)) is None:
            continue
        loaded, plan = planned
        board.publish_plan(image, plan)  # before its first tile, so every tile finds its plan
        for tile in plan.tiles:
            with life.tracer.span(life.name, "cut", name, tile.id):
                body = TileJob(run, image, tile, kernel_size, cut(loaded.pixels, tile, plan.halo)).encode()
            with life.tracer.span(life.name, "send", name, tile.id):
                jobs.put(body)
            life.checkpoint("queued")
    with board.client.pipeline(transaction=True) as pipe:  # both at once: who counts tiles in flight from
        board.mark_coordinated(len(images), pipe)  # outside (queued - waiting - done) takes the pills as waiting
        for _ in range(workers):
            jobs.put(STOP, pipe)
        pipe.execute()


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """The one worker loop (cluster/worker.py), delivering by LPUSH onto the results list; until a STOP pill."""
    board = Board(connect(url), run)
    jobs, results = NaiveQueue(board.client, board.key("jobs")), NaiveQueue(board.client, board.key("results"))
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    life.ready()

    def push_result(job: TileJob, block: np.ndarray, delivery: Delivery) -> None:
        results.put(TileResult(run, job.image, job.tile, job.kernel_size, block).encode())
        jobs.ack(delivery)  # nothing to do: the tile left Redis when BRPOP handed it out

    work(life, life.name, board, jobs, Settings(**settings), push_result,
         partial(blur_tile, truncate=truncate, method=kernel), pills=True)


def assembler(life: Life, *, url: str, run: str, settings: dict, output_dir: str, letter: str, png_level: int,
              png_encoder: str = "pillow") -> None:
    """Paste results as they come (cluster/assembly.py); once every image has a report, keep the run's summary
    and delete the rest."""
    board = Board(connect(url), run)
    results = NaiveQueue(board.client, board.key("results"))
    assembly = InMemoryAssembler(board, results, Path(output_dir), letter, png_level, Settings(**settings),
                                 life.tracer, life.name, now=time.monotonic(), png_encoder=png_encoder)
    life.ready()
    while assembly.step(time.monotonic()):
        life.checkpoint("step")
    left = {"jobs": NaiveQueue(board.client, board.key("jobs")).waiting(), "results": results.waiting()}
    board.finish({**summarise(board, board.reports()), "left": left})


def tiles_in_flight(cluster: Cluster) -> int | None:
    """Tiles taken by a worker and not yet back as a result; None until every tile is queued.

    Counted from outside, as the original demo did, from counters read one after another: a tile
    moving meanwhile can make it one off for a moment.  e itself keeps no record of them: that is its flaw.
    """
    board = cluster.board
    if board.coordinated() is None:
        return None
    queued = sum(len(board.plan(image).tiles) for image in board.planned())
    jobs = NaiveQueue(board.client, board.key("jobs")).waiting()
    results = NaiveQueue(board.client, board.key("results")).waiting()
    jobs = max(jobs - len(cluster.workers), 0)  # the STOP pills wait behind the last tile
    return queued - jobs - results - board.assembled()


ROLES = Roles(coordinator, worker, assembler, pills=True, in_flight=tiles_in_flight,
              gives_up_after=lambda settings: settings.result_wait_s)
