"""--smoke only: every benchmark script run once with its cheapest arguments, so none rots unnoticed.

The scripts print ratios measured interleaved in one process (what the docs quote); pytest-benchmark's
tables do not replace them, and nothing else runs them.  Here they run on the small --smoke samples where
they take an --input, and their numbers mean nothing: a script passes if it ends without a traceback, with
status 0, or 1 where it says a goal was missed (at this size, goals are not the point).  kernel_goals.py,
which reads a run pytest-benchmark saved, is given a small one written here in that format.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SMALL = "{small}"  # replaced by the folder of small samples
SAVED_RUN = "{saved run}"  # replaced by a pytest-benchmark run file: see saved_run()
CHEAPEST = {
    "bc_memory.py": ["--counts", "1", "2", "--input", SMALL],
    "big_image_memory.py": ["--megapixels", "0.05", "--approaches", "a,i"],
    "bc_targets.py": ["--rounds", "2", "--input", SMALL],
    "bc_transfer.py": ["--tiles", "5", "--repeat", "1"],
    "cluster_targets.py": ["--rounds", "2", "--input", SMALL],
    "i_mpi_polling.py": ["--repeat", "1", "--rounds", "1"],  # still nine MPI launches on img1: ~15 s
    "i_mpi_vs_tiles.py": ["--repeat", "1"],
    "kernel_goals.py": [SAVED_RUN],
    "go_ratios.py": ["--rounds", "1", "--input", SMALL],
    "h_vs_g.py": ["--rounds", "5", "--input", SMALL],
    "kernel_before_after.py": ["--rev", "HEAD", "--widths", "40", "--height", "16", "--rounds", "1", "--kernel-sizes",
                               "3"],
    "kernel_passes.py": ["--rounds", "1", "--kernel-sizes", "3"],
    "j_vs_f_g.py": ["--rounds", "3", "--tiles", "20", "--input", SMALL],
    "kernel_startup.py": ["--rounds", "1"],
    "kernel_threads.py": ["--rounds", "1", "--kernel-sizes", "3", "--width", "300", "--height", "200"],
    "kernel_vs_opencv.py": ["--pairs", "2", "--no-asm"],
    "kernel_widths.py": ["--widths", "960", "962", "--height", "16", "--rounds", "1", "--kernel-sizes", "3"],
    "png_encoders.py": ["--rounds", "1"],
    "process_overhead.py": ["--rounds", "1", "--input", SMALL],
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
    places = {SMALL: sample_dir, SAVED_RUN: saved_run(tmp_path / "run.json")}
    args = [str(places.get(arg, arg)) for arg in CHEAPEST[script]]
    done = subprocess.run([sys.executable, str(HERE / script), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=110)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    if script == "kernel_goals.py":  # the ratios of the run written here: 2 threads at half the time of OpenCV's 1
        assert "ours on 2 thread(s) / OpenCV sepFilter2D on 1 thread: 0.50 (goal <= 0.35) MISSED" in done.stdout


def saved_run(path: Path) -> Path:
    """A pytest-benchmark run file holding what kernel_goals.py reads: test_bench_kernel.py's `kernel` group."""
    cases = [(name, k, threads) for k in (15, 21) for name, threads in
             (("ours", 1), ("ours", 2), ("OpenCV GaussianBlur", 1), ("OpenCV sepFilter2D", 1))]
    path.write_text(json.dumps({"benchmarks": [
        {"group": "kernel", "extra_info": {"implementation": name, "kernel_size": k, "threads": threads},
         "stats": {"median": 0.01 / threads, "iqr": 0.001, "rounds": 5}} for name, k, threads in cases]}))
    return path
