"""Encoding pixels as PNG, with Pillow or with fpng: the save stage is mostly compression.

A PNG is the pixels, each row filtered, then squeezed with Deflate.  Pillow hands the rows to zlib, whose
level trades time for size (0 stores, 1 is fast, 9 is small).  fpng (a C++ encoder wrapped by the PyPI
package ``fpng``) does the same job about six times faster, with files about a sixth larger: every row
gets the same filter (Up), and its Deflate only repeats the pixel just before, with precomputed codes.
Both are plain PNGs: any decoder reads back the exact pixels, so the choice changes time and size, never
the image (the tests and benchmarks/png_encoders.py check it).

fpng writes only 24- and 32-bit PNGs, so L and LA images always go through Pillow, and it has no levels:
``level`` applies to Pillow alone.  fpng is imported lazily, the first time it is asked for, so importing
the suite stays fast; where it cannot be imported (no wheel for this platform), one warning line says so
and Pillow writes the file instead.  Call ``resolve_encoder`` once at start-up and hand its answer to the
workers, so that the warning is printed once and a worker never tries an import that already failed.

Both hold the whole file being written and a filtered copy of the image while they encode: for a 200 MP photo
that is two more images' worth of memory beside the one being saved.  So an image over STREAM_ABOVE_PIXELS
(Pillow's own default limit: one that needs --max-pixels) is written by ``write_png`` a band of rows at a time:
each band filtered (Up, as fpng does) and fed to one zlib stream at Pillow's level, each compressed piece
written out as it comes, so the file costs no memory at all.  zlib is slower than fpng; only images this
big pay that.

One more difference shows in the threaded approaches: Pillow lets go of the GIL while zlib works, fpng 0.1
keeps it, so other Python threads wait while it encodes (a few milliseconds an image, far less than
Pillow's own time).
"""

import importlib
import io
import logging
import struct
import threading
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import BinaryIO

import numpy as np
from PIL import Image

from approaches.core.limits import DEFAULT_MAX_PIXELS, PNG_ENCODERS

FPNG_CHANNELS = frozenset({3, 4})  # RGB and RGBA; fpng refuses the others
STREAM_ABOVE_PIXELS = DEFAULT_MAX_PIXELS  # larger images are written a band of rows at a time (write_png)
BAND_BYTES = 8 << 20  # about this much of the image is filtered and deflated at a time
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: grey, grey + alpha, RGB, RGBA

logger = logging.getLogger(__name__)


class Fpng:
    """Whether fpng can be imported, asked once: its module, or None after one warning line.

    import_module is the importer (a test passes one that fails, to see the fallback without uninstalling).
    """

    def __init__(self, import_module: Callable[[str], ModuleType] = importlib.import_module) -> None:
        self._import_module = import_module
        self._lock = threading.Lock()
        self._asked = False
        self._module: ModuleType | None = None

    def module(self) -> ModuleType | None:
        with self._lock:  # threads saving at once still import (or warn) once
            if not self._asked:
                self._asked = True
                try:
                    self._module = self._import_module("fpng")
                except ImportError as error:
                    logger.warning("fpng cannot be imported here (%s); PNGs are written with Pillow instead", error)
            return self._module


FPNG = Fpng()
"""This process's answer, shared by every save."""


def check_encoder(name: str) -> str:
    """name if it is one of PNG_ENCODERS, else a ValueError listing them.

    >>> check_encoder("fpng")
    'fpng'
    """
    if name not in PNG_ENCODERS:
        raise ValueError(f"unknown PNG encoder {name!r}; choose one of {', '.join(PNG_ENCODERS)}")
    return name


def resolve_encoder(name: str, fpng: Fpng = FPNG) -> str:
    """The encoder that will really write the files: name, or "pillow" (after one warning) if fpng is missing."""
    if check_encoder(name) == "fpng" and fpng.module() is None:
        return "pillow"
    return name


def encode_png(pixels: np.ndarray, encoder: str = "pillow", level: int = 1, *, fpng: Fpng = FPNG) -> bytes:
    """The PNG file of pixels (H, W, C) uint8, C in 1..4, written by encoder; level is Pillow's zlib level.

    L and LA (C = 1 or 2) are always written by Pillow, and so is everything when fpng cannot be imported.

    >>> png = encode_png(np.zeros((2, 3, 3), np.uint8), "pillow", level=1)
    >>> png[:8], Image.open(io.BytesIO(png)).size
    (b'\\x89PNG\\r\\n\\x1a\\n', (3, 2))
    """
    check_encoder(encoder)
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or not 1 <= pixels.shape[2] <= 4 or 0 in pixels.shape:
        raise ValueError(f"cannot encode {pixels.dtype} pixels of shape {pixels.shape} as PNG; need (H, W, 1..4) uint8")
    module = fpng.module() if encoder == "fpng" and pixels.shape[2] in FPNG_CHANNELS else None
    if module is None:
        return _pillow(pixels, level)
    png = module.from_ndarray(np.ascontiguousarray(pixels))  # no copy for an image or canvas: they are contiguous
    if not png:  # fpng 0.1 reports a failure as empty bytes, not as an exception
        raise ValueError(f"fpng could not encode pixels of shape {pixels.shape}")
    return png


def _pillow(pixels: np.ndarray, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


def write_png(pixels: np.ndarray, file: BinaryIO, encoder: str = "pillow", level: int = 1, *,
              stream_above: int = STREAM_ABOVE_PIXELS, band_bytes: int = BAND_BYTES, fpng: Fpng = FPNG) -> None:
    """Write pixels (H, W, C) as a PNG file into file: encoded whole (encode_png), or band by band when the image
    has more than stream_above pixels, so that saving a huge image holds no second copy of it (about band_bytes
    of filtered rows at a time).

    >>> buffer = io.BytesIO()
    >>> pixels = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    >>> write_png(pixels, buffer, stream_above=0)
    >>> bool((np.asarray(Image.open(buffer)) == pixels).all())
    True
    """
    height, width = pixels.shape[:2]
    if height * width <= stream_above:
        file.write(encode_png(pixels, encoder, level, fpng=fpng))
        return
    encode_png(pixels[:1, :1], "pillow")  # the same checks of dtype and shape, on one pixel
    rows = pixels.reshape(height, -1)
    file.write(b"\x89PNG\r\n\x1a\n")
    _chunk(file, b"IHDR", struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[pixels.shape[2]], 0, 0, 0))
    deflate = zlib.compressobj(level)
    above = np.zeros(rows.shape[1], np.uint8)  # the row above the first: zeros, as PNG defines it
    band = max(1, band_bytes // rows.shape[1])
    for top in range(0, height, band):
        here = rows[top:top + band]
        filtered = np.empty((len(here), rows.shape[1] + 1), np.uint8)
        filtered[:, 0] = 2  # filter type Up: each byte minus the one above it, modulo 256
        np.subtract(here[:1], above, out=filtered[:1, 1:])
        np.subtract(here[1:], here[:-1], out=filtered[1:, 1:])
        above = here[-1].copy()
        _chunk(file, b"IDAT", deflate.compress(filtered))
    _chunk(file, b"IDAT", deflate.flush())
    _chunk(file, b"IEND", b"")


def _chunk(file: BinaryIO, kind: bytes, data: bytes) -> None:
    """One PNG chunk: its length, its kind, its data and their CRC (an empty IDAT is allowed)."""
    file.write(struct.pack(">I", len(data)) + kind)
    file.write(data)
    file.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))
