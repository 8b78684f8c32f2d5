"""The kernel's goal ratios from one saved pytest-benchmark run, so both sides of a ratio share its machine noise.

    python benchmarks/kernel_goals.py [RUN.json]    (default: the newest run saved under .benchmarks/)

Goals at k = 15 and 21, as ratios of medians: ours on 1 thread <= 0.6 x OpenCV on 1 thread, and ours on
2 threads <= 0.35 x OpenCV on 1 thread.  Each is given against both OpenCV calls of the `kernel` group:
GaussianBlur (OpenCV's own fixed-point path) and sepFilter2D with our weights.  Exit status 1 when a goal
is missed or the run lacks the benchmarks it needs.

pytest-benchmark times one case after another, so on a shared machine a change of load between two cases
moves their ratio; benchmarks/kernel_vs_opencv.py interleaves ours and OpenCV round by round instead.
"""

import argparse
import json
import sys
from pathlib import Path

KERNEL_SIZES = (15, 21)
GOALS = {1: 0.6, 2: 0.35}  # our threads -> the most our time may be, as a fraction of OpenCV's on 1 thread

Key = tuple[str, int, int]  # (implementation, kernel size, threads), as test_bench_kernel.py records them


def newest_run(storage: Path) -> Path:
    runs = sorted(storage.glob("*/*.json"), key=lambda path: path.stat().st_mtime)
    if not runs:  # status 2, a mistake: 1 says a goal was missed
        print(f"kernel_goals.py: no saved run under {storage}/: run the benchmarks with --benchmark-autosave first",
              file=sys.stderr)
        sys.exit(2)
    return runs[-1]


def kernel_stats(run: dict) -> dict[Key, dict]:
    """The statistics of every `kernel` benchmark in a saved run, by what it ran."""
    return {(info["implementation"], info["kernel_size"], info["threads"]): bench["stats"]
            for bench in run["benchmarks"] if bench["group"] == "kernel" and (info := bench["extra_info"])}


def shown(stats: dict) -> str:
    return f"{stats['median'] * 1e3:.1f} ms (median, IQR {stats['iqr'] * 1e3:.1f}, n={stats['rounds']})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="a JSON file saved by pytest-benchmark")
    path = parser.parse_args().run or newest_run(Path(".benchmarks"))
    stats = kernel_stats(json.loads(path.read_text()))
    print(f"{path}")
    missed = 0
    for k in KERNEL_SIZES:
        peers = sorted(name for name, size, threads in stats if name.startswith("OpenCV") and (size, threads) == (k, 1))
        ours = {threads: stats.get(("ours", k, threads)) for threads in GOALS}
        if not peers or None in ours.values():
            print(f"k={k}: the run lacks ours on {'/'.join(map(str, GOALS))} threads or OpenCV on 1 thread "
                  "(OpenCV: pip install -e '.[bench]')")
            missed += 1
            continue
        print(f"k={k}")
        for threads, ours_stats in ours.items():
            print(f"  ours, {threads} thread(s): {shown(ours_stats)}")
        for peer in peers:
            print(f"  {peer}, 1 thread: {shown(stats[(peer, k, 1)])}")
            for threads, goal in GOALS.items():
                ratio = ours[threads]["median"] / stats[(peer, k, 1)]["median"]
                missed += ratio > goal
                print(f"    ours on {threads} thread(s) / {peer} on 1 thread: {ratio:.2f} "
                      f"(goal <= {goal}) {'met' if ratio <= goal else 'MISSED'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
