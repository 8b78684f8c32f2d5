"""Approach g as a service: `blur-suite service --mode coordinator|worker|assembler|all`.

The lesson lives in approaches/g_service.py; this is its command line, so each role can run in as many
copies, on as many machines, as a reader likes (docs/deploy/ has containers for it):

    blur-suite service --mode coordinator --broker redis://host:6379/0 --input photos/
    blur-suite service --mode worker      --broker redis://host:6379/0 --run <id> --threads 8
    blur-suite service --mode assembler   --broker redis://host:6379/0 --run <id> --output out/
    blur-suite service --mode all --input photos/ --output out/     (everything, in one process)
    blur-suite service --status <id> --broker redis://host:6379/0     (what a run holds, live or finished)
    blur-suite service --clean [<id>] --broker redis://host:6379/0    (delete a run's keys, or every run's)

SIGINT and SIGTERM make every role finish what it holds and exit; a run can be carried on later.
"""

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import redis

from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import check_reachable, connect, open_broker
from approaches.cluster.pods import Life
from approaches.cluster.wire import RUN_ID_BYTES, State
from approaches.core.config import RunConfig, check_queue_tile_size, cores_present, max_workers
from approaches.core.errors import BlurSuiteError, ConfigError
from approaches.core.images import find_images
from approaches.core.limits import DEFAULT_ENCODER, DEFAULT_MAX_PIXELS, KERNELS, MAX_PIXELS, PNG_ENCODERS
from approaches.core.png import resolve_encoder
from approaches.core.settings import Settings
from approaches.core.urls import redact
from approaches.g_service import StreamQueue, assembler, coordinator, worker
from approaches.harness.parsing import OneLineParser, in_flags

MODES = ("coordinator", "worker", "assembler", "all")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())  # finish the tile in hand, then exit
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.status or args.clean:
            return _inspect(args)
        return _serve(args, stop)
    except (BlurSuiteError, redis.RedisError) as error:
        print(f"blur-suite service: error: {in_flags(error, {})}", file=sys.stderr)
        return 2
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="blur-suite service",
        description="Approach g as a service: run each role in as many copies, on as many machines, as you like.",
        epilog="Start the coordinator first: it prints the run id that workers and the assembler need.",
    )
    add = parser.add_argument
    add("--mode", choices=MODES, default="all", help="which role to run (default: all, in one process)")
    add("--broker", default="embedded://", metavar="URL",
        help="redis://host:port/db of the shared server; with --mode all also memory:// or embedded:// "
             "(default: embedded://, a Valkey server started here)")
    add("--run", metavar="ID", help="the run to work on (printed by the coordinator; required for worker and "
        "assembler; a coordinator given one carries that run on, with the same --input)")
    add("--name", default=f"{socket.gethostname()}-{os.getpid()}", metavar="NAME",
        help="this worker's stable name: a worker started again under the same name takes back at once the tiles "
        "its earlier life held, and no two live workers may share one (default: host-pid, new each start)")
    add("--threads", type=int, default=cores_present(), metavar="N",
        help=f"worker threads in this process (default: cores present, {cores_present()})")
    add("--input", type=Path, default=Path("data/input"), metavar="DIR", help="folder of images (coordinator)")
    add("--output", type=Path, default=Path("data/output"), metavar="DIR",
        help="outputs go to DIR/g/ (assembler)")
    add("--kernel-size", type=int, default=21, metavar="K", help="odd Gaussian size (default 21)")
    add("--tile-size", type=int, default=256, metavar="PX", help="tile edge in pixels (default 256)")
    add("--png-level", type=int, default=1, metavar="0-9", help="Pillow's PNG compression level (default 1)")
    add("--png-encoder", choices=PNG_ENCODERS, default=DEFAULT_ENCODER,
        help=f"PNG writer for RGB/RGBA outputs (default {DEFAULT_ENCODER}; L/LA images always use Pillow)")
    add("--truncate", action="store_true", help="round blurred values down, as the original course did")
    add("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N", help=f"refuse an image of more than N "
        f"pixels, 1..{MAX_PIXELS} (coordinator; default {DEFAULT_MAX_PIXELS}, Pillow's own limit)")
    add("--kernel", choices=KERNELS, default="separable", help="the Gaussian computed separably (default) or "
        "directly in 2-D (K*K taps per pixel)")
    add("--give-up", type=float, default=Settings.progress_wait_s, metavar="S",
        help="the assembler reports an image incomplete after S seconds without progress "
             f"(default {Settings.progress_wait_s:g})")
    add("--status", metavar="ID", help="print what run ID holds on the broker (live or finished) and exit")
    add("--clean", nargs="?", const="all", metavar="ID",
        help="delete run ID's keys from the broker (every run's, without ID) and exit")
    return parser


def _check(args: argparse.Namespace) -> None:
    RunConfig(kernel_size=args.kernel_size, tile_size=args.tile_size, png_level=args.png_level,
              broker=args.broker, max_pixels=args.max_pixels)  # the same checks, and messages, as run_all.py
    check_queue_tile_size(args.tile_size, "g")
    if not 1 <= args.threads <= max_workers():
        raise ConfigError(f"--threads must be between 1 and {max_workers()}, got {args.threads}")
    for flag in ("run", "status", "clean"):
        value = getattr(args, flag)
        if value is not None and value != "all" and not re.fullmatch(f"[0-9a-f]{{{2 * RUN_ID_BYTES}}}", value):
            raise ConfigError(f"--{flag}: {value!r} is not a run id; give the {2 * RUN_ID_BYTES} hex digits the "
                              "coordinator printed")
    if not re.fullmatch(r"[\w.@-]{1,64}", args.name):
        raise ConfigError(f"--name: {args.name!r} must be 1-64 letters, digits or . @ _ -")
    shared = args.mode != "all" or args.status or args.clean
    if shared and not args.broker.startswith(("redis", "unix")):
        raise ConfigError("this shares its broker with other processes: give a redis:// URL (memory:// and "
                          "embedded:// live inside one process; use --mode all for those)")


def _serve(args: argparse.Namespace, stop: threading.Event) -> int:
    _check(args)
    if args.mode in ("worker", "assembler") and not args.run:
        raise ConfigError(f"--mode {args.mode} needs --run, the id the coordinator printed")
    images = []
    if args.mode in ("coordinator", "all"):
        images = [[str(source.path), source.name] for source in find_images(args.input)]
        if not images:
            raise ConfigError(f"no images in {args.input} (looked for .png, .jpg, .bmp, .gif, .tif, .webp)")
    check_reachable(args.broker)  # before anything is said about a run that could not be queued
    run_id = args.run or new_run_id()
    if args.mode == "coordinator":
        print(f"run {run_id}: queuing {len(images)} images; start workers and an assembler with --run {run_id}")
    settings = Settings(progress_wait_s=args.give_up).plain()
    encoder = resolve_encoder(args.png_encoder)
    with open_broker(args.broker) as broker:
        url = broker.url

        def life(name: str) -> Life:
            return Life(name, time.perf_counter(), None, None)

        roles = {
            "coordinator": lambda: coordinator(life("coordinator"), url=url, run=run_id, settings=settings,
                                               images=images, kernel_size=args.kernel_size, tile_size=args.tile_size,
                                               max_pixels=args.max_pixels, stop=stop),
            "worker": lambda: worker(life(f"worker-{args.name}"), url=url, run=run_id, settings=settings,
                                     truncate=args.truncate, kernel=args.kernel, threads=args.threads, stop=stop),
            "assembler": lambda: assembler(life("assembler"), url=url, run=run_id, settings=settings,
                                           output_dir=str(args.output), letter="g", png_level=args.png_level,
                                           png_encoder=encoder, stop=stop),
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
    images = (board.summary() or {}).get("images", {})
    for image, fields in sorted(images.items(), key=lambda item: int(item[0])):
        reason = fields.get("reason")
        print(f"{fields.get('name', f'image {image}')}: {fields.get('state')}{': ' + reason if reason else ''}")
    saved = sum(fields.get("state") == State.SAVED.value for fields in images.values())
    print(f"run {board.run} on {redact(shown)}: {saved} of {len(images)} images saved")
    return 0 if saved == len(images) else 1


def _inspect(args: argparse.Namespace) -> int:
    """--status ID or --clean [ID]: read or delete what runs hold on a shared broker."""
    _check(args)
    check_reachable(args.broker)
    client = connect(args.broker)
    if args.clean:
        runs = _runs(client) if args.clean == "all" else [args.clean]
        for run in runs:
            Board(client, run).delete()
        print(f"deleted the keys of {len(runs)} run(s) on {redact(args.broker)}")
        return 0
    board = Board(client, args.status)
    keys = sorted(key.decode(errors="replace") for key in client.scan_iter(match=f"blur:{board.run}:*", count=1000))
    if not keys:
        print(f"run {board.run}: nothing on {redact(args.broker)} (never started, cleaned, or expired)")
        return 1
    summary = board.summary()
    if summary is not None:
        states = [fields.get("state") for fields in summary.get("images", {}).values()]
        print(f"run {board.run}: finished; {states.count('saved')} of {len(states)} images saved, "
              f"{summary.get('dead_letter_count', 0)} dead letters")
    else:
        queue = StreamQueue(client, board.key("jobs"), "status")
        print(f"run {board.run}: live; {len(board.planned())} images planned, {len(board.reports())} finished, "
              f"{queue.waiting()} tiles waiting, {queue.in_flight()} in flight")
    size = sum(client.memory_usage(key) or 0 for key in keys)
    print(f"{len(keys)} keys, {size / 1024:.1f} KiB: {', '.join(key.rpartition(board.run + ':')[2] for key in keys)}")
    return 0


def _runs(client: redis.Redis) -> list[str]:
    return sorted({key.decode(errors="replace").split(":")[1] for key in client.scan_iter(match="blur:*", count=1000)
                   if re.fullmatch(rb"blur:[0-9a-f]{16}:.*", key)})


if __name__ == "__main__":
    sys.exit(main())
