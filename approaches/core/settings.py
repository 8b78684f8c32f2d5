"""How long the suite waits, polls and retries, and where a test may inject a fault: one small object.

Every approach and pod takes these as an argument (``job.config.settings``) instead of reading module
constants, so a value a test sets reaches every worker: threads, forked processes, and pods spawned as
fresh interpreters, which receive the plain fields as JSON with their other settings (`plain`).
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

TileFault = Callable[[str, int], None]
"""fault(image name, tile id): called in the worker just before a tile is blurred; what it raises is that
tile's error (it may also sleep, to slow a worker, or end the process, to kill it)."""


@dataclass(frozen=True)
class Settings:
    """Timing, retry and fault settings, with the values a normal run uses."""

    poll_s: float = 0.05  # the longest a pod blocks on a queue before it passes a fault point again
    visibility_s: float = 5.0  # f, g: a worker silent this long is presumed dead and its tiles go to others
    result_wait_s: float = 30.0  # e: its assembler waits this long for the next result before it reports the
    #                              images still open incomplete (a lost tile never comes; the original's 30 s)
    progress_wait_s: float = 60.0  # f, g: their assembler waits this long for a new stored result (no worker
    #                                left?) before it reports the images still open incomplete
    max_deliveries: int = 5  # f, g: a tile handed out this many times without an ack is dead-lettered next
    backoff_s: float = 0.05  # f, g: a failed tile waits backoff_s * 2**(attempt-1), jittered, capped at ...
    backoff_max_s: float = 2.0
    stop_grace_s: float = 5.0  # after a run's end, how long pods get to stop by themselves before a kill
    tile_delay_s: float = 0.0  # every queue worker sleeps this long per tile: a slow node (the chaos demo)
    fault: TileFault | None = None  # tests only; in-process workers alone (threads, forked processes,
    #                                 thread pods): a spawned pod gets plain values only

    def __post_init__(self) -> None:
        for name in ("poll_s", "visibility_s", "result_wait_s", "progress_wait_s", "backoff_s", "backoff_max_s",
                     "stop_grace_s", "tile_delay_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {getattr(self, name)!r}")
        if self.max_deliveries < 1:
            raise ValueError(f"max_deliveries must be at least 1, got {self.max_deliveries}")

    def plain(self) -> dict[str, Any]:
        """The fields a spawned pod can receive as JSON (all but the fault hook).

        >>> Settings(poll_s=0.01).plain()["poll_s"]
        0.01
        """
        values = asdict(self)
        del values["fault"]
        return values

    def backoff(self, attempt: int) -> float:
        """The longest pause before a failed tile's delivery number `attempt` is handed back.

        >>> Settings(backoff_s=0.1, backoff_max_s=1.0).backoff(3), Settings().backoff(99)
        (0.4, 2.0)
        """
        return min(self.backoff_max_s, self.backoff_s * 2 ** min(attempt - 1, 32))

