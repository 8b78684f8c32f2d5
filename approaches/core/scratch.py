"""Where the kernel's float scratch rows lie in one buffer: on cache lines, and spread over 4 KiB.

The separable kernel keeps four float rows (the vertical pass's output), for RGBA a copy of each shifted
by one pixel, and an accumulator row (the horizontal pass's).  The rules that place them are about
addresses, not one CPU's cache sizes:
- Loads and stores should not straddle two 64-byte lines (a line is 64 bytes on x86 CPUs and most
  others), nor, where a core splits a 64-byte vector into 32-byte halves (AMD Zen 4), a 32-byte half.
  Tap i of the horizontal pass reads i * C floats on, so for RGBA even taps read the row at multiples of
  8 floats (32 bytes) when the row starts on a half line, and odd taps read the copy shifted by a pixel,
  which the vertical pass writes along with the row: no tap load then straddles a half line.  For 1-3
  channels the taps fall on every offset and it would take 8 copies; those rows start where the vertical
  pass's stores start on a line.
- The rows are spread evenly over 4 KiB of address.  A CPU decides whether a load must wait for an
  earlier store by comparing the low 12 bits of their addresses first ("4K aliasing": Intel and AMD
  cores alike), so a load from one row waits on a store to another when the two lie a multiple of
  4 KiB apart, or close to one.  With rows packed back to back that happened at unlucky image widths
  (a row stride near a multiple of 4 KiB: 15-20% slower); spread evenly, the rows are at least
  4 KiB / SECTIONS apart in those bits whatever the width.  The same spacing puts them in different L1 sets.
- The image's rows, which the vertical pass reads GROUP_ROWS at a time, lie wherever the caller's width puts
  them.  Rows whose stride is within a few bytes of a multiple of 4 KiB (RGBA ~1024 px wide) have the same
  offset modulo 4 KiB, so they share an L1 set (a cache's way is 4 KiB on x86 cores: set = offset / line), and
  the vertical pass slows down, more the more of them share it (`crowd`).  From CROWDED on, the kernel reads
  them from staged copies instead: a ring after the float rows, whose stride puts no two rows read at once on
  one line's offset.

>>> layout = scratch(span=1024 * 4, at=40, channels=4, staged=1024 * 4, rows=18)
>>> layout.shifted, layout.row % HALF_LINE_FLOATS, layout.copy % LINE_FLOATS, layout.stride % PAGE_FLOATS
(True, 0, 0, 112)
>>> crowd(1024 * 4), crowd(1027 * 4), crowd(1000 * 4), layout.ring % LINE_FLOATS, layout.ring_stride
(11, 6, 1, 0, 4160)
"""

from typing import NamedTuple

from numba import njit

LINE_FLOATS = 16  # a 64-byte cache line of float32
PAGE_FLOATS = 1024  # 4 KiB of float32: the address bits a store-to-load check compares first
HALF_LINE_FLOATS = 8  # 32 bytes: a vector load starting there splits no 32-byte half of a line
LINE_BYTES, PAGE_BYTES = 4 * LINE_FLOATS, 4 * PAGE_FLOATS
ROWS = 4  # the vertical pass makes four rows at a time
SECTIONS = 2 * ROWS + 1  # the rows, their copies shifted by a pixel, the horizontal pass's accumulator row
GROUP_ROWS = ROWS + 7  # the image rows the vertical pass reads at once: a group of eight taps for four rows
# Image rows are staged from this crowd on.  Measured (Zen 4, 8-way L1, docs/kernel.md), the vertical pass
# took 11-14% longer at 8 to 11, 9-12% at 7, 4-8% at 5 and 6, nothing at 4; the copy costs about 8% of it.
CROWDED = 7


class Layout(NamedTuple):
    """Offsets in floats from the buffer's first line: row t at row + t * stride, its copy shifted by a pixel
    (copy[j] = row[j + C]; only when `shifted`) at copy + t * stride, the accumulator at acc; the ring's rows
    of staged uint8 image rows from float ring on, ring_stride bytes apart."""
    row: int
    copy: int
    acc: int
    stride: int
    shifted: bool
    ring: int
    ring_stride: int
    size: int  # floats in all


@njit(nogil=True, cache=True)
def crowd(stride: int) -> int:
    """The most of GROUP_ROWS rows `stride` bytes apart whose offsets modulo 4 KiB lie within one line.

    Rows less than a line apart (a narrow image) share lines instead, which costs nothing: 1 for them.
    """
    if stride < LINE_BYTES:
        return 1
    most = 0
    for a in range(GROUP_ROWS):
        near = 0
        for b in range(GROUP_ROWS):
            near += (b - a) * stride % PAGE_BYTES < LINE_BYTES
        most = max(most, near)
    return most


def floats(span: int, staged: int, rows: int) -> int:
    """Floats enough for the layout of any `at` and channel count (`scratch`), and a line to align its start."""
    ring = rows * (staged // LINE_BYTES + 2) * LINE_FLOATS
    return SECTIONS * (span + 3 * LINE_FLOATS + PAGE_FLOATS) + ring + LINE_FLOATS


@njit(nogil=True, cache=True)
def scratch(span: int, at: int, channels: int, staged: int, rows: int) -> Layout:
    """The layout for rows of `span` floats of `channels` whose vertical pass stores from column `at` on, and a
    ring of `rows` (none: 0) staged image rows of `staged` bytes."""
    shifted = channels * 2 % HALF_LINE_FLOATS == 0
    lead = -at % LINE_FLOATS
    if shifted:  # rows start on half a line, so that even taps do; at may then start a quarter line off
        lead = lead // HALF_LINE_FLOATS * HALF_LINE_FLOATS
    need = -(-(LINE_FLOATS + lead + span) // LINE_FLOATS) * LINE_FLOATS  # a copy starts a line into its section
    spacing = PAGE_FLOATS // SECTIONS // LINE_FLOATS * LINE_FLOATS  # the rows' offsets mod 4 KiB: 0, s, 2s, ...
    stride = need + (spacing - need) % PAGE_FLOATS
    ring_stride = -(-staged // LINE_BYTES) * LINE_BYTES
    while crowd(ring_stride) > 1:
        ring_stride += LINE_BYTES
    ring = SECTIONS * stride
    return Layout(lead, ROWS * stride + LINE_FLOATS, 2 * ROWS * stride, stride, shifted, ring, ring_stride,
                  ring + rows * ring_stride // 4)
