"""f — Reliable queue: e's pods, made to survive the faults that make e lose tiles.

Delivery guarantee: at-least-once, with idempotent assembly.  A tile job stays in Redis until the worker
that took it has stored the result and acks it; a job whose worker dies (or falls silent for longer than
the visibility timeout) is handed to another; a result stored twice counts as a duplicate and changes
nothing.  So no tile is lost, some may be blurred twice, and each image is saved once, whole.

    coordinator --LPUSH jobs--> worker pods x N --HSET results:<image>, then ack--> assembler --> <output>/f/
                 (one transaction   (BRPOPLPUSH onto      (a tile's result is kept     (saves an image once
                  per image)         its own list)         in Redis, keyed by tile)     all its tiles are in)

What changes from e, each against one fault:
- a worker killed holding a tile: the tile is on that worker's processing list (cluster/queues.py,
  ReliableQueue); its heartbeat expires and an idle worker's reap() hands it back.  A restarted worker
  first returns what its earlier life held.
- a tile that fails: handed back after an exponential backoff with jitter; after MAX_DELIVERIES deliveries
  it is dead-lettered with its reason, its image is reported failed, and the other images complete.
- the assembler killed: it keeps nothing that matters in memory.  Results wait in Redis, one hash per
  image, until the image is saved, so a restarted assembler carries on where the last one stopped.
- the coordinator killed: each image's plan and tiles are queued in one transaction, so an image is
  queued wholly or not at all, and a restarted coordinator skips the images already planned.
Workers stop when the assembler marks the run done, not at pills: a job handed back after the pills
were sent would otherwise wait behind them for a worker that has already left.
"""

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from approaches.cluster import deployment
from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.deployment import Cluster, Roles, decode_job, hand_back_later, load_and_plan
from approaches.cluster.pods import Life
from approaches.cluster.queues import ReliableQueue, StreamQueue, dead_letters, reap
from approaches.cluster.wire import ImagePlan, ImageReport, State, TileJob, TileResult, WireError
from approaches.core.errors import ImageError
from approaches.core.images import output_path, save_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur_tile, warm_up
from approaches.core.settings import Settings
from approaches.core.tiling import cut, paste
from approaches.core.trace import Tracer

ASSEMBLER_POLL_S = 0.01  # how often the assembler looks for whole images: a few cheap reads each time
GIVE_UP_S = 60.0  # without progress for this long (no worker left?), the assembler reports what is missing

log = logging.getLogger(__name__)


def run(job: Job, tracer: Tracer, **options: Any) -> Outcome:
    return deployment.run(job, tracer, ROLES, **options)


def jobs_queue(board: Board, consumer: str, settings: Settings) -> ReliableQueue:
    """A live worker beats at least every poll_s; one silent for visibility_s is presumed dead."""
    return ReliableQueue(board.client, board.key("jobs"), consumer, visibility_s=settings.visibility_s,
                         max_deliveries=settings.max_deliveries)


# --- the pods ------------------------------------------------------------------------------------------


def coordinator(life: Life, *, url: str, run: str, settings: dict, images: list[list[str]], kernel_size: int,
                tile_size: int) -> None:
    board = Board(connect(url), run)
    queue_images(life, board, jobs_queue(board, life.name, Settings(**settings)), images, kernel_size, tile_size)


def queue_images(life: Life, board: Board, jobs: ReliableQueue | StreamQueue, images: list[list[str]],
                 kernel_size: int, tile_size: int, stop: threading.Event | None = None) -> None:
    """Queue every image not queued yet: its plan and all its tiles in one transaction (g's coordinator too).

    stop (a service asked to shut down) ends it between images; the run is then not marked coordinated,
    and a coordinator started later carries on with the images not queued yet."""
    life.ready()
    dealt_with = set(board.planned()) | set(board.reports())  # by an earlier life of this pod
    for image, (path, name) in enumerate(images):
        if stop is not None and stop.is_set():
            return
        if image in dealt_with:
            continue
        if (planned := load_and_plan(life, board, image, path, name, kernel_size, tile_size)) is None:
            continue
        loaded, plan = planned
        with life.tracer.span(life.name, "cut", name):
            bodies = [TileJob(board.run, image, tile, kernel_size, cut(loaded.pixels, tile, plan.halo)).encode()
                      for tile in plan.tiles]
        life.checkpoint("cut")  # a crash here queues nothing of this image: the next life does it whole
        with life.tracer.span(life.name, "send", name), board.client.pipeline(transaction=True) as pipe:
            board.publish_plan(image, plan, pipe)
            jobs.put_all(bodies, pipe)
            pipe.execute()
        life.checkpoint("queued")
    board.mark_coordinated(len(images))


def worker(life: Life, *, url: str, run: str, settings: dict, truncate: bool, kernel: str) -> None:
    """Take a tile, blur it, store the result, then ack; hand back what dead workers held while idle."""
    timing = Settings(**settings)
    board = Board(connect(url), run)
    jobs = jobs_queue(board, life.name, timing)
    warm_up(method=kernel)  # load the compiled kernel: part of starting up, not of a tile
    returned = jobs.recover()
    if returned:
        log.info("%s: handed back %d tiles held by its earlier life", life.name, returned)
    life.ready()
    while True:
        life.checkpoint("idle")
        delivery = jobs.next(timing.poll_s)
        if delivery is None:  # nothing to do: is the run over, or does a dead worker hold what is left?
            if board.done():
                return
            reap(board.client, jobs.key)
            continue
        life.checkpoint("popped")
        if (job := decode_job(life.name, board, jobs, delivery)) is None:
            continue
        name = board.plan(job.image).name
        if timing.tile_delay_s:
            life.sleep(timing.tile_delay_s)
            jobs.heartbeat()
        try:
            life.tile_fault(name, job.tile.id)
            with life.tracer.span(life.name, "blur", name, job.tile.id):
                block = blur_tile(job.pixels, job.kernel_size, truncate=truncate, method=kernel)
        except Exception as error:
            hand_back_later(life, life.name, jobs, delivery, f"tile {job.tile.id} of {name}", error, timing)
            continue
        life.checkpoint("blurred")  # a crash here: the job is still on this worker's list, and is done again
        with life.tracer.span(life.name, "send", name, job.tile.id):
            board.store_result(job.image, job.tile.id,
                               TileResult(run, job.image, job.tile, job.kernel_size, block).encode())
        life.checkpoint("stored")  # a crash here: done twice, stored twice, counted as a duplicate
        jobs.ack(delivery)


def assembler(life: Life, *, url: str, run: str, settings: dict, output_dir: str, letter: str, png_level: int,
              stop: threading.Event | None = None) -> None:
    """Save images as they become whole until every image has a report, then mark the run done (g's too).

    stop (a service asked to shut down) ends it between steps, without marking the run done: nothing it
    knows is lost, and an assembler started later carries on."""
    board = Board(connect(url), run)
    assembly = Assembler(board, Path(output_dir), letter, png_level, Settings(**settings).give_up(GIVE_UP_S),
                         life.tracer, life.name, now=time.monotonic())
    life.ready()
    while assembly.step(time.monotonic()):
        if stop is not None and stop.is_set():
            return
        life.checkpoint("step")
        life.sleep(ASSEMBLER_POLL_S)
    assembly.recount_duplicates()
    board.mark_done()


# --- assembling ---------------------------------------------------------------------------------------


class Assembler:
    """Saves each image once all its results are in Redis, fails the images of dead-lettered tiles, and in
    the end gives up on images that made no progress for give_up_s.

    It keeps no state that a restart would lose: everything it decides on is read from the board.
    step(now) is one look; time is passed in, so a test can jump past give_up_s.
    """

    def __init__(self, board: Board, output_dir: Path, letter: str, png_level: int, give_up_s: float,
                 tracer: Tracer, lane: str, *, now: float) -> None:
        self.board, self.tracer, self.lane = board, tracer, lane
        self.output_dir, self.letter, self.png_level, self.give_up_s = output_dir, letter, png_level, give_up_s
        self.quiet_since, self.last_count = now, -1

    def step(self, now: float) -> bool:
        """Save what is whole and fail what is dead; False once every image has a report."""
        board = self.board
        coordinated = board.coordinated()
        reports = board.reports()
        self._fail_dead_lettered(reports)
        stored = 0
        for image in board.planned():
            if image in reports:
                continue
            plan = board.plan(image)
            count = board.results_stored(image)
            stored += count
            if count == len(plan.tiles):
                self._save(image, plan)
        if coordinated is not None and board.finished() >= coordinated:
            return False
        if stored != self.last_count or coordinated is None:
            self.quiet_since, self.last_count = now, stored
        elif now - self.quiet_since >= self.give_up_s:
            self._give_up()
            return False
        return True

    def recount_duplicates(self) -> None:
        """Bring each report's duplicate count up to date: a late result may come after its image was saved."""
        for image, report in self.board.reports().items():
            duplicates = self.board.duplicates(image)
            if duplicates != report.duplicates:
                self.board.report(image, replace(report, duplicates=duplicates))

    def _save(self, image: int, plan: ImagePlan) -> None:
        pixels = np.empty((plan.height, plan.width, plan.channels), np.uint8)
        try:
            with self.tracer.span(self.lane, "assemble", plan.name):
                for tile, body in self.board.results(image).items():
                    result = TileResult.decode(body, self.board.run, self.board.plan)
                    if result.tile.id != tile:
                        raise WireError(f"the result stored as tile {tile} is tile {result.tile.id}")
                    paste(pixels, result.tile, result.pixels)
        except WireError as error:
            self._finish(image, plan, State.FAILED, f"a stored result is unusable: {error}")
            return
        target = output_path(self.output_dir, self.letter, plan.name)
        try:
            with self.tracer.span(self.lane, "save", plan.name):
                save_image(pixels, target, self.png_level)
        except ImageError as error:
            self._finish(image, plan, State.FAILED, error.reason)
            return
        log.info("%s: saved %s", plan.name, target)
        self._finish(image, plan, State.SAVED)

    def _fail_dead_lettered(self, reports: dict[int, ImageReport]) -> None:
        """Fail the image of each dead-lettered tile (adding it to reports)."""
        for letter in dead_letters(self.board.client, self.board.key("jobs")):
            try:
                job = TileJob.decode(letter.body, self.board.run, self.board.plan)
            except WireError:
                continue  # not a tile of this run's images: nothing to fail
            if job.image not in reports:
                plan = self.board.plan(job.image)
                self._finish(job.image, plan, State.FAILED, f"tile {job.tile.id} dead-lettered: {letter.reason}")
                reports[job.image] = ImageReport(State.FAILED)

    def _give_up(self) -> None:
        reports = self.board.reports()
        for image in self.board.planned():
            if image not in reports:
                plan = self.board.plan(image)
                self._finish(image, plan, State.INCOMPLETE,
                             f"incomplete: {self.board.results_stored(image)} of {len(plan.tiles)} tiles after "
                             f"{self.give_up_s:g} s without progress (no worker left?)")

    def _finish(self, image: int, plan: ImagePlan, state: State, reason: str = "") -> None:
        processed = self.board.results_stored(image)
        self.board.report(image, ImageReport(state, len(plan.tiles), processed, self.board.duplicates(image), reason))
        self.board.drop_results(image)
        if state is not State.SAVED:
            log.warning("%s: %s", plan.name, reason)


def tiles_in_flight(cluster: Cluster) -> int:
    """Exactly the tiles on the workers' processing lists: f knows what each worker holds."""
    return sum(jobs_queue(cluster.board, pod.name, cluster.job.config.settings).in_flight()
               for pod in cluster.workers)


ROLES = Roles(coordinator, worker, assembler, pills=False, in_flight=tiles_in_flight, give_up_s=GIVE_UP_S)
