"""The approaches by letter: title, one-line lesson, and the function that runs it.

A lesson's module is imported when its approach first runs, not when this table is read: listing the
approaches (--help, the page's form) loads no lesson, and so neither numpy nor numba.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from approaches.core.job import Job, Outcome
    from approaches.core.trace import Tracer


@dataclass(frozen=True)
class Approach:
    letter: str
    title: str
    lesson: str
    run: Callable[..., "Outcome"]  # run(job: Job, tracer: Tracer, **options) -> Outcome
    uses_broker: bool = False
    killable: bool = False  # its workers can be killed mid-run and come back (the chaos demo, the page's kill button)
    # The settings that change the approach's work: a and d blur whole images on one lane (neither), i runs a
    # rank per worker on bands of rows (workers only).  A sweep of any other setting measures it once and
    # draws it as a flat reference line.
    varies: frozenset[str] = frozenset({"tile_size", "workers"})


def _lesson(module: str, function: str) -> Callable[..., "Outcome"]:
    """approaches.<module>.<function>, imported at its first call."""
    def run(job: "Job", tracer: "Tracer", **options: Any) -> "Outcome":
        return getattr(importlib.import_module(f"approaches.{module}"), function)(job, tracer, **options)

    run.__qualname__ = f"{module}.{function}"
    return run


APPROACHES: dict[str, Approach] = {
    approach.letter: approach
    for approach in (
        Approach("a", "Sequential", "the baseline: load, blur, save, one image after another",
                 _lesson("a_sequential", "run"), varies=frozenset()),
        Approach("b.threads", "Tile-parallel, threads",
                 "the kernel releases the GIL, so threads blur one image's tiles at once",
                 _lesson("b_tile_parallel", "run_threads")),
        Approach("b.processes", "Tile-parallel, processes",
                 "tiles are pickled to worker processes and back: parallel, at the price of copies",
                 _lesson("b_tile_parallel", "run_processes")),
        Approach("b.shm", "Tile-parallel, shared memory",
                 "the image lives in shared memory; worker processes get tile coordinates only",
                 _lesson("b_tile_parallel", "run_shared_memory")),
        Approach("c", "Pipelined", "loading, blurring and saving overlap across images, with bounded queues",
                 _lesson("c_pipeline", "run")),
        Approach("d", "Distributed sequential",
                 "a's loop in one pod, a fresh process: its start-up is timed apart from the work",
                 _lesson("d_distributed_sequential", "run"), varies=frozenset()),
        Approach("e", "Naive Redis queue",
                 "pods around LPUSH/BRPOP lists: at-most-once, so a worker killed holding a tile loses it",
                 _lesson("e_naive_queue", "run"), uses_broker=True, killable=True),
        Approach("f", "Reliable queue",
                 "at-least-once: a tile stays in Redis until its result is stored; dead workers' tiles go to others",
                 _lesson("f_reliable_queue", "run"), uses_broker=True, killable=True),
        Approach("g", "Multithreaded service",
                 "Redis Streams and a consumer group: stale tiles are claimed and done, threads share a process",
                 _lesson("g_service", "run"), uses_broker=True, killable=True),
        Approach("h", "dask.distributed",
                 "an engine instead of a hand-built queue: tiles as tasks, and lost ones recomputed from the graph",
                 _lesson("h_dask", "run"), killable=True),
        Approach("i", "MPI halo exchange",
                 "SPMD ranks: bands scattered, edge rows swapped with neighbours, gathered; no broker, no recovery",
                 _lesson("i_mpi", "run"), varies=frozenset({"workers"})),
        Approach("j", "RabbitMQ",
                 "f's pods with a broker built for it: acks, prefetch, a quorum queue, confirms, dead letters",
                 _lesson("j_rabbitmq", "run"), uses_broker=True, killable=True),
    )
}
