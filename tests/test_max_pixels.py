"""--max-pixels: images over Pillow's 89 MP limit run when a run allows them, and every process that decodes
(pods, MPI ranks, the check against a) applies the run's limit, not its own default."""

import json
import zlib
from pathlib import Path

import pytest

from approaches.core.limits import DEFAULT_MAX_PIXELS, MAX_PIXELS
from tests.conftest import main

WIDE, HIGH = 9500, 9500  # 90.25 MP: just over Pillow's limit


def blank_png(path: Path, width: int, height: int) -> None:
    """A black L-mode PNG, written row by row: 90 MP in ~100 KB, never held whole in memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    packer, row = zlib.compressobj(9), bytes(width + 1)  # filter byte 0, then the row
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def run(tmp_path: Path, folder: Path, *flags: str, env: dict | None = None) -> tuple[int, dict]:
    status = main(["--approaches", flags[0], "--input", str(folder), "--output", str(tmp_path / "out"),
                   "--kernel-size", "3", "--quick", "--no-charts", "--quiet", "--logs", str(tmp_path / "logs"),
                   "--json", str(tmp_path / "r.json"), *flags[1:]], env=env or {})
    return status, json.loads((tmp_path / "r.json").read_text())


@pytest.mark.timeout(120)
def test_an_image_over_pillow_limit_is_refused_by_default_and_blurred_with_max_pixels(tmp_path, capsys):
    # Given a 90 MP image, over Pillow's limit of 89 478 485 pixels
    folder = tmp_path / "in"
    folder.mkdir()
    blank_png(folder / "big.png", WIDE, HIGH)
    # When a runs without --max-pixels, the image is refused in one line naming the flag
    status, doc = run(tmp_path, folder, "a")
    assert status == 1
    (failed,) = doc["results"][0]["failed"]
    assert failed["reason"] == f"too large: {WIDE}x{HIGH} is over the limit of {DEFAULT_MAX_PIXELS:,} pixels " \
                               "(--max-pixels)"
    capsys.readouterr()
    # When the environment allows it: one warning line, the image blurred, and identical to a's reference
    status, doc = run(tmp_path, folder, "a", env={"BLUR_MAX_PIXELS": str(WIDE * HIGH)})
    assert status == 0, capsys.readouterr().err
    (result,) = doc["results"]
    assert result["identical_to_a"] and [(i["width"], i["height"]) for i in result["images"]] == [(WIDE, HIGH)]
    assert doc["config"]["max_pixels"] == WIDE * HIGH
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith(f"warning: --max-pixels {WIDE * HIGH:,} is over Pillow's own limit")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("approach, broker", [
    ("d", "memory://"),  # a's loop in a spawned pod
    pytest.param("f", "embedded://", marks=pytest.mark.slow),  # the coordinator: a spawned pod on a real server
    ("i", "memory://"),  # rank 0 of an MPI job
    pytest.param("h", "memory://", marks=pytest.mark.slow),  # the coordinator beside a dask cluster
])
def test_the_limit_reaches_the_process_that_decodes(tmp_path, image_dir, short_tmp, capsys, approach, broker):
    # Given images of 6300 (70x90), 1353 and 500 pixels, and a limit one under the largest
    status, doc = run(tmp_path, image_dir, approach, "--max-pixels", "6299", "--broker", broker, "--workers", "2",
                      "--tile-size", "16")
    # Then the largest is refused where it is decoded, with the run's limit, and the others match a's pixels
    assert status == 1
    (result,) = doc["results"]
    assert [f["reason"] for f in result["failed"]] == ["too large: 90x70 is over the limit of 6,299 pixels "
                                                       "(--max-pixels)"]
    assert sorted(i["name"] for i in result["images"]) == ["three", "two"] and result["identical_to_a"]


@pytest.mark.parametrize("value", ["0", str(MAX_PIXELS + 1)])
def test_a_limit_out_of_range_is_one_line_naming_the_flag_and_the_range(tmp_path, image_dir, capsys, value):
    assert main(["--approaches", "a", "--input", str(image_dir), "--max-pixels", value], env={}) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.endswith(f"error: --max-pixels must be between 1 and {MAX_PIXELS}, got {value}")
