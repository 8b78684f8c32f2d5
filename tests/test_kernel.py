"""The one Gaussian kernel: right numbers (oracle), and the same numbers whatever the tiling."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy.ndimage import correlate1d

from approaches import blur
from approaches.core import kernel
from approaches.core.images import load_image
from approaches.core.kernel import KERNELS, blur_into, blur_tile, gaussian_weights, warm_up
from approaches.core.limits import MAX_KERNEL_SIZE, validate_kernel_size
from approaches.core.scratch import HALF_LINE_FLOATS, LINE_FLOATS, PAGE_FLOATS, SECTIONS, scratch
from approaches.core.tiling import Tile, cut, paste, plan_tiles
from tests.conftest import photo


def exact(image: np.ndarray, kernel_size: int) -> np.ndarray:
    """float64 separable correlation with clamp-to-edge, not rounded: an independent implementation."""
    radius, sigma = kernel_size // 2, kernel_size / 3
    x = np.arange(-radius, radius + 1)
    w = np.exp(-(x * x) / (2 * sigma * sigma))
    w /= w.sum()
    out = correlate1d(image.astype(np.float64), w, axis=0, mode="nearest")
    return correlate1d(out, w, axis=1, mode="nearest")


def oracle(image: np.ndarray, kernel_size: int) -> np.ndarray:
    """The float64 blur rounded to nearest, as uint8."""
    return np.clip(np.floor(exact(image, kernel_size) + 0.5), 0, 255).astype(np.uint8)


def levels_off(ours: np.ndarray, reference: np.ndarray) -> int:
    return int(np.abs(ours.astype(int) - reference.astype(int)).max())


@pytest.mark.parametrize("kernel_size", range(1, 52, 2))
def test_agrees_with_float64_oracle_within_one_level(kernel_size):
    image = photo(61, 83, 4, seed=kernel_size)
    assert levels_off(blur(image, kernel_size), oracle(image, kernel_size)) <= 1


def test_every_kernel_size_the_suite_accepts_is_within_one_level_rounded_or_truncated():
    # 1..255: the wide kernels reach far past this small image's border, so the clamp is tested too.
    # Noise is the hardest input for the float32 sums (no two neighbours alike); truncate is the floor.
    image = np.random.default_rng(15).integers(0, 256, (19, 23, 3), dtype=np.uint8)
    for kernel_size in range(1, MAX_KERNEL_SIZE + 1, 2):
        reference = exact(image, kernel_size)
        assert levels_off(blur(image, kernel_size), oracle(image, kernel_size)) <= 1, kernel_size
        assert levels_off(blur(image, kernel_size, truncate=True), np.floor(reference)) <= 1, kernel_size


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    channels=st.integers(1, 4),
    kernel_size=st.integers(0, MAX_KERNEL_SIZE // 2).map(lambda n: 2 * n + 1),
    seed=st.integers(0, 2**16),
)
def test_any_shape_and_kernel_size_is_within_one_level_of_float64(height, width, channels, kernel_size, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    assert levels_off(blur(image, kernel_size), oracle(image, kernel_size)) <= 1


def test_rounds_to_nearest_so_a_flat_opaque_image_stays_opaque():
    # The original truncated: opaque alpha came out as 254 at k=21 and every level dropped by 1 at k=51.
    flat = np.full((40, 40, 4), 255, np.uint8)
    for k in (15, 21, 51):
        assert (blur(flat, k) == 255).all()


def test_truncate_option_rounds_down():
    image = photo(30, 30, 3)
    rounded, truncated = blur(image, 9).astype(int), blur(image, 9, truncate=True).astype(int)
    assert ((rounded - truncated) >= 0).all() and ((rounded - truncated) <= 1).all()
    assert (rounded != truncated).any()


def test_kernel_size_one_is_the_identity():
    image = photo(17, 23, 2)
    assert np.array_equal(blur(image, 1), image)


def test_weights_are_normalised_symmetric_and_sigma_is_k_over_3():
    w = gaussian_weights(21).astype(np.float64)
    assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.array_equal(w, w[::-1])
    assert w[10 + 7] / w[10] == pytest.approx(np.exp(-0.5), rel=1e-5)  # one sigma = 7 pixels away


@pytest.mark.parametrize("shape", [(9, 11), (9, 11, 1), (9, 11, 2), (9, 11, 3), (9, 11, 4), (1, 1), (1, 1, 4)])
def test_blur_keeps_shape_and_dtype(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = blur(image, 5)
    assert out.shape == image.shape and out.dtype == np.uint8


@pytest.mark.parametrize("bad", [0, -3, 2, 22, MAX_KERNEL_SIZE + 2, 3.0, True])
def test_bad_kernel_sizes_are_refused(bad):
    with pytest.raises(ValueError, match="kernel size"):
        validate_kernel_size(bad)


@pytest.mark.parametrize(
    "image", [np.zeros((4, 4, 5), np.uint8), np.zeros((4, 4), np.float32), np.zeros((0, 4), np.uint8)]
)
def test_bad_images_are_refused(image):
    with pytest.raises(ValueError):
        blur(image, 3)


def blur_tiled(image: np.ndarray, kernel_size: int, tile_size: int, method: str = "separable") -> np.ndarray:
    canvas = np.zeros_like(image)
    for tile in plan_tiles(image.shape[1], image.shape[0], tile_size):
        paste(canvas, tile, blur_tile(cut(image, tile, kernel_size // 2), kernel_size, method=method))
    return canvas


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 300),
    width=st.integers(1, 300),
    channels=st.integers(1, 4),
    kernel_size=st.integers(0, 25).map(lambda n: 2 * n + 1),
    tile_size=st.integers(1, 320),
    seed=st.integers(0, 2**16),
)
def test_any_tiling_gives_exactly_the_whole_image(height, width, channels, kernel_size, tile_size, seed):
    # Wider than tall rows, narrow tiles and 1-pixel tiles all go through vector bodies and scalar
    # remainders of different lengths: the sums must still match bit for bit.
    if height * width > 40_000:
        tile_size = max(tile_size, 16)  # keep the example fast; small tiles are covered on small images
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    assert np.array_equal(blur_tiled(image, kernel_size, tile_size), blur(image, kernel_size))


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 200),
    width=st.integers(1, 200),
    channels=st.integers(1, 4),
    kernel_size=st.integers(0, 25).map(lambda n: 2 * n + 1),
    tile_size=st.integers(1, 220),
    method=st.sampled_from(KERNELS),
    seed=st.integers(0, 2**16),
)
def test_blurring_each_tile_in_place_gives_exactly_the_padded_tiles(height, width, channels, kernel_size,
                                                                      tile_size, method, seed):
    # blur_into reads the halo from the image itself; blur_tile gets it cut and padded.  Same pixels.
    if method == "direct":
        height, width, kernel_size = min(height, 60), min(width, 60), min(kernel_size, 9)
    if height * width > 10_000:
        tile_size = max(tile_size, 16)
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    canvas = np.zeros_like(image)
    for tile in plan_tiles(width, height, tile_size):
        blur_into(image, tile, canvas, kernel_size, method=method)
    assert np.array_equal(canvas, blur_tiled(image, kernel_size, tile_size, method=method))


def test_tiles_blurred_in_place_by_many_threads_at_once_give_the_whole_image():
    # Each call writes only its own rectangle of the shared canvas, so the order of the threads is free.
    image = photo(301, 257, 4)
    canvas = np.zeros_like(image)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda tile: blur_into(image, tile, canvas, 21), plan_tiles(257, 301, 32)))
    assert np.array_equal(canvas, blur(image, 21))


@pytest.mark.parametrize(
    "canvas_shape,tile,match",
    [((10, 12, 3), Tile(0, 0, 0, 4, 4), "does not match"), ((12, 10, 3), Tile(0, 8, 0, 4, 4), "not inside"),
     ((12, 10, 3), Tile(0, 0, -1, 4, 4), "not inside"), ((12, 10, 3), Tile(0, 0, 0, 0, 4), "not inside")],
)
def test_blur_into_refuses_a_wrong_canvas_or_a_tile_outside_the_image(canvas_shape, tile, match):
    with pytest.raises(ValueError, match=match):
        blur_into(photo(12, 10, 3), tile, np.zeros(canvas_shape, np.uint8), 3)


def test_scratch_rows_start_on_lines_and_lie_apart_modulo_4_kib_at_every_width():
    # Rows packed back to back lay a multiple of 4 KiB apart at unlucky widths (RGBA k=21 at 1004 px:
    # a 16 KiB stride), where loads of one row waited on stores to another: 15-20% slower.
    spacing = PAGE_FLOATS // SECTIONS // LINE_FLOATS * LINE_FLOATS
    for channels in (1, 3, 4):
        for span in range(channels, 5000, 3 * channels):
            for at in (0, span % 50 // channels * channels, 10 * channels):
                layout = scratch(span, at, channels)
                assert layout.shifted == (channels == 4) and layout.stride % LINE_FLOATS == 0
                if layout.shifted:  # even taps from the row, odd ones from the copy: all on half lines
                    assert layout.row % HALF_LINE_FLOATS == 0 and layout.copy % LINE_FLOATS == 0
                else:  # the vertical pass's stores start on a line
                    assert (layout.row + at) % LINE_FLOATS == 0
                rows = [layout.row + t * layout.stride for t in range(4)]
                copies = [layout.copy + t * layout.stride for t in range(4)]
                assert all(row + span <= copy - channels for row, copy in zip(rows, copies, strict=True))
                assert copies[0] - channels >= rows[3] + span and layout.acc >= copies[3] + span
                starts = sorted(offset % PAGE_FLOATS for offset in [*rows, *copies, layout.acc])
                gaps = [b - a for a, b in zip(starts, [*starts[1:], starts[0] + PAGE_FLOATS], strict=True)]
                assert min(gaps) >= spacing - LINE_FLOATS, (span, at, starts)
    layout = scratch(1000, 0, 4)
    for misaligned in range(LINE_FLOATS):
        raw = np.zeros(layout.size + 2 * LINE_FLOATS, np.float32)[misaligned:]
        buf = kernel._scratch(layout, raw)
        assert buf.ctypes.data % (4 * LINE_FLOATS) == 0 and buf.size == layout.size


def test_two_threads_blurring_tiles_share_no_scratch_and_keep_theirs():
    """Each thread's scratch is its own and outlives a call: allocated in every call, it cost glibc a heap grown
    and given back, and two threads blurring tiles ran ten times slower than one (benchmarks/kernel_threads.py)."""
    image = photo(300, 520, 3, seed=5)
    tiles = [Tile(i, x, 0, 130, 300) for i, x in enumerate(range(0, 520, 130))]
    canvas = np.empty_like(image)
    seen = []

    def blur_some(part):
        for tile in part:
            blur_into(image, tile, canvas, 21)
        seen.append(kernel._scratch_floats(1))

    threads = [threading.Thread(target=blur_some, args=(tiles[i::2],)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen[0] is not seen[1] and all(buf.size > 1 for buf in seen)  # a thread's own, kept from its tiles
    assert np.array_equal(canvas, blur(image, 21))


# --- the direct 2-D kernel (--kernel direct) -------------------------------------------------------


def direct_oracle(image: np.ndarray, kernel_size: int) -> np.ndarray:
    """float64 2-D correlation with the outer-product weights, clamp-to-edge, rounded: independent of numba."""
    w = gaussian_weights(kernel_size).astype(np.float64)
    radius = kernel_size // 2
    padded = np.pad(image.astype(np.float64), [(radius, radius), (radius, radius), (0, 0)], mode="edge")
    out = np.zeros(image.shape, np.float64)
    for i in range(kernel_size):
        for t in range(kernel_size):
            out += w[i] * w[t] * padded[i:i + image.shape[0], t:t + image.shape[1]]
    return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 9, 15, 21])
def test_direct_agrees_with_separable_and_a_float64_oracle_within_one_level(kernel_size):
    # Not bit for bit: one sum of k*k products rounds differently from k sums of k.  Within one level.
    image = photo(61, 83, 4, seed=kernel_size)
    direct = blur(image, kernel_size, method="direct").astype(int)
    assert np.abs(direct - blur(image, kernel_size).astype(int)).max() <= 1
    assert np.abs(direct - direct_oracle(image, kernel_size).astype(int)).max() <= 1


@pytest.mark.parametrize("tile_size", [1, 7, 16, 33, 64, 200])
@pytest.mark.parametrize("kernel_size", [3, 9, 21])
def test_direct_tiles_give_exactly_the_whole_image(tile_size, kernel_size):
    # 7, 33 and 64 divide neither 97 nor 131; 1-pixel tiles and 200 (one tile) are the extremes: the
    # row loops run with every remainder length, and each pixel must still get the same sum bit for bit.
    image = photo(97, 131, 3, seed=tile_size)
    whole = blur(image, kernel_size, method="direct")
    assert np.array_equal(blur_tiled(image, kernel_size, tile_size, method="direct"), whole)


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 80),
    width=st.integers(1, 80),
    channels=st.integers(1, 4),
    kernel_size=st.integers(0, 7).map(lambda n: 2 * n + 1),
    tile_size=st.integers(1, 90),
    seed=st.integers(0, 2**16),
)
def test_direct_any_tiling_gives_exactly_the_whole_image(height, width, channels, kernel_size, tile_size, seed):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    whole = blur(image, kernel_size, method="direct")
    assert np.array_equal(blur_tiled(image, kernel_size, tile_size, method="direct"), whole)


def test_direct_keeps_a_flat_opaque_image_opaque_and_its_truncate_rounds_down():
    flat = np.full((40, 40, 4), 255, np.uint8)
    for k in (15, 21, 51):
        assert (blur(flat, k, method="direct") == 255).all()
    image = photo(30, 30, 3)
    rounded = blur(image, 9, method="direct").astype(int)
    truncated = blur(image, 9, truncate=True, method="direct").astype(int)
    assert ((rounded - truncated) >= 0).all() and ((rounded - truncated) <= 1).all()
    assert (rounded != truncated).any()


def test_direct_kernel_size_one_is_the_identity():
    image = photo(17, 23, 2)
    assert np.array_equal(blur(image, 1, method="direct"), image)


@pytest.mark.parametrize("method", ["bogus", "Direct", "", None])
def test_an_unknown_kernel_method_is_refused_by_name(method):
    image = photo(9, 9, 3)
    with pytest.raises(ValueError, match="kernel method must be one of separable, direct"):
        blur(image, 3, method=method)
    with pytest.raises(ValueError, match="kernel method must be one of separable, direct"):
        blur_tile(cut(image, plan_tiles(9, 9, 9)[0], 1), 3, method=method)


def test_warm_up_loads_every_kernel_or_the_one_named():
    assert KERNELS == ("separable", "direct")
    warm_up()
    for method in KERNELS:
        warm_up(5, method=method)
    with pytest.raises(ValueError, match="kernel method must be one of separable, direct"):
        warm_up(3, method="bogus")


@pytest.mark.parametrize("method", KERNELS)
def test_after_warm_up_a_decoded_image_or_a_cut_tile_compiles_nothing_new(tmp_path, method):
    # A decoded image was read-only (a view of Pillow's bytes), a type of its own to numba: compiling it
    # inside a timed run once cost a's blur stage 2 s.  (It is now an array of its own, copied out of Pillow.)
    Image.fromarray(photo(40, 50, 4)).save(tmp_path / "in.png")
    decoded = load_image(tmp_path / "in.png").pixels
    warm_up(5, method=method)
    compiled = kernel._blur_direct if method == "direct" else kernel._blur_rows
    before = set(compiled.signatures)
    blur(decoded, 5, method=method)
    blur_into(decoded, Tile(0, 10, 10, 20, 20), np.zeros_like(decoded), 5, method=method)
    blur_tile(cut(decoded, Tile(0, 10, 10, 20, 20), 2), 5, method=method)
    assert set(compiled.signatures) == before


@pytest.mark.parametrize("method", KERNELS)
def test_a_writable_and_a_read_only_image_share_one_compiled_kernel(method):
    # The kernels take their source read-only whatever the caller passes, so numba compiles (or loads
    # from its cache) one version per kernel, not one for writable and one for read-only arrays.
    writable = photo(20, 30, 3)
    read_only = writable.copy()
    read_only.flags.writeable = False
    blur(writable, 5, method=method)
    blur(read_only, 5, method=method)
    compiled = kernel._blur_direct if method == "direct" else kernel._blur_rows
    assert len(compiled.signatures) == 1

