"""i's bands and halo exchange against a and the tile approaches, with i's start-up apart from its work.

    python benchmarks/i_mpi_vs_tiles.py [--repeat 5] [--kernel direct] [--kernel-size 21] [--workers 2]
                                        [--approaches a,b.processes,g,i]

Every approach blurs the five samples into a scratch folder; the approaches take turns within
each repeat, so a busy spell of the machine hits them all alike.  Printed per approach: wall seconds
(median, min, max over the repeats), per image, and against a; for i also its "start" span (mpiexec,
N interpreters, imports and kernel load, until every rank is at the barrier) and the rest of its wall
("work": the bulk-synchronous steps, rank 0's load and save included, and the job's end), as well as
the seconds its ranks spent per stage, summed over ranks, from the last repeat.  g runs on memory://
(its pods are threads), as run_all.py runs it by default.
"""

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from approaches.core.config import RunConfig
from approaches.core.images import find_images
from approaches.core.job import Job
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from approaches.samples import ensure_samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--kernel", default="separable")
    parser.add_argument("--kernel-size", type=int, default=21)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--approaches", default="a,b.processes,g,i")
    args = parser.parse_args()
    letters = args.approaches.split(",")
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "input"
        ensure_samples(inputs)
        sources = tuple(find_images(inputs))
        config = RunConfig(input_dir=inputs, output_dir=Path(folder) / "out", kernel_size=args.kernel_size,
                           kernel=args.kernel, workers=args.workers)
        walls: dict[str, list[float]] = defaultdict(list)
        starts: list[float] = []
        stages: dict[str, float] = {}
        for _ in range(args.repeat):
            for letter in letters:
                tracer = Tracer()
                began = time.perf_counter()
                outcome = APPROACHES[letter].run(Job(config, sources, letter), tracer)
                walls[letter].append(time.perf_counter() - began)
                if outcome.failed:
                    raise SystemExit(f"{letter}: {outcome.failed[0].path}: {outcome.failed[0].reason}")
                if letter == "i":
                    starts.append(max(s.end for s in tracer.spans if s.stage == "start") - began)
                    stages = _by_stage(tracer)
    reference = statistics.median(walls["a"]) if "a" in walls else None
    print(f"{len(sources)} samples, k = {args.kernel_size}, {args.kernel} kernel, {args.workers} workers, "
          f"{args.repeat} repeats, interleaved")
    for letter, seconds in walls.items():
        against = f"  {reference / statistics.median(seconds):.2f}x a" if reference else ""
        print(f"  {letter:12s} wall {_spread(seconds)}  per image {statistics.median(seconds) / len(sources):.3f} s"
              f"{against}")
    if starts:
        work = [wall - start for wall, start in zip(walls["i"], starts, strict=True)]
        print(f"  i: start {_spread(starts)}; work {_spread(work)}")
        print("  i's stages, seconds summed over ranks (last repeat): "
              + ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in stages.items()))


def _by_stage(tracer: Tracer) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    for span in tracer.spans:
        if span.stage != "start":
            seconds[span.stage] += span.seconds
    return dict(seconds)


def _spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"


if __name__ == "__main__":
    main()
