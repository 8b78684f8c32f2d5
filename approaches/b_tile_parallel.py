"""b — Tile-parallel: N workers blur the tiles of one image at once; images one after another.

Per image, the coordinator loads it and queues its tiles into a bounded tile queue, N workers blur them,
and a result queue feeds the assembler, which puts the image together and saves it.  The same shape runs on
three executors, each a lesson:

- b.threads: the kernel releases the GIL (``nogil=True``), so threads really blur at the same time.
  Threads share memory, so a task is the tile's rectangle with the image and its canvas: the worker
  reads the halo from the image and writes into the canvas, and no pixel is copied: what a thread needs
  is already in memory it shares.  (benchmarks/bc_targets.py times the kernel both ways: in place, and
  on padded copies pasted back.)  The coordinator and assembler are left with planning and counting;
- b.processes: every padded tile is pickled into a worker process and its blurred block pickled back,
  about twice the image's bytes through pipes (benchmarks/bc_transfer.py prints the cost per tile);
- b.shm: the image and its canvas live in ``multiprocessing.shared_memory``; a task is a tile's
  coordinates, the worker blurs from the shared image into the shared canvas, and no pixels cross a pipe.

Images are still taken one after another, so while one is loaded or saved every worker waits: the
timeline shows the gaps, and approach c removes them.
"""

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import NamedTuple

import numpy as np

from approaches.core.errors import ImageError
from approaches.core.images import ImageSource, load_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur_into, warm_up
from approaches.core.pool import DEEP, DEPTH, WorkerLost, WorkerPool
from approaches.core.tasks import Assembly, InPlace, SpanFor, TileTask, Work, blur_in_place, blur_padded
from approaches.core.tiling import cut, plan_tiles
from approaches.core.trace import Tracer

COORDINATOR, ASSEMBLER = "coordinator", "assembler"


def run_threads(job: Job, tracer: Tracer) -> Outcome:
    return _run(job, tracer, processes=False, shared=False)


def run_processes(job: Job, tracer: Tracer) -> Outcome:
    return _run(job, tracer, processes=True, shared=False)


def run_shared_memory(job: Job, tracer: Tracer) -> Outcome:
    return _run(job, tracer, processes=True, shared=True)


def _run(job: Job, tracer: Tracer, *, processes: bool, shared: bool) -> Outcome:
    config, outcome = job.config, Outcome()
    warm_up(config.kernel_size, method=config.kernel)  # compile (or load) it once: forked workers inherit it
    with ExitStack() as stack:
        arena = stack.enter_context(SharedPixels()) if shared else None  # before the fork, see SharedPixels
        work = (_blur_in_shared_memory if shared else blur_padded if processes else blur_in_place)(
            config.kernel_size, config.truncate, config.kernel)
        copies = processes and not shared  # b.processes: every queued task holds a padded tile
        pool = stack.enter_context(WorkerPool(work, config.workers, processes=processes,
                                              depth=DEPTH if copies else DEEP, fault=config.settings.fault))
        assembler = stack.enter_context(ThreadPoolExecutor(1, thread_name_prefix=ASSEMBLER))
        for source in job.images:
            done = _blur_one(source, job, tracer, pool, assembler, arena)
            (outcome.saved if isinstance(done, Saved) else outcome.failed).append(done)
            job.progress()
    return outcome


def _blur_one(source: ImageSource, job: Job, tracer: Tracer, pool: WorkerPool, assembler: ThreadPoolExecutor,
              arena: "SharedPixels | None") -> Saved | Failure:
    """Coordinator: load, queue tiles into the pool while the assembler collects them; its result is the image's.

    The coordinator lets go of the image once its tiles are queued, so that while the assembler saves the
    canvas, the image is not held beside it.
    """
    queued = _queue_image(source, job, tracer, pool, assembler, arena)
    return queued if isinstance(queued, Failure) else queued.result()


def _queue_image(source: ImageSource, job: Job, tracer: Tracer, pool: WorkerPool, assembler: ThreadPoolExecutor,
                 arena: "SharedPixels | None") -> "Future[Saved | Failure] | Failure":
    """Load the image and queue its tiles; the assembler's future, or why the image could not be loaded.

    What a task carries depends on where the worker runs: a padded copy of the tile (a process of its
    own), the name of the shared-memory segment (b.shm), or the image and canvas themselves (a thread).
    """
    config = job.config
    try:
        with tracer.span(COORDINATOR, "load", source.name):
            image = load_image(source.path, config.max_pixels)
            if arena:
                pixels, canvas, shared = arena.hold(image.pixels)
            else:
                pixels, canvas = image.pixels, np.empty_like(image.pixels)
                shared = None if pool.processes else InPlace(pixels, canvas)
    except ImageError as error:
        return Failure(str(source.path), error.reason)
    if pool.broken:  # a worker died with the previous image: start this one with a whole pool
        pool.restart()
    tiles = plan_tiles(image.width, image.height, config.tile_size)
    assembled = assembler.submit(_assemble, Assembly(source, image.mode, canvas, len(tiles)), pool, tracer, job)
    try:
        for tile in tiles:
            if shared is None:
                with tracer.span(COORDINATOR, "cut", source.name, tile.id):
                    task = TileTask(source.name, tile, cut(pixels, tile, config.radius))
            else:
                task = TileTask(source.name, tile, shared)
            with tracer.span(COORDINATOR, "blocked", source.name, tile.id):
                pool.submit(task)
    except WorkerLost:
        pass  # the assembler, waiting for this image's tiles, learns it too and reports the image failed
    return assembled


def _assemble(assembly: Assembly, pool: WorkerPool, tracer: Tracer, job: Job) -> Saved | Failure:
    """Assembler: paste results until the image's last tile is in, then save it, or report why not.

    If it crashes, the pool is aborted first, so the coordinator is not left waiting to queue tiles that
    nobody will collect; the crash then reaches the coordinator through the future."""
    try:
        return _collect(assembly, pool, tracer, job)
    except BaseException as error:
        pool.abort(f"the assembler crashed: {type(error).__name__}: {error}")
        raise


def _collect(assembly: Assembly, pool: WorkerPool, tracer: Tracer, job: Job) -> Saved | Failure:
    config, name = job.config, assembly.source.name
    try:
        while True:
            result = pool.result()
            tracer.extend(result.spans)
            with tracer.span(ASSEMBLER, "assemble", name, result.tile.id):
                if assembly.add(result):
                    break
    except WorkerLost as lost:
        return Failure(str(assembly.source.path), f"{lost}; the tiles it held are lost")
    if assembly.error is not None:
        return assembly.failure()
    try:
        with tracer.span(ASSEMBLER, "save", name):
            return assembly.save(config.output_dir, job.letter, config.png_level, config.png_encoder)
    except ImageError as error:
        return Failure(str(assembly.source.path), error.reason)


# --- b.shm: the image in shared memory ---------------------------------------------------------------


class SharedRef(NamedTuple):
    """All a b.shm task carries besides the tile: which segment holds the image, and the image's shape."""

    segment: str
    shape: tuple[int, ...]


class SharedPixels:
    """One shared-memory segment holding the current image and, after it, its canvas; reused per image.

    Reuse spares creating and faulting in a fresh segment for every image; it grows when an image is
    larger than any before.  numpy views export the segment's buffer, and a segment cannot be closed
    while a view lives: views of an image exist only inside _blur_one, which has returned before the
    next hold() may replace the segment.
    """

    def __enter__(self) -> "SharedPixels":
        # Before forking: workers that attach a segment register it with the resource tracker.  Forked
        # from a process whose tracker runs, they share it; otherwise each starts its own, which warns of
        # "leaked" segments and unlinks them when the worker exits.
        resource_tracker.ensure_running()
        self._segment: SharedMemory | None = None
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._release()

    def hold(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, SharedRef]:
        """Copy pixels into shared memory; return the shared image, its shared canvas and their ref."""
        if self._segment is None or self._segment.size < 2 * pixels.nbytes:
            self._release()
            self._segment = SharedMemory(create=True, size=2 * pixels.nbytes)
        ref = SharedRef(self._segment.name, pixels.shape)
        source, canvas = _views(self._segment, ref)
        source[...] = pixels
        return source, canvas, ref

    def _release(self) -> None:
        if self._segment is not None:
            self._segment.close()
            self._segment.unlink()
            self._segment = None


def _views(segment: SharedMemory, ref: SharedRef) -> tuple[np.ndarray, np.ndarray]:
    size = int(np.prod(ref.shape))
    return (np.ndarray(ref.shape, np.uint8, segment.buf, 0), np.ndarray(ref.shape, np.uint8, segment.buf, size))


def _blur_in_shared_memory(kernel_size: int, truncate: bool, method: str = "separable") -> Work:
    """The work of a b.shm worker: blur the tile from the shared image straight into the shared canvas."""
    attached: dict[str, SharedMemory] = {}  # this worker's mapping of the current segment

    def work(task: TileTask, span: SpanFor) -> None:
        ref: SharedRef = task.payload
        if ref.segment not in attached:
            for old in attached.values():  # the segment was replaced: no view of the old one is left
                old.close()
            attached.clear()
            attached[ref.segment] = SharedMemory(ref.segment)
        source, canvas = _views(attached[ref.segment], ref)
        with span("blur"):
            blur_into(source, task.tile, canvas, kernel_size, truncate=truncate, method=method)

    return work
