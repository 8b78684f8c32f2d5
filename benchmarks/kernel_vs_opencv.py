"""Our single-thread kernel vs OpenCV's, interleaved in one run so both see the same machine noise.

    python benchmarks/kernel_vs_opencv.py [--rounds 15]

Prints the median time of each over the four RGBA sample photos and the ratio ours / OpenCV (goal <= 0.6).
"""

import argparse
import statistics
import time

import cv2
import numpy as np

from approaches import blur
from approaches.samples import SAMPLES, make_sample


def ours(photos: list[np.ndarray], k: int) -> None:
    for photo in photos:
        blur(photo, k)


def opencv(photos: list[np.ndarray], k: int) -> None:
    for photo in photos:
        cv2.GaussianBlur(photo, (k, k), k / 3, borderType=cv2.BORDER_REPLICATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    photos = [np.asarray(make_sample(spec)) for spec in SAMPLES if spec.mode == "RGBA"]
    cv2.setNumThreads(1)
    for k in (15, 21):
        times: dict = {ours: [], opencv: []}
        for run in times:
            run(photos, k)  # warm up: compile or load caches
        for _ in range(rounds):
            for run, samples in times.items():
                start = time.perf_counter()
                run(photos, k)
                samples.append(time.perf_counter() - start)
        a, b = statistics.median(times[ours]), statistics.median(times[opencv])
        print(f"k={k}: ours {a * 1e3:.1f} ms, OpenCV {b * 1e3:.1f} ms (medians of {rounds}), ratio {a / b:.2f}")


if __name__ == "__main__":
    main()
