"""What an approach is given (a Job) and what it hands back (an Outcome)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from approaches.core.config import RunConfig
from approaches.core.images import ImageSource


@dataclass(frozen=True)
class Job:
    """One run of one approach: the images to blur, with the settings, into output_dir/<letter>/."""

    config: RunConfig
    images: tuple[ImageSource, ...]
    letter: str
    progress: Callable[[], None] = lambda: None


@dataclass(frozen=True, slots=True)
class Saved:
    name: str
    source: Path
    output: Path
    width: int
    height: int
    mode: str


@dataclass(frozen=True, slots=True)
class Failure:
    path: str
    reason: str


@dataclass
class Outcome:
    """Images saved and images that failed; an approach reports every input as one or the other."""

    saved: list[Saved] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
