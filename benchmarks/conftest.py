"""Benchmark inputs: the sample photos, in memory for the kernel and on disk for whole runs; and --smoke.

``python -m pytest benchmarks --smoke`` runs every benchmark once (pytest-benchmark's --benchmark-disable)
on samples an eighth of the size on each side: it times nothing worth reading, and takes seconds, so CI can
run it on every change and no benchmark rots unnoticed.  The real run is ``python -m pytest benchmarks``.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from approaches.samples import SAMPLES, SampleSpec, ensure_samples, make_sample

SMOKE_SHRINK = 8  # --smoke: each side of each sample divided by this


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--smoke", action="store_true", help="run every benchmark once, untimed, on samples 1/8 the "
                     "size: a check that none has rotted, in seconds (CI)")


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """No xdist here (the tests' `-n auto` is 0 processes): benchmarks time one thing at a time, never beside
    each other, and pytest-benchmark times nothing under xdist."""
    return 0


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark reads its options
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--smoke", default=False):
        config.option.benchmark_disable = True


@pytest.fixture(scope="session")
def samples(request: pytest.FixtureRequest) -> tuple[SampleSpec, ...]:
    """The samples run_all.py makes, or (--smoke) the same scenes drawn small."""
    if not request.config.getoption("--smoke"):
        return SAMPLES
    return tuple(replace(spec, width=spec.width // SMOKE_SHRINK, height=spec.height // SMOKE_SHRINK)
                 for spec in SAMPLES)


@pytest.fixture(scope="session")
def rgba_photos(samples: tuple[SampleSpec, ...]) -> list[np.ndarray]:
    """The four RGBA samples (0.3 to 1.9 MP), made in memory: the kernel's input without any PNG decoding."""
    return [np.asarray(make_sample(spec)) for spec in samples if spec.mode == "RGBA"]


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory, samples: tuple[SampleSpec, ...]) -> Path:
    """All five samples as PNG files, written once per session, as run_all.py reads them from data/input."""
    directory = tmp_path_factory.mktemp("samples")
    if samples == SAMPLES:
        ensure_samples(directory)
    else:
        for spec in samples:
            make_sample(spec).save(directory / f"{spec.name}.png", compress_level=1)
    return directory
