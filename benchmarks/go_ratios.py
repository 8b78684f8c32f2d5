"""This suite's side of the comparison with the Go original, measured again: in-run and whole-process seconds.

    python benchmarks/go_ratios.py [--rounds 5] [--input DIR] [--json FILE]

The Go programs were timed as whole processes (docs/results/go_original.json, session "remeasured"); Go is not
installed here, so they are quoted from there, not run.  This suite's side: a, b.threads and c with each kernel
on the bundled samples img1, img3, img4 and img5 (the sizes of the course's four photos), each in a fresh process,
`run_all.py --approaches X --quick --no-verify --no-charts --quiet --kernel K`: the approach's own timed wall
(in-run) and the process's wall (whole process; no check against a, as the Go programs make none).  The rounds
are interleaved; the medians and every run are printed and, with --json, written with their provenance, from
which docs/tables.py makes the ratios (its go-ratios table, beside go_original.json).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approaches.harness.results import machine, provenance, timestamp  # noqa: E402
from approaches.samples import ensure_samples  # noqa: E402

APPROACHES = ("a", "b.threads", "c")
KERNELS = ("separable", "direct")
GO_SIZES = ("img1", "img3", "img4", "img5")  # the bundled samples with the sizes of the course's four photos


def one_run(approach: str, kernel: str, images: Path, scratch: Path) -> tuple[float, float, dict]:
    """(the approach's own timed wall, the whole process's wall, the run's settings) of one run in a fresh
    process."""
    result = scratch / "run.json"
    started = time.perf_counter()
    subprocess.run([sys.executable, "run_all.py", "--approaches", approach, "--quick", "--no-verify", "--no-charts",
                    "--quiet", "--kernel", kernel, "--input", str(images), "--output", str(scratch / "out"),
                    "--logs", str(scratch / "logs"), "--json", str(result)], cwd=ROOT, check=True)
    whole = time.perf_counter() - started
    doc = json.loads(result.read_text())
    return doc["results"][0]["wall_s"], whole, doc["config"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--input", type=Path, help="the images (default: the samples img1, img3, img4 and img5)")
    parser.add_argument("--json", type=Path, help="write the measurements here, with their provenance")
    args = parser.parse_args()
    runs: dict[tuple[str, str], dict[str, list[float]]] = {(a, k): {"in_run": [], "process": []}
                                                           for k in KERNELS for a in APPROACHES}
    with tempfile.TemporaryDirectory(prefix="blur-go-") as scratch:
        images = args.input
        if images is None:
            samples = {path.stem: path for path in ensure_samples(ROOT / "data" / "input")}
            images = Path(scratch) / "go4"
            images.mkdir()
            for name in GO_SIZES:
                shutil.copy(samples[name], images)
        config = one_run("a", "separable", images, Path(scratch))[2]  # the page cache and numba's cache filled
        for _ in range(args.rounds):
            for (approach, kernel), measured in runs.items():
                in_run, whole, _ = one_run(approach, kernel, images, Path(scratch))
                measured["in_run"].append(round(in_run, 4))
                measured["process"].append(round(whole, 4))
    rows = [{"approach": approach, "kernel": kernel, "in_run_s": round(statistics.median(m["in_run"]), 3),
             "process_s": round(statistics.median(m["process"]), 3), "in_run_runs": m["in_run"],
             "process_runs": m["process"]} for (approach, kernel), m in runs.items()]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    method = (f"run_all.py --approaches X --quick --no-verify --no-charts --quiet --kernel K on the samples "
              f"{', '.join(GO_SIZES) if args.input is None else args.input}, each in a fresh process, {args.rounds} "
              f"interleaved rounds, medians: in-run is the approach's own timed wall, whole process the process's "
              f"wall; kernel {config['kernel_size']}, {config['workers']} workers, PNGs by {config['png_encoder']}")
    print(f"{machine()}; load average at the end {load}")
    print(method)
    for row in rows:
        print(f"  {row['approach']:>9} {row['kernel']:>9}: in-run {row['in_run_s']:.3f} s "
              f"(runs {row['in_run_runs']}), whole process {row['process_s']:.3f} s (runs {row['process_runs']})")
    if args.json:
        args.json.write_text(json.dumps({"kind": "go-port", "provenance": provenance(), "when": timestamp(),
                                         "machine": machine(), "load_average": load, "method": method,
                                         "rows": rows}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
