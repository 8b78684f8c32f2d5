"""Loading, converting, refusing and saving images: one bad file is reported, never a crash."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.core.errors import ConfigError, ImageError
from approaches.core.images import _copied_out, find_images, load_image, output_path, save_image
from approaches.core.job import Outcome
from tests.conftest import photo


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_blurrable_modes_round_trip_unchanged(tmp_path, mode, channels):
    pixels = photo(12, 15, channels)
    path = tmp_path / "x.png"
    save_image(pixels, path, png_level=1)
    loaded = load_image(path)
    assert loaded.mode == mode and np.array_equal(loaded.pixels, pixels)
    assert Image.open(path).mode == mode


@pytest.mark.parametrize("mode,expected", [("1", "L"), ("P", "RGB"), ("CMYK", "RGB"), ("YCbCr", "RGB")])
def test_other_modes_are_converted(tmp_path, mode, expected):
    path = tmp_path / ("x.tif" if mode in ("CMYK", "YCbCr") else "x.png")
    Image.fromarray(photo(8, 8, 3)).convert(mode).save(path)
    assert load_image(path).mode == expected


def test_palette_with_transparency_becomes_rgba(tmp_path):
    image = Image.fromarray(photo(8, 8, 3)).convert("P")
    image.info["transparency"] = 0
    image.save(tmp_path / "p.png", transparency=0)
    assert load_image(tmp_path / "p.png").mode == "RGBA"


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_bit_depth_is_refused_with_a_reason(tmp_path, mode):
    path = tmp_path / "deep.tif"
    Image.fromarray(photo(8, 8, 1)[..., 0]).convert(mode).save(path)
    with pytest.raises(ImageError, match="not supported"):
        load_image(path)


def bad_inputs(directory: Path) -> dict[str, str]:
    """Each kind of bad input, made in directory, with the reason it must be reported with."""
    (directory / "empty.png").write_bytes(b"")
    (directory / "text.png").write_text("this is not an image\n")
    good = directory / "full.png"
    Image.fromarray(photo(64, 64, 3)).save(good)
    (directory / "truncated.png").write_bytes(good.read_bytes()[:300])
    good.unlink()
    (directory / "folder.png").mkdir()
    (directory / "dangling.png").symlink_to(directory / "nowhere.png")
    return {"empty.png": "empty file", "text.png": "not an image", "truncated.png": "truncated or corrupt",
            "folder.png": "is a directory", "dangling.png": "file not found"}


def assert_bad_inputs_reported(outcome: Outcome, reasons: dict[str, str]) -> None:
    """Every good image of image_dir saved, every bad input of bad_inputs failed with its reason."""
    assert {s.name for s in outcome.saved} == {"one", "two", "three"}
    failed = {Path(f.path).name: f.reason for f in outcome.failed}
    assert set(failed) == set(reasons)
    for name, reason in reasons.items():
        assert reason in failed[name]


def test_each_bad_input_gives_a_one_line_reason(tmp_path):
    for name, reason in bad_inputs(tmp_path).items():
        with pytest.raises(ImageError) as caught:
            load_image(tmp_path / name)
        assert reason in caught.value.reason and "\n" not in str(caught.value)
        assert str(tmp_path / name) in str(caught.value)


def test_unreadable_file_is_reported(tmp_path, monkeypatch):
    # Tests run as root in CI, where chmod 000 does not stop a read: make the open itself fail.
    path = tmp_path / "secret.png"
    Image.fromarray(photo(8, 8, 3)).save(path)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(ImageError, match="permission denied"):
        load_image(path)


def test_an_image_over_the_run_limit_is_refused_and_one_at_it_decoded(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(photo(100, 100, 3)).save(path)
    with pytest.raises(ImageError, match=r"too large: 100x100 is over the limit of 9,999 pixels \(--max-pixels\)"):
        load_image(path, max_pixels=9999)
    assert load_image(path, max_pixels=10_000).pixels.shape == (100, 100, 3)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_pixels_copied_out_a_band_at_a_time_are_pillow_own(mode):
    image = Image.fromarray(photo(37, 23, len(mode)) if len(mode) > 1 else photo(37, 23, 1)[..., 0], mode)
    expected = np.asarray(image).reshape(37, 23, len(mode))
    for band_bytes in (1, 23 * len(mode) * 5, 10**9):  # a row, 5 rows (the last band short: 2), the whole image
        assert np.array_equal(_copied_out(image, band_bytes), expected)


def test_find_images_lists_image_names_sorted_and_skips_other_files(tmp_path):
    for name in ("b.png", "a.JPG", "notes.txt", "c.webp"):
        (tmp_path / name).write_bytes(b"")
    assert [s.path.name for s in find_images(tmp_path)] == ["a.JPG", "b.png", "c.webp"]


def test_same_stem_inputs_get_distinct_names(tmp_path):
    for name in ("photo.png", "photo.jpg", "other.png"):
        (tmp_path / name).write_bytes(b"")
    assert sorted(s.name for s in find_images(tmp_path)) == ["other", "photo_jpg", "photo_png"]


def test_missing_input_directory_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        find_images(tmp_path / "nope")


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", "x\\y"])
def test_output_names_cannot_leave_the_output_folder(tmp_path, name):
    with pytest.raises(ImageError, match="refusing"):
        output_path(tmp_path, "a", name)


def test_output_path_follows_the_naming_rule(tmp_path):
    assert output_path(tmp_path, "c", "img3") == tmp_path / "c" / "img3_blurred.png"


def test_save_failure_is_an_image_error_and_leaves_no_partial_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ImageError, match="cannot write"):
        save_image(photo(4, 4, 3), blocker / "out.png", png_level=1)
    assert not list(tmp_path.glob("**/*.partial"))
