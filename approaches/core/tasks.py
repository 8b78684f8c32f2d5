"""What the tile-parallel approaches pass around: a tile task, its result, and an image's assembly.

A task names its image by the image's unique input name (``ImageSource.name``).  That name crosses
queues only to find the image's Assembly again; the output file is named from the Assembly's own
ImageSource, never from what came back on a queue, so a wrong or stale message cannot rename or
overwrite an output.
"""

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from approaches.core.images import ImageSource, output_path, save_image
from approaches.core.job import Failure, Saved
from approaches.core.kernel import blur_into, blur_tile
from approaches.core.tiling import Tile, paste


class TileTask(NamedTuple):
    """One tile to blur; payload is the padded tile, or what a worker needs to find the pixels itself."""

    image: str
    tile: Tile
    payload: Any


class TileAnswer(NamedTuple):
    """One answer per task: the blurred block (or None when the worker wrote it in place), or an error.

    Spans are plain tuples so that a worker process can send them back with the pixels (Tracer.extend).
    """

    image: str
    tile: Tile
    pixels: np.ndarray | None
    error: str | None
    spans: tuple[tuple, ...]


SpanFor = Callable[[str], AbstractContextManager[None]]
"""span(stage): times one stage of the current task in the worker's lane (given to a Work)."""

Work = Callable[[TileTask, SpanFor], np.ndarray | None]
"""What a worker does with one task: returns the blurred block, or None if it wrote it in place."""


class InPlace(NamedTuple):
    """The payload of a task for a thread: the image and its canvas themselves (threads share memory)."""

    pixels: np.ndarray
    canvas: np.ndarray


def blur_padded(kernel_size: int, truncate: bool, method: str = "separable") -> Work:
    """The work of b.processes: the task carries a padded copy of the tile; return its blurred block."""

    def work(task: TileTask, span: SpanFor) -> np.ndarray:
        with span("blur"):
            return blur_tile(task.payload, kernel_size, truncate=truncate, method=method)

    return work


def blur_in_place(kernel_size: int, truncate: bool, method: str = "separable") -> Work:
    """The work of b.threads and c: read the tile and its halo from the image, write into the canvas.

    Nothing is cut, queued as pixels, or pasted: the result only says the tile is done.
    """

    def work(task: TileTask, span: SpanFor) -> None:
        shared: InPlace = task.payload
        with span("blur"):
            blur_into(shared.pixels, task.tile, shared.canvas, kernel_size, truncate=truncate, method=method)

    return work


class Assembly:
    """One image put back together from its tiles, in whatever order they arrive.

    Every tile is counted, failed or not, so the image is finished exactly when its last tile is in;
    after one failure the rest are only counted, and the image is reported failed with the first reason.
    """

    def __init__(self, source: ImageSource, mode: str, canvas: np.ndarray, tiles: int) -> None:
        self.source = source
        self.mode = mode
        self.canvas = canvas
        self.remaining = tiles
        self.error: str | None = None

    def add(self, result: TileAnswer) -> bool:
        """Paste one result (or keep its error); True when it was the image's last tile."""
        if result.error is not None:
            self.error = self.error or result.error
        elif result.pixels is not None and self.error is None:
            paste(self.canvas, result.tile, result.pixels)
        self.remaining -= 1
        return self.remaining == 0

    def failure(self) -> Failure:
        return Failure(str(self.source.path), str(self.error))

    def save(self, output_dir: Path, letter: str, png_level: int, encoder: str) -> Saved:
        """Write the canvas to <output_dir>/<letter>/<name>_blurred.png (raises ImageError)."""
        target = output_path(output_dir, letter, self.source.name)
        save_image(self.canvas, target, png_level, encoder=encoder)
        height, width = self.canvas.shape[:2]
        return Saved(self.source.name, self.source.path, target, width, height, self.mode)
