"""Peak memory of each approach on one big image (200 MP by default), against a bound from its design.

    python benchmarks/big_image_memory.py [--megapixels 200] [--approaches a,b.threads,...]

The image is made here, deterministically, into a temporary folder (never committed): a sample landscape
(approaches/samples.py) drawn at 1/8 the size on each side and scaled up, RGB, so 3 bytes a pixel ("raw").
Each approach then runs as a fresh process, `run_all.py --approaches X --quick --max-pixels N --no-verify
--no-charts`, and harness/footprint.py adds up the memory of that process and of everything it starts (pods,
MPI ranks, dask workers, Valkey, RabbitMQ) every 50 ms.  The check against a's pixels is left out of the
measured run (it would decode two more copies in the main process); this script compares each output with a's
file itself, after the run.  Exit status 0 when every approach stays within its bound, 1 when one does not.
Each bound (BOUNDS, in raw images) is the copies of the image the approach's design holds at once, plus room
for the interpreters (0.2-0.4 raw image each at 200 MP); docs/performance.md explains them.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from approaches.core.images import load_image  # noqa: E402
from approaches.harness.footprint import measure_command  # noqa: E402
from approaches.registry import APPROACHES  # noqa: E402
from approaches.samples import SampleSpec, make_sample  # noqa: E402

SHRINK = 8  # the landscape is drawn at 1/8 the size on each side: make_sample holds float64 copies of it
BOUNDS = {  # peak / raw image, at most: the copies each design holds at once (docs/performance.md#big-images)
    "a": 3.0,  # the load: Pillow's decoded copy (1.33) and the array copied out of it (1); the save streams
    "b.threads": 3.0,  # as a: the image and its canvas (2) are shared with the threads, the image let go at the save
    "b.processes": 3.0,  # as a: tiles in flight are bounded (pool.DEPTH per worker), each small
    "b.shm": 3.5,  # the shared segment holds the image and its canvas (2) until the next image
    "c": 3.0,  # as b.threads (one image: the pipeline's permits bound the images in flight)
    "d": 3.0,  # a, in one pod
    "e": 3.5,  # the coordinator's image (1), tiles queued one by one with halos, results, the canvas (1)
    "f": 4.5,  # an image's tiles queued in one transaction: image (1), bodies (1.2) and the broker's copy, canvas
    "g": 5.0,  # as f, and the transaction's packed commands beside the bodies
    "h": 6.0,  # the coordinator's image, padded tiles held by the client and by the workers (1.2 each), results
    "i": 3.5,  # rank 0: the load (2.3), the bands gathered into the image; the ranks' and mpiexec's interpreters
    "j": 5.0,  # as f, with the tiles in RabbitMQ instead of Redis
}


def make_image(folder: Path, megapixels: float) -> tuple[int, int]:
    """The big image as folder/big.png (4:3, RGB); its width and height."""
    height = int((megapixels * 1e6 * 3 / 4) ** 0.5)
    width = int(megapixels * 1e6 / height)
    small = make_sample(SampleSpec("big", max(1, width // SHRINK), max(1, height // SHRINK), "RGB", 7))
    small.resize((width, height), Image.Resampling.BICUBIC).save(folder / "big.png", compress_level=1)
    return width, height


def measure(letter: str, folder: Path, pixels: int, scratch: Path) -> tuple[int, int, str]:
    """One approach's run in a fresh process: (peak bytes, exit status, its last line)."""
    footprint = measure_command(
        [sys.executable, "run_all.py", "--approaches", letter, "--quick", "--no-verify", "--no-charts", "--quiet",
         "--max-pixels", str(max(pixels, 1)), "--input", str(folder), "--output", str(scratch / "out"),
         "--logs", str(scratch / "logs")], cwd=ROOT, timeout_s=1200)
    last = (footprint.output.strip().splitlines() or [""])[-1]
    return footprint.peak_bytes, footprint.returncode, last


def same_as_a(letter: str, scratch: Path, pixels: int) -> bool:
    output = scratch / "out" / APPROACHES[letter].letter / "big_blurred.png"
    reference = scratch / "out" / "a" / "big_blurred.png"
    return np.array_equal(load_image(output, pixels).pixels, load_image(reference, pixels).pixels)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=200, help="the image's size (default 200)")
    parser.add_argument("--approaches", default=",".join(BOUNDS), help="comma-separated (default: all; a is "
                        "always run first, as the reference)")
    args = parser.parse_args()
    letters = list(dict.fromkeys(["a", *args.approaches.split(",")]))
    missed = 0
    with tempfile.TemporaryDirectory(prefix="blur-big-") as directory:
        scratch = Path(directory)
        (folder := scratch / "in").mkdir()
        width, height = make_image(folder, args.megapixels)
        pixels, raw = width * height, width * height * 3
        print(f"{width}x{height} RGB ({pixels / 1e6:.0f} MP), raw {raw / 1e6:.0f} MB; peak memory of each run, "
              "its whole process tree:")
        for letter in letters:
            peak, status, last = measure(letter, folder, pixels, scratch)
            identical = status == 0 and same_as_a(letter, scratch, pixels)
            within = peak <= BOUNDS[letter] * raw
            missed += not (within and identical)
            print(f"{letter:12s} {peak / 1e6:6.0f} MB  {peak / raw:4.2f}x raw (bound {BOUNDS[letter]:.1f}x) "
                  f"{'within' if within else 'MISSED'}, {'identical to a' if identical else 'DIFFERS: ' + last}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
