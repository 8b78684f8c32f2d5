"""Two threads blurring the tiles of one image against one thread: the speed-up b.threads, c and g rely on.

    python benchmarks/kernel_threads.py [--rounds 15] [--kernel-sizes 21 255] [--width 1155] [--height 866]

Each round blurs every 256-px tile of a generated RGB photo into one canvas, once on this thread and once split
between the two threads of a pool (alternate tiles), interleaved; the speed-up is the best one-thread time over the best
two-thread time.  When each call allocated its scratch rows, glibc grew and gave back a thread's heap in every
call, and two threads ran slower than one (docs/kernel.md); the scratch is now each thread's own, kept between
calls (core/kernel.py `_scratch_floats`).  Exit status 0 when every speed-up is at least 1.4x
(2 cores; the kernel releases the GIL), 1 when one is not.
"""

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approaches.core.kernel import blur_into, warm_up  # noqa: E402
from approaches.core.tiling import plan_tiles  # noqa: E402
from approaches.harness.results import machine  # noqa: E402
from approaches.samples import SampleSpec, make_sample  # noqa: E402

GOAL = 1.4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=[21, 255])
    parser.add_argument("--width", type=int, default=1155)
    parser.add_argument("--height", type=int, default=866)
    args = parser.parse_args()
    image = np.asarray(make_sample(SampleSpec("threads", args.width, args.height, "RGB", 7))).copy()
    tiles = plan_tiles(args.width, args.height, 256)
    canvas = np.empty_like(image)
    print(f"{machine()}; {args.width}x{args.height} RGB, {len(tiles)} tiles of 256 px, best of {args.rounds} "
          "interleaved rounds")
    missed = False
    for k in args.kernel_sizes:
        warm_up(k)
        one, two = [], []
        with ThreadPoolExecutor(2) as pool:
            _timed([tiles[0::2], tiles[1::2]], image, canvas, k, pool)  # each thread's scratch, once
            for _ in range(args.rounds):
                one.append(_timed([tiles], image, canvas, k, pool))
                two.append(_timed([tiles[0::2], tiles[1::2]], image, canvas, k, pool))
        speedup = min(one) / min(two)
        missed |= speedup < GOAL
        print(f"k={k:3d}: 1 thread {min(one) * 1e3:7.2f} ms, 2 threads {min(two) * 1e3:7.2f} ms: x{speedup:.2f} "
              f"(goal >= {GOAL}) {'met' if speedup >= GOAL else 'MISSED'}")
    return 1 if missed else 0


def _timed(parts: list[list], image: np.ndarray, canvas: np.ndarray, k: int, pool: ThreadPoolExecutor) -> float:
    """Seconds to blur every part's tiles, each part on a thread of the pool (one part: this thread), as
    b.threads' workers do: threads that live across images."""
    def blur_part(part: list) -> None:
        for tile in part:
            blur_into(image, tile, canvas, k)

    started = time.perf_counter()
    if len(parts) == 1:
        blur_part(parts[0])
    else:
        list(pool.map(blur_part, parts))
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
