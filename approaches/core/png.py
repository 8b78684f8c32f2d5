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

One more difference shows in the threaded approaches: Pillow lets go of the GIL while zlib works, fpng 0.1
keeps it, so other Python threads wait while it encodes (a few milliseconds an image, far less than
Pillow's own time).
"""

import importlib
import io
import logging
import threading
from collections.abc import Callable
from types import ModuleType

import numpy as np
from PIL import Image

from approaches.core.limits import PNG_ENCODERS

FPNG_CHANNELS = frozenset({3, 4})  # RGB and RGBA; fpng refuses the others

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
