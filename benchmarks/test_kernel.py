"""Group `kernel`: our single-thread kernel against OpenCV's single-thread GaussianBlur (optional peer).

    pytest benchmarks --benchmark-only --benchmark-group-by=group,param:kernel_size

For the ratio measured interleaved in one run, see benchmarks/kernel_vs_opencv.py.
"""

import pytest

from approaches import blur


@pytest.mark.parametrize("kernel_size", [15, 21])
def test_ours_single_thread(benchmark, rgba_photos, kernel_size):
    benchmark.group = "kernel"
    blur(rgba_photos[0], kernel_size)  # compile (or load the cache) outside the timing
    benchmark(lambda: [blur(photo, kernel_size) for photo in rgba_photos])


@pytest.mark.parametrize("kernel_size", [15, 21])
def test_opencv_single_thread(benchmark, rgba_photos, kernel_size):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is an optional peer: pip install -e '.[bench]'")
    benchmark.group = "kernel"
    cv2.setNumThreads(1)
    sigma = kernel_size / 3
    benchmark(lambda: [
        cv2.GaussianBlur(photo, (kernel_size, kernel_size), sigma, borderType=cv2.BORDER_REPLICATE)
        for photo in rgba_photos
    ])
