"""--smoke only: every benchmark script run once with its cheapest arguments, so none rots unnoticed.

The scripts print ratios measured interleaved in one process (what the README quotes); pytest-benchmark's
tables do not replace them, and nothing else runs them.  Here they run on the small --smoke samples where
they take an --input, and their numbers mean nothing: a script passes if it ends without a traceback, with
status 0, or 1 where it says a goal was missed (at this size, goals are not the point).  Two only show their
--help (their module imports, their flags parse): kernel_goals.py reads a saved full run, and i_mpi_polling.py
has no small size.
"""

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SMALL = "{small}"  # replaced by the folder of small samples
CHEAPEST = {
    "bc_memory.py": ["--counts", "1", "2", "--input", SMALL],
    "bc_targets.py": ["--rounds", "2", "--input", SMALL],
    "bc_transfer.py": ["--tiles", "5", "--repeat", "1"],
    "cluster_targets.py": ["--rounds", "2", "--input", SMALL],
    # nine MPI launches on full-size samples whatever the arguments (17 s): only its import and flags here
    "i_mpi_polling.py": ["--help"],
    "i_mpi_vs_tiles.py": ["--repeat", "1"],
    "kernel_goals.py": ["--help"],  # it reads a saved pytest-benchmark run: the real one is not made in a smoke
    "h_vs_g.py": ["--rounds", "5", "--input", SMALL],
    "kernel_startup.py": ["--rounds", "1"],
    "kernel_vs_opencv.py": ["--pairs", "2", "--no-asm"],
    "png_encoders.py": ["--rounds", "1"],
    "run_memory.py": ["--small", "1", "--large", "2"],
}


def test_every_script_has_a_smoke_run():
    scripts = {path.name for path in HERE.glob("*.py") if not path.name.startswith(("test_", "conftest"))}
    assert scripts == set(CHEAPEST)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("script", sorted(CHEAPEST))
def test_the_script_runs_to_its_end(request, tmp_path, sample_dir, script):
    if not request.config.getoption("--smoke"):
        pytest.skip("only with --smoke: a real run of the script is `python benchmarks/<script>`")
    args = [str(sample_dir) if arg == SMALL else arg for arg in CHEAPEST[script]]
    done = subprocess.run([sys.executable, str(HERE / script), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=110)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
