"""h (dask.distributed) against g (the hand-built service) on one machine, and what one dask task costs.

    python benchmarks/h_vs_g.py [--rounds 5] [--workers N] [--kernel separable|direct] [--tile-size 256]
    python benchmarks/h_vs_g.py --recovery [--rounds 5] [--workers N]

- Both with worker processes, the same number of them (default: the cores present), one thread each:
  g on embedded:// (a Valkey server started here) with N worker pods of 1 thread, h on a LocalCluster
  of N worker processes.  Each round runs the two back to back, in alternating order, after one round
  that is dropped (it fills numba's cache and the OS's); every output of the first kept round is checked
  against a's pixels.
- Per run: wall time (start-up included, as run_all.py times it); the cluster ready (the end of the
  last "start" span: g's pods spawned and connected, h's dask imported and LocalCluster up, the kernel
  loaded in every worker); the first tile blurred (both have loaded the first image by then); the work
  (first tile blurred to last image saved).  Medians with min..max, and h/g per round.
- Per-task overhead: a no-op task's round trip (submit, run on a worker process, result back), one at a
  time, on the same kind of LocalCluster; and the time per task when many are submitted at once.
- --recovery: h under its two chaos scenarios (one worker process killed, every one killed, once the
  first image's tiles are in flight, TILE_DELAY_S per tile as run_all.py chaos uses), each round: tiles
  lost, redone, finished twice, and the recovery time, from the kill to the end of the last lost tile
  run again.
"""

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from approaches import g_service, h_dask
from approaches.cluster.dask_cluster import scratch_space
from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images, load_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import KERNELS, blur, warm_up
from approaches.core.trace import Tracer
from approaches.harness.chaos import DASK_SCENARIOS, DEMO_SETTINGS, DaskFaults
from approaches.samples import ensure_samples

TILE_DELAY_S = DEMO_SETTINGS.tile_delay_s  # as run_all.py chaos: a kill finds every worker holding a tile

RUNS: dict[str, Callable[[Job, Tracer], Outcome]] = {
    "g": lambda job, tracer: g_service.run(job, tracer, pods=job.config.workers, threads=1),
    "h": h_dask.run,
}


def timed(letter: str, config: RunConfig, sources: tuple, check: bool) -> tuple[float, float, float, float]:
    """(wall, cluster ready, start-up, work) seconds of one run; SystemExit if an image failed or differs from a.

    Cluster ready: the end of the last "start" span (g: every pod spawned, connected, its kernel loaded;
    h: dask imported, the LocalCluster's processes up, the kernel loaded in each worker)."""
    tracer = Tracer()
    started = time.perf_counter()
    outcome = RUNS[letter](Job(config, sources, letter), tracer)
    wall = time.perf_counter() - started
    if outcome.failed or len(outcome.saved) != len(sources):
        raise SystemExit(f"{letter} failed: {outcome.failed}")
    if check:
        for saved in outcome.saved:
            expected = blur(load_image(saved.source).pixels, config.kernel_size, method=config.kernel)
            if not np.array_equal(load_image(saved.output).pixels, expected):
                raise SystemExit(f"{letter}: {saved.name} differs from a's pixels")
    ready = max(span.end for span in tracer.spans if span.stage == "start")
    first_blur = min(span.start for span in tracer.spans if span.stage == "blur")
    last_save = max(span.end for span in tracer.spans if span.stage == "save")
    return wall, ready - started, first_blur - started, last_save - first_blur


def noop(value: int) -> int:
    return value


def task_overhead(workers: int, one_by_one: int, at_once: int) -> tuple[list[float], float]:
    """(round trips of single no-op tasks, seconds per task of at_once no-ops submitted together)."""
    from distributed import Client, LocalCluster, wait

    with scratch_space(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        client.submit(noop, -1, key="warm").result()
        trips = []
        for i in range(one_by_one):
            start = time.perf_counter()
            client.submit(noop, i, key=f"one-{i}").result()
            trips.append(time.perf_counter() - start)
        start = time.perf_counter()
        wait(client.map(noop, range(at_once), key=[f"many-{i}" for i in range(at_once)]))
        return trips, (time.perf_counter() - start) / at_once


def under_chaos(config: RunConfig, sources: tuple, scenario: str) -> DaskFaults:
    """One run of h under a chaos scenario; its DaskFaults.  SystemExit if an image failed or nothing was lost."""
    faults = DaskFaults(scenario)
    outcome = h_dask.run(Job(replace(config, settings=DEMO_SETTINGS), sources, "h"), Tracer(), chaos=faults)
    if outcome.failed or len(outcome.saved) != len(sources):
        raise SystemExit(f"h under {scenario} failed: {outcome.failed}")
    if not faults.struck or faults.recovery_s is None:
        raise SystemExit(f"h under {scenario}: the kill found no tile in flight")
    return faults


def recovery(config: RunConfig, sources: tuple, rounds: int) -> None:
    """h's chaos scenarios, round after round: what was lost, and how long until the last lost tile was redone."""
    print(f"h on {len(sources)} sample images, {config.workers} worker processes, {TILE_DELAY_S:g} s per tile, "
          f"{rounds} rounds per scenario")
    print("  scenario     tiles lost  redone  finished twice  recovery")
    for scenario in DASK_SCENARIOS:
        seen = [under_chaos(config, sources, scenario) for _ in range(rounds)]
        for faults in seen:
            print(f"  {scenario:11s}  {len(faults.lost):10d}  {faults.redone:6d}  {faults.done_twice:14d}  "
                  f"{faults.recovery_s * 1e3:6.0f} ms")
        print(f"  {scenario:11s}  recovery median {spread([faults.recovery_s for faults in seen])}")


def spread(values: list[float], scale: float = 1e3, unit: str = "ms") -> str:
    return f"{statistics.median(values) * scale:7.0f} {unit} ({min(values) * scale:.0f}..{max(values) * scale:.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--kernel", choices=KERNELS, default="separable", help="direct: the compute-bound workload")
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    parser.add_argument("--recovery", action="store_true", help="h's chaos scenarios and recovery times instead")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("--rounds: at least 5, so that a median and a spread mean something")
    ensure_samples(args.input)
    sources = tuple(find_images(args.input))
    warm_up(21, method=args.kernel)
    with tempfile.TemporaryDirectory() as output:
        config = RunConfig(input_dir=args.input, output_dir=Path(output), kernel_size=21, tile_size=args.tile_size,
                           workers=args.workers, broker="embedded://", kernel=args.kernel)
        (recovery if args.recovery else compare)(config, sources, args.rounds)
    return 0


def compare(config: RunConfig, sources: tuple, rounds: int) -> None:
    """g and h round by round, in alternating order; then dask's per-task overhead."""
    print(f"{len(sources)} sample images, k=21 ({config.kernel}), tile {config.tile_size}, {config.workers} worker "
          f"processes of 1 thread each; {rounds} rounds after one dropped (cores present: {cores_present()})")
    runs: dict[str, list[tuple[float, float, float, float]]] = {letter: [] for letter in RUNS}
    for round_ in range(rounds + 1):  # round 0 fills caches and is dropped
        for letter in ("g", "h") if round_ % 2 else ("h", "g"):
            measured = timed(letter, config, sources, check=round_ == 1)
            if round_:
                runs[letter].append(measured)
    columns = ("wall", "cluster ready", "first blur", "work")
    print("        wall (start-up included)    cluster ready               start-up to first blur      "
          "first blur to last save")
    for letter in RUNS:
        print(f"  {letter}   " + "".join(f"  {spread(list(column)):26s}" for column in zip(*runs[letter], strict=True)))
    for column, name in enumerate(columns):
        ratio = [h[column] / g[column] for g, h in zip(runs["g"], runs["h"], strict=True)]
        print(f"  h / g {name}: median x{statistics.median(ratio):.2f} (per round x{min(ratio):.2f} .. "
              f"x{max(ratio):.2f})")
    trips, amortised = task_overhead(config.workers, one_by_one=200, at_once=2000)
    print(f"  a no-op dask task, one at a time: round trip median {statistics.median(trips) * 1e3:.2f} ms "
          f"(p10 {np.percentile(trips, 10) * 1e3:.2f}, p90 {np.percentile(trips, 90) * 1e3:.2f}, "
          f"{len(trips)} tasks); 2000 at once: {amortised * 1e3:.2f} ms per task")


if __name__ == "__main__":
    sys.exit(main())
