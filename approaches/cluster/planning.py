"""A coordinator's part: load each image, publish its plan, queue its tiles; resume without doing it twice.

e's coordinator queues tile after tile, as the original did (approaches/e_naive_queue.py).  f's and g's
queue each image whole: its plan and all its tiles in one transaction, so an image is queued wholly or not
at all, and a coordinator started again skips the images already planned.  Before anything, the run's
images are recorded as (name, content hash) pairs; a coordinator resuming a run must be given the same
images, or it refuses with one line: image ids are positions in that record, so other inputs would mix
two runs' images and overwrite outputs.
"""

import hashlib
import os
import stat
import threading
from pathlib import Path

from approaches.cluster.board import Board, ResumeRefused
from approaches.cluster.pods import Life
from approaches.cluster.queues import WorkQueue
from approaches.cluster.wire import ImagePlan, ImageReport, State, TileJob
from approaches.core.errors import ImageError
from approaches.core.images import LoadedImage, load_image
from approaches.core.tiling import cut


def fingerprint(images: list[list[str]]) -> list[list[str]]:
    """[name, content hash] for each [path, name]: what identifies a run's images (an unreadable file's
    hash is "unreadable": it is reported as failed when loaded, like any bad input)."""
    prints = []
    for path, name in images:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read
                raise OSError("not a regular file")
            with open(path, "rb") as file:
                digest = hashlib.file_digest(file, "blake2b").hexdigest()[:32]
        except OSError:
            digest = "unreadable"
        prints.append([name, digest])
    return prints


def load_and_plan(life: Life, board: Board, image: int, path: str, name: str, kernel_size: int,
                  tile_size: int, max_pixels: int) -> tuple[LoadedImage, ImagePlan] | None:
    """A coordinator's first step for each image: load it, or report it failed (None) and move on."""
    try:
        with life.tracer.span(life.name, "load", name):
            loaded = load_image(Path(path), max_pixels)
    except ImageError as error:
        board.report(image, ImageReport(State.FAILED, reason=error.reason))
        return None
    return loaded, ImagePlan(name, loaded.width, loaded.height, loaded.mode, kernel_size, tile_size)


def queue_images(life: Life, board: Board, jobs: WorkQueue, images: list[list[str]], kernel_size: int,
                 tile_size: int, max_pixels: int, stop: threading.Event | None = None) -> None:
    """Queue every image not queued yet, each whole: its plan and all its tiles in one transaction.

    stop (a service asked to shut down) ends it between images; the run is then not marked coordinated,
    and a coordinator started later carries on with the images not queued yet.  ResumeRefused if the run
    was started with other images."""
    board.claim_inputs(fingerprint(images))
    if board.done():
        raise ResumeRefused(f"run {board.run} is finished already; start a new run")
    life.ready()
    dealt_with = set(board.planned()) | set(board.reports())  # by an earlier life of this pod
    for image, (path, name) in enumerate(images):
        if stop is not None and stop.is_set():
            return
        if image in dealt_with:
            continue
        if (planned := load_and_plan(life, board, image, path, name, kernel_size, tile_size, max_pixels)) is None:
            continue
        loaded, plan = planned
        with life.tracer.span(life.name, "cut", name):
            bodies = [TileJob(board.run, image, tile, kernel_size, cut(loaded.pixels, tile, plan.halo)).encode()
                      for tile in plan.tiles]
        life.checkpoint("cut")  # a crash here queues nothing of this image: the next life does it whole
        with life.tracer.span(life.name, "send", name), board.client.pipeline(transaction=True) as pipe:
            board.publish_plan(image, plan, pipe)
            for body in bodies:
                jobs.put(body, pipe)
            pipe.execute()
        life.checkpoint("queued")
    board.mark_coordinated(len(images))
