"""g — A multithreaded service: one program, run in any number of copies, that survives what f survives.

Delivery guarantee: at-least-once, with idempotent assembly (as f).  The tile jobs are a Redis Stream
read by a consumer group, so Redis itself keeps, for every job, who holds it, since when, and how many
times it was handed out; a job is acked in the same transaction that stores its result.  No tile is
lost, a tile is blurred twice only when its worker was presumed dead, and each image is saved once.

    coordinator --XADD jobs--> worker process(es) x N threads --HSET results:<image> + XACK--> assembler
                 (one transaction   (XREADGROUP; XAUTOCLAIM      (one transaction, with      (f's: saves each
                  per image)         of jobs idle too long)       the done-tile checkpoint)   image once)

The same program takes each role, chosen by --mode, on one machine or many:

    python -m approaches.g_service --mode coordinator --broker redis://host:6379/0 --input photos/
    python -m approaches.g_service --mode worker      --broker redis://host:6379/0 --run <id> --threads 8
    python -m approaches.g_service --mode assembler   --broker redis://host:6379/0 --run <id> --output out/
    python -m approaches.g_service --mode all --input photos/ --output out/     (everything, in one process)

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

import argparse
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import redis

from approaches.cluster import deployment
from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import connect, open_broker, redact
from approaches.cluster.deployment import Cluster, Roles, decode_job, hand_back_later
from approaches.cluster.pods import Life
from approaches.cluster.queues import StreamQueue, pending
from approaches.cluster.wire import RUN_ID_BYTES, State, TileResult
from approaches.core.config import RunConfig, cores_present
from approaches.core.errors import BlurSuiteError, ConfigError
from approaches.core.images import find_images
from approaches.core.job import Job, Outcome
from approaches.core.kernel import KERNELS, blur_tile, warm_up
from approaches.core.trace import Tracer
from approaches.f_reliable_queue import GIVE_UP_S, assembler, queue_images

POLL_S = 0.05  # the longest a worker thread waits for a job before it checks whether to stop
VISIBILITY_S = 5.0  # a job unacked this long is taken over by an idle worker: its holder is presumed dead

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, *, give_up_s: float = GIVE_UP_S, pods: int = 1, threads: int | None = None,
        **options: Any) -> Outcome:
    """As approach g of run_all.py: `pods` worker pods of `threads` threads each (default: one pod with a
    thread per worker asked for, where f has a process per worker)."""
    return deployment.run(job, tracer, ROLES, give_up_s=give_up_s, worker_pods=pods,
                          worker_settings={"threads": threads or job.config.workers}, **options)


def jobs_queue(board: Board, consumer: str) -> StreamQueue:
    return StreamQueue(board.client, board.key("jobs"), consumer, visibility_s=VISIBILITY_S)


def coordinator(life: Life, *, url: str, run: str, images: list[list[str]], kernel_size: int, tile_size: int,
                stop: threading.Event | None = None) -> None:
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name), images, kernel_size, tile_size, stop)


def worker(life: Life, *, url: str, run: str, truncate: bool, kernel: str, tile_delay_s: float = 0.0,
           threads: int = 1, stop: threading.Event | None = None) -> None:
    """Run `threads` worker threads until the run is done (or stop is set); a crash of one is the pod's."""
    board = Board(connect(url), run)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    stop = stop or threading.Event()
    crashed: list[BaseException] = []

    def serve(lane: str) -> None:
        try:
            blur = partial(blur_tile, truncate=truncate, method=kernel)
            work(life, board, jobs_queue(board, lane), lane, stop, blur, tile_delay_s)
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
         blur: Callable[[np.ndarray, int], np.ndarray], tile_delay_s: float) -> None:
    """One worker thread: take a job (a new one, or one idle too long), blur it unless its result is in,
    then store the result and ack the job in one transaction."""
    returned = jobs.recover()
    if returned:
        log.info("%s: handed back %d tiles held by its earlier life", lane, returned)
    while not stop.is_set():
        life.checkpoint("idle")
        delivery = jobs.next(POLL_S)
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
        if tile_delay_s:
            life.sleep(tile_delay_s)
            jobs.heartbeat()
        try:
            with life.tracer.span(lane, "blur", name, job.tile.id):
                block = blur(job.pixels, job.kernel_size)
        except Exception as error:
            hand_back_later(life, lane, jobs, delivery, f"tile {job.tile.id} of {name}", error)
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


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight)


# --- the service: python -m approaches.g_service ------------------------------------------------------


MODES = ("coordinator", "worker", "assembler", "all")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())  # finish the tile in hand, then exit
    try:
        return _serve(args, stop)
    except (BlurSuiteError, redis.RedisError) as error:
        print(f"g_service: error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m approaches.g_service",
        description="Approach g as a service: run each role in as many copies, on as many machines, as you like.",
        epilog="Start the coordinator first: it prints the run id that workers and the assembler need.",
    )
    add = parser.add_argument
    add("--mode", choices=MODES, default="all", help="which role to run (default: all, in one process)")
    add("--broker", default="embedded://", metavar="URL",
        help="redis://host:port/db of the shared server; with --mode all also memory:// or embedded:// "
             "(default: embedded://, a Valkey server started here)")
    add("--run", metavar="ID", help="the run to work on (printed by the coordinator; required for worker and "
        "assembler)")
    add("--threads", type=int, default=cores_present(), metavar="N",
        help=f"worker threads in this process (default: cores present, {cores_present()})")
    add("--input", type=Path, default=Path("data/input"), metavar="DIR", help="folder of images (coordinator)")
    add("--output", type=Path, default=Path("data/output"), metavar="DIR",
        help="outputs go to DIR/g/ (assembler)")
    add("--kernel-size", type=int, default=21, metavar="K", help="odd Gaussian size (default 21)")
    add("--tile-size", type=int, default=256, metavar="PX", help="tile edge in pixels (default 256)")
    add("--png-level", type=int, default=1, metavar="0-9", help="PNG compression level (default 1)")
    add("--truncate", action="store_true", help="round blurred values down, as the original course did")
    add("--kernel", choices=KERNELS, default="separable", help="the Gaussian computed separably (default) or "
        "directly in 2-D (K*K taps per pixel)")
    add("--give-up", type=float, default=GIVE_UP_S, metavar="S",
        help=f"the assembler reports an image incomplete after S seconds without progress (default {GIVE_UP_S:g})")
    return parser


def _serve(args: argparse.Namespace, stop: threading.Event) -> int:
    RunConfig(kernel_size=args.kernel_size, tile_size=args.tile_size, png_level=args.png_level,
              broker=args.broker)  # the same checks, and messages, as run_all.py
    if not 1 <= args.threads <= 1024:
        raise ConfigError(f"--threads must be between 1 and 1024, got {args.threads}")
    if args.run is not None and not re.fullmatch(f"[0-9a-f]{{{2 * RUN_ID_BYTES}}}", args.run):
        raise ConfigError(f"--run: {args.run!r} is not a run id; give the {2 * RUN_ID_BYTES} hex digits the "
                          "coordinator printed")
    if args.mode != "all" and not args.broker.startswith(("redis", "unix")):
        raise ConfigError(f"--mode {args.mode} shares its broker with other processes: give a redis:// URL "
                          "(memory:// and embedded:// live inside one process; use --mode all for those)")
    if args.mode in ("worker", "assembler") and not args.run:
        raise ConfigError(f"--mode {args.mode} needs --run, the id the coordinator printed")
    images = []
    if args.mode in ("coordinator", "all"):
        images = [[str(source.path), source.name] for source in find_images(args.input)]
        if not images:
            raise ConfigError(f"no images in {args.input} (looked for .png, .jpg, .bmp, .gif, .tif, .webp)")
    run_id = args.run or new_run_id()
    if args.mode == "coordinator":
        print(f"run {run_id}: queuing {len(images)} images; start workers and an assembler with --run {run_id}")
    with open_broker(args.broker) as broker:
        url, lives = broker.url, {}

        def life(name: str) -> Life:
            lives[name] = Life(name, time.perf_counter(), None, None)
            return lives[name]

        roles = {
            "coordinator": lambda: coordinator(life("coordinator"), url=url, run=run_id, images=images,
                                               kernel_size=args.kernel_size, tile_size=args.tile_size, stop=stop),
            "worker": lambda: worker(life("worker"), url=url, run=run_id, truncate=args.truncate, kernel=args.kernel,
                                     threads=args.threads, stop=stop),
            "assembler": lambda: assembler(life("assembler"), url=url, run=run_id, output_dir=str(args.output),
                                           letter="g", png_level=args.png_level, give_up_s=args.give_up,
                                           stop=stop),
        }
        if args.mode != "all":
            roles[args.mode]()
            return _finish(args.mode, Board(connect(url), run_id), broker.shown, stop)
        units = [threading.Thread(target=roles[mode], name=mode) for mode in ("assembler", "worker", "coordinator")]
        for unit in units:
            unit.start()
        for unit in units:
            while unit.is_alive():
                unit.join(0.1)  # join with a timeout, so SIGINT is handled meanwhile
        return _finish("all", Board(connect(url), run_id), broker.shown, stop)


def _finish(mode: str, board: Board, shown: str, stop: threading.Event) -> int:
    """Say how the run stands; 0 if this role finished its part and (assembler, all) every image was saved."""
    if stop.is_set():
        print(f"{mode}: stopped on request; run {board.run} can be carried on", file=sys.stderr)
        return 130
    if mode in ("coordinator", "worker"):
        return 0
    reports = board.reports()
    for image in sorted(reports):
        report = reports[image]
        name = board.plan(image).name if image in board.planned() else f"image {image}"
        print(f"{name}: {report.state.value}{': ' + report.reason if report.reason else ''}")
    saved = sum(report.state is State.SAVED for report in reports.values())
    print(f"run {board.run} on {redact(shown)}: {saved} of {len(reports)} images saved")
    return 0 if saved == len(reports) else 1


if __name__ == "__main__":
    sys.exit(main())
