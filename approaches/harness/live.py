"""A run you can watch and disturb: its spans as they happen, its tile counters, its lost tiles, a kill mid-run.

measure() runs an approach and answers when it is over.  LiveRun runs it through measure() all the same,
and meanwhile tells a listener what happens, as plain JSON-able events (the web page draws them; the
command line's progress bar counts the same spans through measure's on_span):

    {"type": "span", "lane", "stage", "image", "tile", "start", "end"}   seconds since the run began
    {"type": "progress", "done": n, "total": N}      an image finished, saved or failed (a and d show this)
    {"type": "counts", "done", "in_flight", "dead"}  tiles, every COUNT_S, read from the board (e, f, g)
    {"type": "stored", "image", "tile"}              a tile's result seen stored on the board (f, g)
    {"type": "holes", "image", "tiles", "missing"}   at the end: the tiles of an image that never came back
    {"type": "say", "text"}                          what a kill did, in words

How live the spans are depends on where they are recorded, and the stream is honest about it: threads of
this process (b.threads, c, every pod on memory://, where pods are threads) are heard the moment a span
ends; worker processes (b.processes, b.shm) as each result comes back; pods that are processes
(embedded://), d and i only when they report, at their end.  So on embedded:// the board is polled as
well: f and g store each result there, and "stored" tells the page which tile is back before the pods'
spans arrive to say which worker did it.

A hole is a tile with no result: the run's own report says how many tiles of an image are missing
(expected vs processed, Cluster.reports), and the spans say which: a tile is back once a worker sent it
("send", in a worker's lane), the assembler took it ("assemble") or the board stored it.  Under e a
killed worker's tiles are holes for good; under f and g they are handed to another worker and come back.

kill(scenario) runs the chaos demo's own scenario against the run, on a thread of its own, while the run
goes on: harness/chaos.py's against the pods of e, f and g (launched() hands their Cluster to on_launch),
DaskFaults' against h's LocalCluster (h's chaos hook, told once the first tiles are submitted;
a killed dask worker is restarted by its nanny and the scheduler recomputes what it held).  h's spans come
from dask's task stream at its end; its assembler's spans, one per tile, come as each tile is taken.
"""

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from approaches.cluster.deployment import COORDINATOR, Cluster
from approaches.core.config import RunConfig
from approaches.core.images import ImageSource
from approaches.core.trace import Span
from approaches.harness.chaos import DASK_SCENARIOS, DaskFaults, kill_every_worker, kill_one_worker
from approaches.harness.measure import Measured, measure
from approaches.registry import APPROACHES, Approach

Emit = Callable[[dict[str, Any]], None]
COUNT_S = 0.2  # how often the board is read for counters and stored tiles
KILLS: dict[str, Callable[[Cluster, str, Callable[[str], None]], int]] = {
    "one-worker": kill_one_worker,  # it stays dead: e loses its tiles, f and g give them to the others
    "workers": kill_every_worker,  # all of them, restarted at once
}


def _came_back(span: Span) -> bool:
    """Whether a tile's span says its result came back: a worker sent it (the coordinator's "send" is the
    tile going out) or the assembler took it."""
    return span.stage == "assemble" or (span.stage == "send" and span.lane != COORDINATOR)


def _pods(letter: str, config: RunConfig) -> dict[str, int]:
    """g runs its workers as threads of one pod: killing "a worker" would kill them all.  Watched live, it gets
    two pods (when there are two workers or more), so a killed pod's tiles have another to go to.

    >>> _pods("g", RunConfig(workers=5)), _pods("g", RunConfig(workers=1)), _pods("f", RunConfig(workers=5))
    ({'pods': 2, 'threads': 3}, {'pods': 1, 'threads': 1}, {})
    """
    if letter != "g":
        return {}
    pods = min(2, config.workers)
    return {"pods": pods, "threads": -(-config.workers // pods)}


def killable(letter: str) -> bool:
    """Whether LiveRun.kill can kill the approach's workers: the chaos demo's approaches (e, f, g take
    on_launch(cluster) and on_span, which deployment.run passes to launched; h takes its chaos hook)."""
    return APPROACHES[letter].killable


class NotNow(Exception):
    """A kill asked of a run that cannot take one (not a queue approach, not started, or over)."""


class LiveRun:
    """One approach's run with events as they happen (emit, called from any thread) and a kill control."""

    def __init__(self, approach: Approach, config: RunConfig, sources: Sequence[ImageSource], emit: Emit) -> None:
        self.approach, self.config, self.sources, self.emit = approach, config, tuple(sources), emit
        self.killable = killable(approach.letter)
        self.cluster: Cluster | None = None
        self.faults: DaskFaults | None = None  # h's handle on its LocalCluster (struck once its first tiles are out)
        self._over = threading.Event()
        self._lock = threading.Lock()
        self._heard: set[Span] = set()  # pod spans heard live, so their copies extended at the end are not sent twice
        self._back: dict[str, set[int]] = {}
        self._images_done = 0
        self._started = time.perf_counter()

    def run(self) -> Measured:
        """Run the approach once (blocking), emitting events; what measure() hands back."""
        options = self._options()
        self._started = time.perf_counter()
        try:
            measured = measure(self.approach, self.config, self.sources, self._progress, on_span=self._span,
                               options=options)
        finally:
            self._over.set()
        if self.cluster is not None:
            self._say_holes(self.cluster)
        return measured

    def _options(self) -> dict[str, Any]:
        """What the approach's run is given to be watched and killed (nothing, if it cannot be)."""
        if self.approach.letter == "h":
            self.faults = DaskFaults()  # no scenario: the kill button's come later
            threading.Thread(target=self._watch_dask, args=(self.faults,), name="dask-watch", daemon=True).start()
            return {"chaos": self.faults}
        if self.killable:
            return {"on_span": self._pod_span, "on_launch": self._launched, **_pods(self.approach.letter, self.config)}
        return {}

    def kill(self, scenario: str) -> None:
        """Start the chaos scenario (a key of KILLS) on a thread of its own; NotNow if this run cannot take it."""
        if scenario not in KILLS:
            raise NotNow(f"unknown kill {scenario!r}; choose from {', '.join(KILLS)}")
        if not self.killable:
            raise NotNow(f"{self.approach.letter} has no workers to kill (only "
                         f"{', '.join(letter for letter in APPROACHES if killable(letter))})")
        if (self.cluster is None and not (self.faults is not None and self.faults.struck)) or self._over.is_set():
            raise NotNow("the run is not running: its workers are not started yet, or are done")
        threading.Thread(target=self._kill, args=(scenario,), name=f"kill-{scenario}", daemon=True).start()

    # --- listeners: called from the run's threads ----------------------------------------------------------

    def _pod_span(self, span: Span) -> None:
        with self._lock:
            self._heard.add(span)
        self._send(span)

    def _span(self, span: Span) -> None:
        with self._lock:
            if span in self._heard:
                return
        self._send(span)

    def _send(self, span: Span) -> None:
        if span.tile is not None and _came_back(span):
            with self._lock:
                self._back.setdefault(span.image, set()).add(span.tile)
        self.emit({"type": "span", "lane": span.lane, "stage": span.stage, "image": span.image, "tile": span.tile,
                   "start": round(span.start - self._started, 6), "end": round(span.end - self._started, 6)})

    def _progress(self) -> None:
        with self._lock:
            self._images_done += 1
            done = self._images_done
        self.emit({"type": "progress", "done": done, "total": len(self.sources)})

    def _launched(self, cluster: Cluster) -> None:
        self.cluster = cluster
        threading.Thread(target=self._watch, args=(cluster,), name="board-watch", daemon=True).start()

    # --- the board, read from outside, as the chaos demo does -----------------------------------------------

    def _watch(self, cluster: Cluster) -> None:
        """Every COUNT_S until the run is over: counters, and each result newly stored (f, g)."""
        board = cluster.board
        while not self._over.wait(COUNT_S):
            try:
                assembled, images = board.assembled(), board.planned()
                stored = {image: board.result_tiles(image, 1 << 20) for image in images}
                in_flight, dead = cluster.tiles_in_flight(), len(board.dead_letters())
            except Exception:  # the run ended meanwhile and its keys are gone, or the broker restarts
                continue
            for image, tiles in stored.items():
                if not 0 <= image < len(self.sources):
                    continue  # a plan for an image the run does not have (junk): the assembler drops it
                name = self.sources[image].name
                with self._lock:
                    back = self._back.setdefault(name, set())
                    new = tiles - back
                    back |= new
                for tile in sorted(new):
                    self.emit({"type": "stored", "image": name, "tile": tile})
            done = assembled + sum(len(tiles) for tiles in stored.values())
            self.emit({"type": "counts", "done": done, "in_flight": in_flight, "dead": dead})

    def _say_holes(self, cluster: Cluster) -> None:
        """For each image the run reports tiles missing: which tiles never came back, and how many."""
        for source in self.sources:
            report = cluster.reports.get(source.name)
            if report is None or report.missing <= 0:
                continue
            back = self._back.get(source.name, set())
            holes = sorted(set(range(report.expected)) - back)
            self.emit({"type": "holes", "image": source.name, "tiles": holes, "missing": report.missing})

    def _kill(self, scenario: str) -> None:
        say = lambda text: self.emit({"type": "say", "text": text.strip()})  # noqa: E731
        try:
            if self.cluster is not None:
                how = "SIGKILL" if self.cluster.broker.pods_are_processes else "each dies at its next fault point"
                KILLS[scenario](self.cluster, how, say)
            elif self.faults is not None:
                DASK_SCENARIOS[scenario](self.faults)
                say(f"killed {', '.join(self.faults.victims)} (SIGKILL); dask's nanny restarts each, and the "
                    "scheduler hands what it held to the workers left")
        except Exception as error:  # the run ended under the kill: its keys are gone, or its cluster closed
            say(f"the kill did not finish: {type(error).__name__}: {error}")

    def _watch_dask(self, faults: DaskFaults) -> None:
        """Count h's tiles in flight, from its first tiles out until the run is over."""
        while not self._over.wait(COUNT_S):
            if not faults.struck:
                continue
            try:
                in_flight = faults.in_flight()
            except Exception:  # the cluster is closing
                continue
            self.emit({"type": "counts", "done": None, "in_flight": in_flight, "dead": 0})
