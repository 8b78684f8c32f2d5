"""e — Naive queue: coordinator, worker and assembler pods around two Redis lists.

Delivery guarantee: at-most-once.  BRPOP removes a tile from Redis as it hands it to a worker, so a
worker that dies holding a tile loses it, and that tile's image is reported incomplete, never saved.

    coordinator --LPUSH jobs--> worker pods x N --LPUSH results--> assembler --> <output>/e/<name>_blurred.png

As in the original course: the coordinator loads each image, publishes its plan, cuts it and LPUSHes
every tile (BRPOP at the other end makes a FIFO), then pushes one STOP pill per worker.  Workers BRPOP a
tile, blur it and push the result.  The assembler pastes results, logs "Progress: n/n", saves each
image as its last tile comes in, and stops once every image is finished.  Pods are threads on
memory:// and processes on a real server (cluster/pods.py); tiles cross as binary (cluster/wire.py).
The worker is the one loop of e, f and g (cluster/worker.py): what makes e naive is its queue.

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
from contextlib import AbstractContextManager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from approaches.cluster import deployment
from approaches.cluster.assembly import summarise
from approaches.cluster.board import Board
from approaches.cluster.broker import Broker, connect
from approaches.cluster.deployment import Cluster, Roles
from approaches.cluster.planning import load_and_plan
from approaches.cluster.pods import Life
from approaches.cluster.queues import Delivery, NaiveQueue, WorkQueue
from approaches.cluster.wire import ImagePlan, ImageReport, State, TileJob, TileResult, WireError
from approaches.cluster.worker import STOP, work
from approaches.core.errors import ImageError
from approaches.core.images import output_path, save_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.tiling import cut, paste
from approaches.core.trace import Span, Tracer

GIVE_UP_S = 30.0  # the original assembler's timeout (Settings.give_up_s overrides it)

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    return deployment.run(job, tracer, ROLES, **options)


def launched(broker: Broker, job: Job, **options: Any) -> AbstractContextManager[Cluster]:
    """e's pods started on broker (cluster/deployment.py); the chaos demo uses this to kill them."""
    return deployment.launched(broker, job, ROLES, **options)


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int, workers: int) -> None:
    """Load each image, publish its plan, LPUSH its tiles; then say so, and send one STOP per worker."""
    board = Board(connect(url), run)
    jobs = NaiveQueue(board.client, board.key("jobs"))
    life.ready()
    for image, (path, name) in enumerate(images):
        if (planned := load_and_plan(life, board, image, path, name, kernel_size, tile_size)) is None:
            continue
        loaded, plan = planned
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


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """The one worker loop (cluster/worker.py), delivering by LPUSH onto the results list; until a STOP pill."""
    board = Board(connect(url), run)
    jobs, results = NaiveQueue(board.client, board.key("jobs")), NaiveQueue(board.client, board.key("results"))
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    life.ready()

    def push_result(job: TileJob, block: np.ndarray, delivery: Delivery) -> None:
        results.put(TileResult(run, job.image, job.tile, job.kernel_size, block).encode())
        jobs.ack(delivery)  # nothing to do: the tile left Redis when BRPOP handed it out

    work(life, life.name, board, jobs, Settings(**settings), push_result,
         partial(blur_tile, truncate=truncate, method=kernel), pills=True)


def assembler(life: Life, *, url: str, run: str, settings: dict, output_dir: str, letter: str, png_level: int,
              png_encoder: str = "pillow", give_up_s: float = GIVE_UP_S) -> None:
    """Paste results as they come; once every image has a report, keep the run's summary and delete the rest."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    results = NaiveQueue(board.client, board.key("results"))
    assembly = Assembler(board, results, Path(output_dir), letter, png_level, timing, life.tracer, life.name,
                         now=time.monotonic(), png_encoder=png_encoder, give_up_s=timing.give_up(give_up_s))
    life.ready()
    while assembly.step(time.monotonic()):
        life.checkpoint("step")
    left = {"jobs": NaiveQueue(board.client, board.key("jobs")).waiting(), "results": results.waiting()}
    board.finish({**summarise(board, board.reports()), "left": left})


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
                 settings: Settings, tracer: Tracer, lane: str, *, now: float, png_encoder: str = "pillow",
                 give_up_s: float = GIVE_UP_S) -> None:
        self.board, self.results, self.tracer, self.lane = board, results, tracer, lane
        self.output_dir, self.letter, self.png_level, self.png_encoder = output_dir, letter, png_level, png_encoder
        self.give_up_s, self.poll_s = give_up_s, settings.poll_s
        self.canvases: dict[int, Canvas] = {}
        self.coordinated: int | None = None
        self.quiet_since = now
        self._waiting = time.perf_counter()

    def step(self, now: float) -> bool:
        """Take the next result if one comes within poll_s; False once every image is finished."""
        delivery = self.results.next(self.poll_s)
        if delivery is not None:
            self._take(delivery)
            self.quiet_since = now
        if self.coordinated is None:
            self.coordinated = self.board.coordinated()
            self.quiet_since = now
            return True
        if self.board.finished(self.coordinated) >= self.coordinated:
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
        self.tracer.spans.append(Span(self.lane, "blocked", "", None, self._waiting, time.perf_counter()))
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
                save_image(canvas.pixels, target, self.png_level, encoder=self.png_encoder)
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
                      f"{self.give_up_s:g} s without a result; at-most-once: a tile or result lost with the pod that "
                      "held it is never sent again")
            log.warning("%s: %s", canvas.plan.name, reason)
            self._finish(image, canvas, canvas.report(State.INCOMPLETE, reason))

    def _finish(self, image: int, canvas: Canvas, report: ImageReport) -> None:
        self.board.report(image, report)
        canvas.final, canvas.pixels = report, None  # keep the counts, free the pixels


def tiles_in_flight(cluster: Cluster) -> int | None:
    """Tiles taken by a worker and not yet back as a result; None until every tile is queued.

    Counted from outside, as the original demo did, from counters read one after another: a tile
    moving meanwhile can make it one off for a moment.  e itself keeps no record of them: that is its flaw.
    """
    board = cluster.board
    if board.coordinated() is None:
        return None
    queued = sum(len(board.plan(image).tiles) for image in board.planned())
    jobs = NaiveQueue(board.client, board.key("jobs")).waiting()
    results = NaiveQueue(board.client, board.key("results")).waiting()
    jobs = max(jobs - len(cluster.workers), 0)  # the STOP pills wait behind the last tile
    return queued - jobs - results - board.assembled()


ROLES = Roles(coordinator, worker, assembler, pills=True, in_flight=tiles_in_flight, give_up_s=GIVE_UP_S)
