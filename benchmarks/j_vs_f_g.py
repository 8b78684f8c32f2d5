"""j (RabbitMQ) against f and g (Redis) on one machine: whole runs, tiles per second through each queue, bytes per tile.

    python benchmarks/j_vs_f_g.py [--rounds 5] [--workers N] [--tile-size 256] [--tiles 300]

- Whole runs, worker processes all three: f and j with N worker pods, g with N pods of 1 thread, results on
  embedded:// (a Valkey server started per run), j's jobs on one private RabbitMQ node started once for the script
  (a node boots in seconds: that is start-up, measured apart, not each run's).  Each round runs the three in a
  rotating order, after one round that is dropped (it fills numba's cache and the OS's); every output of the
  first kept round is checked against a's pixels.  Wall time, medians with min..max, and j/f, j/g per round.
- Tiles per second through each queue alone, no blur: --tiles real tile jobs of the samples put (j: each
  confirmed), then taken and acked one at a time by one consumer in this process, on the same servers.
- Bytes per tile: a tile job's message and its result's (the wire format, cluster/wire.py: the same for all
  three), against the tile's own pixels: the halo and the header are the overhead.
Needs RabbitMQ installed (or AMQP_URL set); without it, it says so in one line and measures nothing.
"""

import argparse
import itertools
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from approaches import f_reliable_queue, g_service, j_rabbitmq
from approaches.cluster.amqp import open_amqp, unavailable
from approaches.cluster.board import Board
from approaches.cluster.broker import connect, open_broker
from approaches.cluster.queues import WorkQueue
from approaches.cluster.wire import TileJob, TileResult
from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur, warm_up
from approaches.core.settings import Settings
from approaches.core.tiling import cut, plan_tiles
from approaches.core.trace import Tracer
from approaches.samples import ensure_samples

KERNEL_SIZE = 21

RUNS: dict[str, Callable[[Job, Tracer], Outcome]] = {
    "f": f_reliable_queue.run,
    "g": lambda job, tracer: g_service.run(job, tracer, pods=job.config.workers, threads=1),
    "j": j_rabbitmq.run,
}


def timed(letter: str, config: RunConfig, sources: tuple, check: bool) -> float:
    """The wall time of one run; SystemExit if an image failed or differs from a's pixels."""
    started = time.perf_counter()
    outcome = RUNS[letter](Job(config, sources, letter), Tracer())
    wall = time.perf_counter() - started
    if outcome.failed or len(outcome.saved) != len(sources):
        raise SystemExit(f"{letter} failed: {outcome.failed}")
    if check:
        for saved in outcome.saved:
            if not np.array_equal(load_image(saved.output).pixels,
                                  blur(load_image(saved.source).pixels, config.kernel_size)):
                raise SystemExit(f"{letter}: {saved.name} differs from a's pixels")
    return wall


def tile_jobs(sources: tuple, tile_size: int, count: int) -> list[bytes]:
    """count tile job messages cut from the samples (cycling through their tiles), for a run id of their own."""
    run, bodies = secrets.token_hex(8), []
    for image, source in enumerate(sources):
        pixels = load_image(source.path).pixels
        for tile in plan_tiles(pixels.shape[1], pixels.shape[0], tile_size):
            bodies.append(TileJob(run, image, tile, KERNEL_SIZE, cut(pixels, tile, KERNEL_SIZE // 2)).encode())
    return list(itertools.islice(itertools.cycle(bodies), count))


def through(queue: WorkQueue, bodies: list[bytes]) -> float:
    """Tiles per second: every body put, then taken and acked one at a time."""
    started = time.perf_counter()
    for body in bodies:
        queue.put(body)
    for _ in bodies:
        delivery = queue.next(5.0)
        if delivery is None:
            raise SystemExit(f"{type(queue).__name__}: a tile put was not handed out within 5 s")
        queue.ack(delivery)
    return len(bodies) / (time.perf_counter() - started)


def queues(redis_url: str, amqp_url: str) -> dict[str, Callable[[], WorkQueue]]:
    """A fresh queue of each kind, under a run id of its own, on the servers given."""
    settings = Settings()

    def board() -> Board:
        return Board(connect(redis_url), secrets.token_hex(8))

    return {"f": lambda: f_reliable_queue.jobs_queue(board(), "bench", settings),
            "g": lambda: g_service.jobs_queue(board(), "bench", settings),
            "j": lambda: j_rabbitmq.jobs_queue(amqp_url, board(), "bench", settings)}


def spread(values: list[float], scale: float = 1.0, unit: str = "s", digits: int = 3) -> str:
    return (f"{statistics.median(values) * scale:.{digits}f} {unit} ({min(values) * scale:.{digits}f}.."
            f"{max(values) * scale:.{digits}f})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--tiles", type=int, default=300, help="tiles through each queue alone, per round")
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds: at least 3, so that a median and a spread mean something")
    if (why := unavailable(os.environ.get("AMQP_URL"))) is not None:
        print(f"skipped: {why}")  # nothing to measure j on: not a failure of the script
        return 0
    ensure_samples(args.input)
    sources = tuple(find_images(args.input))
    warm_up(KERNEL_SIZE)
    started = time.perf_counter()
    with open_amqp(os.environ.get("AMQP_URL")) as amqp, tempfile.TemporaryDirectory() as output:
        print(f"RabbitMQ: {amqp.shown}, ready in {time.perf_counter() - started:.1f} s")
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=KERNEL_SIZE,
                           tile_size=args.tile_size, workers=args.workers, broker="embedded://", amqp=amqp.url)
        whole_runs(config, sources, args.rounds)
        with open_broker("embedded://") as broker:
            per_queue(queues(broker.url, amqp.url), tile_jobs(sources, args.tile_size, args.tiles), args.rounds)
    bytes_per_tile(sources, args.tile_size)
    return 0


def whole_runs(config: RunConfig, sources: tuple, rounds: int) -> None:
    print(f"{len(sources)} sample images, k={config.kernel_size}, tile {config.tile_size}, {config.workers} worker "
          f"processes each; {rounds} rounds after one dropped (cores present: {cores_present()})")
    walls: dict[str, list[float]] = {letter: [] for letter in RUNS}
    for round_ in range(rounds + 1):  # round 0 fills caches and is dropped
        order = list(RUNS)[round_ % 3:] + list(RUNS)[:round_ % 3]
        for letter in order:
            wall = timed(letter, config, sources, check=round_ == 1)
            if round_:
                walls[letter].append(wall)
    side_by_side(walls, "wall (start-up included)", "wall")


def per_queue(makers: dict[str, Callable[[], WorkQueue]], bodies: list[bytes], rounds: int) -> None:
    print(f"  one producer then one consumer in this process, {len(bodies)} tile jobs of {len(bodies[0]):,} bytes "
          f"each; {rounds} rounds, rotating order")
    rates: dict[str, list[float]] = {letter: [] for letter in makers}
    for round_ in range(rounds):
        for letter in list(makers)[round_ % 3:] + list(makers)[:round_ % 3]:
            queue = makers[letter]()
            rates[letter].append(through(queue, bodies))
            if isinstance(queue, j_rabbitmq.RabbitQueue):
                queue.remove()
                queue.close()
    side_by_side(rates, "tiles/s through the queue", "tiles/s", unit="tiles/s", digits=0)


def side_by_side(measured: dict[str, list[float]], what: str, short: str, **shown: Any) -> None:
    """Each letter's spread, then j's per-round ratio to f and to g (measured in the same rounds)."""
    for letter, values in measured.items():
        print(f"  {letter}  {what}: {spread(values, **shown)}")
    for other in ("f", "g"):
        ratio = [j / o for j, o in zip(measured["j"], measured[other], strict=True)]
        print(f"  j / {other} {short}: median x{statistics.median(ratio):.2f} (per round x{min(ratio):.2f} .. "
              f"x{max(ratio):.2f})")


def bytes_per_tile(sources: tuple, tile_size: int) -> None:
    """A job's and a result's message size, against the tile's pixels, over every tile of the samples."""
    run, job_bytes, result_bytes, pixel_bytes = secrets.token_hex(8), 0, 0, 0
    tiles = 0
    for image, source in enumerate(sources):
        pixels = load_image(source.path).pixels
        for tile in plan_tiles(pixels.shape[1], pixels.shape[0], tile_size):
            padded = cut(pixels, tile, KERNEL_SIZE // 2)
            block = pixels[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width]
            job_bytes += len(TileJob(run, image, tile, KERNEL_SIZE, padded).encode())
            result_bytes += len(TileResult(run, image, tile, KERNEL_SIZE, block).encode())
            pixel_bytes += block.nbytes
            tiles += 1
    print(f"  bytes per tile ({tiles} tiles of {tile_size}, k={KERNEL_SIZE}): job {job_bytes / tiles:,.0f}, result "
          f"{result_bytes / tiles:,.0f}, the tile's own pixels {pixel_bytes / tiles:,.0f}; "
          f"(job + result) / pixels x{(job_bytes + result_bytes) / pixel_bytes:.2f}")


if __name__ == "__main__":
    sys.exit(main())
