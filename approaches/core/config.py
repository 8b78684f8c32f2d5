"""RunConfig: every setting of one run, checked once, with a one-line reason for each value refused.

What fills it (the command line and environment variables, the web page's form) is a front end's business:
a refused value is a SettingError naming the field, which each front end says in its own words (the command
line as its flag).  Where results are written, and how much a run says, are the harness's; approaches and
pods only read this.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

from approaches.core.errors import SettingError, shown
from approaches.core.limits import (
    DEFAULT_ENCODER,
    DEFAULT_MAX_PIXELS,
    KERNELS,
    MAX_PIXELS,
    PNG_ENCODERS,
    validate_kernel_size,
)
from approaches.core.settings import Settings
from approaches.core.urls import DEFAULT_URL, check_amqp_url, check_scheduler, check_url

MAX_TILE_SIZE = 1 << 16
MIN_QUEUE_TILE_SIZE = 16  # below this a queue approach spends its time on messages, not pixels
WORKERS_PER_CORE = 8  # more workers than this many per core only add processes and memory


def max_workers() -> int:
    """The most workers (or a service's threads) a run may ask for on this machine: WORKERS_PER_CORE per core."""
    return WORKERS_PER_CORE * cores_present()


def cores_present() -> int:
    """Cores this process may run on (respects taskset and container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RunConfig:
    approaches: tuple[str, ...] = ("a",)
    input_dir: Path = Path("data/input")
    output_dir: Path = Path("data/output")
    kernel_size: int = 21
    tile_size: int = 256
    workers: int = 1
    png_level: int = 1
    png_encoder: str = DEFAULT_ENCODER  # one of limits.PNG_ENCODERS (fpng falls back to Pillow where missing)
    repeat: int = 1  # timed runs of each approach (the command line's default is 3: harness/cli.py)
    warmups: int = 0  # untimed runs of each approach before the timed ones
    truncate: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image: a larger one is refused before it is decoded (images.py)
    kernel: str = "separable"  # one of limits.KERNELS: "direct" makes a run compute-bound
    broker: str = DEFAULT_URL
    scheduler: str | None = None  # h: a dask scheduler's tcp:// address (None: a LocalCluster started here)
    mpi_hosts: Path | None = None  # i: an MPI host file, so the ranks run on those machines
    amqp: str | None = None  # j: a running RabbitMQ's amqp:// URL (None: a private node started here)
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        try:
            validate_kernel_size(self.kernel_size)
        except ValueError as error:
            raise SettingError("kernel_size", str(error).removeprefix("kernel size ")) from None
        if self.kernel not in KERNELS:
            raise SettingError("kernel", f"must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        _check_range("tile_size", self.tile_size, 1, MAX_TILE_SIZE)
        cores = cores_present()
        _check_range("workers", self.workers, 1, max_workers(),
                     f" ({WORKERS_PER_CORE} per core on the {cores} cores present)")
        _check_range("png_level", self.png_level, 0, 9)
        if self.png_encoder not in PNG_ENCODERS:
            raise SettingError("png_encoder", f"must be one of {', '.join(PNG_ENCODERS)}, got {self.png_encoder!r}")
        _check_range("repeat", self.repeat, 1, 1000)
        _check_range("warmups", self.warmups, 0, 100)
        _check_range("max_pixels", self.max_pixels, 1, MAX_PIXELS)
        check_url(self.broker)
        if self.scheduler is not None:
            check_scheduler(self.scheduler)
        if self.amqp is not None:
            check_amqp_url(self.amqp)
        if self.mpi_hosts is not None and not self.mpi_hosts.is_file():
            raise SettingError("mpi_hosts", f"{shown(self.mpi_hosts)} is not a file")

    @property
    def radius(self) -> int:
        return self.kernel_size // 2


def check_queue_tile_size(tile_size: int, queues: str) -> None:
    """Refuse tiles too small for a queue approach: each would be a message carrying almost no pixels.

    >>> check_queue_tile_size(16, "g")
    >>> check_queue_tile_size(1, "g")
    Traceback (most recent call last):
    ...
    approaches.core.errors.SettingError: tile size must be at least 16 for the queue approaches (g): smaller tiles \
spend the run on messages, not pixels; got 1
    """
    if tile_size < MIN_QUEUE_TILE_SIZE:
        raise SettingError("tile_size", f"must be at least {MIN_QUEUE_TILE_SIZE} for the queue approaches ({queues}): "
                           f"smaller tiles spend the run on messages, not pixels; got {tile_size}")


def _check_range(setting: str, value: int, low: int, high: int, why: str = "") -> None:
    if not low <= value <= high:
        raise SettingError(setting, f"must be between {low} and {high}{why}, got {value}")
