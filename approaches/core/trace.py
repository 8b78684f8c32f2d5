"""Spans: who (lane) did what (stage) to which image and tile, from when to when.

Times come from time.perf_counter, which on Linux is the system-wide monotonic clock, so spans
recorded in worker processes line up with the parent's.  Recording is one list append, which the GIL
makes atomic: threads share one Tracer without a lock, processes send their spans back as tuples.
"""

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple


class Span(NamedTuple):
    lane: str
    stage: str
    image: str
    tile: int | None
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


class Tracer:
    """Collects spans from any number of threads."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    @contextmanager
    def span(self, lane: str, stage: str, image: str, tile: int | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spans.append(Span(lane, stage, image, tile, start, time.perf_counter()))

    def extend(self, spans: Iterable[Span | tuple]) -> None:
        """Add spans recorded elsewhere (another process sends them as plain tuples)."""
        self.spans.extend(Span(*span) for span in spans)
