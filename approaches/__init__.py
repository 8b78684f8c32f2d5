"""blur-suite: one Gaussian blur job done many ways, side by side.

The lessons are the modules a_… to j_…, each with its mechanism in it, to be read top to
bottom; core/ holds what every one of them uses (kernel, tiling, images, spans, settings), cluster/ the
machinery the distributed ones run on (the broker and pods of d–g, the queue protocol, the assemblers,
h's dask cluster, i's mpiexec launcher, j's RabbitMQ node), and harness/ the command line, the
measurements, the chaos demo and the reports.  Imports flow one way: harness -> lessons -> cluster -> core.
"""

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """``approaches.blur``, the reference blur, imported on first use (numba is slow to import)."""
    if name == "blur":
        from approaches.core.kernel import blur

        return blur
    raise AttributeError(f"module 'approaches' has no attribute {name!r}")
