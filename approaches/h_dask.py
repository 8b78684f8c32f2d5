"""h — dask.distributed: e, f and g's tiles and kernel, scheduled by an existing engine instead of a hand-built queue.

Delivery guarantee: at-least-once, with each tile pasted once.  A tile's padded pixels are an argument of
its task, so they live in the task graph: when a worker dies, the scheduler hands the tasks it was running
or had queued to the workers left (or to come) and runs them again, and recomputes the results it held
that the client had not yet taken.  The client pastes each tile from the one result its future gives,
and saves each image once.

    coordinator thread --submit(blur_task, padded tile)--> scheduler ---------> worker processes
      (load, cut)             one task per tile             (placement,          (1 thread each)
                                                             stealing, reruns)          |
    assembler thread <--as_completed: the blurred tile----------------------------------+
      (paste, save)

No broker, processing lists, heartbeats or XAUTOCLAIM: the scheduler places each task, balances the
workers and reruns lost work from the graph.  The price: a message per task each way, pickled functions
and arguments (a scheduler must be reachable from trusted machines only), and a start-up, the "start"
span (cluster/dask_cluster.py).
"""

import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import numpy as np

from approaches.cluster.dask_cluster import START_TIMEOUT_S, connected, task_spans
from approaches.core.errors import ConfigError, ImageError
from approaches.core.images import load_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur_tile
from approaches.core.tasks import Assembly, TileAnswer
from approaches.core.tiling import Tile, cut, plan_tiles
from approaches.core.trace import Span, Tracer
from approaches.core.urls import check_scheduler

if TYPE_CHECKING:  # dask is imported when h runs, not when the suite starts: importing it takes about 0.3 s
    from distributed import Client, Future

COORDINATOR, ASSEMBLER = "coordinator", "assembler"  # two threads of this process, the client
IMAGES_AHEAD = 2  # images loaded and submitted ahead of the one being assembled: bounds the pixels held here
POLL_S = 0.01


class Chaos(Protocol):
    """Whoever watches or disturbs h's own cluster mid-run: the chaos demo and the web page (harness/chaos.py)."""

    def started(self, client: "Client", tiles: Mapping[str, tuple[str, int]]) -> None:
        """Called once, in the coordinator thread, right after the first image's tiles are submitted; tiles
        maps every task's key to its (image, tile id), and fills up as the run goes on."""

    def finished(self, spans: list[Span]) -> None:
        """Called once the last image is assembled, the client still open."""


def run(job: Job, tracer: Tracer, *, scheduler: str | None = None, chaos: Chaos | None = None,
        start_timeout_s: float = START_TIMEOUT_S) -> Outcome:
    """Blur job's images as dask tasks: on a LocalCluster of job.config.workers worker processes, or on the
    scheduler at `scheduler` (tcp://host:port; default: --scheduler) with whatever workers have joined it.
    Each task first sleeps Settings.tile_delay_s (a slow node: the chaos demo keeps tiles in flight so)."""
    scheduler = scheduler or job.config.scheduler
    if scheduler is not None:
        check_scheduler(scheduler)
        if chaos is not None:
            raise ConfigError("h's chaos kills worker processes of the LocalCluster it starts: not with --scheduler")
    with ExitStack() as stack:
        try:
            client = stack.enter_context(connected(scheduler, job, tracer, COORDINATOR, start_timeout_s))
        except (OSError, TimeoutError) as error:  # no scheduler at that address, or no worker joined it in time
            reason = f"dask: no cluster to run on at {scheduler or 'a new LocalCluster'} ({error})"
            return Outcome(failed=[Failure(str(source.path), reason) for source in job.images])
        return _blur_all(job, tracer, client, chaos)


def blur_task(padded: np.ndarray, kernel_size: int, truncate: bool, method: str, delay_s: float) -> np.ndarray:
    """What a worker runs for one tile: a pure function of plain values, so dask may run it again anywhere."""
    if delay_s:
        time.sleep(delay_s)
    return blur_tile(padded, kernel_size, truncate=truncate, method=method)


class Submitted(NamedTuple):
    """One image handed from the coordinator to the assembler: where its tiles go, and their futures."""

    assembly: Assembly
    tiles: dict[str, Tile]  # a task's key -> its tile
    futures: list["Future"]


class Handover:
    """The images between the coordinator and the assembler: at most IMAGES_AHEAD, which bounds the pixels
    held here; put() gives up once the assembler has closed it, so the coordinator never waits on no one."""

    def __init__(self) -> None:
        self._images: queue.Queue[Submitted | Failure | None] = queue.Queue(IMAGES_AHEAD)
        self._closed = threading.Event()

    def put(self, image: Submitted | Failure | None) -> None:
        while not self._closed.is_set():
            try:
                self._images.put(image, timeout=POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> Submitted | Failure | None:
        return self._images.get()

    def close(self) -> None:
        self._closed.set()


def _blur_all(job: Job, tracer: Tracer, client: "Client", chaos: Chaos | None) -> Outcome:
    """A coordinator thread loads images and submits their tiles while this thread assembles and saves them."""
    from distributed import get_task_stream

    offset = time.perf_counter() - time.time()  # dask's task stream records time.time(); spans use perf_counter
    names: dict[str, tuple[str, int]] = {}  # every task's key -> its image and tile, for spans and chaos
    handed = Handover()
    outcome = Outcome()
    with get_task_stream(client) as stream, ThreadPoolExecutor(1, COORDINATOR) as coordinator:
        coordinating = coordinator.submit(_coordinate, job, tracer, client, names, handed,
                                          partial(chaos.started, client, names) if chaos else None)
        try:
            for image in iter(handed.get, None):
                done = image if isinstance(image, Failure) else _assemble(image, job, tracer)
                (outcome.saved if isinstance(done, Saved) else outcome.failed).append(done)
                job.progress()
        finally:
            handed.close()  # if this thread stopped early (an error, Ctrl-C), the coordinator must not wait on it
        coordinating.result()  # what the coordinator raised, if anything, is raised here
    spans = task_spans(stream.data, names, offset)
    tracer.extend(spans)
    if chaos is not None:
        chaos.finished(spans)
    return outcome


def _coordinate(job: Job, tracer: Tracer, client: "Client", names: dict[str, tuple[str, int]], handed: "Handover",
                after_first: Callable[[], None] | None) -> None:
    """Coordinator: load each image, cut its tiles with their halo (core/tiling's rule) and submit each as a
    task, whose argument, the padded tile, keeps it recomputable from the graph; hand the image on.
    after_first (the chaos hook) is called once, right after the first image's tiles are submitted."""
    config = job.config
    run_id = uuid.uuid4().hex[:8]  # keys unique to this run: a shared scheduler must not hand back another's result
    try:
        for index, source in enumerate(job.images):
            try:
                with tracer.span(COORDINATOR, "load", source.name):
                    image = load_image(source.path, config.max_pixels)
            except ImageError as error:
                handed.put(Failure(str(source.path), error.reason))
                continue
            tiles, futures = {}, []
            for tile in plan_tiles(image.width, image.height, config.tile_size):
                with tracer.span(COORDINATOR, "cut", source.name, tile.id):
                    padded = cut(image.pixels, tile, config.radius)
                key = f"blur-{run_id}-{index}-{tile.id}"
                names[key], tiles[key] = (source.name, tile.id), tile
                # First come, first run, reruns included: dask runs higher priorities first, and without one
                # the tiles submitted within 100 ms tie, so a tile lost with its worker would queue behind them.
                futures.append(client.submit(blur_task, padded, config.kernel_size, config.truncate, config.kernel,
                                             config.settings.tile_delay_s, key=key, priority=-len(names)))
            handed.put(Submitted(Assembly(source, image.mode, np.empty_like(image.pixels), len(tiles)), tiles,
                                 futures))
            if after_first is not None:
                after_first()
                after_first = None
    finally:
        handed.put(None)  # the assembler stops waiting, whatever happened here


def _assemble(image: Submitted, job: Job, tracer: Tracer) -> Saved | Failure:
    """Assembler: paste the image's tiles as they complete (as_completed, never a poll), then save it once."""
    from distributed import as_completed

    for future, result in as_completed(image.futures, with_results=True, raise_errors=False):
        future.release()  # its result is here: the worker may drop it, and dask need not recompute it
        _paste(image.assembly, image.tiles[future.key], result, tracer)
    return _save(image.assembly, job, tracer)


def _paste(assembly: Assembly, tile: Tile, result: Any, tracer: Tracer) -> bool:
    """Paste one tile's result (or keep why it failed); True when it was the image's last tile."""
    name = assembly.source.name
    error = f"tile {tile.id}: {type(result).__name__}: {result}" if isinstance(result, BaseException) else None
    with tracer.span(ASSEMBLER, "assemble", name, tile.id):
        return assembly.add(TileAnswer(name, tile, None if error else result, error, ()))


def _save(assembly: Assembly, job: Job, tracer: Tracer) -> Saved | Failure:
    if assembly.error is not None:
        return assembly.failure()
    try:
        with tracer.span(ASSEMBLER, "save", assembly.source.name):
            return assembly.save(job.config.output_dir, job.letter, job.config.png_level, job.config.png_encoder)
    except ImageError as error:
        return Failure(str(assembly.source.path), error.reason)
