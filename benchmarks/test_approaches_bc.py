"""Group `approaches`: a, b.threads, b.processes, b.shm and c over the sample images (k = 21, tile 256).

    pytest benchmarks/test_approaches_bc.py --benchmark-only --benchmark-group-by=group

Each round is one whole run over the five samples, every output saved.  The targets, as ratios taken
within one run, are printed by benchmarks/bc_targets.py; peak memory by benchmarks/bc_memory.py; the
cost of moving a tile by benchmarks/bc_transfer.py.
"""

from pathlib import Path

import pytest

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images
from approaches.core.job import Job
from approaches.core.kernel import warm_up
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from approaches.samples import SAMPLES, ensure_samples


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("samples")
    ensure_samples(directory)
    return directory


@pytest.mark.parametrize("key", ["a", "b.threads", "b.processes", "b.shm", "c"])
def test_whole_run(benchmark, sample_dir, tmp_path, key):
    benchmark.group = "approaches"
    config = RunConfig(input_dir=sample_dir, output_dir=tmp_path, kernel_size=21, tile_size=256,
                       workers=cores_present())
    job = Job(config, tuple(find_images(sample_dir)), key)
    warm_up(config.kernel_size)  # compile (or load the cache) outside the timing
    outcome = benchmark.pedantic(APPROACHES[key].run, args=(job, Tracer()), rounds=7, warmup_rounds=1)
    assert len(outcome.saved) == len(SAMPLES) and not outcome.failed
