"""A measured run's timelines as a Chrome trace-event file: open logs/<stamp>.trace.json in ui.perfetto.dev.

The PNG timelines are one picture each; the trace file holds every span, and a trace viewer zooms from
the whole run to one 0.5 ms tile, searches by image, and lays the approaches one above another.  The
format (Chrome's "Trace Event Format") is plain JSON: a list of events, here one complete event (``"ph":
"X"``, start ``ts`` and length ``dur`` in microseconds) per span, one process per approach (``pid``) and
one thread per lane (``tid``), named by metadata events (``"ph": "M"``) and sorted as work flows.  Each
approach's times start at its own run's start, so the approaches line up at 0 and compare by eye; the check
against a's pixels, where the run made it, is a process of its own after them, from its own start too.
"""

from typing import Any

from visualize.documents import lane_key, timed_rows


def chrome_trace(doc: dict[str, Any]) -> dict[str, Any]:
    """A measured run's document (harness/measure.py's) as a trace-event object, ready for json.dumps.

    >>> doc = {"config": {"timestamp": "t"}, "results": [{"approach": "a", "title": "Sequential", "spans": [
    ...     {"lane": "main", "stage": "blur", "image": "x", "tile": None, "start": 0.5, "end": 0.75}]}]}
    >>> [e["ph"] for e in chrome_trace(doc)["traceEvents"]]
    ['M', 'M', 'M', 'M', 'X']
    >>> chrome_trace(doc)["traceEvents"][-1]["ts"], chrome_trace(doc)["traceEvents"][-1]["dur"]
    (500000.0, 250000.0)
    """
    events: list[dict[str, Any]] = []
    for pid, result in enumerate(timed_rows(doc), start=1):
        label = f"{result['approach']} · {result['title']}" if result.get("title") else str(result["approach"])
        events += [_meta("process_name", pid, None, name=label), _meta("process_sort_index", pid, None, sort_index=pid)]
        spans = result.get("spans") or []
        tids = {lane: tid for tid, lane in enumerate(sorted({s["lane"] for s in spans}, key=lane_key), start=1)}
        for lane, tid in tids.items():
            events += [_meta("thread_name", pid, tid, name=lane), _meta("thread_sort_index", pid, tid, sort_index=tid)]
        events += [{"name": span["stage"], "cat": span["stage"], "ph": "X", "pid": pid, "tid": tids[span["lane"]],
                    "ts": round(span["start"] * 1e6, 3), "dur": round((span["end"] - span["start"]) * 1e6, 3),
                    "args": {"image": span["image"], "tile": span["tile"]}}
                   for span in spans]
    config = doc.get("config") or {}
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"timestamp": config.get("timestamp"), "machine": config.get("machine")}}


def _meta(event_name: str, pid: int, tid: int | None, **args: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"name": event_name, "ph": "M", "pid": pid, "args": args}
    if tid is not None:
        event["tid"] = tid
    return event
