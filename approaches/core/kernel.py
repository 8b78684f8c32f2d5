"""THE Gaussian kernel: every approach blurs with `blur_tile`, so every approach gets the same pixels.

The blur is separable: a horizontal pass over each input row, then a vertical pass over k of those rows,
2k multiply-adds per channel-pixel instead of the k*k of the direct 2-D form.  Arithmetic is float32
with a fixed order of taps, so each output pixel is computed by exactly the same operations whatever
tile it falls in; that is what makes tiled results bit-identical to the whole image.

Why the loops look the way they do:
- The inner loops run over a contiguous row with the bare loop variable as the index; any offset is
  moved into a slice view.  ``row[j + offset]`` makes numba emit a negative-index check that stops
  vectorisation (measured several times slower).
- Taps are summed eight at a time into the output row: the loop is limited by loads, and eight taps
  per pass over the row load and store the accumulator once instead of eight times.
- ``fastmath={"contract"}`` lets LLVM fuse multiply and add into FMA.  It is the only fast-math flag:
  reassociation would let the vectorised body and the scalar remainder add taps in different orders,
  and the same pixel would then differ between tiles of different widths.
"""

import math

import numpy as np
from numba import njit

from approaches.core.tiling import Tile, cut

MAX_KERNEL_SIZE = 255

_CONTRACT = {"contract"}


def validate_kernel_size(kernel_size: int) -> int:
    """Return the kernel size if it is odd and in 1..MAX_KERNEL_SIZE, else raise ValueError."""
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int | np.integer):
        raise ValueError(f"kernel size must be an integer, got {kernel_size!r}")
    if not 1 <= kernel_size <= MAX_KERNEL_SIZE or kernel_size % 2 == 0:
        raise ValueError(f"kernel size must be odd and between 1 and {MAX_KERNEL_SIZE}, got {kernel_size}")
    return int(kernel_size)


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


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _add8(out, first, a, b, c, d, e, f, g, h, w, i):
    w0, w1, w2, w3 = w[i], w[i + 1], w[i + 2], w[i + 3]
    w4, w5, w6, w7 = w[i + 4], w[i + 5], w[i + 6], w[i + 7]
    if first:
        for j in range(out.size):
            out[j] = w0 * a[j] + w1 * b[j] + w2 * c[j] + w3 * d[j] + w4 * e[j] + w5 * f[j] + w6 * g[j] + w7 * h[j]
    else:
        for j in range(out.size):
            out[j] = (out[j] + w0 * a[j] + w1 * b[j] + w2 * c[j] + w3 * d[j]
                      + w4 * e[j] + w5 * f[j] + w6 * g[j] + w7 * h[j])


@njit(nogil=True, cache=True, fastmath=_CONTRACT, inline="always")
def _add1(out, first, a, w, i):
    w0 = w[i]
    if first:
        for j in range(out.size):
            out[j] = w0 * a[j]
    else:
        for j in range(out.size):
            out[j] = out[j] + w0 * a[j]


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _horizontal(out, row, w, step):
    """out[j] = sum over taps i of w[i] * row[j + i*step], taps in order."""
    n = out.size
    k8 = w.size - w.size % 8
    for i in range(0, k8, 8):
        _add8(out, i == 0, row[i * step:i * step + n], row[(i + 1) * step:(i + 1) * step + n],
              row[(i + 2) * step:(i + 2) * step + n], row[(i + 3) * step:(i + 3) * step + n],
              row[(i + 4) * step:(i + 4) * step + n], row[(i + 5) * step:(i + 5) * step + n],
              row[(i + 6) * step:(i + 6) * step + n], row[(i + 7) * step:(i + 7) * step + n], w, i)
    for i in range(k8, w.size):
        _add1(out, i == 0, row[i * step:i * step + n], w, i)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _vertical(out, ring, first_row, w):
    """out[j] = sum over taps i of w[i] * ring[(first_row + i) % k, j], taps in order."""
    k = w.size
    k8 = k - k % 8
    for i in range(0, k8, 8):
        r = first_row + i
        _add8(out, i == 0, ring[r % k], ring[(r + 1) % k], ring[(r + 2) % k], ring[(r + 3) % k],
              ring[(r + 4) % k], ring[(r + 5) % k], ring[(r + 6) % k], ring[(r + 7) % k], w, i)
    for i in range(k8, k):
        _add1(out, i == 0, ring[(first_row + i) % k], w, i)


@njit(nogil=True, cache=True, fastmath=_CONTRACT)
def _blur_rows(src, w, channels, rounding, out):
    """Blur a padded tile given as rows of interleaved channels: src (h+k-1, (w+k-1)*C) -> out (h, w*C).

    Input row y is converted to float once and blurred horizontally into a ring of the last k rows;
    as soon as k rows are there, the vertical pass writes output row y-(k-1).
    """
    k = w.size
    height, n = out.shape
    ring = np.empty((k, n), np.float32)
    as_float = np.empty(src.shape[1], np.float32)
    column = np.empty(n, np.float32)
    for y_in in range(height + k - 1):
        pixels = src[y_in]
        for j in range(as_float.size):
            as_float[j] = pixels[j]
        _horizontal(ring[y_in % k], as_float, w, channels)
        y = y_in - (k - 1)
        if y >= 0:
            _vertical(column, ring, y, w)
            target = out[y]
            for j in range(n):
                target[j] = np.uint8(column[j] + rounding)


def blur_tile(padded: np.ndarray, kernel_size: int, *, truncate: bool = False) -> np.ndarray:
    """Blur one tile cut with a halo of kernel_size // 2 on every side (see tiling.cut).

    padded: uint8 (h + 2r, w + 2r, C) -> uint8 (h, w, C).  Results are rounded to nearest;
    ``truncate=True`` rounds down, as the original course did.
    """
    weights = gaussian_weights(kernel_size)
    radius = kernel_size // 2
    if padded.dtype != np.uint8 or padded.ndim != 3:
        raise ValueError(f"expected a uint8 (h, w, channels) tile, got {padded.dtype} {padded.shape}")
    rows, cols, channels = padded.shape
    if rows <= 2 * radius or cols <= 2 * radius:
        raise ValueError(f"tile {padded.shape[:2]} is too small for a halo of {radius}")
    out = np.empty((rows - 2 * radius, cols - 2 * radius, channels), np.uint8)
    src = np.ascontiguousarray(padded).reshape(rows, cols * channels)
    rounding = np.float32(0.0 if truncate else 0.5)
    _blur_rows(src, weights, channels, rounding, out.reshape(out.shape[0], -1))
    return out


def blur(image: np.ndarray, kernel_size: int = 21, *, truncate: bool = False) -> np.ndarray:
    """Blur a whole uint8 image (H, W) or (H, W, C), C in 1..4, on one thread; same shape and dtype out.

    >>> img = np.zeros((4, 5, 3), np.uint8); img[2, 2] = 255
    >>> out = blur(img, 3)
    >>> out.shape, out.dtype, int(out[2, 2, 0]), int(out[0, 0, 0])
    ((4, 5, 3), dtype('uint8'), 52, 0)
    """
    validate_kernel_size(kernel_size)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[2] <= 4):
        raise ValueError(f"expected a uint8 image (H, W) or (H, W, 1..4), got {image.dtype} {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must be at least 1x1, got {image.shape}")
    pixels = image.reshape(image.shape[0], image.shape[1], -1)
    whole = Tile(id=0, x=0, y=0, width=pixels.shape[1], height=pixels.shape[0])
    return blur_tile(cut(pixels, whole, kernel_size // 2), kernel_size, truncate=truncate).reshape(image.shape)
