"""The approaches by letter: title, one-line lesson, and the function that runs it."""

from collections.abc import Callable
from dataclasses import dataclass

from approaches import (
    a_sequential,
    b_tile_parallel,
    c_pipeline,
    d_distributed_sequential,
    e_naive_queue,
    f_reliable_queue,
    g_service,
    h_dask,
    i_mpi,
)
from approaches.core.job import Job, Outcome
from approaches.core.trace import Tracer


@dataclass(frozen=True)
class Approach:
    letter: str
    title: str
    lesson: str
    run: Callable[[Job, Tracer], Outcome]
    uses_broker: bool = False
    # The settings that change the approach's work: a and d blur whole images on one lane (neither), i runs a
    # rank per worker on bands of rows (workers only).  A sweep of any other setting measures it once and
    # draws it as a flat reference line.
    varies: frozenset[str] = frozenset({"tile_size", "workers"})


APPROACHES: dict[str, Approach] = {
    approach.letter: approach
    for approach in (
        Approach("a", "Sequential", "the baseline: load, blur, save, one image after another", a_sequential.run,
                 varies=frozenset()),
        Approach("b.threads", "Tile-parallel, threads",
                 "the kernel releases the GIL, so threads blur one image's tiles at once", b_tile_parallel.run_threads),
        Approach("b.processes", "Tile-parallel, processes",
                 "tiles are pickled to worker processes and back: parallel, at the price of copies",
                 b_tile_parallel.run_processes),
        Approach("b.shm", "Tile-parallel, shared memory",
                 "the image lives in shared memory; worker processes get tile coordinates only",
                 b_tile_parallel.run_shared_memory),
        Approach("c", "Pipelined", "loading, blurring and saving overlap across images, with bounded queues",
                 c_pipeline.run),
        Approach("d", "Distributed sequential",
                 "a's loop in one pod, a fresh process: its start-up is timed apart from the work",
                 d_distributed_sequential.run, varies=frozenset()),
        Approach("e", "Naive Redis queue",
                 "pods around LPUSH/BRPOP lists: at-most-once, so a worker killed holding a tile loses it",
                 e_naive_queue.run, uses_broker=True),
        Approach("f", "Reliable queue",
                 "at-least-once: a tile stays in Redis until its result is stored; dead workers' tiles go to others",
                 f_reliable_queue.run, uses_broker=True),
        Approach("g", "Multithreaded service",
                 "Redis Streams and a consumer group: stale tiles are claimed and done, threads share a process",
                 g_service.run, uses_broker=True),
        Approach("h", "dask.distributed",
                 "an engine instead of a hand-built queue: tiles as tasks, and lost ones recomputed from the graph",
                 h_dask.run),
        Approach("i", "MPI halo exchange",
                 "SPMD ranks: bands scattered, edge rows swapped with neighbours, gathered; no broker, no recovery",
                 i_mpi.run, varies=frozenset({"workers"})),
    )
}
