"""h's cluster: a dask client of a fresh LocalCluster, or of a scheduler given, started quietly and safely.

What it takes care of, so that h's lesson need not: dask's loggers silenced in this process (they print
every step at INFO), a Ctrl-C or SIGTERM during a LocalCluster's start held until it has started (stopped
half-way, its exit hooks print tracebacks), an address nothing answers at refused in one line, and dask's
task stream turned into the suite's spans.
"""

import logging
import signal
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from approaches.cluster.guardian import guarded_folder
from approaches.core.errors import ConfigError
from approaches.core.job import Job
from approaches.core.kernel import warm_up
from approaches.core.trace import Span, Tracer
from approaches.core.urls import check_scheduler, unanswered

if TYPE_CHECKING:  # dask is imported when h runs, not when the suite starts: importing it takes about 0.3 s
    from distributed import Client, LocalCluster

START_TIMEOUT_S = 30.0  # for a scheduler to answer, and a first worker to join it
REACH_TIMEOUT_S = 2.5  # check_scheduler_reachable's whole answer, name lookup included
DASK_ACTIONS = {"compute": "blur", "transfer": "transfer", "disk-read": "spill", "disk-write": "spill"}
"""The suite's stage for each action in dask's task stream (spill: a worker's memory went to its disk)."""


def check_scheduler_reachable(scheduler: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """ConfigError, in one line and within timeout seconds, if nothing accepts a connection at the scheduler's
    address: before any work, where waiting for the client's own timeout would fail every image after 30 s."""
    parts = urlsplit(check_scheduler(scheduler))
    why = unanswered(lambda: socket.create_connection((parts.hostname, parts.port), timeout=timeout).close(), timeout)
    if why is not None:
        raise ConfigError(f"cannot reach the dask scheduler at {scheduler}: {why}")


@contextmanager
def connected(scheduler: str | None, job: Job, tracer: Tracer, lane: str,
              timeout_s: float = START_TIMEOUT_S) -> Iterator["Client"]:
    """A client of a fresh LocalCluster (closed on exit) or of the scheduler given, its workers' kernel loaded.

    All of it is the "start" span, in `lane`: importing dask, the cluster's processes, the connection, the
    first worker, the kernel; a worker that starts later (one restarted after a kill) loads the kernel in its
    first task.  Closing it all is the "stop" span.
    """
    with ExitStack() as stack:
        with tracer.span(lane, "start", ""):
            from distributed import Client

            # dask's own configuration sets its loggers to INFO: in this process (the client, and a
            # LocalCluster's scheduler) that would print its every step between the suite's lines.
            quiet = logging.getLogger("distributed")
            stack.push(partial(_restore_logs, quiet.level))
            quiet.setLevel(logging.ERROR)
            cluster = None
            if scheduler is None:
                # On 127.0.0.1 only.  The scheduler's HTTP server (health, metrics) takes any free port; its
                # dashboard page only says to install bokeh, which the suite does not.  The workers' own logs
                # are silenced but for critical errors: a worker that loses its scheduler while the cluster
                # closes logs a traceback that is no error of the run (a task's error reaches its future).
                stack.enter_context(scratch_space())
                cluster = stack.enter_context(_local_cluster(job.config.workers))
            client = stack.enter_context(Client(cluster or scheduler, timeout=timeout_s))
            client.wait_for_workers(1, timeout=timeout_s)
            client.run(warm_up, job.config.kernel_size, method=job.config.kernel)
        try:
            yield client
        finally:
            with tracer.span(lane, "stop", ""):  # closing a LocalCluster waits for its processes to end
                stack.close()


def _restore_logs(level: int, kind: type[BaseException] | None, *_: object) -> None:
    """dask's log level back as it was; but interrupted (Ctrl-C, SIGTERM), dask and asyncio stay quiet: the
    process is ending, and what dask's exit hooks stop (half-started nannies too, and scratch folders already
    removed with the run's) would be logged, step by step, after the suite's one line."""
    if kind is None or issubclass(kind, Exception):
        logging.getLogger("distributed").setLevel(level)
    else:
        for name in ("asyncio", "distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def scratch_space() -> Iterator[None]:
    """A temporary folder for what the cluster's processes write, removed with it: dask's own default,
    TMPDIR/dask-scratch-space, is never removed (and LocalCluster's local_directory moves only the workers').
    Interrupted, a LocalCluster is closed by dask's exit hooks, after this block, and its processes may still
    write there meanwhile: then the folder's guardian removes it once this process has ended."""
    import dask

    with guarded_folder("blur-dask-", linger_if_interrupted=True) as guardian, \
            dask.config.set({"temporary-directory": str(guardian.folder)}):
        yield


def _local_cluster(workers: int) -> "LocalCluster":
    """A LocalCluster of `workers` processes on 127.0.0.1 (see connected).

    Ctrl-C or SIGTERM while it starts is held until it has started, then delivered: stopped half-way, dask's
    exit hooks trip over the half-started processes and print their tracebacks under the suite's one line,
    while a started cluster closes cleanly.  (Signals can be held only in the main thread; the web page runs
    jobs in others, and stops them otherwise.)"""
    from distributed import LocalCluster

    held: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, lambda signum, _: held.append(signum))
                for signum in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                            dashboard_address="127.0.0.1:0", silence_logs=logging.CRITICAL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if held:
            signal.raise_signal(held[0])


def task_spans(records: Iterable[Mapping[str, Any]], names: Mapping[str, tuple[str, int]],
               offset: float) -> list[Span]:
    """dask's task stream as the suite's spans: each task's steps (compute, transfer, ...) as stages of its
    tile, in a lane per worker numbered in the order the workers started their first task, times moved
    by offset (perf_counter - time.time).  Tasks of other runs on a shared scheduler are left out.

    >>> step = {"action": "compute", "start": 100.0, "stop": 100.5}
    >>> task_spans([{"key": "blur-1-0", "worker": "tcp://10.0.0.7:4000", "startstops": (step,)}],
    ...            {"blur-1-0": ("img1", 0)}, offset=-99.0)
    [Span(lane='worker-1', stage='blur', image='img1', tile=0, start=1.0, end=1.5)]
    """
    mine = sorted((record for record in records if record["key"] in names),
                  key=lambda record: min(step["start"] for step in record["startstops"]))
    lanes: dict[str, str] = {}
    spans = []
    for record in mine:
        lane = lanes.setdefault(record["worker"], f"worker-{len(lanes) + 1}")
        image, tile = names[record["key"]]
        spans += [Span(lane, DASK_ACTIONS.get(step["action"], step["action"]), image, tile, step["start"] + offset,
                       step["stop"] + offset) for step in record["startstops"]]
    return spans
