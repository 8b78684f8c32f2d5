"""Tile plans, cutting tiles with their halo, and pasting results: the halo rule lives here only.

The halo rule: a tile is cut with ``radius = kernel_size // 2`` extra pixels on every side, taken from
the image; where the halo falls outside the image, it repeats the image's border pixel (clamp in
*image* coordinates).  The original course clamped at each tile's own edge and cut the halo off at the
image border, which shifted every tile of the first row and column by ``radius`` pixels.  With this
rule, blurring tiles and pasting them gives exactly the whole-image blur.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Tile:
    """A rectangle of the output image; ids are row-major from 0."""

    id: int
    x: int
    y: int
    width: int
    height: int


def plan_tiles(width: int, height: int, tile_size: int) -> list[Tile]:
    """Cover a width x height image with tiles of tile_size, row-major; edge tiles are truncated.

    >>> [(t.id, t.x, t.y, t.width, t.height) for t in plan_tiles(5, 3, 4)]
    [(0, 0, 0, 4, 3), (1, 4, 0, 1, 3)]
    """
    if tile_size < 1:
        raise ValueError(f"tile size must be at least 1, got {tile_size}")
    if width < 1 or height < 1:
        raise ValueError(f"image must be at least 1x1, got {width}x{height}")
    columns = range(0, width, tile_size)
    return [
        Tile(id=row * len(columns) + col, x=x, y=y, width=min(tile_size, width - x), height=min(tile_size, height - y))
        for row, y in enumerate(range(0, height, tile_size))
        for col, x in enumerate(columns)
    ]


def cut(image: np.ndarray, tile: Tile, radius: int) -> np.ndarray:
    """Copy tile plus a halo of radius from image (H, W, C), clamping in image coordinates.

    The part of the halo inside the image is copied as it is; only what lies beyond the image border
    is filled by repeating the border row or column.

    >>> img = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    >>> cut(img, Tile(0, 1, 0, 1, 1), 1)[..., 0]
    array([[0, 1, 2],
           [0, 1, 2],
           [3, 4, 5]], dtype=uint8)
    """
    height, width = image.shape[:2]
    top, left = tile.y - radius, tile.x - radius
    inside = image[max(top, 0):min(tile.y + tile.height + radius, height),
                   max(left, 0):min(tile.x + tile.width + radius, width)]
    padded = np.empty((tile.height + 2 * radius, tile.width + 2 * radius, image.shape[2]), image.dtype)
    y0, x0 = max(-top, 0), max(-left, 0)
    y1, x1 = y0 + inside.shape[0], x0 + inside.shape[1]
    padded[y0:y1, x0:x1] = inside
    # Beyond the image: repeat its border (slice assignment; np.pad costs several times more per tile).
    padded[:y0] = padded[y0]
    padded[y1:] = padded[y1 - 1]
    padded[:, :x0] = padded[:, x0:x0 + 1]
    padded[:, x1:] = padded[:, x1 - 1:x1]
    return padded


def paste(canvas: np.ndarray, tile: Tile, block: np.ndarray) -> None:
    """Write a blurred tile (height, width, C) into its place in canvas."""
    canvas[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width] = block
