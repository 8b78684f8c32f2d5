"""Small generated images shared by the tests, and every test's run of the suite made a single pass."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.harness import cli


@pytest.fixture(autouse=True)
def single_pass(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that runs the suite times one pass with no warm-up, as --quick does: the command line's default
    (a warm-up and three timed runs of each approach) would make each such test four times slower, and what
    it checks is the same every run.  A test of that default is marked ``default_method``."""
    if request.node.get_closest_marker("default_method") is None:
        monkeypatch.setattr(cli, "REPEAT", 1)
        monkeypatch.setattr(cli, "WARMUPS", 0)


def photo(height: int, width: int, channels: int, seed: int = 0) -> np.ndarray:
    """A smooth gradient with noise and a sharp edge: blurring it changes many pixels by many levels."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255 // max(width - 1, 1) + y * 97 // max(height - 1, 1)) % 256
    pixels = np.stack([(base + 60 * c) % 256 for c in range(channels)], axis=-1).astype(np.int32)
    pixels[: height // 2, : width // 3] = 255 - pixels[: height // 2, : width // 3]
    pixels += rng.integers(-20, 21, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """Three small images of different modes in a fresh folder."""
    directory = tmp_path / "input"
    directory.mkdir()
    Image.fromarray(photo(70, 90, 4, seed=1)).save(directory / "one.png")
    Image.fromarray(photo(33, 41, 3, seed=2)).save(directory / "two.png")
    Image.fromarray(photo(20, 25, 1, seed=3)[..., 0]).save(directory / "three.png")
    return directory
