"""Sample photos made by the suite itself: deterministic, realistic enough to time, nothing to download.

Each sample is a small landscape: a sky gradient, a sun, two ranges of hills with wavy horizons,
some buildings, 1/f texture and a little sensor noise, so PNG sizes and blur times behave like real
photos rather than like flat or pure-noise images.  Sizes follow the original course's inputs.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SampleSpec:
    """One sample's recipe: the seed fixes every random choice, so the spec alone names the pixels."""

    name: str
    width: int
    height: int
    mode: str
    seed: int


SAMPLES: tuple[SampleSpec, ...] = (
    SampleSpec("img1", 1198, 1556, "RGBA", 1),
    SampleSpec("img2", 2000, 1400, "RGB", 2),
    SampleSpec("img3", 1108, 1124, "RGBA", 3),
    SampleSpec("img4", 496, 608, "RGBA", 4),
    SampleSpec("img5", 1470, 614, "RGBA", 5),
)


def _texture(rng: np.random.Generator, height: int, width: int, octaves: int = 6) -> np.ndarray:
    """1/f noise in [-1, 1]: octaves of random grids upsampled with bicubic interpolation."""
    total = np.zeros((height, width), np.float32)
    for octave in range(octaves):
        cells = 2 ** (octave + 2)
        grid = rng.random((cells, cells), dtype=np.float32)
        layer = Image.fromarray(grid, mode="F").resize((width, height), Image.Resampling.BICUBIC)
        total += np.asarray(layer) / 2**octave
    total -= total.mean()
    return total / max(float(np.abs(total).max()), 1e-6)


def make_sample(spec: SampleSpec) -> Image.Image:
    """Draw one sample; the same spec gives the same pixels on every run and machine."""
    rng = np.random.default_rng(spec.seed)
    h, w = spec.height, spec.width
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    top, bottom = rng.uniform(40, 120, 3), rng.uniform(150, 240, 3)
    image = top + (bottom - top) * (y / h)[..., None]  # sky
    sun_x, sun_y, sun_r = rng.uniform(0.2, 0.8) * w, rng.uniform(0.1, 0.3) * h, rng.uniform(0.04, 0.08) * min(h, w)
    sun = np.clip(1.5 - np.hypot(x - sun_x, y - sun_y) / sun_r, 0, 1)[..., None]
    image = image * (1 - sun) + np.array([255, 230, 170]) * sun
    texture = _texture(rng, h, w)
    for level, colour in ((0.55, rng.uniform(60, 140, 3)), (0.72, rng.uniform(20, 90, 3))):
        phase, freq = rng.uniform(0, 6.3, 2), rng.uniform(2, 7, 2)
        ridge = h * (level + 0.06 * np.sin(freq[0] * 6.28 * x[0] / w + phase[0])
                     + 0.03 * np.sin(freq[1] * 6.28 * x[0] / w + phase[1]))
        hill = (y > ridge + 8 * texture).astype(np.float32)[..., None]
        image = image * (1 - hill) + (colour * (1 + 0.35 * texture[..., None])) * hill
    for _ in range(int(rng.integers(3, 7))):  # buildings: hard edges
        bw, bh = rng.uniform(0.03, 0.08) * w, rng.uniform(0.1, 0.25) * h
        bx, base = rng.uniform(0, w - bw), rng.uniform(0.75, 0.95) * h
        image[int(base - bh):int(base), int(bx):int(bx + bw)] = rng.uniform(30, 220, 3)
    image += rng.normal(0, 3, image.shape)
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    if spec.mode == "RGBA":
        alpha = np.full((h, w), 255, np.uint8)
        if spec.name == "img3":  # a soft vignette, so the alpha channel is really blurred too
            edge = np.hypot((x - w / 2) / (w / 2), (y - h / 2) / (h / 2))
            alpha = np.clip(255 - 127 * np.clip(edge - 0.5, 0, 1) / 0.5, 128, 255).astype(np.uint8)
        pixels = np.dstack([pixels, alpha])
    return Image.fromarray(pixels)


def ensure_samples(directory: Path, *, png_level: int = 1, progress: Callable[[], None] = lambda: None) -> list[Path]:
    """Write the samples missing from directory (existing files are left alone; progress() after each one
    made); return all their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in SAMPLES:
        path = directory / f"{spec.name}.png"
        if not path.exists():
            partial = directory / f".{spec.name}.{os.getpid()}.partial"
            make_sample(spec).save(partial, format="PNG", compress_level=png_level)
            os.replace(partial, path)
            progress()
        paths.append(path)
    return paths
