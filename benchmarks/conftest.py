"""Benchmark inputs: the RGBA sample photos (0.3 to 1.9 MP), made in memory."""

import numpy as np
import pytest

from approaches.samples import SAMPLES, make_sample


@pytest.fixture(scope="session")
def rgba_photos() -> list[np.ndarray]:
    return [np.asarray(make_sample(spec)) for spec in SAMPLES if spec.mode == "RGBA"]
