"""The wire format: tiles round-trip exactly, every malformed or hostile message is refused with a reason."""

import contextlib
import json
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from approaches.cluster.wire import HEADER, ImagePlan, ImageReport, State, TileJob, TileResult, WireError
from approaches.core.tiling import Tile, cut
from tests.conftest import photo

RUN = "0123456789abcdef"
PLAN = ImagePlan("img", width=40, height=30, mode="RGBA", kernel_size=5, tile_size=16)  # 3 x 2 tiles


def plans(image: int) -> ImagePlan:
    if image != 7:
        raise WireError(f"no plan for image {image}")
    return PLAN


def a_job(tile_id: int = 4) -> TileJob:
    tile = PLAN.tiles[tile_id]
    return TileJob(RUN, 7, tile, 5, cut(photo(30, 40, 4), tile, PLAN.halo))


def with_field(body: bytes, index: int, value) -> bytes:
    fields = list(HEADER.unpack_from(body))
    fields[index] = value
    return HEADER.pack(*fields) + body[HEADER.size:]


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_jobs_and_results_round_trip_exactly(mode):
    plan = ImagePlan("img", 40, 30, mode, 5, 16)
    image = photo(30, 40, plan.channels)
    for tile in plan.tiles:  # edge tiles (8 x 14) as well as whole ones
        padded = cut(image, tile, plan.halo)
        job = TileJob.decode(TileJob(RUN, 0, tile, 5, padded).encode(), RUN, lambda _: plan)
        assert job.tile == tile and job.kernel_size == 5 and np.array_equal(job.pixels, padded)
        block = image[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width]
        result = TileResult.decode(TileResult(RUN, 0, tile, 5, block).encode(), RUN, lambda _: plan)
        assert np.array_equal(result.pixels, block) and result.pixels.flags.writeable


def original_json(padded: np.ndarray, tile: Tile, halo: int) -> bytes:
    """The original course's job message: an object per pixel (Go's color.RGBA without tags)."""
    rows = [[{"R": int(p[0]), "G": int(p[1]), "B": int(p[2]), "A": int(p[3])} for p in row] for row in padded]
    return json.dumps({"type": "tile", "image_tile": {"image_id": 0, "tile_id": tile.id, "x": tile.x, "y": tile.y,
                       "width": tile.width, "height": tile.height, "data": rows, "padding": halo}},
                      separators=(",", ":")).encode()


def test_a_binary_tile_is_its_pixels_plus_47_bytes_and_over_7_times_smaller_than_the_originals_json():
    job = a_job(0)
    body = job.encode()
    assert len(body) == job.pixels.size + HEADER.size == job.pixels.size + 47
    legacy = original_json(job.pixels, job.tile, PLAN.halo)
    pixels = job.pixels.shape[0] * job.pixels.shape[1]
    assert 25 <= len(legacy) / pixels <= 35  # the original's "about 30 bytes per pixel"
    assert len(legacy) / len(body) > 7


HOSTILE = [
    ("empty", lambda b: b"", "too short for a header"),
    ("truncated header", lambda b: b[:20], "too short for a header"),
    ("bad magic", lambda b: b"EVIL" + b[4:], "bad magic"),
    ("future version", lambda b: with_field(b, 1, 9), "wire version 9"),
    ("a result where a job belongs", lambda b: with_field(b, 2, 2), "kind 2"),
    ("another run", lambda b: with_field(b, 3, bytes(8)), "not this run"),
    ("unknown image", lambda b: with_field(b, 4, 8), "no plan for image 8"),
    ("tile id past the plan", lambda b: with_field(b, 5, 6), "there is no tile 6"),
    ("tile outside the image", lambda b: with_field(b, 6, 4000), "not 16x14 at 4000,16"),
    ("wrong width", lambda b: with_field(b, 8, 17), "not 17x14"),
    ("wrong kernel", lambda b: with_field(b, 12, 7), "kernel 7"),
    ("wrong halo", lambda b: with_field(b, 10, 3), "halo 3"),
    ("wrong channels", lambda b: with_field(b, 11, 3), "3 channels"),
    ("pixels cut short", lambda b: b[:-1], "bytes of pixels"),
    ("pixels too long", lambda b: b + b"\0", "bytes of pixels"),
    ("a flipped pixel", lambda b: b[:-1] + bytes([b[-1] ^ 1]), "checksum mismatch"),
    ("a poison pill", lambda b: b"STOP", "too short"),
]


@pytest.mark.parametrize("name,mutate,reason", HOSTILE, ids=[case[0] for case in HOSTILE])
def test_every_malformed_message_is_refused_with_its_reason(name, mutate, reason):
    with pytest.raises(WireError, match=reason):
        TileJob.decode(mutate(a_job().encode()), RUN, plans)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=HEADER.size + 64), st.integers(0, 400), st.integers(0, 255))
def test_random_bytes_and_corrupted_messages_raise_only_wire_errors(noise, position, flip):
    # Given arbitrary bytes, or a valid message with one byte changed or the rest cut off
    valid = a_job().encode()
    corrupted = bytearray(valid)
    corrupted[position] ^= flip or 1
    for body in (noise, bytes(corrupted), valid[:position]):
        # Then decoding either succeeds or says why not: nothing else escapes to crash a consumer
        with contextlib.suppress(WireError):
            TileJob.decode(body, RUN, plans)


def plan_json(**changes) -> bytes:
    fields = json.loads(PLAN.encode())
    fields.update(changes)
    return json.dumps(fields).encode()


def test_a_plan_round_trips():
    assert ImagePlan.decode(PLAN.encode()) == PLAN and len(ImagePlan.decode(PLAN.encode()).tiles) == 6


@pytest.mark.parametrize("data,reason", [
    (plan_json(name="../../etc/passwd"), "not a plain file name"),
    (plan_json(name="sub/img"), "not a plain file name"),
    (plan_json(name=".."), "not a plain file name"),
    (plan_json(name=""), "not a plain file name"),
    (plan_json(name="img\0.png"), "not a plain file name"),
    (plan_json(mode="CMYK"), "mode 'CMYK'"),
    (plan_json(width=0), "size 0x30"),
    (plan_json(width=1 << 20, height=1 << 20), "size"),
    (plan_json(kernel_size=4), "kernel size must be odd"),
    (plan_json(tile_size=0), "tile size 0"),
    (plan_json(width=1 << 14, height=1 << 14, tile_size=1), "more than"),
    (plan_json(width=True), "width must be int"),
    (plan_json(width="40"), "width must be int"),
    (plan_json(extra=1), "expected the fields"),
    (b"[1, 2]", "expected the fields"),
    (b"\xff\xfe", "not JSON"),
    (b"{not json", "not JSON"),
])
def test_a_hostile_plan_is_refused_with_its_reason(data, reason):
    with pytest.raises(WireError, match=reason):
        ImagePlan.decode(data)


def test_a_report_round_trips_and_impossible_counts_are_refused():
    report = ImageReport(State.INCOMPLETE, expected=6, processed=5, duplicates=1, reason="lost one")
    assert ImageReport.decode(report.encode()) == report and report.missing == 1
    for bad in ({"state": "done"}, {"processed": 7}, {"duplicates": -1}):
        fields = {**json.loads(report.encode()), **bad}
        with pytest.raises(WireError):
            ImageReport.decode(json.dumps(fields).encode())


def test_a_run_id_must_be_eight_bytes_of_hex():
    with pytest.raises(ValueError, match="run id"):
        TileJob("abcd", 7, PLAN.tiles[0], 5, a_job(0).pixels).encode()
    assert struct.calcsize(HEADER.format) == 47
