"""Pods: named units of work that an approach starts, kills and restarts, as Kubernetes would.

A pod is a thread on memory:// (fakeredis lives in this process) and a process otherwise.  Either way
it runs ``target(life, **settings)``.  Settings are plain values (the broker's URL, the run id, config
numbers, paths as text), and a process receives them as JSON, so no pickled pixels or objects ever
reach a pod: it reads its input and makes its broker connection itself.  Processes are spawned, a fresh
interpreter each, as a container starts a fresh image; the "start" span of every pod shows that cost.

kill() is a crash, not a shutdown.  A process gets SIGKILL at whatever line it is on.  A thread cannot
be stopped from outside, so it dies at its next fault point (``life.checkpoint``): the places where a
crash loses something, such as after a worker popped a tile and before it pushed the result.  Tests
choose the exact point with a hook instead of racing a sleep against a kill.

A pod whose target returns reports its spans and the target's return value as JSON (a pipe for a
process); a killed pod reports nothing, like a container whose logs died with it.  A thread pod may
also be given on_span, which hears each span as it is recorded (a live view); a process pod's spans
reach its parent only in its report, at its end.
"""

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from approaches.core.settings import TileFault
from approaches.core.trace import Span, Tracer

SpanListener = Callable[[Span], None]
FaultHook = Callable[[str, str], bool]
"""hook(pod name, fault point) -> True to crash the pod right there (thread pods)."""

log = logging.getLogger(__name__)
_spawn = multiprocessing.get_context("spawn")


class PodKilled(BaseException):
    """Raised at a fault point of a killed thread pod.  Not an Exception: no handler in the work may
    swallow it, just as no code runs on after SIGKILL."""


class Life:
    """What a pod's target is given: its name, a tracer, its fault points and an interruptible sleep."""

    def __init__(self, name: str, launched: float, killed: threading.Event | None, hook: FaultHook | None,
                 fault: TileFault | None = None, on_span: SpanListener | None = None) -> None:
        self.name = name
        self.tracer = Tracer(on_span)
        self._launched, self._killed, self._hook, self._fault = launched, killed, hook, fault
        self._ready: float | None = None
        self._entered = time.perf_counter()  # a process pod has imported its target's modules by now

    def ready(self) -> None:
        """Start-up is over (imports done, kernel loaded): the pod's "start" span ends here."""
        if self._ready is None:
            self._ready = time.perf_counter()

    def checkpoint(self, point: str) -> None:
        """A fault point: a killed thread pod dies here (or where the hook says)."""
        if self._killed is None:
            return  # a process pod is killed by SIGKILL wherever it is
        if self._hook is not None and self._hook(self.name, point):
            self._killed.set()  # the whole pod dies: any other thread of it at its next fault point
        if self._killed.is_set():
            raise PodKilled(f"{self.name} killed at {point}")

    def tile_fault(self, image: str, tile: int) -> None:
        """The test's fault point just before a tile is blurred (Settings.fault; thread pods only)."""
        if self._fault is not None:
            self._fault(image, tile)

    def sleep(self, seconds: float) -> None:
        """Sleep, cut short when the pod is killed (it then dies at its next fault point)."""
        if self._killed is None:
            time.sleep(seconds)
        else:
            self._killed.wait(seconds)

    def report(self, result: Any) -> bytes:
        """The pod's spans, its "start" span first, and the target's result, as JSON."""
        start = Span(self.name, "start", "", None, self._launched, self._ready or self._entered)
        spans = [start, *self.tracer.spans]
        return json.dumps({"spans": [list(span) for span in spans], "result": result}).encode()


@dataclass(frozen=True)
class PodReport:
    spans: tuple[Span, ...]
    result: Any


class PodCrashed(Exception):
    """What read_report raises for the report of a pod whose target raised: the error, in one line."""


def read_report(data: bytes) -> PodReport:
    """Parse a pod's report, checking every span's fields; ValueError if it is malformed, PodCrashed if it
    says the pod's target raised."""
    doc = json.loads(data)
    if isinstance(doc, dict) and isinstance(doc.get("crashed"), str):
        raise PodCrashed(doc["crashed"])
    spans = []
    for fields in doc["spans"]:
        lane, stage, image, tile, start, end = fields
        if not (isinstance(lane, str) and isinstance(stage, str) and isinstance(image, str)
                and (tile is None or type(tile) is int) and all(type(t) is float for t in (start, end))):
            raise ValueError(f"malformed span {fields!r}")
        spans.append(Span(lane, stage, image, tile, start, end))
    return PodReport(tuple(spans), doc["result"])


class Pod:
    """A named unit of work: a thread or a spawned process running target(life, **settings).

    After it ends: ``report`` if its target returned, ``crashed`` (the error, in one line) if its target
    raised, neither if it was killed.
    """

    def __init__(self, name: str, target: Callable[..., Any], settings: dict[str, Any], *, process: bool,
                 hook: FaultHook | None = None, fault: TileFault | None = None,
                 on_span: SpanListener | None = None) -> None:
        if process and (hook is not None or fault is not None or on_span is not None):
            raise ValueError("fault hooks and span listeners run in this process: only thread pods take one")
        self.name, self.process = name, process
        self._target, self._hook, self._fault, self._on_span = target, hook, fault, on_span
        self._settings = json.dumps(settings)  # a TypeError here: only plain values may reach a pod
        self.report: PodReport | None = None
        self.crashed: str | None = None
        self.restarts = 0
        self._unit: threading.Thread | multiprocessing.Process | None = None

    def start(self) -> None:
        self.report, self._received, self.crashed = None, None, None
        launched = time.perf_counter()
        if self.process:
            self._reader, writer = _spawn.Pipe(duplex=False)
            level = logging.getLogger().getEffectiveLevel()
            self._unit = _spawn.Process(target=_process_main, name=self.name, daemon=True,
                                        args=(self._target, self.name, self._settings, launched, writer, level))
            self._unit.start()
            writer.close()  # the child holds the only writer: its death reads as end-of-file here
        else:
            self._killed = threading.Event()
            self._unit = threading.Thread(target=self._thread_main, args=(launched,), name=self.name, daemon=True)
            self._unit.start()

    def kill(self) -> None:
        """Crash the pod: SIGKILL for a process; a thread dies at its next fault point (waited for here)."""
        if self._unit is None:
            return
        if self.process:
            self._unit.kill()
            self._unit.join()
            self._reader.close()
        else:
            self._killed.set()
            if self._unit is not threading.current_thread():
                self._unit.join()
        self.report = None

    def hang(self) -> None:
        """Stop a process pod where it is (SIGSTOP): alive, its connections open, silent, until killed.  A thread
        cannot be stopped from outside."""
        if not self.process:
            raise ValueError(f"{self.name} is a thread: only a process pod can be made to hang")
        if self._unit is not None and self._unit.pid is not None:
            os.kill(self._unit.pid, signal.SIGSTOP)

    def restart(self) -> None:
        """Kill the pod if it still runs, then start it afresh."""
        if self.alive:
            self.kill()
        self.restarts += 1
        self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to timeout seconds for the pod to end; True once it has (its report is then read)."""
        if self._unit is None:
            return True
        if self.process and not self._reader.closed:
            # The report is read before joining: a report larger than the pipe's buffer holds its sender
            # until it is read, so joining first could wait forever.
            if not self._reader.poll(timeout):
                return False
            with contextlib.suppress(EOFError):  # end of file: it ended without a report (crashed, killed)
                self._received = self._reader.recv_bytes()
            self._reader.close()
            timeout = None
        self._unit.join(timeout)
        if self._unit.is_alive():
            return False
        if self._received is not None and self.report is None and self.crashed is None:
            try:
                self.report, self.crashed = read_report(self._received), None
            except PodCrashed as crash:
                self.crashed = str(crash)
            except (ValueError, KeyError, TypeError) as error:
                self.crashed = f"unreadable report ({error})"
        return True

    @property
    def alive(self) -> bool:
        return self._unit is not None and self._unit.is_alive()

    @property
    def exitcode(self) -> int | None:
        """A process pod's exit status once it has ended (-9: SIGKILL); None for a thread."""
        return self._unit.exitcode if self.process and self._unit is not None else None

    def _thread_main(self, launched: float) -> None:
        life = Life(self.name, launched, self._killed, self._hook, self._fault, self._on_span)
        try:
            self._received = life.report(self._target(life, **json.loads(self._settings)))
        except PodKilled as killed:
            log.info("%s", killed)
        except Exception as error:
            log.exception("%s crashed", self.name)
            self._received = _crash_report(error)


@contextmanager
def running(pods: Iterable[Pod]) -> Iterator[None]:
    """Start the pods in order; when the block ends, however it ends (Ctrl-C too), kill any still running."""
    pods = list(pods)
    try:
        for pod in pods:
            pod.start()
        yield
    finally:
        for pod in pods:
            if pod.alive:
                pod.kill()


def _process_main(target: Callable[..., Any], name: str, settings: str, launched: float, writer: Any,
                  level: int) -> None:
    """A process pod's first and last Python: run the target, send the report, exit 1 on a crash."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which kills its pods
    logging.basicConfig(level=level, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    life = Life(name, launched, None, None)
    try:
        report = life.report(target(life, **json.loads(settings)))
    except Exception as error:
        log.exception("%s crashed", name)
        writer.send_bytes(_crash_report(error))
        raise SystemExit(1) from None
    writer.send_bytes(report)
    writer.close()


def _crash_report(error: BaseException) -> bytes:
    return json.dumps({"crashed": f"{type(error).__name__}: {error}"}).encode()
