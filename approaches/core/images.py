"""Finding and loading images with Pillow, saving them as PNG (encoded by core.png), and naming outputs.

Modes: L, LA, RGB and RGBA are blurred as they are (straight alpha, each channel on its own) and saved
in the same mode.  Others are converted on load: 1 -> L, P -> RGBA (or RGB without transparency),
PA -> RGBA, La -> LA, RGBa -> RGBA, RGBX, CMYK and YCbCr -> RGB.  16- and 32-bit images (I;16, I, F)
are refused rather than silently cut to 8 bits.  Every problem with one file becomes an ImageError
naming that file, so the caller can report it in one line and go on with the others.

An image larger than the run's limit (max_pixels, by default Pillow's own 89 MP) is refused from its header,
before anything is decoded.  Pillow's own check, a process-wide setting, is moved up to limits.MAX_PIXELS,
the most any run may allow, so that each load applies its run's limit itself.  Memory, for an image of
B bytes (H x W x C): Pillow decodes into its own storage (4 bytes a pixel for RGB, so 4/3 B), and the pixels
are copied out a band of rows at a time into the one array returned: 2.3 B at the peak, for a moment, then
B.  (np.asarray would go through tobytes(), which holds its chunks and their join, 2 B, beside Pillow's.)
"""

import contextlib
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from approaches.core.errors import ConfigError, ImageError, shown
from approaches.core.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS
from approaches.core.png import write_png

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
BLURRED_AS_IS = frozenset({"L", "LA", "RGB", "RGBA"})
CONVERSIONS = {"1": "L", "PA": "RGBA", "La": "LA", "RGBa": "RGBA", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB"}

# load_image applies each run's own limit; Pillow's, everywhere in this process, is the highest a run may set.
# Pillow only warns between 1x and 2x its limit: a bomb is refused like any bad file, without a stray warning line.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.simplefilter("error", Image.DecompressionBombWarning)
BAND_BYTES = 16 << 20  # pixels are copied out of Pillow this many bytes at a time


@dataclass(frozen=True, slots=True)
class ImageSource:
    """An input file and the unique name used for its spans and its output file."""

    path: Path
    name: str


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """Decoded pixels (H, W, C) uint8 and the mode they will be saved in."""

    pixels: np.ndarray
    mode: str

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def height(self) -> int:
        return self.pixels.shape[0]


def find_images(directory: Path) -> list[ImageSource]:
    """Every entry of directory whose suffix names an image format, sorted, with unique names.

    Entries are listed even when they turn out not to be images (a directory called x.png, a FIFO, an
    empty file) so that loading reports them instead of silently skipping them.  Two inputs with the same
    stem (photo.png, photo.jpg) are named photo_png and photo_jpg so that neither output overwrites the
    other; two inputs that would still share a name, or names told apart only by case (x.png and x.PNG,
    A.png and a.png), are refused, naming both, before any work: their outputs would overwrite each other.
    """
    if not directory.exists():
        raise ConfigError(f"input directory {shown(directory)} does not exist")
    if not directory.is_dir():
        raise ConfigError(f"input {shown(directory)} is not a directory")
    try:
        paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as error:
        raise ConfigError(f"cannot list input directory {shown(directory)}: {error.strerror}") from error
    stems = [p.stem.lower() for p in paths]
    sources = [ImageSource(p, _plain_name(f"{p.stem}_{p.suffix[1:].lower()}" if stems.count(p.stem.lower()) > 1
                                          else p.stem)) for p in paths]
    first: dict[str, Path] = {}
    for source in sources:  # casefolded: on a case-insensitive disk A_png and a_png are one file
        if (other := first.setdefault(source.name.casefold(), source.path)) != source.path:
            raise ConfigError(f"{shown(other.name)} and {shown(source.path.name)} would both be saved as "
                              f"{shown(source.name)}_blurred.png; rename one of them")
    return sources


def _plain_name(stem: str) -> str:
    """An input's name as the suite uses it (spans, logs, output file): control characters, path
    separators and bytes that are not UTF-8 become "_", so no name can forge a log line or leave a folder.

    >>> _plain_name("holiday\\nphoto"), _plain_name("caf\\udce9"), _plain_name("café")
    ('holiday_photo', 'caf_', 'café')
    """
    return "".join("_" if not char.isprintable() or char in "/\\" or 0xD800 <= ord(char) < 0xE000 else char
                   for char in stem) or "_"


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode path into pixels, converting or refusing modes as the module docstring says; an image of more
    than max_pixels pixels is refused before it is decoded."""
    kind = _not_a_file(path)
    if kind:
        raise ImageError(path, f"is {kind}, not an image file; skipped")
    try:
        with Image.open(path) as image:
            if image.width * image.height > max_pixels:
                raise ImageError(path, f"too large: {image.width}x{image.height} is over the limit of "
                                       f"{max_pixels:,} pixels (--max-pixels)")
            image = _blurrable(image, path)
            return LoadedImage(_copied_out(image), image.mode)
    except FileNotFoundError as error:
        raise ImageError(path, "file not found") from error
    except PermissionError as error:
        raise ImageError(path, "permission denied") from error
    except UnidentifiedImageError as error:
        reason = "empty file" if _is_empty(path) else "not an image Pillow can read"
        raise ImageError(path, f"{reason}") from error
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(path, f"too large, over the limit of {Image.MAX_IMAGE_PIXELS:,} pixels") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(path, f"truncated or corrupt image ({error})") from error


def _copied_out(image: Image.Image, band_bytes: int = BAND_BYTES) -> np.ndarray:
    """image's pixels as one new (H, W, C) array, copied band_bytes at a time (see the module docstring)."""
    pixels = np.empty((image.height, image.width, len(image.getbands())), np.uint8)
    rows = max(1, band_bytes // max(1, pixels[0].nbytes))
    for top in range(0, image.height, rows):
        band = pixels[top:top + rows]
        band[...] = np.asarray(image.crop((0, top, image.width, top + len(band)))).reshape(band.shape)
    return pixels


def _not_a_file(path: Path) -> str | None:
    """What path is, when it is not a regular file (opening a FIFO would wait for a writer forever)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return None  # open() below says why, in its own words
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None


def _blurrable(image: Image.Image, path: Path) -> Image.Image:
    if any(";16" in str(tile.args) for tile in image.tile):  # 16 bits per sample, decoded as 8 unless refused
        raise ImageError(path, "16 bits per channel is not supported (only 8-bit images; convert it first)")
    if image.mode in BLURRED_AS_IS:
        image.load()
        return image
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in CONVERSIONS:
        return image.convert(CONVERSIONS[image.mode])
    raise ImageError(path, f"mode {image.mode} is not supported (only 8-bit images; convert it first)")


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def output_path(output_dir: Path, approach: str, name: str) -> Path:
    """<output_dir>/<approach>/<name>_blurred.png; a name that would leave that folder is refused."""
    if not name or name in {".", ".."} or Path(name).name != name or "\\" in name or "\0" in name:
        raise ImageError(repr(name), f"not a plain file name, refusing to write outside {output_dir}")
    return output_dir / approach / f"{name}_blurred.png"


def save_image(pixels: np.ndarray, path: Path, png_level: int, *, encoder: str = "pillow") -> None:
    """Write pixels (H, W, C) as PNG; through a temporary file, so a crash never leaves half an image.

    encoder is one of core.png.PNG_ENCODERS; png_level is Pillow's zlib level (fpng has none).
    """
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb") as file:
            write_png(pixels, file, encoder, png_level)
        os.replace(partial, path)
    except BaseException as error:  # a bad array or Ctrl-C as much as a full disk: no half file left behind
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(error, OSError):
            raise ImageError(path, f"cannot write ({error.strerror or error})") from error
        raise
