"""Time the approaches as pyperf would; check every output against a's pixels; turn both into a results document.

One run of an approach is noisy and, if it comes first, cold: caches, the page cache, the CPU's clock and
the allocator all favour whoever runs later.  So by default (the command line's) every approach runs once
untimed (a warm-up), then three timed rounds follow, and round r starts at offset r in the list of
approaches: no approach is always first (a cold first place flatters everyone "vs a").  A table reports
the median of the timed runs and their spread (fastest to slowest); --quick is one timed pass, no warm-up,
and says so.
"""

import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from approaches.core.config import RunConfig, cores_present
from approaches.core.errors import BlurSuiteError, Crashed, ImageError
from approaches.core.images import ImageSource, load_image
from approaches.core.job import Job, Outcome, Saved
from approaches.core.kernel import blur, warm_up
from approaches.core.trace import Span, Tracer
from approaches.harness.results import STAGES, settings_of
from approaches.registry import Approach

Progress = Callable[[], None]


@dataclass(frozen=True)
class Round:
    """One pass over the approaches, in this order: timed, or an untimed warm-up."""

    timed: bool
    order: tuple[str, ...]


def plan_rounds(letters: Sequence[str], repeat: int, warmups: int) -> list[Round]:
    """warmups untimed rounds in the order given, then repeat timed rounds, timed round r starting at offset r.

    Rotating (rather than shuffling) gives each approach every position equally often whenever repeat is a
    multiple of the number of approaches, and is the same every time, so two runs are comparable.

    >>> [(r.timed, "".join(r.order)) for r in plan_rounds("abc", repeat=3, warmups=1)]
    [(False, 'abc'), (True, 'abc'), (True, 'bca'), (True, 'cab')]
    """
    letters = tuple(letters)
    n = max(len(letters), 1)
    rotated = [letters[r % n:] + letters[:r % n] for r in range(repeat)]
    return [Round(False, letters) for _ in range(warmups)] + [Round(True, order) for order in rotated]


@dataclass
class Measured:
    """An approach's wall times over its timed runs, and the outcome and spans of the last of them."""

    approach: Approach
    wall_runs: list[float]
    outcome: Outcome
    spans: list[Span]
    started: float
    identical_to_a: bool | None = None  # None: not checked (yet, or --no-verify)
    mismatches: list[str] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        return statistics.median(self.wall_runs)

    def stage_seconds(self, image: str | None = None) -> dict[str, float]:
        totals = dict.fromkeys(STAGES, 0.0)
        for span in self.spans:
            if image is None or span.image == image:
                totals[span.stage] = totals.get(span.stage, 0.0) + span.seconds
        return totals


def measure(approach: Approach, config: RunConfig, sources: Sequence[ImageSource], progress: Progress,
            on_span: Callable[[Span], None] | None = None, options: Mapping[str, Any] | None = None) -> Measured:
    """One approach, config.warmups untimed runs then config.repeat timed ones (what a benchmark times).

    on_span hears each span as it is recorded (harness/live.py streams them); options go to the approach's
    run (the queue approaches take launched()'s on_span and on_launch)."""
    return measure_all([approach], config, sources, progress, on_span, options)[0]


def measure_all(approaches: Sequence[Approach], config: RunConfig, sources: Sequence[ImageSource],
                progress: Progress, on_span: Callable[[Span], None] | None = None,
                options: Mapping[str, Any] | None = None) -> list[Measured]:
    """Run the approaches in the rounds plan_rounds gives; one Measured each, in the order given.

    Every run writes the approach's outputs again, and a warm-up never comes last, so the files on disk
    (which verify checks) are those of the timed run whose outcome is kept."""
    warm_up(config.kernel_size, method=config.kernel)  # load the compiled kernel before any run
    by_letter = {approach.letter: approach for approach in approaches}
    walls: dict[str, list[float]] = {letter: [] for letter in by_letter}
    last: dict[str, tuple[Outcome, list[Span], float]] = {}
    for round_ in plan_rounds(list(by_letter), config.repeat, config.warmups):
        for letter in round_.order:
            wall, outcome, spans, started = _run_once(by_letter[letter], config, sources, progress, on_span, options)
            if round_.timed:
                walls[letter].append(wall)
                last[letter] = outcome, spans, started
    return [Measured(by_letter[letter], walls[letter], *last[letter]) for letter in by_letter]


def _run_once(approach: Approach, config: RunConfig, sources: Sequence[ImageSource], progress: Progress,
              on_span: Callable[[Span], None] | None,
              options: Mapping[str, Any] | None) -> tuple[float, Outcome, list[Span], float]:
    """One run: its wall seconds, outcome, spans, and the perf_counter time it started."""
    tracer = Tracer(on_span)
    job = Job(config, tuple(sources), approach.letter, progress)
    started = time.perf_counter()
    try:
        outcome = approach.run(job, tracer, **(options or {}))
    except BlurSuiteError:
        raise
    except Exception as error:
        raise Crashed(f"{approach.letter} crashed: {type(error).__name__}: {error}") from error
    return time.perf_counter() - started, outcome, tracer.spans, started


@dataclass
class Verified:
    """What the check against a's pixels did, timed as a stage of its own: how many images' references were a's
    outputs from this run (decoded) and how many were blurred again, when it started (perf_counter), how long it
    took, and its spans (a lane per thread: "load" decodes, "blur" references blurred again)."""

    reused: int
    recomputed: int
    started: float
    seconds: float
    spans: list[Span]

    @property
    def reference(self) -> str:
        """What the outputs were compared with, in a few words (the table and the results document say it)."""
        if not self.recomputed:
            return "a's outputs from this run"
        if not self.reused:
            return "a reference blurred again"
        return f"a's outputs from this run ({self.recomputed} blurred again)"


def verify(measured: Sequence[Measured], sources: Sequence[ImageSource], config: RunConfig,
           progress: Progress = lambda: None) -> Verified:
    """Compare every saved output with a's pixels, image by image, and say what that took.

    An approach is identical to a when each of its outputs has exactly a's pixels and it saved every
    image that a can produce.  Where a ran in this run and saved an image, its output is the reference: it
    is decoded once, not blurred again (a is identical to itself by definition).  Elsewhere (a not run, or
    it saved no readable output) the input is decoded and blurred with the run's kernel (--kernel:
    separable and direct differ by one level in a few pixels, so each is only ever compared with itself).
    Images are checked on every core at once (decoding and the kernel release the GIL), each thread holding
    one reference at a time, so memory does not grow with the number of images.
    """
    saved = [{s.name: s for s in m.outcome.saved} for m in measured]
    of_a = next((outputs for m, outputs in zip(measured, saved, strict=True) if m.approach.letter == "a"), {})
    tracer = Tracer()

    def decode(path: Path, name: str) -> np.ndarray:
        with tracer.span(threading.current_thread().name, "load", name):
            return load_image(path, config.max_pixels).pixels

    def reference_of(source: ImageSource) -> tuple[np.ndarray | None, bool]:
        """The image's reference, and whether it is a's output from this run."""
        if source.name in of_a:
            try:
                return decode(of_a[source.name].output, source.name), True
            except ImageError:
                pass  # unreadable: blur a reference, and a's own comparison says why
        try:
            pixels = decode(source.path, source.name)
        except ImageError:
            return None, False
        with tracer.span(threading.current_thread().name, "blur", source.name):
            return blur(pixels, config.kernel_size, truncate=config.truncate, method=config.kernel), False

    def check(source: ImageSource) -> tuple[list[list[str]], bool]:
        reference, reused = reference_of(source)
        found = [[] if reused and outputs is of_a else _compare(source.name, reference, outputs.get(source.name),
                                                                decode)
                 for outputs in saved]
        progress()
        return found, reused

    for m in measured:
        m.mismatches = []
    reused = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(cores_present(), thread_name_prefix="verify") as pool:
        for found, from_a in pool.map(check, sources):
            reused += from_a
            for m, mismatches in zip(measured, found, strict=True):
                m.mismatches += mismatches
    for m in measured:
        m.identical_to_a = not m.mismatches
    return Verified(reused, len(sources) - reused, started, time.perf_counter() - started, tracer.spans)


def _compare(name: str, reference: np.ndarray | None, saved: Saved | None,
             decode: Callable[[Path, str], np.ndarray]) -> list[str]:
    if saved is None:
        return [] if reference is None else [f"{name}: not saved"]
    try:
        same = reference is not None and np.array_equal(decode(saved.output, name), reference)
    except ImageError as error:
        return [f"{name}: output unreadable ({error.reason})"]
    return [] if same else [f"{name}: pixels differ ({saved.output})"]


def document(config: RunConfig, measured: Sequence[Measured], verified: Verified | None) -> dict:
    """The run as plain data: what the JSON file, the log, the table and the charts are made from.  verified:
    what verify did, or None where the outputs were not checked (--no-verify): its "reference" is then null."""
    baseline = next((m.wall_s for m in measured if m.approach.letter == "a"), None)
    return {"kind": "run", "config": settings_of(config),
            "method": method_of(config, [m.approach.letter for m in measured]),
            "results": [_result(m, config, baseline) for m in measured],
            "verify": _verification(verified)}


def _verification(verified: Verified | None) -> dict:
    if verified is None:
        return {"reference": None, "seconds": None, "spans": []}
    return {"reference": verified.reference, "seconds": round(verified.seconds, 6),
            "reused": verified.reused, "recomputed": verified.recomputed,
            "spans": _relative(verified.spans, verified.started)}


def method_of(config: RunConfig, letters: Sequence[str]) -> dict:
    """How the walls were measured, for the table, the charts and a later compare: the timed rounds' orders.

    >>> method_of(RunConfig(repeat=2, warmups=1), ["a", "c"])
    {'repeat': 2, 'warmups': 1, 'statistic': 'median', 'rounds': [['a', 'c'], ['c', 'a']]}
    """
    rounds = plan_rounds(letters, config.repeat, config.warmups)
    return {"repeat": config.repeat, "warmups": config.warmups, "statistic": "median",
            "rounds": [list(r.order) for r in rounds if r.timed]}


def _result(m: Measured, config: RunConfig, baseline: float | None) -> dict:
    images = []
    for s in m.outcome.saved:
        stages = m.stage_seconds(s.name)
        images.append({"name": s.name, "source": str(s.source), "width": s.width, "height": s.height,
                       "mode": s.mode, "output": str(s.output),
                       **{f"{stage}_s": round(stages[stage], 6) for stage in STAGES}})
    return {
        "approach": m.approach.letter,
        "title": m.approach.title,
        "wall_s": round(m.wall_s, 6),
        "wall_runs": [round(t, 6) for t in m.wall_runs],
        "last_wall_s": round(m.wall_runs[-1], 6),
        "identical_to_a": m.identical_to_a,
        "speedup_vs_a": round(baseline / m.wall_s, 3) if baseline and m.wall_s > 0 else None,
        "stage_s": {stage: round(seconds, 6) for stage, seconds in m.stage_seconds().items()},
        "workers": config.workers,
        "images": images,
        "failed": [asdict(f) for f in m.outcome.failed],
        "spans": _relative(m.spans, m.started),
    }


def _relative(spans: Sequence[Span], started: float) -> list[dict]:
    """Spans as plain data, their times in seconds since started."""
    return [{**span._asdict(), "start": round(span.start - started, 6), "end": round(span.end - started, 6)}
            for span in spans]
