"""The approaches by letter: title, one-line lesson, and the function that runs it."""

from collections.abc import Callable
from dataclasses import dataclass

from approaches import a_sequential
from approaches.core.job import Job, Outcome
from approaches.core.trace import Tracer


@dataclass(frozen=True)
class Approach:
    letter: str
    title: str
    lesson: str
    run: Callable[[Job, Tracer], Outcome]


APPROACHES: dict[str, Approach] = {
    approach.letter: approach
    for approach in (
        Approach("a", "Sequential", "the baseline: load, blur, save, one image after another", a_sequential.run),
    )
}
