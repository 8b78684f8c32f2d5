"""blur-suite: one Gaussian blur job done seven ways.  ``approaches.blur`` is the reference blur."""

from approaches.core.kernel import blur

__all__ = ["blur"]
