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

What the engine gives that e, f and g build by hand:
- a scheduler: it places each task on a worker, balances queued work between workers (work stealing),
  and tracks who holds what, where e, f and g need a broker, a queue variant and their own bookkeeping;
- recomputation of lost work: no processing lists, heartbeats, reaper or XAUTOCLAIM.  The scheduler
  hears of a dead worker at once (its connection drops: 10 ms here) and reruns the work from the graph;
  a task whose workers die 3 times (distributed.scheduler.allowed-failures) fails as KilledWorker, dask's
  dead letter.  Inputs must be in the graph for this to work: data put on a worker with client.scatter
  has no recipe, and is simply lost with it;
- workers as a product: LocalCluster starts N worker processes, each behind a nanny process that
  restarts it when it dies; on other machines, `dask scheduler` on one and `dask worker tcp://host:8786`
  on each of the others;
- a measured record of every task, the task stream, which becomes this approach's timeline (a worker
  restarted after a kill has a new address, so it is drawn as a new lane);
- a live dashboard, but only with bokeh, which the suite does not install: as installed, the scheduler's
  /status page says "Dask needs bokeh>=3.1.0".

What it costs:
- every task is a message to the scheduler and on to a worker, and its result a message back: a no-op
  task's round trip takes about 10 ms on the 2-core test machine, about 2-3 ms each when thousands are
  in flight (benchmarks/h_vs_g.py), so a task must carry much more work than that;
- dask ships pickled functions and arguments between its members, and a worker runs whatever it is
  sent.  A scheduler must therefore only ever be reachable from trusted machines: never expose it, and
  between machines use TLS (tls:// addresses; the certificates go in dask's configuration, such as
  DASK_DISTRIBUTED__COMM__TLS__CA_FILE and ..._CLIENT__CERT, which h's client reads as it is).  e, f
  and g's binary wire format exists so that nothing from a queue is ever unpickled; dask's model is the
  opposite, and it is safe only inside a trusted network;
- a starting cost: importing dask (about 0.3 s, so h imports it only when it runs), and a LocalCluster
  spawns 2N processes (a nanny and a worker each) and loads the kernel in every worker: the "start"
  span, timed apart from the work, as d's pod start is.

The client, this process, is the only one that reads inputs or writes outputs: workers get pixels and
give pixels back, so they need the suite's code but no shared folder (a task that loaded its own image
would need the input folder on every machine).  In it, as in b, a coordinator thread loads images and
submits their tiles while the assembler pastes results as they come (as_completed, never a poll) and
saves each image when its last tile is in; at most IMAGES_AHEAD images wait between the two.
"""

import logging
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

import numpy as np

from approaches.core.errors import ConfigError, ImageError
from approaches.core.images import load_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.tasks import Assembly, TileResult
from approaches.core.tiling import Tile, cut, plan_tiles
from approaches.core.trace import Span, Tracer
from approaches.core.urls import check_scheduler, unanswered

if TYPE_CHECKING:  # dask is imported when h runs, not when the suite starts: importing it takes about 0.3 s
    from distributed import Client, Future, LocalCluster

COORDINATOR, ASSEMBLER = "coordinator", "assembler"  # two threads of this process, the client
IMAGES_AHEAD = 2  # images loaded and submitted ahead of the one being assembled: bounds the pixels held here
START_TIMEOUT_S = 30.0  # for a scheduler to answer, and a first worker to join it
REACH_TIMEOUT_S = 2.5  # check_reachable's whole answer, name lookup included
IN_FLIGHT_TIMEOUT_S = 30.0
POLL_S = 0.01
STAGES = {"compute": "blur", "transfer": "transfer", "disk-read": "spill", "disk-write": "spill"}
"""The suite's stage for each action in dask's task stream (spill: a worker's memory went to its disk)."""

Chaos = Callable[["Faults"], None]


def run(job: Job, tracer: Tracer, *, scheduler: str | None = None, tile_delay_s: float | None = None,
        chaos: Chaos | None = None, start_timeout_s: float = START_TIMEOUT_S) -> Outcome:
    """Blur job's images as dask tasks: on a LocalCluster of job.config.workers worker processes, or on the
    scheduler at `scheduler` (tcp://host:port; default: --scheduler) with whatever workers have joined it.

    tile_delay_s: each task sleeps that long first (default: Settings.tile_delay_s; for chaos: it keeps tiles
    in flight).  chaos: called once, in this thread, right after the first image's tiles are submitted, with
    h's Faults.
    """
    scheduler = scheduler or job.config.scheduler
    tile_delay_s = job.config.settings.tile_delay_s if tile_delay_s is None else tile_delay_s
    if scheduler is not None:
        check_scheduler(scheduler)
        if chaos is not None:
            raise ConfigError("h's chaos kills worker processes of the LocalCluster it starts: not with --scheduler")
    with ExitStack() as stack:
        try:
            client = stack.enter_context(connected(scheduler, job, tracer, start_timeout_s))
        except (OSError, TimeoutError) as error:  # no scheduler at that address, or no worker joined it in time
            reason = f"dask: no cluster to run on at {scheduler or 'a new LocalCluster'} ({error})"
            return Outcome(failed=[Failure(str(source.path), reason) for source in job.images])
        return _blur_all(job, tracer, client, tile_delay_s, chaos)


def check_reachable(scheduler: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """ConfigError, in one line and within timeout seconds, if nothing accepts a connection at the scheduler's
    address: before any work, where waiting for the client's own timeout would fail every image after 30 s."""
    parts = urlsplit(check_scheduler(scheduler))
    why = unanswered(lambda: socket.create_connection((parts.hostname, parts.port), timeout=timeout).close(), timeout)
    if why is not None:
        raise ConfigError(f"cannot reach the dask scheduler at {scheduler}: {why}")


@contextmanager
def connected(scheduler: str | None, job: Job, tracer: Tracer,
              timeout_s: float = START_TIMEOUT_S) -> Iterator["Client"]:
    """A client of a fresh LocalCluster (closed on exit) or of the scheduler given, its workers' kernel loaded.

    All of it is the "start" span: importing dask, the cluster's processes, the connection, the first
    worker, the kernel; a worker that starts later (one restarted after a kill) loads the kernel in its
    first task.  Closing it all is the "stop" span.
    """
    with ExitStack() as stack:
        with tracer.span(COORDINATOR, "start", ""):
            from distributed import Client

            # dask's own configuration sets its loggers to INFO: in this process (the client, and a
            # LocalCluster's scheduler) that would print its every step between the suite's lines.
            quiet = logging.getLogger("distributed")
            stack.push(partial(_restore_logs, quiet.level))
            quiet.setLevel(logging.ERROR)
            cluster = None
            if scheduler is None:
                # On 127.0.0.1 only.  The scheduler's HTTP server (health, metrics) takes any free port; its
                # dashboard page only says to install bokeh, which the suite does not.  The workers' own logs
                # are silenced but for critical errors: a worker that loses its scheduler while the cluster
                # closes logs a traceback that is no error of the run (a task's error reaches its future).
                cluster = stack.enter_context(_local_cluster(job.config.workers))
            client = stack.enter_context(Client(cluster or scheduler, timeout=timeout_s))
            client.wait_for_workers(1, timeout=timeout_s)
            client.run(warm_up, job.config.kernel_size, method=job.config.kernel)
        try:
            yield client
        finally:
            with tracer.span(COORDINATOR, "stop", ""):  # closing a LocalCluster waits for its processes to end
                stack.close()


def _restore_logs(level: int, kind: type[BaseException] | None, *_: object) -> None:
    """dask's log level back as it was; but interrupted (Ctrl-C, SIGTERM), dask and asyncio stay quiet: the
    process is ending, and what dask's exit hooks stop (half-started nannies too) would be logged, step by step,
    after the suite's one line."""
    if kind is None or issubclass(kind, Exception):
        logging.getLogger("distributed").setLevel(level)
    else:
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)


def _local_cluster(workers: int) -> "LocalCluster":
    """A LocalCluster of `workers` processes on 127.0.0.1 (see connected).

    Ctrl-C or SIGTERM while it starts is held until it has started, then delivered: stopped half-way, dask's
    exit hooks trip over the half-started processes and print their tracebacks under the suite's one line,
    while a started cluster closes cleanly.  (Signals can be held only in the main thread; the web page runs
    jobs in others, and stops them otherwise.)"""
    from distributed import LocalCluster

    held: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, lambda signum, _: held.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


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


def _blur_all(job: Job, tracer: Tracer, client: "Client", tile_delay_s: float, chaos: Chaos | None) -> Outcome:
    """A coordinator thread loads images and submits their tiles while this thread assembles and saves them."""
    from distributed import get_task_stream

    offset = time.perf_counter() - time.time()  # dask's task stream records time.time(); spans use perf_counter
    names: dict[str, tuple[str, int]] = {}  # every task's key -> its image and tile, for spans and faults
    faults = Faults(client, names)
    handed = Handover()
    outcome = Outcome()
    with get_task_stream(client) as stream, ThreadPoolExecutor(1, COORDINATOR) as coordinator:
        coordinating = coordinator.submit(_coordinate, job, tracer, client, tile_delay_s, names, handed,
                                          partial(chaos, faults) if chaos else None)
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
    faults.finished(spans)
    return outcome


def _coordinate(job: Job, tracer: Tracer, client: "Client", tile_delay_s: float, names: dict[str, tuple[str, int]],
                handed: "Handover", after_first: Callable[[], None] | None) -> None:
    """Coordinator: load each image, cut its tiles with their halo (core/tiling's rule) and submit each as a
    task, whose argument, the padded tile, keeps it recomputable from the graph; hand the image on.
    after_first (the chaos hook) is called once, right after the first image's tiles are submitted."""
    config = job.config
    run_id = uuid.uuid4().hex[:8]  # keys unique to this run: a shared scheduler must not hand back another's result
    try:
        for index, source in enumerate(job.images):
            try:
                with tracer.span(COORDINATOR, "load", source.name):
                    image = load_image(source.path)
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
                                             tile_delay_s, key=key, priority=-len(names)))
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
        return assembly.add(TileResult(name, tile, None if error else result, error, ()))


def _save(assembly: Assembly, job: Job, tracer: Tracer) -> Saved | Failure:
    if assembly.error is not None:
        return assembly.failure()
    try:
        with tracer.span(ASSEMBLER, "save", assembly.source.name):
            return assembly.save(job.config.output_dir, job.letter, job.config.png_level, job.config.png_encoder)
    except ImageError as error:
        return Failure(str(assembly.source.path), error.reason)


def task_spans(records: Iterable[Mapping[str, Any]], names: Mapping[str, tuple[str, int]],
               offset: float) -> list[Span]:
    """dask's task stream as the suite's spans: each task's steps (compute, transfer, ...) as stages of its
    tile, in a lane per worker numbered in the order the workers started their first task, times moved
    by offset (perf_counter - time.time).  Tasks of other runs on a shared scheduler are left out.

    >>> step = {"action": "compute", "start": 100.0, "stop": 100.5}
    >>> task_spans([{"key": "blur-1-0", "worker": "tcp://10.0.0.7:4000", "startstops": (step,)}],
    ...            {"blur-1-0": ("img1", 0)}, offset=-99.0)
    [Span(lane='worker-1', stage='blur', image='img1', tile=0, start=1.0, end=1.5)]
    """
    mine = sorted((record for record in records if record["key"] in names),
                  key=lambda record: min(step["start"] for step in record["startstops"]))
    lanes: dict[str, str] = {}
    spans = []
    for record in mine:
        lane = lanes.setdefault(record["worker"], f"worker-{len(lanes) + 1}")
        image, tile = names[record["key"]]
        spans += [Span(lane, STAGES.get(step["action"], step["action"]), image, tile, step["start"] + offset,
                       step["stop"] + offset) for step in record["startstops"]]
    return spans


# --- chaos: kill worker processes of h's LocalCluster while tiles are in flight -----------------------


class Faults:
    """What a chaos scenario may do to h's own LocalCluster while its tiles are in flight, and what came of it.

    A kill is SIGKILL to worker processes; their nannies stay and start fresh ones.  What was lost is
    dask's own account, the scheduler's "remove-worker" event for each victim: the tiles it was running
    or had queued (``lost``; the scheduler hands them to the workers left, or to come, at once), and the
    results it held that the client had not yet taken (a result lives on its worker until then: dask
    recomputes it too, unless the client, holding it by then, lets it go first).  After the run: how many
    lost tiles ran again, when the last of them ended (recovery_s counts from the kill), and how many
    tiles were finished twice.
    """

    def __init__(self, client: "Client", names: Mapping[str, tuple[str, int]]) -> None:
        self._client, self._names = client, names
        self.victims: list[str] = []  # the workers killed, by address
        self.killed_at: float | None = None  # time.perf_counter() of the kill
        self.lost: set[tuple[str, int]] = set()  # (image, tile) the victims were running or had queued
        self.redone = 0  # of the lost tiles, how many ran again after the kill
        self.expected = 0  # tiles submitted in the run
        self.missing = 0  # tiles submitted and never blurred: 0 unless an image failed
        self.done_twice = 0  # tiles finished twice: a result lost with its worker before the client took it
        self.recovered_at: float | None = None
        self._per_image: dict[str, tuple[int, int, int]] = {}

    @property
    def workers(self) -> int:
        return len(self._client.scheduler_info()["workers"])

    @property
    def recovery_s(self) -> float | None:
        """From the kill to the end of the last lost tile run again; None without a kill or a lost tile."""
        if self.killed_at is None or self.recovered_at is None:
            return None
        return self.recovered_at - self.killed_at

    def per_image(self, image: str) -> tuple[int, int, int]:
        """After the run: (tiles submitted, never blurred, blurred twice) of one image."""
        return self._per_image.get(image, (0, 0, 0))

    def in_flight(self) -> int:
        """This run's tiles the scheduler has handed to workers and not yet had back."""
        return sum(key in self._names for keys in self._client.processing().values() for key in keys)

    def wait_for_tiles_in_flight(self, at_least: int, timeout_s: float = IN_FLIGHT_TIMEOUT_S) -> int:
        """Poll until at_least tiles are in flight (or timeout_s passes); the last count seen."""
        deadline, held = time.monotonic() + timeout_s, 0
        while time.monotonic() < deadline:
            held = self.in_flight()
            if held >= at_least:
                break
            time.sleep(POLL_S)
        return held

    def kill_one(self) -> None:
        """SIGKILL one worker process."""
        self._kill(1)

    def kill_all(self) -> None:
        """SIGKILL every worker process at once."""
        self._kill(None)

    def _kill(self, count: int | None) -> None:
        pids: dict[str, int] = self._client.run(os.getpid)  # each worker's own process, not its nanny
        self.victims = sorted(pids)[:count]
        self.killed_at = time.perf_counter()
        for victim in self.victims:
            os.kill(pids[victim], signal.SIGKILL)

    def finished(self, spans: Iterable[Span]) -> None:
        """After the run: what dask lost with the victims, which lost tiles ran again, when the last one ended."""
        blurs = [span for span in spans if span.stage == "blur"]
        blurred = {(span.image, span.tile) for span in blurs}
        self.expected, self.missing = len(self._names), len(set(self._names.values()) - blurred)
        self.done_twice = len(blurs) - len(blurred)
        for image in {name for name, _ in self._names.values()}:
            tiles = {tile for name, tile in self._names.values() if name == image}
            done = [span.tile for span in blurs if span.image == image]
            self._per_image[image] = (len(tiles), len(tiles - set(done)), len(done) - len(set(done)))
        if self.killed_at is None:
            return
        for _, event in self._client.get_events("all"):
            if event.get("action") == "remove-worker" and event.get("worker") in self.victims:
                self.lost |= {self._names[key] for key in event["processing-tasks"] if key in self._names}
        again = [span for span in blurs if (span.image, span.tile) in self.lost and span.start >= self.killed_at]
        self.redone = len({(span.image, span.tile) for span in again})
        self.recovered_at = max((span.end for span in again), default=None)


def kill_one_worker(faults: Faults) -> None:
    """Chaos scenario "one-worker": once every worker holds a tile, SIGKILL one; its nanny restarts it."""
    faults.wait_for_tiles_in_flight(at_least=faults.workers)
    faults.kill_one()


def kill_every_worker(faults: Faults) -> None:
    """Chaos scenario "workers": once every worker holds a tile, SIGKILL them all; their nannies restart them."""
    faults.wait_for_tiles_in_flight(at_least=faults.workers)
    faults.kill_all()


SCENARIOS: dict[str, Chaos] = {"workers": kill_every_worker, "one-worker": kill_one_worker}


def run_under_chaos(job: Job, tracer: Tracer, scenario: str, *, tile_delay_s: float) -> tuple[Outcome, Faults | None]:
    """Run h on its own LocalCluster with one of SCENARIOS; the outcome, and the Faults that say what was
    lost and how soon it was redone (None if no image could be loaded, so nothing was killed)."""
    seen: list[Faults] = []

    def chaos(faults: Faults) -> None:
        seen.append(faults)
        SCENARIOS[scenario](faults)

    outcome = run(job, tracer, tile_delay_s=tile_delay_s, chaos=chaos)
    return outcome, (seen[0] if seen else None)
