"""Everything that crosses the broker, as bytes, and the checks it must pass before it is used.

A tile message is a fixed binary header followed by the raw pixels, row-major, channels interleaved:

    magic "BLUR" | version | kind (job/result) | run id (8 bytes) | image id | tile id | x | y | w | h |
    halo | channels | kernel size | CRC-32 of the pixels          (little-endian, HEADER.size = 47 bytes)

A 256-px RGBA tile with a halo of 10 is 304,704 bytes of pixels plus the header.  The original course
sent JSON with an object per pixel, {"R":12,"G":34,"B":56,"A":255}: for such a tile of a sample photo,
2.5 MB written compactly (8.3x), 3.1 MB with JSON's default spacing (10.3x); benchmarks/cluster_targets.py
measures it.

An image's plan (name, size, mode, kernel, tiling) is a small JSON record.  Decoding checks a message
against its image's plan before a single pixel is read: the run, the tile's id and rectangle (so a tile
outside the image is refused), halo, channels, kernel, the exact length and the checksum.  Anything
wrong raises WireError with the reason; nothing here is ever unpickled or evaluated.
"""

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Self

import numpy as np

from approaches.core.config import MAX_TILE_SIZE
from approaches.core.errors import ImageError
from approaches.core.images import output_path
from approaches.core.kernel import validate_kernel_size
from approaches.core.limits import MAX_PIXELS  # per image: the most any run may allow (--max-pixels)
from approaches.core.tiling import Tile, plan_tiles

MAGIC = b"BLUR"
VERSION = 1
HEADER = struct.Struct("<4sBB8sIIIIIIHBHI")
RUN_ID_BYTES = 8
MAX_TILES = 1 << 20  # per image: a plan is refused before a list of that many tiles is built
CHANNELS_OF_MODE = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}  # what images.py blurs as it is, by channel count


class WireError(ValueError):
    """A message or record that must not be used; the text says why."""


class Kind(IntEnum):
    JOB = 1
    RESULT = 2


@dataclass(frozen=True)
class ImagePlan:
    """What every pod must agree on about one image: its name, size, mode, kernel and tiling."""

    name: str
    width: int
    height: int
    mode: str
    kernel_size: int
    tile_size: int

    @property
    def channels(self) -> int:
        return CHANNELS_OF_MODE[self.mode]

    @property
    def halo(self) -> int:
        return self.kernel_size // 2

    @cached_property
    def tiles(self) -> list[Tile]:
        return plan_tiles(self.width, self.height, self.tile_size)

    def encode(self) -> bytes:
        return json.dumps({"name": self.name, "width": self.width, "height": self.height, "mode": self.mode,
                           "kernel_size": self.kernel_size, "tile_size": self.tile_size}).encode()

    @classmethod
    def decode(cls, data: bytes) -> "ImagePlan":
        """Parse and check a plan record; a name that is not a plain file name is refused."""
        fields = _json_object(data, "plan", {"name": str, "width": int, "height": int, "mode": str,
                                             "kernel_size": int, "tile_size": int})
        name, width, height, mode = fields["name"], fields["width"], fields["height"], fields["mode"]
        try:
            output_path(Path("."), "any", name)  # the one rule for names that may become a file name
        except ImageError as error:
            raise WireError(f"plan: image name {name!r} is {error.reason}") from None
        if mode not in CHANNELS_OF_MODE:
            raise WireError(f"plan: mode {mode!r} is not one of {', '.join(CHANNELS_OF_MODE)}")
        if min(width, height) < 1 or width * height > MAX_PIXELS:
            raise WireError(f"plan: size {width}x{height} is not between 1x1 and {MAX_PIXELS} pixels")
        try:
            validate_kernel_size(fields["kernel_size"])
        except ValueError as error:
            raise WireError(f"plan: {error}") from None
        tile_size = fields["tile_size"]
        if not 1 <= tile_size <= MAX_TILE_SIZE:
            raise WireError(f"plan: tile size {tile_size} is not between 1 and {MAX_TILE_SIZE}")
        if -(-width // tile_size) * -(-height // tile_size) > MAX_TILES:
            raise WireError(f"plan: more than {MAX_TILES} tiles")
        return cls(**fields)


class State(StrEnum):
    SAVED = "saved"
    INCOMPLETE = "incomplete"
    FAILED = "failed"


@dataclass(frozen=True)
class ImageReport:
    """How one image ended: saved, incomplete (tiles missing) or failed, with its tile counts."""

    state: State
    expected: int = 0
    processed: int = 0
    duplicates: int = 0
    reason: str = ""

    @property
    def missing(self) -> int:
        return self.expected - self.processed

    def encode(self) -> bytes:
        return json.dumps({"state": self.state.value, "expected": self.expected, "processed": self.processed,
                           "duplicates": self.duplicates, "reason": self.reason}).encode()

    @classmethod
    def decode(cls, data: bytes) -> "ImageReport":
        fields = _json_object(data, "report", {"state": str, "expected": int, "processed": int, "duplicates": int,
                                               "reason": str})
        if fields["state"] not in {state.value for state in State}:
            raise WireError(f"report: unknown state {fields['state']!r}")
        if not 0 <= fields["processed"] <= fields["expected"] or fields["duplicates"] < 0:
            raise WireError(f"report: impossible counts {fields}")
        return cls(State(fields["state"]), fields["expected"], fields["processed"], fields["duplicates"],
                   fields["reason"])


@dataclass(frozen=True, eq=False)
class _TileMessage:
    """A tile on the wire; KIND says which of the two it is, and decode refuses the other."""

    KIND: ClassVar[Kind]
    run: str
    image: int
    tile: Tile
    kernel_size: int
    pixels: np.ndarray = field(repr=False)

    def encode(self) -> bytes:
        return _encode(self.KIND, self.run, self.image, self.tile, self.kernel_size, self.pixels)

    @classmethod
    def decode(cls, body: bytes, run: str, plan_for: Callable[[int], ImagePlan]) -> Self:
        image, tile, plan, pixels = _decode(cls.KIND, body, run, plan_for)
        return cls(run, image, tile, plan.kernel_size, pixels)


class TileJob(_TileMessage):
    """A tile to blur: its padded pixels (h + 2*halo, w + 2*halo, channels) and the kernel to use."""

    KIND = Kind.JOB


class TileResult(_TileMessage):
    """A blurred tile: its pixels (h, w, channels), ready to paste."""

    KIND = Kind.RESULT


def _encode(kind: Kind, run: str, image: int, tile: Tile, kernel_size: int, pixels: np.ndarray) -> bytes:
    payload = np.ascontiguousarray(pixels, np.uint8)
    run_id = bytes.fromhex(run)
    if len(run_id) != RUN_ID_BYTES:
        raise ValueError(f"a run id is {RUN_ID_BYTES} bytes in hex, got {run!r}")
    header = HEADER.pack(MAGIC, VERSION, kind, run_id, image, tile.id, tile.x, tile.y, tile.width,
                         tile.height, kernel_size // 2, payload.shape[2], kernel_size, zlib.crc32(payload))
    return b"".join((header, payload.data))


def _decode(kind: Kind, body: bytes, run: str,
            plan_for: Callable[[int], ImagePlan]) -> tuple[int, Tile, ImagePlan, np.ndarray]:
    """Check every header field against the plan, then the length and checksum; then view the pixels."""
    if len(body) < HEADER.size:
        raise WireError(f"{len(body)} bytes is too short for a header ({HEADER.size} bytes)")
    magic, version, got_kind, got_run, image, tile_id, x, y, w, h, halo, channels, kernel, checksum = (
        HEADER.unpack_from(body))
    if magic != MAGIC:
        raise WireError(f"bad magic {magic!r}")
    if version != VERSION:
        raise WireError(f"wire version {version}, this suite reads {VERSION}")
    if got_kind != kind:
        raise WireError(f"a message of kind {got_kind} where a {kind.name.lower()} was expected")
    if got_run.hex() != run:
        raise WireError(f"from run {got_run.hex()}, not this run {run}")
    plan = plan_for(image)
    if tile_id >= len(plan.tiles):
        raise WireError(f"image {image} has {len(plan.tiles)} tiles, there is no tile {tile_id}")
    tile = plan.tiles[tile_id]
    if (x, y, w, h) != (tile.x, tile.y, tile.width, tile.height):
        raise WireError(f"tile {tile_id} of image {image} is {tile.width}x{tile.height} at {tile.x},{tile.y}, "
                        f"not {w}x{h} at {x},{y}")
    if (kernel, halo, channels) != (plan.kernel_size, plan.halo, plan.channels):
        raise WireError(f"kernel {kernel}, halo {halo}, {channels} channels do not match the plan's "
                        f"{plan.kernel_size}, {plan.halo}, {plan.channels}")
    pad = 2 * halo if kind is Kind.JOB else 0
    shape = (h + pad, w + pad, channels)
    size = shape[0] * shape[1] * channels
    if len(body) != HEADER.size + size:
        raise WireError(f"{len(body) - HEADER.size} bytes of pixels, a {shape} tile has {size}")
    pixels = memoryview(body)[HEADER.size:]
    if zlib.crc32(pixels) != checksum:
        raise WireError(f"checksum mismatch in tile {tile_id} of image {image}")
    # A copy the caller owns: a read-only view of the message would make numba compile the kernel a
    # second time, for read-only arrays, and a copy of a tile costs far less than blurring it.
    return image, tile, plan, np.frombuffer(pixels, np.uint8).reshape(shape).copy()


def peek(head: bytes, run: str) -> tuple[Kind, int, int] | None:
    """(kind, image id, tile id) from the first bytes of a message of this run, or None if they are not a
    tile header: what a dead letter, which keeps only those bytes, says about the tile it was."""
    if len(head) < HEADER.size:
        return None
    magic, version, kind, got_run, image, tile, *_ = HEADER.unpack_from(head)
    if magic != MAGIC or version != VERSION or kind not in set(Kind) or got_run.hex() != run:
        return None
    return Kind(kind), image, tile


def _json_object(data: bytes, what: str, types: dict[str, type]) -> dict:
    """A JSON object with exactly these keys and value types (bool is not an int here)."""
    try:
        fields = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise WireError(f"{what}: not JSON ({error})") from None
    if not isinstance(fields, dict) or set(fields) != set(types):
        raise WireError(f"{what}: expected the fields {sorted(types)}")
    for key, kind in types.items():
        if type(fields[key]) is not kind:
            raise WireError(f"{what}: {key} must be {kind.__name__}, got {fields[key]!r}")
    return fields
