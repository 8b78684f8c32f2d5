"""THE Gaussian kernel: every approach blurs with it, so every approach gets the same pixels.

Two entry points, one computation: `blur_tile` for a padded copy of a tile (what travels to a process or
through a broker), `blur_into` for a tile of an image shared with the caller (threads, shared memory),
which reads the halo in place and writes the canvas in place.  `blur` is `blur_into` with one tile.

The blur is separable: a vertical pass over k input rows, four output rows at a time, into float rows,
then a horizontal pass over each of them, 2k multiply-adds per channel-value instead of the k*k of the
direct 2-D form (``method="direct"``, the compute-bound workload).  Arithmetic is float32 with a fixed
order of taps and no fast-math flag but FMA contraction (reassociation would let vector bodies and
scalar remainders add in different orders), so each output value is computed by exactly the same
operations whatever tile it falls in: tiled results are bit-identical to the whole image.  The float32
sum is within k * 3e-5 of a level of the exact blur, so rounded it is within one level of a float64 blur
for every k in 1..255; ``truncate=True`` (the original course's rounding) takes its floor instead.

docs/kernel.md explains the loops (unsigned indices, eight taps per pass, the scratch rows' layout in
approaches/core/scratch.py) and what was measured; benchmarks/kernel_*.py measure it.
"""

import functools
import math
import threading

import numpy as np
from numba import njit

from approaches.core.limits import KERNELS, validate_kernel_size
from approaches.core.scratch import LINE_FLOATS, PAGE_FLOATS, ROWS, SECTIONS, scratch
from approaches.core.tiling import Tile, cut

_CONTRACT = {"contract"}
_THREAD = threading.local()  # each thread's scratch rows: _scratch_floats


def validate_method(method: str) -> str:
    """Return the method if it is one of KERNELS, else raise ValueError naming the choices."""
    if method not in KERNELS:
        raise ValueError(f"kernel method must be one of {', '.join(KERNELS)}, got {method!r}")
    return method


def gaussian_weights(kernel_size: int) -> np.ndarray:
    """1-D weights for an odd kernel size k, sigma = k/3, summing to 1 (float32, symmetric).

    >>> w = gaussian_weights(5)
    >>> w.dtype, w.shape, round(float(w.sum()), 6), bool(w[0] == w[-1])
    (dtype('float32'), (5,), 1.0, True)
    """
    k = validate_kernel_size(kernel_size)
    radius, sigma = k // 2, k / 3.0
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return (w / math.fsum(w)).astype(np.float32)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _group(w, i):
    """Weights i..i+7 as a tuple, loaded once before a loop (a weight read inside it could alias the stores)."""
    last = w.size - 1
    return (w[i], w[min(i + 1, last)], w[min(i + 2, last)], w[min(i + 3, last)], w[min(i + 4, last)],
            w[min(i + 5, last)], w[min(i + 6, last)], w[min(i + 7, last)])


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _size(w, i):
    """How many taps the group from tap i takes: eight, or seven once the rest is a multiple of seven."""
    return 8 if (w.size - i) % 7 else 7


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _clamped(src, y):
    """Row index y in src, a row above or below src repeating its first or last row (the halo rule)."""
    return np.uint64(min(max(y, 0), src.shape[0] - 1))


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _taps_x4(buf, r, o, first, last, src, ys, x, n, ws, size):
    """Add `size` taps (7 or 8) to four output rows from size + 3 uint8 input rows: row t gets src rows
    ys[t..t + size-1], buf[r[t] + j] (+)= ws[0] * src[ys[t], x + j] + ... + ws[size-1] * src[ys[t+size-1], x + j].

    When `last` the sums also go to buf[o[t] + j].  Each input value is loaded and converted once and used by
    up to four sums; per sum the taps are still added in order, exactly as one row at a time would add them.
    size and first are constants (numba inlines this function, so its callers' literals reach LLVM): LLVM
    unrolls the loop over taps and vectorises the loop over j, and a sum's first two taps are one expression,
    w0 * x0 + w1 * x1, which LLVM contracts to fma(w0, x0, w1 * x1) whatever the group size.  A `first` left
    to run time would give fma(w1, x1, w0 * x0), which rounds differently.
    """
    y0, y1, y2, y3, y4, y5, y6, y7, y8, y9, y10 = ys
    r0, r1, r2, r3 = r
    o0, o1, o2, o3 = o
    for j in range(n):
        c = x + j
        xs = (np.float32(src[y0, c]), np.float32(src[y1, c]), np.float32(src[y2, c]), np.float32(src[y3, c]),
              np.float32(src[y4, c]), np.float32(src[y5, c]), np.float32(src[y6, c]), np.float32(src[y7, c]),
              np.float32(src[y8, c]), np.float32(src[y9, c]), np.float32(src[y10, c]))
        if first:  # a sum's first tap is its product alone (docs/kernel.md: how the sum rounds)
            v0, v1, v2, v3 = ws[0] * xs[0], ws[0] * xs[1], ws[0] * xs[2], ws[0] * xs[3]
        else:
            v0, v1, v2, v3 = buf[r0 + j], buf[r1 + j], buf[r2 + j], buf[r3 + j]
        for t in range(1 if first else 0, size):
            v0 = v0 + ws[t] * xs[t]
            v1 = v1 + ws[t] * xs[t + 1]
            v2 = v2 + ws[t] * xs[t + 2]
            v3 = v3 + ws[t] * xs[t + 3]
        buf[r0 + j] = v0
        buf[r1 + j] = v1
        buf[r2 + j] = v2
        buf[r3 + j] = v3
        if last:
            buf[o0 + j] = v0
            buf[o1 + j] = v1
            buf[o2 + j] = v2
            buf[o3 + j] = v3


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _vertical_group(buf, r, o, copy, src, first, x, n, w, k, i, start):
    """The group of taps from tap i on (`_size`) into the four rows; `start` (a constant) when i is 0.
    Returns the next group's first tap.

    Zero-weight padding taps (i >= k) read row first + k + 2 instead of further down; a group of seven
    leaves the eleventh row unused.
    """
    last = k + 2
    ys = (_clamped(src, first + min(i, last)), _clamped(src, first + min(i + 1, last)),
          _clamped(src, first + min(i + 2, last)), _clamped(src, first + min(i + 3, last)),
          _clamped(src, first + min(i + 4, last)), _clamped(src, first + min(i + 5, last)),
          _clamped(src, first + min(i + 6, last)), _clamped(src, first + min(i + 7, last)),
          _clamped(src, first + min(i + 8, last)), _clamped(src, first + min(i + 9, last)),
          _clamped(src, first + min(i + 10, last)))
    size = _size(w, i)
    if size == 8:
        _taps_x4(buf, r, o, start, copy and i + size >= w.size, src, ys, x, n, _group(w, i), 8)
    else:
        _taps_x4(buf, r, o, start, copy and i + size >= w.size, src, ys, x, n, _group(w, i), 7)
    return i + size


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _vertical4(buf, r, o, copy, src, first, x, n, w, k):
    """buf[r[t] + j] = sum over taps i of w[i] * src[first + t + i, x + j] for t in 0..3, j < n; if copy,
    buf[o[t] + j] as well.  Rows outside src are clamped.
    """
    i = _vertical_group(buf, r, o, copy, src, first, x, n, w, k, 0, True)
    while i < w.size:
        i = _vertical_group(buf, r, o, copy, src, first, x, n, w, k, i, False)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _tap(row, shifted, i, k, step):
    """Where tap i's values start: row + i*step, or for odd i with a shifted copy (shifted >= 0, the row one
    pixel on), shifted + (i-1)*step, so that every tap starts a multiple of 2*step floats on.

    Zero-weight padding taps (i >= k) read the last tap's values instead of past the row.
    """
    i = min(i, k - 1)
    if shifted >= 0 and i % 2:
        return np.uint64(shifted + (i - 1) * step)
    return np.uint64(row + i * step)


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _taps(dst, y, x, buf, row, shifted, acc, n, first, last, ws, size, i, k, step, rounding):
    """Add taps i..i+size-1 (size 7 or 8) of the row at buf[row] into buf[acc:acc + n], in order; when
    `last`, + rounding and stored as uint8 at dst[y, x + j] instead (no float row).  size and first are
    constants, as in `_taps_x4`."""
    for j in range(n):
        v = ws[0] * buf[_tap(row, shifted, i, k, step) + j] if first else buf[acc + j]  # as in _taps_x4
        for t in range(1 if first else 0, size):
            v = v + ws[t] * buf[_tap(row, shifted, i + t, k, step) + j]
        if last:
            dst[y, x + j] = np.uint8(v + rounding)
        else:
            buf[acc + j] = v


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _horizontal_group(dst, y, x, buf, row, shifted, acc, n, w, k, step, rounding, i, start):
    """The group of taps from tap i on (`_size`), as `_vertical_group`."""
    size = _size(w, i)
    if size == 8:
        _taps(dst, y, x, buf, row, shifted, acc, n, start, i + size >= w.size, _group(w, i), 8, i, k, step, rounding)
    else:
        _taps(dst, y, x, buf, row, shifted, acc, n, start, i + size >= w.size, _group(w, i), 7, i, k, step, rounding)
    return i + size


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _horizontal(dst, y, x, buf, row, shifted, acc, n, w, k, step, rounding):
    """dst[y, x + j] = uint8(sum over taps i of w[i] * buf[row + j + i*step] + rounding) for j < n.

    Odd taps read the shifted copy of the row when there is one (`_tap`).  buf[acc:acc + n] is scratch.
    """
    i = _horizontal_group(dst, y, x, buf, row, shifted, acc, n, w, k, step, rounding, 0, True)
    while i < w.size:
        i = _horizontal_group(dst, y, x, buf, row, shifted, acc, n, w, k, step, rounding, i, False)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _vertical_block(buf, layout, src, first, inside, at, end, span, channels, w, k):
    """Rows first + radius .. + 3 of the vertical pass into the layout's four rows, edges filled.

    inside: (start, count) of src's columns the rows take (from column `at` of the rows on); the columns
    beyond src's border, before at and from end on, repeat its border column (the vertical sum of a
    repeated column is that column's sum).  With a layout that has them, each row's shifted copy too.
    """
    stride = layout.stride
    r = (np.uint64(layout.row + at), np.uint64(layout.row + stride + at), np.uint64(layout.row + 2 * stride + at),
         np.uint64(layout.row + 3 * stride + at))
    c = layout.copy + at - channels  # o: unused without copies, but o apart from r keeps the loop vectorised
    o = (np.uint64(c), np.uint64(c + stride), np.uint64(c + 2 * stride), np.uint64(c + 3 * stride))
    _vertical4(buf, r, o, layout.shifted, src, first, inside[0], inside[1], w, k)
    for t in range(ROWS):
        row = layout.row + t * stride
        for p in range(at):
            buf[row + p] = buf[row + at + p % channels]
        for p in range(end, span):
            buf[row + p] = buf[row + end - channels + (p - end) % channels]
        if layout.shifted:
            copy = layout.copy + t * stride - channels
            for p in range(channels, at):
                buf[copy + p] = buf[row + p]
            for p in range(max(end, channels), span):
                buf[copy + p] = buf[row + p]


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _horizontal_row(dst, y, x, buf, layout, t, n, channels, w, k, rounding):
    """Row t of the layout's four through the horizontal pass into dst[y, x:x + n]."""
    shifted = layout.copy + t * layout.stride if layout.shifted else -1
    _horizontal(dst, y, x, buf, layout.row + t * layout.stride, shifted, np.uint64(layout.acc), np.uint64(n), w, k,
                channels, rounding)


@njit(nogil=True, cache=True)
def _scratch(layout, raw):
    """The part of raw for the layout, its first element starting a cache line (the layout counts from it)."""
    start = (-raw.ctypes.data % (LINE_FLOATS * 4)) // 4
    return raw[start:start + layout.size]


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _blur_rows(src, top, left, height, width, channels, w, k, rounding, dst, dst_top, dst_left, raw):
    """Blur the height x width pixels at (top, left) of src into dst at (dst_top, dst_left).

    src and dst are images as rows of interleaved channels, (rows, pixels * C).  The halo is read from
    src itself, clamped at its border (so a padded tile and the image it was cut from give the same
    sums).  w holds the k weights padded with zeros to a sum of eights and sevens (`_grouped`).  Output rows
    are made four at a time: the vertical pass into four float rows (`_vertical_block`), then each row's
    horizontal pass straight into dst (`_horizontal_row`), in scratch laid out by `scratch` in raw
    (`_scratch_floats`).  The rows of a last group of fewer than four are computed, not written.
    """
    radius = k // 2
    pixels = src.shape[1] // channels
    inside_left, inside_right = max(left - radius, 0), min(left + width + radius, pixels)
    span = (width + 2 * radius) * channels
    at = (inside_left - (left - radius)) * channels
    end = at + (inside_right - inside_left) * channels
    layout = scratch(span, at, channels)
    buf = _scratch(layout, raw)
    inside = np.uint64(inside_left * channels), np.uint64((inside_right - inside_left) * channels)
    x = np.uint64(dst_left * channels)
    for y in range(0, height, ROWS):
        _vertical_block(buf, layout, src, top - radius + y, inside, at, end, span, channels, w, k)
        for t in range(min(ROWS, height - y)):
            _horizontal_row(dst, np.uint64(dst_top + y + t), x, buf, layout, t, width * channels, channels, w, k,
                            rounding)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _blur_direct(src, top, left, height, width, channels, w2, rounding, dst, dst_top, dst_left):
    """The 2-D form: dst[y, x] = sum over taps (i, t) of w2[i, t] * src[y + i - r, x + t - r], then rounded.

    Arguments as `_blur_rows`, except that the halo must lie inside src (blur cuts a padded copy when
    it does not: with k*k taps per pixel the copy costs nothing noticeable).  Each output row is summed
    in a float row, one tap per pass over it: a contiguous loop over the row that vectorises, with the
    taps in the same order (row by row, left to right) for every pixel whatever tile it is in.  (More
    taps per pass would be faster; one tap is kept because this kernel is the plain "what the original
    did" one.)  The sum is clamped at 255 before the uint8 store so float error in k*k additions can
    never wrap a white pixel to 0.
    """
    k = w2.shape[0]
    radius = k // 2
    n = width * channels
    acc = np.empty(n, np.float32)
    x = np.uint64(dst_left * channels)
    for y in range(height):
        acc[:] = 0.0
        for i in range(k):
            row = np.uint64(top - radius + y + i)
            for t in range(k):
                weight = w2[i, t]
                first = np.uint64((left - radius + t) * channels)  # unsigned: docs/kernel.md says why
                for j in range(np.uint64(n)):
                    acc[j] = acc[j] + weight * src[row, first + j]
        for j in range(np.uint64(n)):
            dst[dst_top + y, x + j] = np.uint8(min(acc[j] + rounding, np.float32(255.0)))


@functools.cache
def _weights(kernel_size: int, method: str) -> np.ndarray:
    """What each kernel takes: the 1-D weights padded with zeros to a sum of sevens and eights, or their
    2-D outer product."""
    weights = gaussian_weights(kernel_size)
    if method == "direct":
        return np.outer(weights, weights)
    padded = np.zeros(_grouped(weights.size), np.float32)  # zero taps add exactly nothing
    padded[:weights.size] = weights
    return padded


def _grouped(taps: int) -> int:
    """The fewest taps, at least `taps`, that groups of eight, then sevens once the rest is a multiple of
    seven, add up to exactly (every count from 42 on; 21 = 7 + 7 + 7 and 15 = 8 + 7 need no padding).

    >>> [_grouped(k) for k in (1, 3, 9, 15, 17, 21, 23, 25, 33, 41)]
    [7, 7, 14, 15, 21, 21, 23, 28, 35, 42]
    """
    while taps % 7 and taps % 7 * 8 > taps:  # taps = 8a + 7b needs a % 7 == taps % 7, so 8 * (taps % 7) <= taps
        taps += 1
    return taps


def _scratch_floats(count: int) -> np.ndarray:
    """This thread's scratch for the separable kernel, at least count floats (more than any layout of a tile
    that size needs: core/scratch.py), allocated once per thread, written through once, and kept.

    Allocated in every call instead, a tile's few dozen kilobytes came as fresh pages from the system in a
    worker thread each time, and two threads blurring tiles ran far slower than one (docs/kernel.md;
    benchmarks/kernel_threads.py).  Fresh pages are the reason it is written through here (np.full, not
    np.zeros or np.empty, which leave them untouched): a buffer left untouched stayed slow at every call.
    """
    buf = getattr(_THREAD, "scratch", None)
    if buf is None or buf.size < count:
        buf = _THREAD.scratch = np.full(count, 0.0, np.float32)
    return buf


def _as_rows(pixels: np.ndarray, *, read_only: bool = False) -> np.ndarray:
    """An (H, W, C) uint8 array as the (H, W * C) rows the kernels take: a view, never a copy.

    ``read_only`` gives a view that cannot be written: the kernels take their source that way whether the
    caller's array is writable (a cut tile) or not (a decoded image), so numba compiles one version, not two.
    """
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or not pixels.flags.c_contiguous:
        raise ValueError(f"expected a C-contiguous uint8 (h, w, channels) array, got {pixels.dtype} "
                         f"{pixels.shape}")
    rows = pixels.reshape(pixels.shape[0], -1)
    if read_only and rows.flags.writeable:
        rows = rows.view()
        rows.flags.writeable = False
    return rows


def _blur_region(src: np.ndarray, region: Tile, dst: np.ndarray, dst_top: int, dst_left: int,
                 kernel_size: int, truncate: bool, method: str) -> None:
    """Blur region of src (H, W, C) into dst at (dst_top, dst_left), the halo read from src, clamped.

    The callers (`blur_tile`, `blur_into`) have checked the method, the kernel size and the shapes.
    """
    channels, radius = src.shape[2], kernel_size // 2
    rounding = np.float32(0.0 if truncate else 0.5)
    if method == "direct":
        if not (region.y >= radius and region.x >= radius and region.y + region.height + radius <= src.shape[0]
                and region.x + region.width + radius <= src.shape[1]):
            src = cut(src, region, radius)
            region = Tile(region.id, radius, radius, region.width, region.height)
        _blur_direct(_as_rows(src, read_only=True), region.y, region.x, region.height, region.width, channels,
                     _weights(kernel_size, method), rounding, _as_rows(dst), dst_top, dst_left)
    else:
        span = (region.width + 2 * radius) * channels
        _blur_rows(_as_rows(src, read_only=True), region.y, region.x, region.height, region.width, channels,
                   _weights(kernel_size, method), kernel_size, rounding, _as_rows(dst), dst_top, dst_left,
                   _scratch_floats(SECTIONS * (span + 3 * LINE_FLOATS + PAGE_FLOATS) + LINE_FLOATS))


def blur_tile(padded: np.ndarray, kernel_size: int, *, truncate: bool = False,
              method: str = "separable") -> np.ndarray:
    """Blur one tile cut with a halo of kernel_size // 2 on every side (see tiling.cut).

    padded: uint8 (h + 2r, w + 2r, C) -> uint8 (h, w, C).  Results are rounded to nearest;
    ``truncate=True`` rounds the float32 sum down, as the original course did (docs/kernel.md says
    how close that is to the exact floor).  ``method`` is one of KERNELS:
    "separable" (2k taps per channel-pixel) or "direct" (k*k, the compute-bound workload).
    This is the form for a tile that travels (to a process, through a broker); threads that share
    the image use `blur_into`, which needs no copy.
    """
    validate_method(method)
    radius = validate_kernel_size(kernel_size) // 2
    if padded.dtype != np.uint8 or padded.ndim != 3:
        raise ValueError(f"expected a uint8 (h, w, channels) tile, got {padded.dtype} {padded.shape}")
    rows, cols, channels = padded.shape
    if rows <= 2 * radius or cols <= 2 * radius:
        raise ValueError(f"tile {padded.shape[:2]} is too small for a halo of {radius}")
    out = np.empty((rows - 2 * radius, cols - 2 * radius, channels), np.uint8)
    tile = Tile(id=0, x=radius, y=radius, width=out.shape[1], height=out.shape[0])
    _blur_region(np.ascontiguousarray(padded), tile, out, 0, 0, kernel_size, truncate, method)
    return out


def blur_into(image: np.ndarray, tile: Tile, canvas: np.ndarray, kernel_size: int, *, truncate: bool = False,
              method: str = "separable") -> None:
    """Blur tile's rectangle of image (H, W, C) into the same rectangle of canvas, in place.

    The halo is read from the image itself, so nothing is cut or pasted: the form for workers that share
    the image and its canvas (threads, shared memory).  Tiles of one image may be blurred into one canvas
    at the same time: each writes only its own rectangle.
    """
    validate_method(method)
    validate_kernel_size(kernel_size)
    if canvas.shape != image.shape:
        raise ValueError(f"canvas {canvas.shape} does not match image {image.shape}")
    height, width = image.shape[:2]
    if not (0 <= tile.x < tile.x + tile.width <= width and 0 <= tile.y < tile.y + tile.height <= height):
        raise ValueError(f"tile {tile} is not inside the {width}x{height} image")
    _blur_region(image, tile, canvas, tile.y, tile.x, kernel_size, truncate, method)


def blur(image: np.ndarray, kernel_size: int = 21, *, truncate: bool = False,
         method: str = "separable") -> np.ndarray:
    """Blur a whole uint8 image (H, W) or (H, W, C), C in 1..4, on one thread; same shape and dtype out.

    ``method`` picks the kernel (KERNELS); results are identical to tiling with the same method.

    >>> img = np.zeros((4, 5, 3), np.uint8); img[2, 2] = 255
    >>> out = blur(img, 3)
    >>> out.shape, out.dtype, int(out[2, 2, 0]), int(out[0, 0, 0])
    ((4, 5, 3), dtype('uint8'), 52, 0)
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ValueError(f"expected a uint8 image (H, W) or (H, W, 1..4), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must be at least 1x1, got {image.shape}")
    pixels = np.ascontiguousarray(image.reshape(image.shape[0], image.shape[1], -1))
    out = np.empty_like(pixels)
    blur_into(pixels, Tile(id=0, x=0, y=0, width=pixels.shape[1], height=pixels.shape[0]), out, kernel_size,
              truncate=truncate, method=method)
    return out.reshape(image.shape)


def warm_up(kernel_size: int = 3, *, method: str | None = None) -> None:
    """Compile the kernel, or load it from numba's cache, before the work whose time is measured.

    ``method`` names the one kernel a run will use; None warms every one of KERNELS.  numba compiles
    one version per argument type, and a read-only array is a type of its own; the kernels take their
    source read-only whatever the caller passes (a decoded image is a read-only view of Pillow's bytes, a
    cut tile is writable), so one call per kernel loads all there is.  What it costs in a fresh process
    with numba's cache filled: the kernel itself loads in milliseconds; the first call of any numba
    function also sets up numba's CPU target, which imports scipy.linalg when scipy is installed (numba
    checks for BLAS), about half of the 0.25 s measured.  Without a cache entry (a new checkout, or
    kernel.py edited: numba keys its cache on the source's contents) it compiles, about 10 s
    (benchmarks/kernel_startup.py, which also checks that the kernel then runs as fast as one loaded).
    """
    validate_kernel_size(kernel_size)
    image = np.zeros((1, 1, 1), np.uint8)
    for name in KERNELS if method is None else (validate_method(method),):
        blur_into(image, Tile(0, 0, 0, 1, 1), np.zeros_like(image), kernel_size, method=name)
