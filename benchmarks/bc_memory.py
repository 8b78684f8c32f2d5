"""Peak memory of c as the images grow in number: with 50 images it should peak at most 1.3x as high as with 5.

    python benchmarks/bc_memory.py [--counts 5 50] [--approach c] [--workers N]

The images are copies of the samples.  Each count runs in a fresh Python process, since a process's peak
resident memory (ru_maxrss) only ever grows; the child reports its peak before the run (the interpreter,
numpy, numba and the compiled kernel) and after it.
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import find_images
from approaches.core.job import Job
from approaches.core.kernel import warm_up
from approaches.core.trace import Tracer
from approaches.registry import APPROACHES
from approaches.samples import ensure_samples


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(input_dir: Path, approach: str, workers: int) -> None:
    """Run one approach over input_dir and print its peak memory before and after, as JSON."""
    warm_up(21)
    before = peak_mib()
    with tempfile.TemporaryDirectory() as output:
        config = RunConfig(input_dir=input_dir, output_dir=Path(output), kernel_size=21, workers=workers)
        sources = tuple(find_images(input_dir))
        outcome = APPROACHES[approach].run(Job(config, sources, approach), Tracer())
    print(json.dumps({"images": len(outcome.saved), "before_mib": before, "peak_mib": peak_mib()}))


def measure(count: int, samples: list[Path], approach: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        for i in range(count):
            sample = samples[i % len(samples)]
            shutil.copy(sample, Path(directory) / f"{sample.stem}_{i:03d}.png")
        command = [sys.executable, __file__, "--child", directory, "--approach", approach, "--workers", str(workers)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs=2, default=(5, 50), metavar=("FEW", "MANY"))
    parser.add_argument("--approach", default="c")
    parser.add_argument("--workers", type=int, default=cores_present())
    parser.add_argument("--input", type=Path, default=Path("data/input"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.approach, args.workers)
        return 0
    samples = ensure_samples(args.input)
    few, many = (measure(count, samples, args.approach, args.workers) for count in args.counts)
    for result in (few, many):
        peak, before = result["peak_mib"], result["before_mib"]
        print(f"{args.approach}: {result['images']:3d} images: peak {peak:.0f} MiB "
              f"({before:.0f} MiB before the run, so the run added {peak - before:.0f} MiB)")
    ratio = many["peak_mib"] / few["peak_mib"]
    print(f"peak with {args.counts[1]} / peak with {args.counts[0]}: {ratio:.2f} (goal <= 1.3) "
          f"{'met' if ratio <= 1.3 else 'MISSED'}")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
