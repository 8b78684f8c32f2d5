"""Peak memory of a whole run against the number of images: it must not grow with them (the check against
a once held every reference image, 1.4 GB at 200 images).

    python benchmarks/run_memory.py [--small 5] [--large 200] [--approaches a]

Each count runs `run_all.py --quick`-style (one pass, no charts) as a child process on copies of the bundled
samples, and the child's peak resident memory (ru_maxrss) is read back; the ratio large/small is the figure.
"""

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approaches.samples import ensure_samples  # noqa: E402


def peak_mib(count: int, approaches: str, scratch: Path) -> float:
    """Peak RSS in MiB of one run over `count` images (the samples, copied round-robin)."""
    samples = ensure_samples(scratch / "samples")
    folder = scratch / f"in{count}"
    folder.mkdir()
    for i in range(count):
        shutil.copy(samples[i % len(samples)], folder / f"img{i:04d}.png")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "run_all.py", "--approaches", approaches, "--input", str(folder), "--output",
                    str(scratch / f"out{count}"), "--logs", str(scratch / "logs"), "--no-charts", "--quiet",
                    "--repeat", "1"], cwd=ROOT, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak < before:  # ru_maxrss of children is the largest so far: run the larger count second
        raise RuntimeError("run the smaller count first")
    return peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=5)
    parser.add_argument("--large", type=int, default=200)
    parser.add_argument("--approaches", default="a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="blur-memory-") as scratch:
        small = peak_mib(args.small, args.approaches, Path(scratch))
        large = peak_mib(args.large, args.approaches, Path(scratch))
    print(f"approaches {args.approaches}: peak RSS {small:.0f} MiB at {args.small} images, {large:.0f} MiB at "
          f"{args.large} images: {large / small:.2f}x (goal <= 1.3x)")


if __name__ == "__main__":
    main()
