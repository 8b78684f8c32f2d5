"""Benchmark inputs: the sample photos, in memory for the kernel and on disk for whole runs."""

from pathlib import Path

import numpy as np
import pytest

from approaches.samples import SAMPLES, ensure_samples, make_sample


@pytest.fixture(scope="session")
def rgba_photos() -> list[np.ndarray]:
    """The four RGBA samples (0.3 to 1.9 MP), made in memory: the kernel's input without any PNG decoding."""
    return [np.asarray(make_sample(spec)) for spec in SAMPLES if spec.mode == "RGBA"]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All five samples as PNG files, written once per session, as run_all.py reads them from data/input."""
    directory = tmp_path_factory.mktemp("samples")
    ensure_samples(directory)
    return directory
