"""Where the kernel's float scratch rows lie in one buffer: each on a cache line, spread over 4 KiB.

The separable kernel keeps four float rows (the vertical pass's output) and an accumulator row (the
horizontal pass's).  Two rules place them, both about addresses rather than one CPU's cache sizes:
- Each row's first value that the vertical pass stores lies at the start of a 64-byte line (a line is
  64 bytes on x86 CPUs and most others), so its vector stores do not straddle two lines.
- The rows are spread evenly over 4 KiB of address.  A CPU decides whether a load must wait for an
  earlier store by comparing the low 12 bits of their addresses first ("4K aliasing": Intel and AMD
  cores alike), so a load from one row waits on a store to another when the two lie a multiple of
  4 KiB apart, or close to one.  With rows packed back to back that happens at unlucky image widths
  (a row stride near a multiple of 4 KiB: 15-20% slower); spread evenly, rows are at least
  4 KiB / 5 apart in those bits whatever the width.  The same spacing puts them in different L1 sets.

>>> layout = scratch(span=1024 * 4, at=40)
>>> layout.row, layout.stride % LINE_FLOATS, sorted(n * layout.stride % PAGE_FLOATS for n in range(SECTIONS))
(8, 0, [0, 192, 384, 576, 768])
"""

from typing import NamedTuple

from numba import njit

LINE_FLOATS = 16  # a 64-byte cache line of float32
PAGE_FLOATS = 1024  # 4 KiB of float32: the address bits a store-to-load check compares first
ROWS = 4  # the vertical pass makes four rows at a time
SECTIONS = ROWS + 1  # and the horizontal pass has one accumulator row


class Layout(NamedTuple):
    """Offsets in floats from the buffer's first line: row t at row + t * stride, the accumulator at acc."""
    row: int
    acc: int
    stride: int
    size: int  # floats in all


@njit(nogil=True, cache=True)
def scratch(span: int, at: int) -> Layout:
    """The layout for rows of `span` floats whose vertical pass stores from column `at` on."""
    lead = -at % LINE_FLOATS
    need = -(-(lead + span) // LINE_FLOATS) * LINE_FLOATS
    spacing = PAGE_FLOATS // SECTIONS // LINE_FLOATS * LINE_FLOATS  # the rows' offsets mod 4 KiB: 0, s, 2s, ...
    stride = need + (spacing - need) % PAGE_FLOATS
    return Layout(lead, ROWS * stride, stride, SECTIONS * stride)
