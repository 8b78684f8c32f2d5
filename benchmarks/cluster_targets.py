"""What the cluster costs, measured in one run: e, f and g against b.threads, and a tile on the wire against JSON.

    python benchmarks/cluster_targets.py [--rounds 9] [--workers N] [--broker memory://]
    python benchmarks/cluster_targets.py --g-scaling [--rounds 3] [--broker embedded://]

- e's overhead: e's wall time / b.threads' wall time - 1, same workers, tile size and images, the two run
  alternately round by round and the ratio taken within each round (goal on memory://: <= 15%).
  b.threads blurs the same tiles with the same number of threads; what e adds is the broker, the wire
  format and its pods.
- f's cost of reliability: f's wall time / e's, per round (processing lists, heartbeats, results kept in
  Redis until the image is saved); g's the same (a stream, its consumer group, the done-tile checkpoint).
- tiles per second through the broker: tiles blurred / (end of the last result sent - start of the first
  blur), from the pods' spans, so pod start-up is not counted.
- --g-scaling: g with 1 and 2 worker pods (processes on embedded://) x 1..4 threads each, interleaved.
- bytes per tile: a job message (header + padded pixels) against the original's JSON, an object per
  pixel such as {"R": 12, "G": 34, "B": 56, "A": 255}, for the same tile of a sample photo.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from approaches import g_service
from approaches.cluster.wire import HEADER, TileJob
from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import KERNELS, warm_up
from approaches.core.tiling import cut, plan_tiles
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from approaches.samples import ensure_samples

KEYS = ("b.threads", "e", "f", "g")


def original_json(padded: np.ndarray) -> bytes:
    """The original course's tile encoding: a list of rows of {"R","G","B","A"} objects."""
    names = "RGBA"[: padded.shape[2]]
    return json.dumps([[dict(zip(names, map(int, pixel), strict=True)) for pixel in row] for row in padded]).encode()


def wire_sizes(input_dir: Path, kernel_size: int, tile_size: int) -> tuple[int, int, int]:
    """(padded pixels, binary message bytes, JSON bytes) for the first tile of the first RGBA sample."""
    image = next(loaded.pixels for loaded in map(load_image, (s.path for s in find_images(input_dir)))
                 if loaded.mode == "RGBA")
    tile = plan_tiles(image.shape[1], image.shape[0], tile_size)[0]
    padded = cut(image, tile, kernel_size // 2)
    binary = TileJob("00" * 8, 0, tile, kernel_size, padded).encode()
    return padded.shape[0] * padded.shape[1], len(binary), len(original_json(padded))


def tiles_per_second(tracer: Tracer) -> float:
    """Tiles blurred per second between the first blur and the last result sent (start-up excluded)."""
    blurs = [span for span in tracer.spans if span.stage == "blur"]
    sends = [span for span in tracer.spans if span.stage == "send" and span.tile is not None]
    return len(blurs) / (max(span.end for span in sends) - min(span.start for span in blurs))


def timed(key: str, config: RunConfig, sources: tuple, **options) -> tuple[float, float | None]:
    """(wall seconds, tiles per second or None) of one run; SystemExit if an image failed."""
    tracer = Tracer()
    start = time.perf_counter()
    outcome = (g_service.run(Job(config, sources, key), tracer, **options) if options
               else APPROACHES[key].run(Job(config, sources, key), tracer))
    seconds = time.perf_counter() - start
    if outcome.failed:
        raise SystemExit(f"{key} failed: {outcome.failed}")
    return seconds, tiles_per_second(tracer) if APPROACHES[key].uses_broker else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--broker", default="memory://")
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    parser.add_argument("--g-scaling", action="store_true", help="g at 1-2 worker pods x 1-4 threads instead")
    parser.add_argument("--kernel", choices=KERNELS, default="separable", help="direct: the compute-bound workload")
    args = parser.parse_args()
    ensure_samples(args.input)
    sources = tuple(find_images(args.input))
    warm_up(21, method=args.kernel)
    with tempfile.TemporaryDirectory() as output:
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=21, tile_size=args.tile_size,
                           workers=args.workers, broker=args.broker, kernel=args.kernel)
        print(f"{len(sources)} sample images, k=21 ({args.kernel}), tile {args.tile_size}, broker {args.broker}, "
              f"{args.rounds} rounds after one dropped (cores present: {cores_present()})")
        return g_scaling(config, sources, args.rounds) if args.g_scaling else compare(config, sources, args)


def compare(config: RunConfig, sources: tuple, args: argparse.Namespace) -> int:
    wall: dict[str, list[float]] = {key: [] for key in KEYS}
    rate: dict[str, list[float]] = {key: [] for key in KEYS}
    for round_ in range(args.rounds + 1):  # the first round warms caches and is dropped
        for key in KEYS:
            seconds, tiles_s = timed(key, config, sources)
            if round_:
                wall[key].append(seconds)
                if tiles_s is not None:
                    rate[key].append(tiles_s)
    overhead = [e / b - 1 for b, e in zip(wall["b.threads"], wall["e"], strict=True)]
    print(f"  {config.workers} workers")
    for key in KEYS:
        through = f", {statistics.median(rate[key]):.0f} tiles/s through the broker" if rate[key] else ""
        print(f"  {key:10s} wall median {statistics.median(wall[key]) * 1e3:.0f} ms "
              f"(min {min(wall[key]) * 1e3:.0f}, max {max(wall[key]) * 1e3:.0f}){through}")
    median = statistics.median(overhead)
    print(f"  e overhead over b.threads: median {median:+.1%} "
          f"(per round {min(overhead):+.1%} .. {max(overhead):+.1%})"
          + (f"; goal <= +15%: {'met' if median <= 0.15 else 'MISSED'}" if args.broker == "memory://" else
             "; process pods: their start-up (spawn, imports, kernel load) is part of e's wall time"))
    for key in ("f", "g"):
        ratio = [x / e for e, x in zip(wall["e"], wall[key], strict=True)]
        print(f"  {key} / e wall: median x{statistics.median(ratio):.2f} "
              f"(per round x{min(ratio):.2f} .. x{max(ratio):.2f})")
    pixels, binary, text = wire_sizes(args.input, 21, args.tile_size)
    print(f"  one {args.tile_size}-px RGBA tile, k=21 ({pixels} padded pixels): binary {binary} B "
          f"({binary / pixels:.2f} B/px, header {HEADER.size} B), original JSON {text} B ({text / pixels:.1f} B/px), "
          f"x{text / binary:.1f} smaller")
    return 0 if median <= 0.15 or args.broker != "memory://" else 1


def g_scaling(config: RunConfig, sources: tuple, rounds: int) -> int:
    shapes = [(pods, threads) for pods in (1, 2) for threads in (1, 2, 3, 4)]
    wall: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
    rate: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}
    for round_ in range(rounds + 1):
        for pods, threads in shapes:
            seconds, tiles_s = timed("g", config, sources, pods=pods, threads=threads)
            if round_:
                wall[(pods, threads)].append(seconds)
                rate[(pods, threads)].append(tiles_s)
    base = statistics.median(rate[(1, 1)])
    print("  pods x threads   wall median   tiles/s median   tiles/s vs 1x1")
    for shape in shapes:
        tiles_s = statistics.median(rate[shape])
        print(f"  {shape[0]} x {shape[1]}            {statistics.median(wall[shape]) * 1e3:8.0f} ms   "
              f"{tiles_s:14.0f}   x{tiles_s / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
