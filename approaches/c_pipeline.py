"""c — Pipelined: every stage runs at once, across images, with a bounded queue between each two.

    loaders --tiles--> workers --results--> assembler --finished images--> savers

Loaders decode images in parallel and queue each one's tiles, which carry their image's name; workers
(threads: the kernel releases the GIL) blur tiles of any image from the one shared tile queue, reading
from the image and writing into its canvas in place, as b.threads does; the assembler counts each
image's results and, the moment its last tile is in, hands the image to a saver.  So blurring starts as
soon as the first image is loaded, and each image is saved as soon as it is whole; the original course
loaded every image first and saved them all at the end.

Memory stays flat however many images there are: every queue is bounded, and a loader takes one of
loaders + savers + 1 permits before decoding an image (one per image being loaded, being saved, and one
being assembled), given back once the image is saved or has failed.  A full queue or
no free permit makes the stage before it wait (backpressure: "blocked" in the timeline).  The permits
bound the pixels; a queued tile is only a reference to its image, so the tile queue is deep
(pool.DEEP per worker): a loader that has queued one image's tiles goes on to decode the next at
once.  With a shallow queue it waited for the workers to blur most of them first, which pushed the
last images' loads, and so their saves, towards the end of the run.

Outputs are named from each input's own name: the original course numbered them by position, so when
one input was missing img3 was saved as img2.
"""

import contextlib
import queue
import threading
from collections.abc import Callable

import numpy as np

from approaches.core.errors import ImageError
from approaches.core.images import ImageSource, load_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.pool import DEEP, WorkerLost, WorkerPool
from approaches.core.tasks import Assembly, InPlace, TileTask, blur_in_place
from approaches.core.tiling import plan_tiles
from approaches.core.trace import Tracer

LOADERS = 2
SAVERS = 2
ASSEMBLER = "assembler"
POLL_S = 0.2  # how often a stage that waits on another checks that no stage has crashed


def run(job: Job, tracer: Tracer, *, loaders: int = LOADERS, savers: int = SAVERS) -> Outcome:
    config = job.config
    work = blur_in_place(config.kernel_size, config.truncate, config.kernel)
    with WorkerPool(work, config.workers, processes=False, depth=DEEP, fault=config.settings.fault) as pool:
        line = _Pipeline(job, tracer, pool, savers, images_in_flight=loaders + savers + 1)
        loading = line.start(line.load, [f"loader-{i}" for i in range(1, loaders + 1)])
        rest = line.start(line.route, [ASSEMBLER]) + line.start(line.save, [f"saver-{i}" for i in range(1, savers + 1)])
        for thread in loading:
            thread.join()
        with contextlib.suppress(WorkerLost):  # raised only when a stage crashed meanwhile: reported below
            pool.stop()  # every tile is queued: the workers finish them, then the assembler hears the end
        for thread in rest:
            thread.join()
        if line.crashed is not None:
            raise line.crashed
    order = {str(source.path): i for i, source in enumerate(job.images)}  # report in input order, as a does
    line.outcome.saved.sort(key=lambda saved: order[str(saved.source)])
    line.outcome.failed.sort(key=lambda failure: order[failure.path])
    return line.outcome


class _Pipeline:
    """The state the stages share; each method is one stage's thread."""

    def __init__(self, job: Job, tracer: Tracer, pool: WorkerPool, savers: int, images_in_flight: int) -> None:
        self.job, self.tracer, self.pool, self.savers = job, tracer, pool, savers
        self.todo: queue.SimpleQueue[ImageSource] = queue.SimpleQueue()
        for source in job.images:
            self.todo.put(source)
        self.permits = threading.BoundedSemaphore(images_in_flight)
        self.assemblies: dict[str, Assembly] = {}
        self.finished: queue.Queue[Assembly | None] = queue.Queue(maxsize=savers)
        self.outcome = Outcome()
        self.crashed: BaseException | None = None

    def start(self, stage: Callable[[str], None], lanes: list[str]) -> list[threading.Thread]:
        """One thread per lane running stage(lane); a stage that raises stops the whole pipeline."""
        threads = [threading.Thread(target=self._guarded, args=(stage, lane), name=lane, daemon=True)
                   for lane in lanes]
        for thread in threads:
            thread.start()
        return threads

    def _guarded(self, stage: Callable[[str], None], lane: str) -> None:
        """Run a stage; if it raises, keep the first error and abort the pool, so that every stage stops
        waiting (see the waits below) and the run ends with that error."""
        try:
            stage(lane)
        except BaseException as error:
            if self.crashed is None:
                self.crashed = error
            self.pool.abort(f"{lane} crashed: {type(error).__name__}: {error}")

    def load(self, lane: str) -> None:
        """Loader: take the next image, wait for a permit, decode it and queue its tiles."""
        while True:
            try:
                source = self.todo.get_nowait()
            except queue.Empty:
                return
            with self.tracer.span(lane, "blocked", source.name):
                while not self.permits.acquire(timeout=POLL_S):
                    if self.crashed is not None:
                        return
            self._load_one(lane, source)

    def _load_one(self, lane: str, source: ImageSource) -> None:
        config, tracer = self.job.config, self.tracer
        try:
            with tracer.span(lane, "load", source.name):
                image = load_image(source.path, config.max_pixels)
        except ImageError as error:
            self._done(Failure(str(source.path), error.reason))
            return
        tiles = plan_tiles(image.width, image.height, config.tile_size)
        # Registered before its first tile is queued, and the queues hand that order on: the assembler
        # always finds an image's Assembly when its first result arrives.
        self.assemblies[source.name] = Assembly(source, image.mode, np.empty_like(image.pixels), len(tiles))
        shared = InPlace(image.pixels, self.assemblies[source.name].canvas)
        for tile in tiles:
            with tracer.span(lane, "blocked", source.name, tile.id):
                self.pool.submit(TileTask(source.name, tile, shared))

    def route(self, lane: str) -> None:
        """Assembler: count each result against its image; a whole image goes to the savers at once."""
        while (result := self.pool.result()) is not None:
            self.tracer.extend(result.spans)
            assembly = self.assemblies[result.image]
            with self.tracer.span(lane, "assemble", result.image, result.tile.id):
                last = assembly.add(result)
            if not last:
                continue
            del self.assemblies[result.image]
            if assembly.error is not None:
                self._done(assembly.failure())
            else:
                with self.tracer.span(lane, "blocked", result.image):
                    self._hand_to_savers(assembly)
        for _ in range(self.savers):
            self._hand_to_savers(None)

    def save(self, lane: str) -> None:
        """Saver: write each finished image, then give its permit back."""
        config = self.job.config
        while (assembly := self._next_finished()) is not None:
            try:
                with self.tracer.span(lane, "save", assembly.source.name):
                    saved = assembly.save(config.output_dir, self.job.letter, config.png_level, config.png_encoder)
            except ImageError as error:
                self._done(Failure(str(assembly.source.path), error.reason))
            else:
                self._done(saved)

    # The waits between stages time out now and then to see whether a stage crashed: a crashed stage
    # would otherwise leave its peers waiting for it forever.

    def _hand_to_savers(self, assembly: Assembly | None) -> None:
        while self.crashed is None:
            with contextlib.suppress(queue.Full):
                self.finished.put(assembly, timeout=POLL_S)
                return

    def _next_finished(self) -> Assembly | None:
        while self.crashed is None:
            with contextlib.suppress(queue.Empty):
                return self.finished.get(timeout=POLL_S)
        return None

    def _done(self, result: Saved | Failure) -> None:
        if isinstance(result, Saved):
            self.outcome.saved.append(result)
        else:
            self.outcome.failed.append(result)
        self.permits.release()
        self.job.progress()

