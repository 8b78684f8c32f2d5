"""The kernel's two passes timed apart: each one's rate against the core's float32 multiply-add peak.

    python benchmarks/kernel_passes.py [--rounds 21] [--kernel-sizes 15 21]

Per image and kernel size, interleaved round by round, best-of: the whole blur, the vertical pass alone
(every 4-row block into the scratch rows, edges filled) and the horizontal pass alone (every output row from
those scratch rows).  Each pass is given in GFLOP/s of useful multiply-adds (k per
channel-value, 2 flops each; the kernel computes k padded to a sum of eights and sevens) and as a share of the peak
that benchmarks/kernel_vs_opencv.py measures.  Goal: the horizontal pass within 10% of the vertical pass's rate.
"""

import argparse
import time

import numpy as np
from kernel_vs_opencv import fma_peak_gflops, photos
from numba import njit

from approaches.core import kernel
from approaches.core.kernel import blur, warm_up
from approaches.core.scratch import LINE_FLOATS, ROWS, scratch

GOAL = 0.90  # the horizontal pass's rate, at least this fraction of the vertical pass's


@njit(nogil=True)
def vertical_only(src, buf, layout, inside, at, end, span, channels, w, k):
    for y in range(0, src.shape[0], ROWS):
        kernel._vertical_block(buf, layout, src, y - k // 2, inside, at, end, span, channels, w, k)


@njit(nogil=True)
def horizontal_only(dst, buf, layout, span, channels, w, k):
    for y in range(dst.shape[0]):
        kernel._horizontal_row(dst, np.uint64(y), np.uint64(0), buf, layout, y % ROWS, dst.shape[1], channels, w, k,
                               np.float32(0.5))


def passes(image: np.ndarray, k: int):
    """The whole blur and each pass alone over the whole image, set up as kernel._blur_rows sets them up."""
    height, width, channels = image.shape
    src, dst = image.reshape(height, -1), np.empty((height, width * channels), np.uint8)
    radius, w = k // 2, kernel._weights(k, "separable")
    span, at = (width + 2 * radius) * channels, radius * channels
    layout = scratch(span, at, channels)
    buf = kernel._scratch(layout, np.full(layout.size + LINE_FLOATS, 0.0, np.float32))  # written: _scratch_floats
    inside, end = (np.uint64(0), np.uint64(width * channels)), at + width * channels
    vertical_only(src, buf, layout, inside, at, end, span, channels, w, k)  # the rows the horizontal pass reads
    return {"whole": lambda: blur(image, k),
            "vertical": lambda: vertical_only(src, buf, layout, inside, at, end, span, channels, w, k),
            "horizontal": lambda: horizontal_only(dst, buf, layout, span, channels, w, k)}


def best_of(cases: dict, rounds: int) -> dict[str, float]:
    names = list(cases)
    for case in cases.values():
        case()
    best = dict.fromkeys(names, float("inf"))
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            cases[name]()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=[15, 21])
    args = parser.parse_args()
    warm_up(max(args.kernel_sizes), method="separable")
    peak = fma_peak_gflops()
    print(f"float32 multiply-add peak of one core, numba's own code: {peak:.0f} GFLOP/s")
    missed = 0
    for name, image in photos().items():
        for k in args.kernel_sizes:
            best = best_of(passes(image, k), args.rounds)
            flops = image.size * k * 2  # useful multiply-adds of one pass, 2 flops each
            rate = {p: flops / best[p] / 1e9 for p in ("vertical", "horizontal")}
            ratio = rate["horizontal"] / rate["vertical"]
            missed += ratio < GOAL
            print(f" {name}, k={k}: whole {best['whole'] * 1e3:.2f} ms; " + "; ".join(
                f"{p} {best[p] * 1e3:.2f} ms ({best[p] / best['whole']:.0%}) {rate[p]:.0f} GFLOP/s "
                f"({rate[p] / peak:.0%} of peak)" for p in rate)
                + f"; horizontal/vertical rate {ratio:.2f} (goal >= {GOAL}) {'met' if ratio >= GOAL else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
