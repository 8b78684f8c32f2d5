"""The kernel against an earlier revision of itself and OpenCV, interleaved in one process: what a change bought.

    python benchmarks/kernel_before_after.py [--rev 2ad5c78] [--widths 1000 1003 ...] [--height 1400]
                                             [--rounds 21] [--kernel-sizes 15 21]

Two runs of a script on a shared machine see different loads, so a before/after figure taken from two runs says
little. Here the earlier kernel (approaches/core/kernel.py at --rev, read with `git show` into a temporary
folder and imported under another name; numba compiles it there in a child process, and this one
loads it from the cache) runs in the same process as today's: each round blurs with before, after and
cv2.GaussianBlur (one thread) back to back, the order rotating, on RGBA and RGB crops of the photo-like samples.
Printed: best-of ms of each, after / before, and each / OpenCV; before and after must give the same pixels. The
default widths are where the earlier kernel's float rows lay a multiple of 4 KiB apart (1004 at k = 21, 1010 at
k = 15), their neighbours, and 1000.
"""

import argparse
import importlib
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np

from approaches.core import kernel
from approaches.samples import SAMPLES, make_sample

REPO = Path(__file__).resolve().parent.parent


def source_at(rev: str, module: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:approaches/core/{module}.py"], capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"cannot read approaches/core/{module}.py at {rev!r}: {done.stderr.strip()}")
    return done.stdout


def kernel_at(rev: str, folder: Path) -> ModuleType:
    """approaches/core/kernel.py as it was at rev, imported from folder as module `kernel_before`.

    The approaches.core modules it imports are taken from rev too, as `<name>_before` beside it.
    """
    source = source_at(rev, "kernel")
    for name in sorted(set(re.findall(r"^from approaches\.core\.(\w+) import", source, re.M))):
        (folder / f"{name}_before.py").write_text(source_at(rev, name))
        source = source.replace(f"from approaches.core.{name} import", f"from {name}_before import")
    (folder / "kernel_before.py").write_text(source)
    # numba compiles it in a child, and this process loads it from the cache the child leaves: a kernel compiled
    # in the process that times it ran ~3x slower there (docs/kernel.md)
    subprocess.run([sys.executable, "-c", "import numpy, kernel_before; "
                    "kernel_before.blur(numpy.zeros((1, 1, 3), numpy.uint8), 3)"], cwd=folder, check=True)
    sys.path.insert(0, str(folder))
    return importlib.import_module("kernel_before")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="2ad5c78", help="the git revision whose kernel is 'before'")
    parser.add_argument("--widths", type=int, nargs="+", default=[1000, 1003, 1004, 1005, 1009, 1010, 1011])
    parser.add_argument("--height", type=int, default=1400)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--kernel-sizes", type=int, nargs="+", default=[15, 21])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    samples = {"RGBA": np.asarray(make_sample(SAMPLES[0])), "RGB": np.asarray(make_sample(SAMPLES[1]))}
    kernel.warm_up(method="separable")  # today's, compiled (or loaded) before anything is timed
    with tempfile.TemporaryDirectory() as folder:
        before = kernel_at(args.rev, Path(folder))
        print(f"before: the kernel at {args.rev}; after: the working tree's.  Best of {args.rounds} interleaved rounds")
        for name, sample in samples.items():
            for k in args.kernel_sizes:
                for width in args.widths:
                    image = np.ascontiguousarray(sample[:args.height, :width])
                    cases = {"before": lambda: before.blur(image, k), "after": lambda: kernel.blur(image, k),  # noqa: B023
                             "opencv": lambda: cv2.GaussianBlur(image, (k, k), k / 3,  # noqa: B023
                                                                borderType=cv2.BORDER_REPLICATE)}
                    if not np.array_equal(cases["before"](), cases["after"]()):
                        print(f"  {name} {width}x{image.shape[0]} k={k}: before and after DIFFER")
                        return 1
                    best = dict.fromkeys(cases, float("inf"))
                    names = list(cases)
                    for r in range(args.rounds):
                        for case in names[r % 3:] + names[:r % 3]:
                            start = time.perf_counter()
                            cases[case]()
                            best[case] = min(best[case], time.perf_counter() - start)
                    print(f"  {name} {width}x{image.shape[0]} k={k}: before {best['before'] * 1e3:6.2f} ms, after "
                          f"{best['after'] * 1e3:6.2f} ms (x{best['after'] / best['before']:.3f}), OpenCV "
                          f"{best['opencv'] * 1e3:6.2f} ms; / OpenCV: before {best['before'] / best['opencv']:.2f}, "
                          f"after {best['after'] / best['opencv']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
