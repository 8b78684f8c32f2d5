"""The speed targets of b and c, measured in one run: approaches interleaved round by round, ratios per round.

    python benchmarks/bc_targets.py [--rounds 15] [--workers N] [--tile-size 256] [--kernel direct]

On the sample images with k = 21:
- b.threads, blur stage: a's blur seconds / b.threads' blur-stage seconds >= 1.8 on 2 cores.  b's blur
  stage of an image runs from its first tile's blur start to its last tile's blur end (the workers'
  waits inside that window count); summed over images.
- c, wall time <= 1.3 x (a's load + save seconds) / cores, and c the fastest of a, b.*, c.
Also printed: the kernel alone on pre-cut tiles, 1 thread against N (the most any tiling can gain here).
Every figure is a median over the rounds with its spread; each ratio is taken within a round, then the median.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import KERNELS, blur_tile, warm_up
from approaches.core.tiling import cut, plan_tiles
from approaches.core.trace import Span, Tracer
from approaches.registry import APPROACHES
from approaches.samples import ensure_samples

KEYS = ("a", "b.threads", "b.processes", "b.shm", "c")


def blur_stage(spans: list[Span]) -> float:
    """Sum over images of (last blur end - first blur start)."""
    windows: dict[str, list[float]] = defaultdict(list)
    for span in spans:
        if span.stage == "blur":
            windows[span.image] += [span.start, span.end]
    return sum(max(times) - min(times) for times in windows.values())


def stage_sum(spans: list[Span], stage: str) -> float:
    return sum(span.seconds for span in spans if span.stage == stage)


def kernel_ceiling(input_dir: Path, kernel_size: int, tile_size: int, threads: int, rounds: int,
                   method: str) -> tuple[float, float]:
    """Seconds to blur every pre-cut tile of the samples on 1 thread and on `threads` threads (medians)."""
    images = [load_image(source.path).pixels for source in find_images(input_dir)]
    tiles = [cut(image, tile, kernel_size // 2) for image in images
             for tile in plan_tiles(image.shape[1], image.shape[0], tile_size)]

    def blur_all(count: int) -> float:
        workers = [threading.Thread(target=lambda part: [blur_tile(t, kernel_size, method=method) for t in part],
                                    args=(tiles[i::count],)) for i in range(count)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start

    one, many = [], []
    for _ in range(rounds):
        one.append(blur_all(1))
        many.append(blur_all(threads))
    return statistics.median(one), statistics.median(many)


def spread(values: list[float], unit: float = 1e3, suffix: str = " ms") -> str:
    return f"{statistics.median(values) * unit:.1f}{suffix} ± {statistics.stdev(values) * unit:.1f} (n={len(values)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    parser.add_argument("--kernel", choices=KERNELS, default="separable",
                        help="direct: k*k taps per pixel, the compute-bound workload where tiling pays")
    args = parser.parse_args()
    ensure_samples(args.input)
    with tempfile.TemporaryDirectory() as output:
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=21, tile_size=args.tile_size,
                           workers=args.workers, kernel=args.kernel)
        sources = tuple(find_images(args.input))
        warm_up(config.kernel_size, method=config.kernel)
        wall: dict[str, list[float]] = defaultdict(list)
        spans: dict[str, list[list[Span]]] = defaultdict(list)
        for _ in range(args.rounds + 1):  # the first round warms caches and is dropped
            for key in KEYS:
                tracer = Tracer()
                start = time.perf_counter()
                APPROACHES[key].run(Job(config, sources, key), tracer)
                wall[key].append(time.perf_counter() - start)
                spans[key].append(tracer.spans)
    for series in (wall, spans):
        for key in KEYS:
            del series[key][0]
    cores = args.workers
    a_blur = [stage_sum(s, "blur") for s in spans["a"]]
    a_io = [stage_sum(s, "load") + stage_sum(s, "save") for s in spans["a"]]
    b_stage = [blur_stage(s) for s in spans["b.threads"]]
    blur_speedup = [a / b for a, b in zip(a_blur, b_stage, strict=True)]
    c_vs_io = [c / (io / cores) for c, io in zip(wall["c"], a_io, strict=True)]
    c_vs_best = [wall["c"][i] / min(wall[k][i] for k in KEYS if k != "c") for i in range(args.rounds)]
    one, many = kernel_ceiling(args.input, 21, args.tile_size, cores, args.rounds, args.kernel)

    print(f"{len(sources)} sample images, k=21 ({args.kernel}), tile {args.tile_size}, {cores} workers, "
          f"{args.rounds} rounds (cores present: {cores_present()})")
    for key in KEYS:
        print(f"  {key:12s} wall {spread(wall[key])}")
    print(f"  a stages: load {spread([stage_sum(s, 'load') for s in spans['a']])}, blur {spread(a_blur)}, "
          f"save {spread([stage_sum(s, 'save') for s in spans['a']])}")
    print(f"  b.threads blur stage {spread(b_stage)}")
    print(f"  kernel alone on pre-cut tiles: 1 thread {one * 1e3:.1f} ms, {cores} threads {many * 1e3:.1f} ms "
          f"(x{one / many:.2f}: the ceiling of any tiling here)")
    targets = [
        ("b.threads blur-stage speed-up over a", statistics.median(blur_speedup), ">=", 1.8),
        ("c wall / ((a load + save) / cores)", statistics.median(c_vs_io), "<=", 1.3),
        ("c wall / fastest of a and b.*", statistics.median(c_vs_best), "<=", 1.0),
    ]
    print("targets (median of per-round ratios):")
    missed = 0
    for name, value, sense, goal in targets:
        met = value >= goal if sense == ">=" else value <= goal
        missed += not met
        print(f"  {name}: {value:.2f} (goal {sense} {goal}) {'met' if met else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
