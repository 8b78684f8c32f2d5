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
  produced; before taking a new job, a worker takes over one left idle for the visibility timeout
  (Settings.visibility_s; XAUTOCLAIM) and does it (the original claimed such jobs and then dropped them);
  the group's delivery count dead-letters a job handed out max_deliveries times (XADD to the dead-letter
  stream and XACK in one MULTI).  No heartbeat keys and no reaper: the group is the record.
- store and ack are one transaction, so a worker killed between them cannot leave a stored, unacked job.
- checkpoints: before blurring, a worker asks whether the tile's result is already in (the stored-tile
  set of the image), so a job delivered again after its result came in (a producer's retried XADD after
  a lost reply, a take-over crossing the slow holder's ack) is acked, not redone.
- threads: a worker process runs --threads worker threads, one consumer each; the kernel releases the
  GIL, so they blur in parallel.  More machines: start more worker processes anywhere.
- names: each consumer is its pod's stable name plus its thread (worker-1.t2; a service process is named
  by --name, by default host and process id), so a new or extra worker never takes over a live peer's
  jobs, while a pod restarted under its old name takes back at once what its earlier life held.
- SIGINT/SIGTERM: every thread finishes the tile it holds (result stored, acked) and the process exits;
  the jobs it never took stay in the stream for the others.
The worker loop is e's and f's (cluster/worker.py), the coordinator and the assembler are f's
(cluster/planning.py, cluster/assembly.py): images are queued whole, results wait in Redis, and an
assembler started again carries on.  A resumed coordinator must be given the same images (by name and
content hash).  `all` mode exits when every image has a report.
"""

import threading
from functools import partial
from typing import Any

import numpy as np

from approaches.cluster import assembly, deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import queue_images
from approaches.cluster.pods import Life
from approaches.cluster.queues import Delivery, StreamQueue
from approaches.cluster.wire import TileJob, TileResult
from approaches.cluster.worker import work
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.trace import Tracer


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
    """Run `threads` worker threads, each the one worker loop with its own consumer name, until the run is
    done (or stop is set); a crash of one is the pod's."""
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
              give_up_s=assembly.GIVE_UP_S)
