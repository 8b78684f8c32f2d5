"""What moving a tile to a worker process costs: pickled through pipes (b.processes) or coordinates only (b.shm).

    python benchmarks/bc_transfer.py [--tiles 200] [--repeat 5]

For each tile size (64 … 1024, k = 21, RGBA) one forked worker of the WorkerPool that b uses answers a
stream of tiles without blurring them, so only moving the pixels is timed.  Both ways cut one padded tile
and paste one block per tile; what differs is where, and what crosses the pipe:
- pickled (b.processes): the coordinator cuts, the padded tile is pickled to the worker and a block the
  tile's size pickled back, and the assembler pastes it;
- shared memory (b.shm): the task is the tile's coordinates, and the worker cuts from and pastes into
  shared memory.
Printed per tile, medians over the repeats: both, pickle.dumps + loads alone for that task and result,
and the kernel's time to blur the tile, for scale.
"""

import argparse
import pickle
import statistics
import sys
import threading
import time
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from approaches.b_tile_parallel import SharedPixels, SharedRef
from approaches.core.kernel import blur_tile
from approaches.core.pool import WorkerPool
from approaches.core.tasks import TileAnswer, TileTask
from approaches.core.tiling import Tile, cut, paste

K, RADIUS = 21, 10
TILE_SIZES = (64, 128, 256, 512, 1024)


def send_back(task: TileTask, span) -> np.ndarray:
    """b.processes without the blur: answer with a block the size of the tile."""
    return task.payload[RADIUS:-RADIUS, RADIUS:-RADIUS]


def in_shared_memory() -> object:
    """b.shm without the blur: cut from the shared image, paste into the shared canvas."""
    attached: dict[str, SharedMemory] = {}

    def work(task: TileTask, span) -> None:
        ref: SharedRef = task.payload
        if ref.segment not in attached:
            attached[ref.segment] = SharedMemory(ref.segment)
        segment = attached[ref.segment]
        size = int(np.prod(ref.shape))
        source = np.ndarray(ref.shape, np.uint8, segment.buf, 0)
        canvas = np.ndarray(ref.shape, np.uint8, segment.buf, size)
        paste(canvas, task.tile, cut(source, task.tile, RADIUS)[RADIUS:-RADIUS, RADIUS:-RADIUS])

    return work


def stream(pool: WorkerPool, tiles: list[Tile], payload, canvas: np.ndarray) -> float:
    """Seconds per tile to push every tile through the pool while a thread collects (and pastes) results."""

    def collect() -> None:
        for _ in tiles:
            result = pool.result()
            if result.pixels is not None:
                paste(canvas, result.tile, result.pixels)

    collector = threading.Thread(target=collect)
    start = time.perf_counter()
    collector.start()
    for tile in tiles:
        pool.submit(TileTask("bench", tile, payload(tile)))
    collector.join()
    return (time.perf_counter() - start) / len(tiles)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=200, help="tiles per measurement")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    image = np.random.default_rng(0).integers(0, 256, (2048 + 2 * RADIUS, 2048 + 2 * RADIUS, 4), dtype=np.uint8)
    canvas = np.empty_like(image)
    blur_tile(cut(image, Tile(0, 0, 0, 8, 8), RADIUS), K)  # compile (or load) the kernel outside the timing
    print(f"per tile, k={K}, RGBA, medians of {args.repeat} x {args.tiles} tiles, one worker process")
    print(f"{'tile':>5} {'padded KiB':>10} {'pickled us':>11} {'shared us':>10} {'pickle alone us':>16} "
          f"{'blur us':>8}")
    with SharedPixels() as arena:
        _, _, ref = arena.hold(image)
        with WorkerPool(send_back, 1, processes=True) as copies, WorkerPool(in_shared_memory(), 1,
                                                                             processes=True) as shared:
            for size in TILE_SIZES:
                positions = [(x, y) for y in range(0, 2048, size) for x in range(0, 2048, size)]
                tiles = [Tile(i, *positions[i % len(positions)], size, size) for i in range(args.tiles)]
                pickled, in_place, alone, blurring = [], [], [], []
                for _ in range(args.repeat):
                    pickled.append(stream(copies, tiles, lambda tile: cut(image, tile, RADIUS), canvas))
                    in_place.append(stream(shared, tiles, lambda tile: ref, canvas))
                    padded = cut(image, tiles[0], RADIUS)
                    task = TileTask("bench", tiles[0], padded)
                    result = TileAnswer("bench", tiles[0], padded[RADIUS:-RADIUS, RADIUS:-RADIUS].copy(), None, ())
                    start = time.perf_counter()
                    pickle.loads(pickle.dumps(task))
                    pickle.loads(pickle.dumps(result))
                    alone.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    blur_tile(padded, K)
                    blurring.append(time.perf_counter() - start)
                med = [statistics.median(series) * 1e6 for series in (pickled, in_place, alone, blurring)]
                print(f"{size:>5} {padded.nbytes / 1024:>10.0f} {med[0]:>11.0f} {med[1]:>10.0f} {med[2]:>16.0f} "
                      f"{med[3]:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
