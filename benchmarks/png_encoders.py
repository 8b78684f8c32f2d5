"""a's save stage with fpng against Pillow: goal fpng <= 0.4 x Pillow level 1, and the same pixels read back.

    python benchmarks/png_encoders.py [--rounds 15] [--kernel-size 21]

The inputs are the five samples (four RGBA, one RGB) blurred as approach a blurs them.  Each candidate
(Pillow at levels 0 to 3, and fpng) saves all five with save_image, as a's save stage does: encode, write
a temporary file, rename it.  Candidates take turns within every round, in an order that rotates from one
round to the next, so a change of load on a shared machine falls on all of them alike.  Against Pillow
level 1, each candidate gets two ratios: of the best rounds, and the median of its round-by-round ratios.
Every file written in the first round is decoded by Pillow and compared with the blurred pixels.
Exit status 1 when fpng cannot be imported, misses the goal, or any file decodes to other pixels.
"""

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from approaches.core.images import load_image, save_image
from approaches.core.kernel import blur, warm_up
from approaches.core.png import FPNG
from approaches.samples import SAMPLES, make_sample

GOAL = 0.4  # fpng's save stage / Pillow level 1's, at most
BASELINE = "pillow-1"

Save = Callable[[np.ndarray, Path], None]


def candidates() -> dict[str, Save]:
    """Each way to save, by name: Pillow at the levels worth choosing a default from, and fpng if it imports."""
    chosen: dict[str, Save] = {
        f"pillow-{level}": lambda pixels, path, level=level: save_image(pixels, path, level) for level in range(4)
    }
    if FPNG.module() is not None:
        chosen["fpng"] = lambda pixels, path: save_image(pixels, path, 1, encoder="fpng")
    return chosen


def spread(values: list[float]) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"best {low:7.1f}  median {mid:7.1f}  (max {high:.1f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kernel-size", type=int, default=21)
    args = parser.parse_args()

    warm_up(args.kernel_size)
    images = {spec.name: blur(np.asarray(make_sample(spec)), args.kernel_size) for spec in SAMPLES}
    modes = ", ".join(f"{name} {p.shape[1]}x{p.shape[0]}x{p.shape[2]}" for name, p in images.items())
    print(f"inputs: the five samples blurred with k={args.kernel_size}: {modes}")
    saves = candidates()
    names = list(saves)
    times: dict[str, list[float]] = {name: [] for name in names}  # ms per round, all five images
    per_image: dict[tuple[str, str], list[float]] = {(name, image): [] for name in names for image in images}
    sizes: dict[str, int] = {}
    identical: dict[str, bool] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_number in range(args.rounds):
            turn = round_number % len(names)
            for name in names[turn:] + names[:turn]:
                folder = Path(scratch) / name
                total = 0.0
                for image, pixels in images.items():
                    start = time.perf_counter()
                    saves[name](pixels, folder / f"{image}.png")
                    elapsed = (time.perf_counter() - start) * 1e3
                    per_image[(name, image)].append(elapsed)
                    total += elapsed
                times[name].append(total)
                if round_number == 0:
                    files = {image: folder / f"{image}.png" for image in images}
                    sizes[name] = sum(path.stat().st_size for path in files.values())
                    identical[name] = all(np.array_equal(load_image(files[image]).pixels, pixels)
                                          for image, pixels in images.items())

    print(f"\nsave stage of a, all five images, ms over {args.rounds} interleaved rounds; "
          f"ratio to {BASELINE} round by round")
    for name in names:
        ratios = [mine / base for mine, base in zip(times[name], times[BASELINE], strict=True)]
        size = f"{sizes[name] / 1e6:6.2f} MB ({sizes[name] / sizes[BASELINE] - 1:+.0%})"
        best = min(times[name]) / min(times[BASELINE])
        print(f"  {name:9s} {spread(times[name])}  ratio of bests {best:.2f}, median {statistics.median(ratios):.2f}"
              f"  files {size}  decoded identical: {'yes' if identical[name] else 'NO'}")

    if "fpng" not in saves:
        print("\nfpng cannot be imported here, so there is nothing to compare Pillow with")
        return 1
    print(f"\nfpng / {BASELINE} per image, median of round-by-round ratios")
    for image, pixels in images.items():
        ratios = [mine / base for mine, base in zip(per_image[("fpng", image)], per_image[(BASELINE, image)],
                                                    strict=True)]
        print(f"  {image} ({'RGBA' if pixels.shape[2] == 4 else 'RGB'}): {statistics.median(ratios):.2f}")
    ratio = statistics.median(f / b for f, b in zip(times["fpng"], times[BASELINE], strict=True))
    met = ratio <= GOAL and all(identical.values())
    print(f"\ngoal fpng <= {GOAL} x {BASELINE} (median ratio), pixels identical: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
