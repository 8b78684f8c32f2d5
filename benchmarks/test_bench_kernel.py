"""Group `kernel`: our kernel on 1 and 2 threads, the direct 2-D form, and OpenCV, scipy.ndimage and Pillow.

Every case blurs the four RGBA sample photos (4.3 MP in all) with the Gaussian of size k, sigma = k/3, for
k = 15 and 21; one round is all four photos.  Before timing, each case is checked once against our
single-thread blur, so a table row is the same work done another way, not a different filter.  OpenCV and
scipy are optional peers (skipped when not installed); Pillow only approximates the Gaussian with box blurs.
benchmarks/kernel_goals.py prints the goal ratios from the saved JSON of one run.
"""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from approaches import blur
from approaches.core.kernel import blur_tile, gaussian_weights
from approaches.core.tiling import Tile, cut, paste

by_kernel_size = pytest.mark.parametrize("kernel_size", [15, 21])
by_threads = pytest.mark.parametrize("threads", [1, 2])


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2, thread_name_prefix="bench-kernel") as executor:
        yield executor


def blur_in_halves(pool: ThreadPoolExecutor, image: np.ndarray, kernel_size: int) -> np.ndarray:
    """Our kernel on two threads: top and bottom halves cut with their halo and blurred at once (nogil)."""
    height, width = image.shape[:2]
    halves = (Tile(0, 0, 0, width, height // 2), Tile(1, 0, height // 2, width, height - height // 2))
    out = np.empty_like(image)
    blocks = pool.map(lambda tile: blur_tile(cut(image, tile, kernel_size // 2), kernel_size), halves)
    for tile, block in zip(halves, blocks, strict=True):
        paste(out, tile, block)
    return out


def time_kernel(benchmark, inputs: Sequence[Any], blur_one: Callable[[Any], Any], *, reference: np.ndarray | None,
                implementation: str, kernel_size: int, threads: int, tolerance: int = 1) -> None:
    """Check blur_one on the first input against `reference` (our blur of it), then time it over all inputs.

    The untimed first call also compiles numba code and fills caches, so the calibration round that
    pytest-benchmark runs (and drops) already sees the steady state.  tolerance: the largest difference in
    levels allowed from ours (summation order, fixed-point weights); reference None skips the check.
    """
    first = np.asarray(blur_one(inputs[0]))
    if reference is not None:
        difference = int(np.abs(first.astype(np.int16) - reference).max())
        assert difference <= tolerance, f"{implementation} differs from our kernel by {difference} levels"
    benchmark.group = "kernel"
    benchmark.extra_info.update(implementation=implementation, kernel_size=kernel_size, threads=threads)
    benchmark(lambda: [blur_one(item) for item in inputs])


@pytest.fixture
def reference(rgba_photos: list[np.ndarray], kernel_size: int) -> np.ndarray:
    """Our single-thread blur of the first photo: what every case is checked against."""
    return blur(rgba_photos[0], kernel_size)


@by_kernel_size
@by_threads
def test_ours(benchmark, rgba_photos, reference, pool, kernel_size, threads):
    blur_one = partial(blur, kernel_size=kernel_size) if threads == 1 else partial(
        blur_in_halves, pool, kernel_size=kernel_size)
    time_kernel(benchmark, rgba_photos, blur_one, reference=reference, implementation="ours",
                kernel_size=kernel_size, threads=threads, tolerance=0)


@by_kernel_size
def test_ours_direct_2d(benchmark, rgba_photos, reference, kernel_size):
    """The original course's O(k²) form of the same Gaussian: what separability saves."""
    time_kernel(benchmark, rgba_photos, partial(blur, kernel_size=kernel_size, method="direct"),
                reference=reference, implementation="ours, direct 2-D", kernel_size=kernel_size, threads=1)


@by_kernel_size
@by_threads
@pytest.mark.parametrize("call", ["GaussianBlur", "sepFilter2D"])
def test_opencv(benchmark, rgba_photos, reference, kernel_size, threads, call):
    """GaussianBlur(k, sigma = k/3) is OpenCV's own path (fixed-point weights for uint8); sepFilter2D runs our
    float weights, the very same Gaussian.  Both clamp at the border as we do."""
    cv2 = pytest.importorskip("cv2", reason="OpenCV is an optional peer: pip install -e '.[bench]'")
    cv2.setNumThreads(threads)
    weights = gaussian_weights(kernel_size)
    if call == "GaussianBlur":
        def blur_one(photo: np.ndarray) -> np.ndarray:
            return cv2.GaussianBlur(photo, (kernel_size, kernel_size), kernel_size / 3,
                                    borderType=cv2.BORDER_REPLICATE)
    else:
        def blur_one(photo: np.ndarray) -> np.ndarray:
            return cv2.sepFilter2D(photo, -1, weights, weights, borderType=cv2.BORDER_REPLICATE)
    time_kernel(benchmark, rgba_photos, blur_one, reference=reference, implementation=f"OpenCV {call}",
                kernel_size=kernel_size, threads=threads)


@by_kernel_size
def test_scipy_ndimage(benchmark, rgba_photos, reference, kernel_size):
    """correlate1d down the columns, then along the rows, with our weights; mode "nearest" clamps as we do."""
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is an optional peer: pip install -e '.[dev]'")
    weights = gaussian_weights(kernel_size)

    def blur_one(photo: np.ndarray) -> np.ndarray:
        columns = ndimage.correlate1d(photo, weights, axis=0, output=np.float32, mode="nearest")
        return ndimage.correlate1d(columns, weights, axis=1, output=np.uint8, mode="nearest")

    time_kernel(benchmark, rgba_photos, blur_one, reference=reference, implementation="scipy.ndimage correlate1d",
                kernel_size=kernel_size, threads=1)


@by_kernel_size
def test_pillow_approximate(benchmark, rgba_photos, kernel_size):
    """Pillow's GaussianBlur(radius) takes sigma as its radius and approximates the Gaussian with three box
    blurs: a different filter of about the same width, so it is timed but not checked against ours."""
    images = [Image.fromarray(photo) for photo in rgba_photos]  # converted once, outside the timing
    gaussian = ImageFilter.GaussianBlur(radius=kernel_size / 3)
    time_kernel(benchmark, images, lambda image: image.filter(gaussian), reference=None,
                implementation="Pillow GaussianBlur (approximate)", kernel_size=kernel_size, threads=1)
