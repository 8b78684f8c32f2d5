"""f — Reliable queue: e's pods, made to survive the faults that make e lose tiles.

Delivery guarantee: at-least-once, with idempotent assembly.  A tile job stays in Redis until the worker
that took it has stored the result and acks it; a job whose worker dies (or falls silent for longer than
the visibility timeout) is handed to another; a result stored twice counts as a duplicate and changes
nothing.  So no tile is lost, some may be blurred twice, and each image is saved once, whole.

    coordinator --LPUSH jobs--> worker pods x N --HSET results:<image>, then ack--> assembler --> <output>/f/
                 (one transaction   (BRPOPLPUSH onto      (a tile's result is kept     (saves an image once
                  per image)         its own list)         in Redis, keyed by tile)     all its tiles are in)

What changes from e, each against one fault:
- a worker killed holding a tile: the tile is on that worker's processing list (cluster/queues.py,
  ReliableQueue); its heartbeat expires and an idle worker's reclaim() hands it back.  A restarted worker
  first returns what its earlier life held.
- a tile that fails: handed back after an exponential backoff with jitter; after Settings.max_deliveries
  deliveries it is dead-lettered with its reason, its image is reported failed, and the other images complete.
- the assembler killed: it keeps nothing that matters in memory.  Results wait in Redis, one hash per
  image, until the image is saved, so a restarted assembler carries on where the last one stopped
  (cluster/assembly.py, shared with g).
- the coordinator killed: each image's plan and tiles are queued in one transaction, so an image is
  queued wholly or not at all, and a restarted coordinator skips the images already planned.
Workers stop when the assembler marks the run done, not at pills: a job handed back after the pills
were sent would otherwise wait behind them for a worker that has already left.  The worker loop is e's
and g's too (cluster/worker.py); what f changes is the queue behind it and storing before the ack.
"""

from functools import partial
from typing import Any

import numpy as np

from approaches.cluster import assembly, deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import queue_images
from approaches.cluster.pods import Life
from approaches.cluster.queues import Delivery, ReliableQueue
from approaches.cluster.wire import TileJob, TileResult
from approaches.cluster.worker import work
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.trace import Tracer


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    return deployment.run(job, tracer, ROLES, **options)


def jobs_queue(board: Board, consumer: str, settings: Settings) -> ReliableQueue:
    """A live worker beats at least every poll_s; one silent for visibility_s is presumed dead."""
    return ReliableQueue(board.client, board.key("jobs"), consumer, visibility_s=settings.visibility_s,
                         max_deliveries=settings.max_deliveries)


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int) -> None:
    """Queue each image whole: its plan and all its tiles in one transaction (cluster/planning.py)."""
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name, Settings(**settings)), images, kernel_size, tile_size)


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """The one worker loop (cluster/worker.py): store the result, then ack; reclaim dead workers' tiles."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    jobs = jobs_queue(board, life.name, timing)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    life.ready()

    def store_then_ack(job: TileJob, block: np.ndarray, delivery: Delivery) -> None:
        board.store_result(job.image, job.tile.id, TileResult(run, job.image, job.tile, job.kernel_size,
                                                              block).encode())
        life.checkpoint("stored")  # a crash here: the job is done again, stored twice, counted as a duplicate
        jobs.ack(delivery)

    work(life, life.name, board, jobs, timing, store_then_ack, partial(blur_tile, truncate=truncate, method=kernel))


def assembler(life: Life, **options: Any) -> None:
    """The assembler of f and g (cluster/assembly.py): results wait in Redis, so it can be restarted."""
    timing = Settings(**options["settings"])
    assembly.assembler(life, jobs=lambda board: jobs_queue(board, life.name, timing), **options)


def tiles_in_flight(cluster: Cluster) -> int:
    """Exactly the tiles on the workers' processing lists: f knows what each worker holds."""
    return jobs_queue(cluster.board, "chaos", cluster.job.config.settings).in_flight()


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight,
              give_up_s=assembly.GIVE_UP_S)
