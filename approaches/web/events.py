"""One job's events, kept in order, for any number of browsers to follow: the live stream behind the page.

The run appends events from its threads (harness/live.py); each browser follows them as Server-Sent
Events, which are one-way (server to page) text over a plain HTTP response: exactly what a progress view
needs, reconnected by the browser itself, with the id of the last event it saw (Last-Event-ID), so a
page that lost its connection, or was reloaded, misses nothing.  WebSocket would add a second protocol
for a channel nobody talks back on: the page's few commands (upload, kill) are ordinary POSTs.

The log is kept whole while the server runs (a job's events are a few thousand small dicts), closed when
the job ends, and written next to the job's files then, so a finished job can be replayed after a restart.

>>> log = EventLog()
>>> log.append({"type": "state", "state": "running"})
>>> log.close()
>>> [(number, event["state"]) for number, event in log.follow(after=0, heartbeat_s=0.01)]
[(1, 'running')]
"""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream, and finds gone readers


class EventLog:
    """Events numbered from 1, appended from any thread; followers wait for new ones."""

    def __init__(self, events: list[dict[str, Any]] | None = None, *, closed: bool = False) -> None:
        self._events = list(events or [])
        self._closed = closed
        self._changed = threading.Condition()

    def append(self, event: dict[str, Any]) -> None:
        with self._changed:
            if not self._closed:
                self._events.append(event)
                self._changed.notify_all()

    def close(self) -> None:
        """No more events: followers get what is left, then stop."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def follow(self, after: int = 0, heartbeat_s: float = HEARTBEAT_S) -> Iterator[tuple[int, dict[str, Any] | None]]:
        """(number, event) for every event after number `after`, as they come, until the log is closed;
        (number, None) when heartbeat_s passes without one (the caller writes a keep-alive)."""
        seen = max(after, 0)
        while True:
            with self._changed:
                if seen >= len(self._events) and not self._closed:
                    self._changed.wait(heartbeat_s)
                fresh, closed = self._events[seen:], self._closed
            if not fresh and closed:
                return
            if not fresh:
                yield seen, None
            for event in fresh:
                seen += 1
                yield seen, event

    def save(self, path: Path) -> None:
        """Write the events as JSON lines (through a temporary file: a crash never leaves half a log)."""
        with self._changed:
            lines = [json.dumps(event) for event in self._events]
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> "EventLog":
        """A closed log read back from save(); empty if the file is missing or unreadable."""
        try:
            events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
        except (OSError, ValueError):
            events = []
        return cls([event for event in events if isinstance(event, dict)], closed=True)


def sse(number: int, event: dict[str, Any] | None) -> str:
    """One Server-Sent Event (or a keep-alive comment when event is None).

    >>> sse(3, {"type": "say", "text": "hi"})
    'id: 3\\ndata: {"type": "say", "text": "hi"}\\n\\n'
    """
    if event is None:
        return ": keep-alive\n\n"
    return f"id: {number}\ndata: {json.dumps(event)}\n\n"
