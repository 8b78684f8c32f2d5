"""The speed targets of b and c, measured in one run: approaches interleaved round by round, ratios per round.

    python benchmarks/bc_targets.py [--rounds 15] [--workers N] [--tile-size 256] [--kernel direct]
                                    [--png-encoder fpng|pillow] [--megapixels 1,2,4]

On the sample images with k = 21 (or, with --megapixels, on photo-like samples of those sizes, made here):
- b.threads, blur stage: a's blur seconds / b.threads' blur-stage seconds >= 1.8 on 2 cores.  b's blur
  stage of an image runs from its first tile's blur start to its last tile's blur end (the workers'
  waits inside that window count); summed over images.
- c, wall time <= 1.3 x (a's load + save seconds) / cores, and c the fastest of a, b.*, c.
Also printed: the kernel alone, without pool, queues or tracing: whole images, tiles in place on 1 and N
threads, and cut + blur + paste per tile (the most any tiling can gain here, and what copying costs).
Every figure is a median over the rounds with its spread; each ratio is taken within a round, then the median.
"""

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job
from approaches.core.kernel import KERNELS, blur, blur_into, blur_tile, warm_up
from approaches.core.limits import DEFAULT_ENCODER, PNG_ENCODERS
from approaches.core.tiling import Tile, cut, paste, plan_tiles
from approaches.core.trace import Span, Tracer
from approaches.registry import APPROACHES
from approaches.samples import SampleSpec, ensure_samples, make_sample

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
                   method: str) -> dict[str, float]:
    """Seconds to blur every tile of the samples with no pool and no tracing (medians over rounds).

    "whole": each image in one call, as a does; "in place, 1" and "in place, N": the tiles blurred
    straight into a canvas (blur_into, what b.threads and c do) on 1 and N threads; "cut + paste, N": a
    padded copy of each tile blurred and pasted back (what b.processes' workers get, here on threads).
    """
    images = [load_image(source.path).pixels for source in find_images(input_dir)]
    plans = [plan_tiles(image.shape[1], image.shape[0], tile_size) for image in images]

    def in_place(image: np.ndarray, canvas: np.ndarray, tile: Tile) -> None:
        blur_into(image, tile, canvas, kernel_size, method=method)

    def copied(image: np.ndarray, canvas: np.ndarray, tile: Tile) -> None:
        paste(canvas, tile, blur_tile(cut(image, tile, kernel_size // 2), kernel_size, method=method))

    def blur_all(count: int, step: Callable[[np.ndarray, np.ndarray, Tile], None]) -> float:
        """Per image, `count` plain threads take every count-th tile: no queue hands anything over."""
        start = time.perf_counter()
        for image, tiles in zip(images, plans, strict=True):
            canvas = np.empty_like(image)
            threads = [threading.Thread(target=lambda part: [step(image, canvas, tile) for tile in part],  # noqa: B023
                                        args=(tiles[i::count],)) for i in range(count)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return time.perf_counter() - start

    def whole() -> float:
        start = time.perf_counter()
        for image in images:
            blur(image, kernel_size, method=method)
        return time.perf_counter() - start

    timings: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        timings["whole"].append(whole())
        timings["in place, 1"].append(blur_all(1, in_place))
        timings[f"in place, {threads}"].append(blur_all(threads, in_place))
        timings[f"cut + paste, {threads}"].append(blur_all(threads, copied))
    return {name: statistics.median(values) for name, values in timings.items()}


def spread(values: list[float], unit: float = 1e3, suffix: str = " ms") -> str:
    return f"{statistics.median(values) * unit:.1f}{suffix} ± {statistics.stdev(values) * unit:.1f} (n={len(values)})"


def make_photos(folder: Path, megapixels: list[float]) -> None:
    """Photo-like samples (approaches/samples.py's recipe) of the given sizes, 3:2, RGB."""
    folder.mkdir(parents=True)
    for i, mp in enumerate(megapixels):
        height = int((mp * 1e6 / 1.5) ** 0.5)
        make_sample(SampleSpec(f"photo{i}", int(height * 1.5), height, "RGB", 10 + i)).save(folder / f"photo{i}.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    parser.add_argument("--kernel", choices=KERNELS, default="separable",
                        help="direct: k*k taps per pixel, the compute-bound workload where tiling pays")
    parser.add_argument("--png-encoder", choices=PNG_ENCODERS, default=DEFAULT_ENCODER)
    parser.add_argument("--megapixels", help="comma-separated sizes: photo-like samples of these sizes instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as output:
        if args.megapixels:
            args.input = Path(output) / "input"
            make_photos(args.input, [float(mp) for mp in args.megapixels.split(",")])
        else:
            ensure_samples(args.input)
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=21, tile_size=args.tile_size,
                           workers=args.workers, kernel=args.kernel, png_encoder=args.png_encoder)
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
        ceiling = kernel_ceiling(args.input, 21, args.tile_size, args.workers, args.rounds, args.kernel)
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

    print(f"{len(sources)} sample images, k=21 ({args.kernel}), PNG encoder {args.png_encoder}, "
          f"tile {args.tile_size}, {cores} workers, "
          f"{args.rounds} rounds (cores present: {cores_present()})")
    for key in KEYS:
        print(f"  {key:12s} wall {spread(wall[key])}")
    print(f"  a stages: load {spread([stage_sum(s, 'load') for s in spans['a']])}, blur {spread(a_blur)}, "
          f"save {spread([stage_sum(s, 'save') for s in spans['a']])}")
    print(f"  b.threads blur stage {spread(b_stage)}")
    print("  the kernel alone, no pool: " + ", ".join(f"{name} {seconds * 1e3:.1f} ms"
                                                     for name, seconds in ceiling.items()))
    print(f"    whole / in place on {cores} threads: x{ceiling['whole'] / ceiling[f'in place, {cores}']:.2f} "
          f"(the most b.threads' blur stage can gain over a here)")
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
