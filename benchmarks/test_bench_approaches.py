"""Groups `approaches` (every approach in the registry) and `broker` (the queue approaches on each broker).

One round is one whole run over the five sample images (k = 21, tile 256, a worker per core, every output
saved), made by runner.measure, the code path of run_all.py.  Both groups are parametrised over
approaches.registry, so an approach registered later is benchmarked without an edit here.  The targets,
as ratios taken within one run, are printed by benchmarks/bc_targets.py and benchmarks/cluster_targets.py.
"""

from pathlib import Path

import pytest

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images
from approaches.core.urls import DEFAULT_URL
from approaches.harness.measure import measure
from approaches.registry import APPROACHES
from approaches.samples import SAMPLES

# A one-value parameter, so `--benchmark-group-by=group,param:kernel_size` works for every group.
at_run_all_kernel_size = pytest.mark.parametrize("kernel_size", [RunConfig.kernel_size])


def time_whole_run(benchmark, letter: str, sample_dir: Path, output_dir: Path, kernel_size: int, broker: str) -> None:
    """Time runner.measure of one approach, one run per round, and check that it saved every sample."""
    config = RunConfig(approaches=(letter,), input_dir=sample_dir, output_dir=output_dir, kernel_size=kernel_size,
                       workers=cores_present(), broker=broker)
    benchmark.extra_info.update(approach=letter, broker=broker, workers=config.workers)
    measured = benchmark(measure, APPROACHES[letter], config, find_images(sample_dir), lambda: None)
    assert len(measured.outcome.saved) == len(SAMPLES) and not measured.outcome.failed, measured.outcome.failed


@at_run_all_kernel_size
@pytest.mark.parametrize("letter", list(APPROACHES))
def test_approach(benchmark, sample_dir, tmp_path, letter, kernel_size):
    benchmark.group = "approaches"
    time_whole_run(benchmark, letter, sample_dir, tmp_path, kernel_size, DEFAULT_URL)


@at_run_all_kernel_size
@pytest.mark.parametrize("broker", ["memory://", "embedded://"], ids=["memory", "embedded"])
@pytest.mark.parametrize("letter", [letter for letter, approach in APPROACHES.items() if approach.uses_broker])
def test_broker(benchmark, sample_dir, tmp_path, letter, broker, kernel_size):
    """memory:// is fakeredis with thread pods; embedded:// a Valkey server and process pods, both started
    inside each run, so their start-up is part of its time."""
    benchmark.group = "broker"
    time_whole_run(benchmark, letter, sample_dir, tmp_path, kernel_size, broker)
