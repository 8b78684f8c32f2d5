"""What the cluster costs, measured in one run: e and f against b.threads, and a tile on the wire against JSON.

    python benchmarks/cluster_targets.py [--rounds 9] [--workers N] [--broker memory://]

- e's overhead: e's wall time / b.threads' wall time - 1, same workers, tile size and images, the two run
  alternately round by round and the ratio taken within each round (goal on memory://: <= 15%).
  b.threads blurs the same tiles with the same number of threads; what e adds is the broker, the wire
  format and its pods.
- f's cost of reliability: f's wall time / e's, per round (processing lists, heartbeats, results kept in
  Redis until the image is saved).
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

from approaches.cluster.wire import HEADER, TileJob
from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import warm_up
from approaches.core.tiling import cut, plan_tiles
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from approaches.samples import ensure_samples

KEYS = ("b.threads", "e", "f")


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--broker", default="memory://")
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    args = parser.parse_args()
    ensure_samples(args.input)
    sources = tuple(find_images(args.input))
    warm_up(21)
    wall: dict[str, list[float]] = {key: [] for key in KEYS}
    with tempfile.TemporaryDirectory() as output:
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=21, tile_size=args.tile_size,
                           workers=args.workers, broker=args.broker)
        for round_ in range(args.rounds + 1):  # the first round warms caches and is dropped
            for key in KEYS:
                start = time.perf_counter()
                outcome = APPROACHES[key].run(Job(config, sources, key), Tracer())
                seconds = time.perf_counter() - start
                if outcome.failed:
                    print(f"{key} failed: {outcome.failed}", file=sys.stderr)
                    return 1
                if round_:
                    wall[key].append(seconds)
    overhead = [e / b - 1 for b, e in zip(wall["b.threads"], wall["e"], strict=True)]
    print(f"{len(sources)} sample images, k=21, tile {args.tile_size}, {args.workers} workers, broker {args.broker}, "
          f"{args.rounds} rounds (cores present: {cores_present()})")
    for key in KEYS:
        print(f"  {key:10s} wall median {statistics.median(wall[key]) * 1e3:.0f} ms "
              f"(min {min(wall[key]) * 1e3:.0f}, max {max(wall[key]) * 1e3:.0f})")
    median = statistics.median(overhead)
    print(f"  e overhead over b.threads: median {median:+.1%} "
          f"(per round {min(overhead):+.1%} .. {max(overhead):+.1%})"
          + (f"; goal <= +15%: {'met' if median <= 0.15 else 'MISSED'}" if args.broker == "memory://" else
             "; process pods: their start-up (spawn, imports, kernel load) is part of e's wall time"))
    f_vs_e = [f / e for e, f in zip(wall["e"], wall["f"], strict=True)]
    print(f"  f / e wall: median x{statistics.median(f_vs_e):.2f} (per round x{min(f_vs_e):.2f} .. x{max(f_vs_e):.2f})")
    pixels, binary, text = wire_sizes(args.input, 21, args.tile_size)
    print(f"  one {args.tile_size}-px RGBA tile, k=21 ({pixels} padded pixels): binary {binary} B "
          f"({binary / pixels:.2f} B/px, header {HEADER.size} B), original JSON {text} B ({text / pixels:.1f} B/px), "
          f"x{text / binary:.1f} smaller")
    return 0 if median <= 0.15 or args.broker != "memory://" else 1


if __name__ == "__main__":
    sys.exit(main())
