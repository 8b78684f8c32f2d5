"""What a whole process costs beyond the work: a one-approach run less the approach's own time, and --version/--help.

    python benchmarks/process_overhead.py [--rounds 11] [--approach c] [--input DIR] [--goal 0.7] [--cli-goal 0.15]

Each round runs, interleaved, each in a fresh process: `run_all.py --approaches c --quick --no-verify --no-charts
--quiet --json FILE` (its wall time, less c's own timed wall read from FILE, is the overhead); the same with scipy
hidden from it, as a plain `pip install -e .` has it (the dev extra installs scipy for the tests, and numba's first
call then imports scipy.linalg to look for BLAS, which the kernel never uses); `run_all.py --version` and `--help`;
and three processes that say what the overhead is made of: the interpreter alone (`python -c pass`); importing
numpy, Pillow, numba and the kernel, then loading the compiled kernel from numba's cache (warm_up), timed inside
the process; and the same under -X importtime, for the part of warm_up that was scipy.linalg.  What is left is the
harness itself (its own imports, the checks before a run, the results files).  Printed: the median and the fastest
of the rounds.  Exit status 0 when the median overheads, with and without scipy, and the median --version and
--help are within their goals; 1 when one is missed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approaches.harness.results import machine  # noqa: E402

WITHOUT_SCIPY = ("import sys; sys.modules['scipy'] = None; from approaches.harness.cli import run_as_script; "
                 "run_as_script(prog='run_all.py')")  # import scipy now fails, as where it is not installed
PARTS = """
import json, sys, time
start = time.perf_counter()
import numpy
numpy_at = time.perf_counter()
import PIL.Image
pillow_at = time.perf_counter()
import numba
numba_at = time.perf_counter()
import approaches.core.kernel as kernel
kernel_at = time.perf_counter()
kernel.warm_up(21, method=sys.argv[1])
print(json.dumps({"numpy": numpy_at - start, "Pillow": pillow_at - numpy_at, "numba": numba_at - pillow_at,
                  "kernel module": kernel_at - numba_at, "kernel loaded": time.perf_counter() - kernel_at}))
"""


def timed(command: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    """The wall seconds of a fresh process running command from the checkout's root, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done


def one_run(prefix: list[str], approach: str, folders: list[str], scratch: Path) -> tuple[float, float]:
    """(whole process, the approach's own median wall) of one --quick --no-verify run."""
    result = scratch / "run.json"
    wall, _ = timed([*prefix, "--approaches", approach, "--quick", "--no-verify", "--no-charts", "--quiet",
                     "--json", str(result), "--logs", str(scratch / "logs"), "--output", str(scratch / "out"),
                     *folders])
    return wall, json.loads(result.read_text())["results"][0]["wall_s"]


def scipy_seconds(importtime: str) -> float:
    """scipy.linalg's cumulative import time in a -X importtime printout (0 where it was not imported)."""
    for line in importtime.splitlines():
        fields = line.split("|")
        if len(fields) == 3 and fields[2].strip() == "scipy.linalg":
            return int(fields[1]) / 1e6
    return 0.0


def line(name: str, values: list[float], goal: float | None = None) -> tuple[str, bool]:
    median = statistics.median(values)
    met = goal is None or median <= goal
    verdict = "" if goal is None else f" (goal <= {goal:.2f} s) {'met' if met else 'MISSED'}"
    return f"  {name}: {median:.3f} s (fastest {min(values):.3f}){verdict}", met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--approach", default="c")
    parser.add_argument("--input", type=Path, help="folder of images (default: run_all.py's, data/input)")
    parser.add_argument("--kernel", choices=("separable", "direct"), default="separable")
    parser.add_argument("--goal", type=float, default=0.7, help="most seconds of overhead, median (default 0.7)")
    parser.add_argument("--cli-goal", type=float, default=0.15, help="most seconds for --version and --help")
    args = parser.parse_args()
    python = sys.executable
    folders = ["--kernel", args.kernel, *(["--input", str(args.input.resolve())] if args.input else [])]
    runs = {"as installed here": [python, "run_all.py"], "scipy hidden": [python, "-c", WITHOUT_SCIPY]}
    times: dict[str, list[float]] = {}

    def keep(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    with tempfile.TemporaryDirectory(prefix="blur-overhead-") as scratch:
        one_run(runs["as installed here"], args.approach, folders, Path(scratch))  # samples made, caches filled
        for _ in range(args.rounds):
            for case, prefix in runs.items():
                whole, own = one_run(prefix, args.approach, folders, Path(scratch))
                keep(f"whole process, {case}", whole)
                keep(f"{args.approach}'s own wall, {case}", own)
                keep(f"overhead, {case}", whole - own)
            for flag in ("--version", "--help"):
                keep(f"run_all.py {flag}", timed([python, "run_all.py", flag])[0])
            keep("interpreter (python -c pass)", timed([python, "-c", "pass"])[0])
            for name, seconds in json.loads(timed([python, "-c", PARTS, args.kernel])[1].stdout).items():
                keep(name, seconds)
            keep("of which scipy.linalg", scipy_seconds(timed([python, "-X", "importtime", "-c", PARTS,
                                                               args.kernel])[1].stderr))
    parts = ["interpreter (python -c pass)", "numpy", "Pillow", "numba", "kernel module", "kernel loaded"]
    overhead = statistics.median(times["overhead, as installed here"])
    harness = overhead - sum(statistics.median(times[name]) for name in parts)
    given = f" --input {args.input}" if args.input else ""
    print(f"{machine()}; load average at the end {', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"{args.rounds} rounds, interleaved, each a fresh process: run_all.py --approaches {args.approach} --quick "
          f"--no-verify --no-charts --quiet --kernel {args.kernel}{given}")
    met = True
    for name, values in times.items():
        goal = {"overhead, as installed here": args.goal, "overhead, scipy hidden": args.goal,
                "run_all.py --version": args.cli_goal, "run_all.py --help": args.cli_goal}.get(name)
        text, ok = line(name, values, goal)
        met &= ok
        if name == "interpreter (python -c pass)":
            print("what the overhead is made of (medians of separate fresh processes):")
        print(text)
    print(f"  the harness itself (the overhead, as installed here, less the parts above): {harness:.3f} s")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
