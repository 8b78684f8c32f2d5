"""A pool of N workers blurring tile tasks: threads, or processes forked from this one.

Every worker runs ``work_loop``: take a task from a bounded queue, put exactly one TileAnswer on the
result queue, whatever happens.  An exception in the work becomes a result carrying its reason, so
whoever waits for an image's tiles hears about every one of them.  A worker process that dies outright
(killed, crashed in native code) is noticed by polling while waiting: ``submit`` and ``result`` raise
WorkerLost instead of blocking forever, and ``restart`` brings fresh workers and fresh queues (a process
killed while writing to a queue can leave it corrupt).

Processes are forked, not spawned: a forked worker starts in milliseconds with the compiled kernel and
its parent's state (a test's fault hook included), and multiprocessing-logging, which carries the workers'
log records to this process's handlers, needs fork.
"""

import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from multiprocessing_logging import MultiProcessingHandler

from approaches.core.settings import TileFault
from approaches.core.tasks import TileAnswer, TileTask, Work
from approaches.core.trace import Span, Tracer

STOP = None  # "no more tasks" on the task queue; each worker answers it with STOP on the result queue
DEPTH = 2  # tasks per worker a queue holds when each task carries its pixels
DEEP = 256  # ... when a task only refers to pixels held elsewhere (threads, shared memory): see WorkerPool
POLL_S = 0.2  # how often a blocked submit or result checks that every worker is still alive
JOIN_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


class WorkerLost(RuntimeError):
    """A worker died while the pool waited on it: the tiles it held will never come back."""


def work_loop(lane: str, tasks: Any, results: Any, work: Work, fault: TileFault | None = None,
              process: bool = False) -> None:
    """Take tasks until STOP; for each, put one TileAnswer with the spans recorded for it.

    The wait for a task is recorded as the worker's "blocked" span: a lane waiting for work, as in every
    approach's timeline.
    fault(image, tile): a test's hook, called before each task's work; what it raises is that tile's error.
    A worker process ignores Ctrl-C: it reaches the whole process group, and the parent stops the pool.
    """
    if process:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        waiting = time.perf_counter()
        task = tasks.get()
        if task is STOP:
            results.put(STOP)
            return
        local = Tracer()
        local.spans.append(Span(lane, "blocked", task.image, task.tile.id, waiting, time.perf_counter()))
        pixels, error = None, None
        try:
            if fault is not None:
                fault(task.image, task.tile.id)
            # The lambda sees this iteration's task: work() returns before the loop moves on.
            pixels = work(task, lambda stage: local.span(lane, stage, task.image, task.tile.id))  # noqa: B023
        except Exception as exc:  # the image fails with this reason; the worker goes on with the next tile
            error = f"tile {task.tile.id}: {type(exc).__name__}: {exc}"
            log.exception("%s: %s, %s", lane, task.image, error)
        results.put(TileAnswer(task.image, task.tile, pixels, error, tuple(tuple(span) for span in local.spans)))
        task = pixels = None  # held while waiting for the next task, a task would keep its whole image alive


class WorkerPool:
    """count workers (lanes worker-1 … worker-N) sharing a task queue and a result queue.

    Both queues hold at most ``depth`` items per worker: a producer faster than the workers waits in
    ``submit`` (backpressure) instead of piling tiles up in memory.  Where a task is only a reference
    (DEEP), what is in memory is bounded elsewhere, and a deep queue lets the producer hand over a whole
    image at once: on this 2-core VM each wake-up of a waiting thread costs tens of microseconds, and a
    shallow queue takes several per tile.
    """

    def __init__(self, work: Work, count: int, *, processes: bool, depth: int = DEPTH,
                 fault: TileFault | None = None) -> None:
        self._work, self._count, self._processes, self._depth, self._fault = work, count, processes, depth, fault
        self._logs = ExitStack()

    def __enter__(self) -> "WorkerPool":
        if self._processes:
            self._logs.enter_context(_forwarding_logs())
        self._start()
        return self

    def __exit__(self, kind: object, *exc_info: object) -> None:
        try:
            if kind is None:
                self.close()
            else:  # an error or Ctrl-C is on its way up: nobody will wait for what is queued
                self._shut_down(at_once=True)
        finally:
            self._logs.close()

    def _start(self) -> None:
        size = self._depth * self._count
        if self._processes:
            context = multiprocessing.get_context("fork")
            self._tasks, self._results, make = context.Queue(size), context.Queue(size), context.Process
        else:
            self._tasks, self._results, make = queue.Queue(size), queue.Queue(size), threading.Thread
        self._workers = [
            make(target=work_loop, args=(lane, self._tasks, self._results, self._work, self._fault, self._processes),
                 name=lane, daemon=True)
            for lane in (f"worker-{i}" for i in range(1, self._count + 1))
        ]
        self._stopping, self._stopped, self._aborted = False, 0, None
        for worker in self._workers:
            worker.start()

    def submit(self, task: TileTask | None) -> None:
        """Queue a task, waiting while the queue is full; WorkerLost if a worker died meanwhile."""
        while True:
            try:
                self._tasks.put(task, timeout=POLL_S)
                return
            except queue.Full:
                self._check()

    def result(self) -> TileAnswer | None:
        """The next result, waiting for it; None once every worker has stopped after stop()."""
        while self._stopped < len(self._workers):
            try:
                item = self._results.get(timeout=POLL_S)
            except queue.Empty:
                self._check()
                continue
            if item is STOP:
                self._stopped += 1
            else:
                return item
        return None

    def stop(self) -> None:
        """No more tasks: each worker finishes what is queued, then stops."""
        if not self._stopping:
            self._stopping = True
            for _ in self._workers:
                self.submit(STOP)

    @property
    def processes(self) -> bool:
        """True when the workers are processes: a task's pixels must then travel to them."""
        return self._processes

    @property
    def broken(self) -> bool:
        return self._lost() is not None

    def abort(self, reason: str) -> None:
        """A peer of the pool has died (an assembler, a loader): whoever waits in submit or result now
        raises WorkerLost with this reason, instead of waiting for results nobody will take."""
        self._aborted = reason

    def restart(self) -> None:
        """Replace the workers and both queues (after a WorkerLost)."""
        self._shut_down(at_once=True)
        self._start()

    def close(self) -> None:
        """Stop the workers and wait for them; any that will not stop in time are terminated."""
        at_once = self.broken
        if not at_once:
            try:
                self.stop()
            except WorkerLost:
                at_once = True
        self._shut_down(at_once)

    def _lost(self) -> str | None:
        if self._aborted is not None:
            return self._aborted
        for worker in self._workers:
            code = getattr(worker, "exitcode", None)
            if not worker.is_alive() and (not self._stopping or code):
                return f"{worker.name} died" + (f" (exit code {code})" if code is not None else "")
        return None

    def _check(self) -> None:
        lost = self._lost()
        if lost:
            raise WorkerLost(lost)

    def _shut_down(self, at_once: bool) -> None:
        deadline = time.monotonic() + (0 if at_once else JOIN_TIMEOUT_S)
        for worker in self._workers:
            worker.join(max(deadline - time.monotonic(), 0))
            if worker.is_alive() and self._processes:
                worker.terminate()
                worker.join()
        # Threads cannot be killed: one still running here is a daemon blocked on a queue nobody uses.
        if self._processes:
            for channel in (self._tasks, self._results):
                channel.cancel_join_thread()  # what is left in it is nobody's any more: never wait to flush it
                channel.close()


class _Borrowed(logging.Handler):
    """Hands records to a handler this module does not own, so closing the forwarder leaves it open."""

    def __init__(self, handler: logging.Handler) -> None:
        super().__init__(handler.level)
        self.handler = handler

    def emit(self, record: logging.LogRecord | None) -> None:
        if record is not None:  # None is _Forwarder's wake-up call
            self.handler.handle(record)


class _Forwarder(MultiProcessingHandler):
    """multiprocessing-logging's handler, closing at once instead of after up to 0.2 s.

    Its receiving thread notices close() only between 0.2 s waits for a record, which would add that to
    every b.processes run; a None record (dropped by _Borrowed) wakes it just as close() marks it closed.
    """

    def close(self) -> None:
        self.queue.put_nowait(None)
        super().close()


@contextmanager
def _forwarding_logs() -> Iterator[None]:
    """While open, records logged in forked workers reach this process's root handlers.

    Each root handler is swapped for a multiprocessing-logging handler around it: a forked worker inherits
    that handler and puts its records on the handler's queue, and a thread here passes them on.  Without
    root handlers, records would go to Python's last-resort stderr handler, so that one is forwarded to.
    """
    root = logging.getLogger()
    originals = list(root.handlers)
    targets = originals or [logging.lastResort]
    forwarders = [_Forwarder(f"worker-logs-{i}", _Borrowed(h)) for i, h in enumerate(targets) if h]
    for handler in originals:
        root.removeHandler(handler)
    for handler in forwarders:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in forwarders:
            root.removeHandler(handler)
            handler.close()  # returns once the records already sent have been handled
        for handler in originals:
            root.addHandler(handler)
