"""The assemblers: e's, which pastes results in its own memory, and f's and g's, which keep them in Redis.

InMemoryAssembler (e) takes each result off e's result list as it comes, pastes it into its image and saves
the image once whole; a result lost on the way (or the assembler killed) leaves its image incomplete,
reported after Settings.result_wait_s without a result.

StoredResultsAssembler (f, g) saves each image once all its results are stored in Redis, and remembers
nothing.  Everything it decides on is read from the run's board, so an assembler killed and started again carries on
where the last one stopped.  Each look (`step`):

- an image whose every tile has a stored result is pasted together, saved, reported saved, and its results
  are dropped (the set of stored tile ids stays, so a late duplicate is still recognised);
- an image one of whose tile jobs the queue gave up on (a poison tile, dead-lettered after its last delivery)
  is reported failed with that reason, so the others need not wait for it;
- once the coordinator has queued every image and every one has a report, the run is over: the duplicates
  are counted into the reports, a summary is kept, and every other key of the run is deleted (Board.finish);
- with no new result for Settings.progress_wait_s, the images still open are reported incomplete.

A record that cannot be read (a plan, a stored result, a dead letter written by someone else) never stops
it: the image it belongs to fails with the reason, or, if it belongs to no image, it is set aside.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from approaches.cluster.board import Board
from approaches.cluster.broker import connect
from approaches.cluster.pods import Life
from approaches.cluster.queues import Delivery, WorkQueue, dead_letters
from approaches.cluster.wire import ImagePlan, ImageReport, Kind, State, TileResult, WireError, peek
from approaches.core.errors import ImageError
from approaches.core.images import output_path, save_image
from approaches.core.settings import Settings
from approaches.core.tiling import paste
from approaches.core.trace import Span, Tracer

POLL_S = 0.01  # how often the assembler looks for whole images: a few cheap reads each time
SUMMARY_LETTERS = 100  # the dead letters a summary names (all stay on their streams, under the run's TTL)

log = logging.getLogger(__name__)


def assembler(life: Life, *, jobs: Callable[[Board], WorkQueue], url: str, run: str, settings: dict,
              output_dir: str, letter: str, png_level: int, png_encoder: str = "pillow",
              stop: threading.Event | None = None, each_step: Callable[[], None] | None = None) -> None:
    """f's, g's and j's assembler pod: step until every image has a report, then finish the run (workers stop).

    jobs(board) is the approach's job queue, to count what is left in it at the end.  stop (a service asked
    to shut down) ends it between steps, without finishing the run: nothing it knows is lost, and an
    assembler started later carries on.  each_step: called before each step (j moves RabbitMQ's dead letters
    onto the board, where a step reads them)."""
    board = Board(connect(url), run)
    assembly = StoredResultsAssembler(board, Path(output_dir), letter, png_level, png_encoder,
                                      Settings(**settings).progress_wait_s, life.tracer, life.name,
                                      now=time.monotonic())
    life.ready()

    def step() -> bool:
        if each_step is not None:
            each_step()
        return assembly.step(time.monotonic())

    while step():
        if stop is not None and stop.is_set():
            return
        life.checkpoint("step")
        life.sleep(POLL_S)
    queue = jobs(board)
    assembly.finish({"jobs": queue.waiting() + (queue.in_flight() or 0), "results": 0})


class StoredResultsAssembler:
    """Saves images as their results are stored; step(now) is one look, with the time passed in, so a test can
    jump past give_up_s (Settings.progress_wait_s in a pod)."""

    def __init__(self, board: Board, output_dir: Path, letter: str, png_level: int, png_encoder: str,
                 give_up_s: float, tracer: Tracer, lane: str, *, now: float) -> None:
        self.board, self.tracer, self.lane = board, tracer, lane
        self.output_dir, self.letter, self.give_up_s = output_dir, letter, give_up_s
        self.png_level, self.png_encoder = png_level, png_encoder
        self.quiet_since, self.last_count = now, -1

    def step(self, now: float) -> bool:
        """Save what is whole and fail what is dead; False once every image has a report."""
        board = self.board
        coordinated = board.coordinated()
        reports = board.reports()
        self._fail_dead_lettered(reports)
        stored = 0
        for image in board.planned():
            if coordinated is not None and image >= coordinated:
                board.drop_plan(image, f"a plan for image {image}, but the run has {coordinated} images")
                continue
            if image in reports:
                continue
            if (plan := self._plan(image)) is None:
                continue
            tiles = board.result_tiles(image, len(plan.tiles))
            stored += len(tiles)
            if len(tiles) == len(plan.tiles):
                self._save(image, plan)
        if coordinated is not None and board.finished(coordinated) >= coordinated:
            return False
        if stored != self.last_count or coordinated is None:
            self.quiet_since, self.last_count = now, stored
        elif now - self.quiet_since >= self.give_up_s:
            self._give_up()
            return False
        return True

    def finish(self, left: dict[str, int]) -> None:
        """Bring each report's duplicate count up to date (a late result may come after its image was saved),
        keep the run's summary (with what was `left` in the queues), and delete everything else (workers see
        the run done and stop)."""
        reports = self.board.reports()
        for image, report in reports.items():
            duplicates = self.board.duplicates(image)
            if duplicates != report.duplicates:
                reports[image] = replace(report, duplicates=duplicates)
                self.board.report(image, reports[image])
        self.board.finish({**summarise(self.board, reports), "left": left})

    def _plan(self, image: int) -> ImagePlan | None:
        try:
            return self.board.plan(image)
        except WireError as error:
            self._finish(image, None, State.FAILED, f"its plan cannot be read: {error}")
            return None

    def _save(self, image: int, plan: ImagePlan) -> None:
        pixels = np.empty((plan.height, plan.width, plan.channels), np.uint8)
        try:
            with self.tracer.span(self.lane, "assemble", plan.name):
                for tile, body in self.board.results(image, len(plan.tiles)).items():
                    result = TileResult.decode(body, self.board.run, self.board.plan)
                    if (result.image, result.tile.id) != (image, tile):
                        raise WireError(f"the result stored as tile {tile} of image {image} is tile "
                                        f"{result.tile.id} of image {result.image}")
                    paste(pixels, result.tile, result.pixels)
        except WireError as error:
            self._finish(image, plan, State.FAILED, f"a stored result is unusable: {error}")
            return
        target = output_path(self.output_dir, self.letter, plan.name)
        try:
            with self.tracer.span(self.lane, "save", plan.name):
                save_image(pixels, target, self.png_level, encoder=self.png_encoder)
        except ImageError as error:
            self._finish(image, plan, State.FAILED, error.reason)
            return
        log.info("%s: saved %s", plan.name, target)
        self._finish(image, plan, State.SAVED)

    def _fail_dead_lettered(self, reports: dict[int, ImageReport]) -> None:
        """Fail the image of each tile job the queue gave up on (adding it to reports).  Only a letter whose
        first bytes are a job header of this run counts: junk set aside unread fails nothing.  (Only the job
        queue's letters are read: this runs every step, and no other letter can fail an image.)"""
        for letter in dead_letters(self.board.client, self.board.key("jobs")):
            header = peek(letter.head, self.board.run) if letter.exhausted else None
            if header is None or header[0] is not Kind.JOB:
                continue
            _, image, tile = header
            if image not in reports and (plan := self._plan(image)) is not None:
                self._finish(image, plan, State.FAILED, f"tile {tile} dead-lettered: {letter.reason}")
                reports[image] = ImageReport(State.FAILED)

    def _give_up(self) -> None:
        reports = self.board.reports()
        for image in self.board.planned():
            if image not in reports and (plan := self._plan(image)) is not None:
                done = len(self.board.result_tiles(image, len(plan.tiles)))
                self._finish(image, plan, State.INCOMPLETE, f"incomplete: {done} of {len(plan.tiles)} tiles after "
                             f"{self.give_up_s:g} s without progress (no worker left?)")

    def _finish(self, image: int, plan: ImagePlan | None, state: State, reason: str = "") -> None:
        tiles = len(plan.tiles) if plan is not None else 0
        processed = len(self.board.result_tiles(image, tiles)) if plan is not None else 0
        self.board.report(image, ImageReport(state, tiles, processed, self.board.duplicates(image), reason))
        self.board.drop_results(image)
        if state is not State.SAVED:
            log.warning("%s: %s", plan.name if plan is not None else f"image {image}", reason)


class Canvas:
    """One image being put together by e's assembler: which tiles are in, and how many came more than once."""

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


class InMemoryAssembler:
    """e's: pastes results into their images in its own memory, saves each image once whole, and in the end
    gives up on the rest.

    step(now) takes at most one result, and the time is passed in, so a test can jump past
    Settings.result_wait_s instead of sleeping through it.  An image is finished once it has a report on the
    board; the assembler is done when every image the coordinator dealt with has one.  The give-up clock
    starts once the coordinator has queued everything, and starts again with every result.
    """

    def __init__(self, board: Board, results: WorkQueue, output_dir: Path, letter: str, png_level: int,
                 settings: Settings, tracer: Tracer, lane: str, *, now: float, png_encoder: str = "pillow") -> None:
        self.board, self.results, self.tracer, self.lane = board, results, tracer, lane
        self.output_dir, self.letter, self.png_level, self.png_encoder = output_dir, letter, png_level, png_encoder
        self.give_up_s, self.poll_s = settings.result_wait_s, settings.poll_s
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


def summarise(board: Board, reports: dict[int, ImageReport]) -> dict:
    """What a finished run keeps: each image's report with its name and size, and the run's first dead letters
    (reasons and ids only), small enough to keep for the run's TTL."""
    images = {}
    for image, report in sorted(reports.items()):
        try:
            plan = board.plan(image)
            shape = {"name": plan.name, "width": plan.width, "height": plan.height, "mode": plan.mode}
        except WireError:
            shape = {}
        images[str(image)] = {**shape, "state": report.state.value, "expected": report.expected,
                              "processed": report.processed, "duplicates": report.duplicates,
                              "reason": report.reason}
    letters = board.dead_letters()
    return {"images": images, "dead_letter_count": len(letters),
            "dead_letters": [[source, letter.id, letter.reason[:200]] for source, letter in letters[:SUMMARY_LETTERS]]}
