"""e — Naive queue: coordinator, worker and assembler pods around two Redis lists.

Delivery guarantee: at-most-once.  BRPOP removes a tile from Redis as it hands it to a worker, so a
worker that dies holding a tile loses it, and that tile's image is reported incomplete, never saved.

    coordinator --LPUSH jobs--> worker pods x N --LPUSH results--> assembler --> <output>/e/<name>_blurred.png

As in the original course: the coordinator loads each image, publishes its plan, cuts it and LPUSHes
every tile (BRPOP at the other end makes a FIFO), then pushes one STOP pill per worker.  Workers BRPOP a
tile, blur it and push the result.  The assembler pastes results, logs "Progress: n/n", saves each
image as its last tile comes in, and stops once every image is finished.  Pods are threads on
memory:// and processes on a real server (cluster/pods.py); tiles cross as binary (cluster/wire.py).

Fixed here: keys live under a fresh run id (the original read stale keys of earlier runs); the kernel
travels in each tile and must match the plan (a worker started with another kernel blurred wrongly and
silently); duplicates are counted apart, not as progress; the assembler waits for every image instead of
quitting after the first; and e never hangs: give_up_s after the last result, the assembler reports each
unfinished image as incomplete.  Naive on purpose: nothing is acknowledged, so a lost tile stays lost
(approach f fixes that), and the coordinator pushes every tile at once, without backpressure, so Redis
holds the whole padded input at its peak.
"""

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from approaches.cluster.board import Board, new_run_id
from approaches.cluster.broker import Broker, BrokerError, connect, open_broker
from approaches.cluster.pods import FaultHook, Life, Pod, running
from approaches.cluster.queues import Delivery, NaiveQueue, WorkQueue
from approaches.cluster.wire import ImagePlan, ImageReport, State, TileJob, TileResult, WireError
from approaches.core.errors import ImageError
from approaches.core.images import load_image, output_path, save_image
from approaches.core.job import Failure, Job, Outcome, Saved
from approaches.core.kernel import blur, blur_tile
from approaches.core.tiling import cut, paste
from approaches.core.trace import Span, Tracer

COORDINATOR, ASSEMBLER = "coordinator", "assembler"
STOP = b"STOP"  # the poison pill: not a tile message, so it can never be mistaken for one
POLL_S = 0.25  # the longest a pod blocks in BRPOP before it passes a fault point again
GIVE_UP_S = 30.0  # the original assembler's timeout
STOP_GRACE_S = 5.0  # after the assembler ends, how long the others get to stop before they are killed

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, *, give_up_s: float = GIVE_UP_S, tile_delay_s: float = 0.0,
        hook: FaultHook | None = None) -> Outcome:
    try:
        with open_broker(job.config.broker) as broker, launched(broker, job, give_up_s=give_up_s,
                                                                tile_delay_s=tile_delay_s, hook=hook) as cluster:
            return cluster.collect(tracer)[0]
    except BrokerError as error:
        return Outcome(failed=[Failure(str(source.path), str(error)) for source in job.images])


@dataclass
class Cluster:
    """e's pods on one broker, and the run's board, for whoever started them (run, the chaos demo)."""

    job: Job
    board: Board
    coordinator: Pod
    workers: list[Pod]
    assembler: Pod

    def collect(self, tracer: Tracer) -> tuple[Outcome, dict[str, ImageReport]]:
        """Wait for the assembler to finish, stop the other pods, and say how each image ended."""
        while not self.assembler.wait(POLL_S):
            if self.coordinator.wait(0) and self.board.coordinated() is None:
                self._coordinator_lost()
        pills_sent = self.coordinator.wait(STOP_GRACE_S) and self.coordinator.report is not None
        deadline = time.monotonic() + (STOP_GRACE_S if pills_sent else 0.0)
        for pod in (self.coordinator, *self.workers):  # a worker stops at its pill; without one it is killed
            if not pod.wait(max(deadline - time.monotonic(), 0.0)):
                log.warning("%s still running after the run: killed", pod.name)
                pod.kill()
        for pod in (self.coordinator, *self.workers, self.assembler):
            if pod.report is not None:  # a killed pod's spans died with it
                tracer.extend(pod.report.spans)
        return self._outcome()

    def _coordinator_lost(self) -> None:
        """The coordinator died before queuing everything: images it never planned are failed, so the
        assembler's give-up clock can run for the ones it did."""
        reports, planned = self.board.reports(), set(self.board.planned())
        for image in range(len(self.job.images)):
            if image not in reports and image not in planned:
                self.board.report(image, ImageReport(State.FAILED, reason="the coordinator died before queuing it"))
        self.board.mark_coordinated(len(self.job.images))

    def _outcome(self) -> tuple[Outcome, dict[str, ImageReport]]:
        config, outcome, reports = self.job.config, Outcome(), self.board.reports()
        by_name = {}
        for image, source in enumerate(self.job.images):
            report = reports.get(image, ImageReport(State.FAILED, reason="not finished when the assembler stopped"))
            by_name[source.name] = report
            target = output_path(config.output_dir, self.job.letter, source.name)
            if report.state is State.SAVED and target.exists():
                plan = self.board.plan(image)
                outcome.saved.append(Saved(source.name, source.path, target, plan.width, plan.height, plan.mode))
            else:
                reason = report.reason or f"reported saved, but {target} is missing"
                outcome.failed.append(Failure(str(source.path), reason))
            self.job.progress()
        return outcome, by_name

    def tiles_in_flight(self) -> int | None:
        """Tiles taken by a worker and not yet back as a result; None until every tile is queued.

        Counted from outside, as the original demo did, from counters read one after another: a tile
        moving meanwhile can make it one off for a moment.
        """
        board = self.board
        if board.coordinated() is None:
            return None
        queued = sum(len(board.plan(image).tiles) for image in board.planned())
        jobs, results = self.left_in_queues()
        jobs = max(jobs - len(self.workers), 0)  # the STOP pills wait behind the last tile
        return queued - jobs - results - board.assembled()

    def left_in_queues(self) -> tuple[int, int]:
        """(jobs, results) still in the lists."""
        return (NaiveQueue(self.board.client, self.board.key("jobs")).waiting(),
                NaiveQueue(self.board.client, self.board.key("results")).waiting())


@contextmanager
def launched(broker: Broker, job: Job, *, give_up_s: float = GIVE_UP_S, tile_delay_s: float = 0.0,
             hook: FaultHook | None = None) -> Iterator[Cluster]:
    """Start the assembler, the workers, then the coordinator; afterwards kill any still running and
    delete every key of the run.  tile_delay_s makes each worker that much slower per tile (a slow node)."""
    config, run_id = job.config, new_run_id()
    plain = {"url": broker.url, "run": run_id}
    pod = partial(Pod, process=broker.pods_are_processes, hook=hook)
    cluster = Cluster(
        job,
        Board(connect(broker.url), run_id),
        coordinator=pod(COORDINATOR, coordinator, {
            **plain, "images": [[str(source.path), source.name] for source in job.images],
            "kernel_size": config.kernel_size, "tile_size": config.tile_size, "workers": config.workers}),
        workers=[pod(f"worker-{i}", worker, {**plain, "truncate": config.truncate, "tile_delay_s": tile_delay_s})
                 for i in range(1, config.workers + 1)],
        assembler=pod(ASSEMBLER, assembler, {
            **plain, "output_dir": str(config.output_dir), "letter": job.letter, "png_level": config.png_level,
            "give_up_s": give_up_s}),
    )
    try:
        with running([cluster.assembler, *cluster.workers, cluster.coordinator]):
            yield cluster
    finally:
        cluster.board.delete()


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, images: list[list[str]], kernel_size: int, tile_size: int,
                workers: int) -> None:
    """Load each image, publish its plan, LPUSH its tiles; then say so, and send one STOP per worker."""
    board = Board(connect(url), run)
    jobs = NaiveQueue(board.client, board.key("jobs"))
    life.ready()
    for image, (path, name) in enumerate(images):
        try:
            with life.tracer.span(life.name, "load", name):
                loaded = load_image(Path(path))
        except ImageError as error:
            board.report(image, ImageReport(State.FAILED, reason=error.reason))
            continue
        plan = ImagePlan(name, loaded.width, loaded.height, loaded.mode, kernel_size, tile_size)
        board.publish_plan(image, plan)  # before its first tile, so every tile finds its plan
        for tile in plan.tiles:
            with life.tracer.span(life.name, "cut", name, tile.id):
                body = TileJob(run, image, tile, kernel_size, cut(loaded.pixels, tile, plan.halo)).encode()
            with life.tracer.span(life.name, "send", name, tile.id):
                jobs.put(body)
            life.checkpoint("queued")
    board.mark_coordinated(len(images))
    for _ in range(workers):
        jobs.put(STOP)


def worker(life: Life, *, url: str, run: str, truncate: bool, tile_delay_s: float) -> None:
    """BRPOP a tile, blur it with the kernel it names, LPUSH the result; until a STOP pill."""
    board = Board(connect(url), run)
    jobs, results = NaiveQueue(board.client, board.key("jobs")), NaiveQueue(board.client, board.key("results"))
    blur(np.zeros((1, 1, 1), np.uint8), 3)  # load the compiled kernel: part of starting up, not of a tile
    life.ready()
    waiting = time.perf_counter()
    while True:
        life.checkpoint("idle")
        delivery = jobs.next(POLL_S)
        if delivery is None:
            continue
        life.checkpoint("popped")
        if delivery.body == STOP:
            return
        try:
            job = TileJob.decode(delivery.body, run, board.plan)
        except WireError as error:
            log.warning("%s: rejected a job: %s", life.name, error)
            jobs.nack(delivery, str(error))
            continue
        name = board.plan(job.image).name
        life.tracer.spans.append(Span(life.name, "queue-wait", name, job.tile.id, waiting, time.perf_counter()))
        if tile_delay_s:
            life.sleep(tile_delay_s)
        with life.tracer.span(life.name, "blur", name, job.tile.id):
            block = blur_tile(job.pixels, job.kernel_size, truncate=truncate)
        life.checkpoint("blurred")  # a crash here loses the tile: nothing in Redis remembers it any more
        with life.tracer.span(life.name, "send", name, job.tile.id):
            results.put(TileResult(run, job.image, job.tile, job.kernel_size, block).encode())
        jobs.ack(delivery)
        waiting = time.perf_counter()


def assembler(life: Life, *, url: str, run: str, output_dir: str, letter: str, png_level: int,
              give_up_s: float) -> None:
    board = Board(connect(url), run)
    assembly = Assembler(board, NaiveQueue(board.client, board.key("results")), Path(output_dir), letter,
                         png_level, give_up_s, life.tracer, life.name, now=time.monotonic())
    life.ready()
    while assembly.step(time.monotonic()):
        life.checkpoint("step")


# --- assembling ---------------------------------------------------------------------------------------


class Canvas:
    """One image being put together: which tiles are in, and how many came more than once."""

    def __init__(self, plan: ImagePlan) -> None:
        self.plan = plan
        self.pixels: np.ndarray | None = None
        self.received: set[int] = set()
        self.duplicates = 0
        self.final: ImageReport | None = None  # set once the image is finished

    def add(self, result: TileResult) -> bool:
        """Paste a tile; False (and counted) if it was already in."""
        if result.tile.id in self.received:
            self.duplicates += 1
            return False
        if self.pixels is None:
            self.pixels = np.empty((self.plan.height, self.plan.width, self.plan.channels), np.uint8)
        paste(self.pixels, result.tile, result.pixels)
        self.received.add(result.tile.id)
        return True

    @property
    def complete(self) -> bool:
        return len(self.received) == len(self.plan.tiles)

    def report(self, state: State, reason: str = "") -> ImageReport:
        return ImageReport(state, len(self.plan.tiles), len(self.received), self.duplicates, reason)


class Assembler:
    """Pastes results into their images, saves each image once whole, and in the end gives up on the rest.

    step(now) takes at most one result, and the time is passed in, so a test can jump past give_up_s
    instead of sleeping through it.  An image is finished once it has a report on the board; the
    assembler is done when every image the coordinator dealt with has one.  The give-up clock starts
    once the coordinator has queued everything, and starts again with every result.
    """

    def __init__(self, board: Board, results: WorkQueue, output_dir: Path, letter: str, png_level: int,
                 give_up_s: float, tracer: Tracer, lane: str, *, now: float) -> None:
        self.board, self.results, self.tracer, self.lane = board, results, tracer, lane
        self.output_dir, self.letter, self.png_level, self.give_up_s = output_dir, letter, png_level, give_up_s
        self.canvases: dict[int, Canvas] = {}
        self.coordinated: int | None = None
        self.quiet_since = now
        self._waiting = time.perf_counter()

    def step(self, now: float) -> bool:
        """Take the next result if one comes within POLL_S; False once every image is finished."""
        delivery = self.results.next(POLL_S)
        if delivery is not None:
            self._take(delivery)
            self.quiet_since = now
        if self.coordinated is None:
            self.coordinated = self.board.coordinated()
            self.quiet_since = now
            return True
        if self.board.finished() >= self.coordinated:
            return False
        if now - self.quiet_since >= self.give_up_s:
            self._give_up()
            return False
        return True

    def _take(self, delivery: Delivery) -> None:
        try:
            result = TileResult.decode(delivery.body, self.board.run, self.board.plan)
        except WireError as error:
            log.warning("%s: rejected a result: %s", self.lane, error)
            self.results.nack(delivery, str(error))
            return
        self.results.ack(delivery)
        canvas = self.canvases.setdefault(result.image, Canvas(self.board.plan(result.image)))
        name, total = canvas.plan.name, len(canvas.plan.tiles)
        self.tracer.spans.append(Span(self.lane, "queue-wait", name, result.tile.id, self._waiting,
                                      time.perf_counter()))
        with self.tracer.span(self.lane, "assemble", name, result.tile.id):
            fresh = canvas.add(result)
        self._waiting = time.perf_counter()
        if not fresh:
            log.warning("%s: tile %d came again (%d duplicates)", name, result.tile.id, canvas.duplicates)
            if canvas.final is not None:  # its report is out already: bring the count up to date
                self.board.report(result.image, replace(canvas.final, duplicates=canvas.duplicates))
            return
        self.board.count_assembled(result.image)
        log.info("%s: tile %d in - Progress: %d/%d", name, result.tile.id, len(canvas.received), total)
        if canvas.complete:
            self._save(result.image, canvas)

    def _save(self, image: int, canvas: Canvas) -> None:
        target = output_path(self.output_dir, self.letter, canvas.plan.name)
        try:
            with self.tracer.span(self.lane, "save", canvas.plan.name):
                save_image(canvas.pixels, target, self.png_level)
        except ImageError as error:
            self._finish(image, canvas, canvas.report(State.FAILED, error.reason))
        else:
            log.info("%s: saved %s", canvas.plan.name, target)
            self._finish(image, canvas, canvas.report(State.SAVED))

    def _give_up(self) -> None:
        finished = self.board.reports()
        for image in self.board.planned():
            if image in finished:
                continue
            try:
                canvas = self.canvases.get(image) or Canvas(self.board.plan(image))
            except WireError as error:
                self.board.report(image, ImageReport(State.FAILED, reason=str(error)))
                continue
            reason = (f"incomplete: {len(canvas.received)} of {len(canvas.plan.tiles)} tiles after "
                      f"{self.give_up_s:g} s without a result; at-most-once: a tile lost with its worker is never "
                      "sent again")
            log.warning("%s: %s", canvas.plan.name, reason)
            self._finish(image, canvas, canvas.report(State.INCOMPLETE, reason))

    def _finish(self, image: int, canvas: Canvas, report: ImageReport) -> None:
        self.board.report(image, report)
        canvas.final, canvas.pixels = report, None  # keep the counts, free the pixels
