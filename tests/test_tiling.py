"""Tile plans and the halo rule, including the original course's edge bug."""

import numpy as np
import pytest

from approaches import blur
from approaches.core.kernel import blur_tile
from approaches.core.tiling import Tile, cut, paste, plan_tiles
from tests.conftest import photo


def test_plan_is_row_major_with_truncated_edge_tiles():
    tiles = plan_tiles(1198, 1556, 256)  # the original's img1: 5 x 7 tiles
    assert len(tiles) == 35
    assert [t.id for t in tiles] == list(range(35))
    assert (tiles[1].x, tiles[1].y) == (256, 0) and (tiles[5].x, tiles[5].y) == (0, 256)
    assert (tiles[-1].width, tiles[-1].height) == (1198 - 4 * 256, 1556 - 6 * 256)


@pytest.mark.parametrize("width,height,size", [(1, 1, 1), (7, 3, 2), (256, 256, 256), (300, 5, 64), (5, 300, 1000)])
def test_plan_covers_every_pixel_exactly_once(width, height, size):
    covered = np.zeros((height, width), int)
    for t in plan_tiles(width, height, size):
        covered[t.y:t.y + t.height, t.x:t.x + t.width] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize("size", [0, -1])
def test_plan_refuses_tile_sizes_below_one(size):
    with pytest.raises(ValueError, match="tile size"):
        plan_tiles(10, 10, size)


def test_halo_is_clamped_in_image_coordinates():
    image = photo(20, 30, 3)
    padded = cut(image, Tile(0, 0, 0, 8, 8), radius=3)
    assert padded.shape == (14, 14, 3)
    assert np.array_equal(padded[3:11, 3:11], image[0:8, 0:8])  # the tile itself
    assert np.array_equal(padded[3:11, 11:14], image[0:8, 8:11])  # halo taken from the image
    assert np.array_equal(padded[0, 3:11], image[0, 0:8])  # beyond the top: the image's first row repeated
    assert np.array_equal(padded[3:11, 0], image[0:8, 0])  # beyond the left: the first column repeated


def original_cut(image: np.ndarray, tile: Tile, radius: int) -> np.ndarray:
    """The original course's cut: window clamped to the image, then padded at the tile's own edge."""
    h, w = image.shape[:2]
    y0, x0 = max(tile.y - radius, 0), max(tile.x - radius, 0)
    y1, x1 = min(tile.y + tile.height + radius, h), min(tile.x + tile.width + radius, w)
    window = image[y0:y1, x0:x1]
    # ExtractCenter always offset by `radius`, so a window cut short at the top/left is read shifted.
    need = (tile.height + 2 * radius, tile.width + 2 * radius)
    return np.pad(window, ((0, need[0] - window.shape[0]), (0, need[1] - window.shape[1]), (0, 0)), mode="edge")


def test_regression_original_halo_bug_shifted_first_row_and_column_tiles():
    # Pins the Go original's halo bug (docs/go-original.md): outputs of b, c, e, f and g differed from a by up
    # to ~147 levels in the first tile row and column.  Our cut must give a's pixels; the original's must not.
    image, k, size = photo(96, 96, 3), 21, 32
    whole = blur(image, k)
    ours, theirs = np.zeros_like(image), np.zeros_like(image)
    for tile in plan_tiles(96, 96, size):
        paste(ours, tile, blur_tile(cut(image, tile, k // 2), k))
        paste(theirs, tile, blur_tile(original_cut(image, tile, k // 2), k))
    assert np.array_equal(ours, whole)
    worst = np.abs(theirs.astype(int) - whole.astype(int))
    assert worst[:size, :].max() > 20 and worst[:, :size].max() > 20
    assert worst[size:, size:].max() == 0  # tiles away from the top/left edges were always right
