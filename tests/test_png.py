"""PNG encoders: Pillow and fpng write the same pixels; L/LA and a missing fpng fall back to Pillow."""

import importlib.util
import io
import logging
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from approaches.core.images import load_image, save_image
from approaches.core.png import PNG_ENCODERS, Fpng, check_encoder, encode_png, resolve_encoder, write_png
from tests.conftest import photo

pytestmark = pytest.mark.timeout(60)

HAS_FPNG = importlib.util.find_spec("fpng") is not None
needs_fpng = pytest.mark.skipif(not HAS_FPNG, reason="fpng has no wheel for this platform")
FPNG_CHUNK = b"fdEC"  # the private chunk fpng adds to every file it writes; Pillow never writes it


def decoded(png: bytes) -> np.ndarray:
    pixels = np.asarray(Image.open(io.BytesIO(png)))
    return pixels.reshape(pixels.shape[0], pixels.shape[1], -1)


def fake_fpng(calls: list) -> Fpng:
    """An Fpng whose module records what it was asked to encode and answers with Pillow's bytes."""

    def from_ndarray(pixels: np.ndarray) -> bytes:
        calls.append(pixels.shape)
        return encode_png(pixels, "pillow")

    return Fpng(import_module=lambda name: SimpleNamespace(from_ndarray=from_ndarray))


def missing_fpng() -> Fpng:
    def fail(name: str):
        raise ImportError(f"No module named {name!r}")

    return Fpng(import_module=fail)


@pytest.mark.parametrize("encoder", [pytest.param("fpng", marks=needs_fpng), "pillow"])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("height,width", [(1, 1), (7, 13), (13, 7), (1, 31)])
def test_every_encoder_writes_pixels_that_decode_identical(encoder, channels, height, width):
    pixels = photo(height, width, channels)
    assert np.array_equal(decoded(encode_png(pixels, encoder, level=1)), pixels)


@needs_fpng
@pytest.mark.parametrize("channels", [3, 4])
def test_fpng_writes_large_odd_rgb_and_rgba_itself_and_they_decode_identical(channels):
    pixels = photo(601, 1203, channels)
    png = encode_png(pixels, "fpng")
    assert FPNG_CHUNK in png and np.array_equal(decoded(png), pixels)


@needs_fpng
def test_fpng_encodes_a_strided_view_by_its_pixels_not_its_memory():
    pixels = photo(20, 30, 4)[::2, ::3, :3]
    assert np.array_equal(decoded(encode_png(pixels, "fpng")), pixels)


@needs_fpng
def test_the_png_level_does_not_change_what_fpng_writes():
    pixels = photo(9, 11, 3)
    assert encode_png(pixels, "fpng", level=0) == encode_png(pixels, "fpng", level=9)


@pytest.mark.parametrize("channels", [1, 2])
def test_l_and_la_go_through_pillow_even_when_fpng_is_chosen(channels):
    calls: list = []
    pixels = photo(5, 6, channels)
    assert encode_png(pixels, "fpng", level=3, fpng=fake_fpng(calls)) == encode_png(pixels, "pillow", level=3)
    assert calls == []


def test_rgb_and_rgba_go_to_fpng_when_it_is_chosen():
    calls: list = []
    fpng = fake_fpng(calls)
    for channels in (3, 4):
        encode_png(photo(5, 6, channels), "fpng", fpng=fpng)
    assert calls == [(5, 6, 3), (5, 6, 4)]


def test_a_missing_fpng_falls_back_to_pillow_with_one_warning_line(caplog):
    missing = missing_fpng()
    pixels = photo(5, 6, 3)
    with caplog.at_level(logging.WARNING, logger="approaches.core.png"):
        first = encode_png(pixels, "fpng", level=2, fpng=missing)
        second = encode_png(pixels, "fpng", level=2, fpng=missing)
        assert resolve_encoder("fpng", missing) == "pillow"
    assert first == second == encode_png(pixels, "pillow", level=2)
    [record] = caplog.records
    message = record.getMessage()
    assert "fpng" in message and "Pillow" in message and "\n" not in message


def test_resolving_an_encoder_keeps_fpng_when_it_imports_and_never_imports_for_pillow():
    def must_not_import(name: str):
        raise AssertionError(f"{name} imported for the Pillow encoder")

    assert resolve_encoder("fpng", fake_fpng([])) == "fpng"
    assert resolve_encoder("pillow", Fpng(import_module=must_not_import)) == "pillow"


def test_importing_the_suite_does_not_import_fpng():
    code = "import sys, approaches.core.images; assert 'fpng' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_an_unknown_encoder_is_a_value_error_naming_the_choices(tmp_path):
    for call in (lambda: check_encoder("zopfli"), lambda: resolve_encoder("zopfli"),
                 lambda: encode_png(photo(2, 2, 3), "zopfli"),
                 lambda: save_image(photo(2, 2, 3), tmp_path / "x.png", 1, encoder="zopfli")):
        with pytest.raises(ValueError, match="unknown PNG encoder 'zopfli'; choose one of pillow, fpng"):
            call()
    assert PNG_ENCODERS == ("pillow", "fpng")


@pytest.mark.parametrize("pixels", [np.zeros((2, 2, 3), np.float32), np.zeros((2, 2), np.uint8),
                                    np.zeros((2, 2, 5), np.uint8), np.zeros((0, 2, 3), np.uint8)])
@pytest.mark.parametrize("encoder", PNG_ENCODERS)
def test_pixels_that_are_not_an_8_bit_image_are_refused(pixels, encoder):
    with pytest.raises(ValueError, match="cannot encode"):
        encode_png(pixels, encoder, fpng=fake_fpng([]))


def test_an_empty_answer_from_fpng_is_an_error_not_an_empty_file():
    silent = Fpng(import_module=lambda name: SimpleNamespace(from_ndarray=lambda pixels: b""))
    with pytest.raises(ValueError, match="fpng could not encode"):
        encode_png(photo(3, 3, 3), "fpng", fpng=silent)


@pytest.mark.parametrize("encoder", [pytest.param("fpng", marks=needs_fpng), "pillow"])
@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)])
def test_save_image_with_each_encoder_round_trips_every_mode(tmp_path, encoder, mode, channels):
    pixels = photo(12, 15, channels)
    path = tmp_path / "out" / "x.png"
    save_image(pixels, path, png_level=1, encoder=encoder)
    loaded = load_image(path)
    assert loaded.mode == mode and np.array_equal(loaded.pixels, pixels)
    assert (FPNG_CHUNK in path.read_bytes()) == (encoder == "fpng" and channels >= 3)
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("band_bytes", [1, 50, 1 << 20])
def test_a_huge_image_is_written_band_by_band_and_reads_back_exactly(channels, band_bytes):
    """write_png's streamed path (for images over Pillow's default limit), tried on a small one: one row a band,
    a few rows, and all in one."""
    pixels = photo(23, 17, channels, seed=channels)
    buffer = io.BytesIO()
    write_png(pixels, buffer, "fpng", level=1, stream_above=0, band_bytes=band_bytes)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        decoded = np.asarray(image)
    assert np.array_equal(decoded.reshape(pixels.shape), pixels)


def test_a_save_that_fails_on_its_pixels_leaves_no_partial_file(tmp_path):
    with pytest.raises(ValueError, match="cannot encode"):
        save_image(np.zeros((2, 2, 5), np.uint8), tmp_path / "x.png", 1)
    assert list(tmp_path.iterdir()) == []
