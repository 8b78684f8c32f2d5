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

>>> layout = scratch(span=1024 * 4, at=40, channels=4)
>>> layout.shifted, layout.row % HALF_LINE_FLOATS, layout.copy % LINE_FLOATS, layout.stride % PAGE_FLOATS
(True, 0, 0, 112)
"""

from typing import NamedTuple

from numba import njit

LINE_FLOATS = 16  # a 64-byte cache line of float32
PAGE_FLOATS = 1024  # 4 KiB of float32: the address bits a store-to-load check compares first
HALF_LINE_FLOATS = 8  # 32 bytes: a vector load starting there splits no 32-byte half of a line
ROWS = 4  # the vertical pass makes four rows at a time
SECTIONS = 2 * ROWS + 1  # the rows, their copies shifted by a pixel, the horizontal pass's accumulator row


class Layout(NamedTuple):
    """Offsets in floats from the buffer's first line: row t at row + t * stride, its copy shifted by a pixel
    (copy[j] = row[j + C]; only when `shifted`) at copy + t * stride, the accumulator at acc."""
    row: int
    copy: int
    acc: int
    stride: int
    shifted: bool
    size: int  # floats in all


@njit(nogil=True, cache=True)
def scratch(span: int, at: int, channels: int) -> Layout:
    """The layout for rows of `span` floats of `channels` whose vertical pass stores from column `at` on."""
    shifted = channels * 2 % HALF_LINE_FLOATS == 0
    lead = -at % LINE_FLOATS
    if shifted:  # rows start on half a line, so that even taps do; at may then start a quarter line off
        lead = lead // HALF_LINE_FLOATS * HALF_LINE_FLOATS
    need = -(-(LINE_FLOATS + lead + span) // LINE_FLOATS) * LINE_FLOATS  # a copy starts a line into its section
    spacing = PAGE_FLOATS // SECTIONS // LINE_FLOATS * LINE_FLOATS  # the rows' offsets mod 4 KiB: 0, s, 2s, ...
    stride = need + (spacing - need) % PAGE_FLOATS
    return Layout(lead, ROWS * stride + LINE_FLOATS, 2 * ROWS * stride, stride, shifted, SECTIONS * stride)
