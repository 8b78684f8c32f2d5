"""Spans: who (lane) did what (stage) to which image and tile, from when to when.

Times come from time.perf_counter, which on Linux is the system-wide monotonic clock, so spans
recorded in worker processes line up with the parent's.  Recording is one list append, which the GIL
makes atomic: threads share one Tracer without a lock, processes send their spans back as tuples.

A Tracer may be given a listener, ``Tracer(on_span=callback)``, called with each span as it is
recorded (by ``span`` or ``extend``), in the thread that recorded it: that is how a live view (the web
page, a progress bar) sees tiles finish while the run goes on.  It must be quick and must not raise.
Spans appended to ``spans`` directly (a few "blocked" waits) are not passed to it.
"""

import time
from collections.abc import Callable, Iterable, Iterator
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
    """Collects spans from any number of threads; on_span, if given, hears each one as it is recorded.

    >>> heard = []
    >>> tracer = Tracer(on_span=heard.append)
    >>> with tracer.span("worker-1", "blur", "photo", 3):
    ...     pass
    >>> tracer.extend([("worker-2", "blur", "photo", 4, 1.0, 2.0)])
    >>> [(span.lane, span.tile) for span in heard] == [(span.lane, span.tile) for span in tracer.spans]
    True
    """

    def __init__(self, on_span: Callable[[Span], None] | None = None) -> None:
        self.spans: list[Span] = []
        self.on_span = on_span

    @contextmanager
    def span(self, lane: str, stage: str, image: str, tile: int | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            span = Span(lane, stage, image, tile, start, time.perf_counter())
            self.spans.append(span)
            if self.on_span is not None:
                self.on_span(span)

    def extend(self, spans: Iterable[Span | tuple]) -> None:
        """Add spans recorded elsewhere (another process sends them as plain tuples)."""
        added = [Span(*span) for span in spans]
        self.spans.extend(added)
        if self.on_span is not None:
            for span in added:
                self.on_span(span)
