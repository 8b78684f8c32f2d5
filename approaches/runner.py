"""Run the chosen approaches, time them, check their pixels against a, and write the log, JSON and charts."""

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from approaches.cluster.broker import check_reachable, redact
from approaches.core.config import RunConfig, build_parser, config_from, cores_present
from approaches.core.errors import BlurSuiteError, ConfigError, ImageError
from approaches.core.images import ImageSource, find_images, load_image
from approaches.core.job import Job, Outcome
from approaches.core.kernel import blur, warm_up
from approaches.core.trace import Span, Tracer
from approaches.registry import APPROACHES, Approach
from approaches.samples import ensure_samples

STAGES = ("load", "blur", "save")


@dataclass
class Measured:
    """An approach's wall times over the repeats, and the outcome and spans of its last run."""

    approach: Approach
    wall_runs: list[float]
    outcome: Outcome
    spans: list[Span]
    started: float
    identical_to_a: bool = False
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


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    letters = list(APPROACHES)
    describe = "\n".join(f"  {a.letter}  {a.title}: {a.lesson}" for a in APPROACHES.values())
    args = build_parser(letters, describe).parse_args(argv)
    try:
        config = config_from(args, os.environ if env is None else env, letters)
        sources = _inputs(config, using_default_input=args.input is None and "INPUT_PATH" not in (env or os.environ))
        if config.chaos or any(APPROACHES[letter].uses_broker for letter in config.approaches):
            check_reachable(config.broker)  # one line now, not one failure per image and approach
        _make_output_dirs(config)
    except BlurSuiteError as error:
        print(f"run_all.py: error: {error}", file=sys.stderr)
        return 2
    if config.sweep:
        from approaches.sweep import sweep  # its own run, table and chart

        return sweep(config, sources)
    if config.chaos:
        from approaches.cluster.chaos import chaos  # its own run and summary

        return chaos(config, sources)
    with tqdm(total=len(sources) * len(config.approaches) * config.repeat, unit="image",
              disable=True if config.quiet else None, leave=False) as bar:
        measured = []
        for letter in config.approaches:
            bar.set_description(f"{letter} {APPROACHES[letter].title}")
            measured.append(measure(APPROACHES[letter], config, sources, bar.update))
    verify(measured, sources, config)
    doc = document(config, measured)
    if not config.quiet:
        print(summary_table(doc))
    problems = [f"{r['approach']}: {f['path']}: {f['reason']}" for r in doc["results"] for f in r["failed"]]
    problems += [f"{m.approach.letter}: differs from a: {reason}" for m in measured for reason in m.mismatches]
    problems += write_reports(config, doc)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def _inputs(config: RunConfig, using_default_input: bool) -> list[ImageSource]:
    if using_default_input:
        ensure_samples(config.input_dir, png_level=config.png_level)
    sources = find_images(config.input_dir)
    if not sources:
        raise ConfigError(f"no images in {config.input_dir} (looked for .png, .jpg, .bmp, .gif, .tif, .webp)")
    return sources


def _make_output_dirs(config: RunConfig) -> None:
    for letter in config.approaches:
        directory = config.output_dir / letter
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"cannot create output directory {directory}: {error.strerror or error}") from None
        if not os.access(directory, os.W_OK):
            raise ConfigError(f"output directory {directory} is not writable")


def measure(approach: Approach, config: RunConfig, sources: Sequence[ImageSource], progress) -> Measured:
    """Run approach config.repeat times; keep every wall time and the last run's outcome and spans."""
    warm_up(config.kernel_size, method=config.kernel)  # load the compiled kernel before timing
    wall_runs = []
    for _ in range(config.repeat):
        tracer = Tracer()
        job = Job(config, tuple(sources), approach.letter, progress)
        started = time.perf_counter()
        outcome = approach.run(job, tracer)
        wall_runs.append(time.perf_counter() - started)
    return Measured(approach, wall_runs, outcome, tracer.spans, started)


def verify(measured: Sequence[Measured], sources: Sequence[ImageSource], config: RunConfig) -> None:
    """Compare every saved output with a's pixels (load, then blur on one thread), image by image.

    An approach is identical to a when each of its outputs has exactly a's pixels and it saved every
    image that a can produce.  The reference uses the run's kernel (--kernel): separable and direct
    differ by one level in a few pixels, so each is only ever compared with itself.
    """
    reference = {}
    for source in sources:
        try:
            pixels = load_image(source.path).pixels
            reference[source.name] = blur(pixels, config.kernel_size, truncate=config.truncate, method=config.kernel)
        except ImageError:
            continue
    for m in measured:
        saved = {s.name: s for s in m.outcome.saved}
        m.mismatches = [f"{name}: not saved" for name in reference if name not in saved]
        for name, s in saved.items():
            try:
                same = name in reference and np.array_equal(load_image(s.output).pixels, reference[name])
            except ImageError as error:
                m.mismatches.append(f"{name}: output unreadable ({error.reason})")
                continue
            if not same:
                m.mismatches.append(f"{name}: pixels differ ({s.output})")
        m.identical_to_a = not m.mismatches


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        memory = float("nan")
    return (f"{model}, {cores_present()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def document(config: RunConfig, measured: Sequence[Measured]) -> dict:
    """The run as plain data: what the JSON file, the log, the table and the charts are made from."""
    baseline = next((m.wall_s for m in measured if m.approach.letter == "a"), None)
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in asdict(config).items()}
    settings["broker"] = redact(config.broker)  # a redis:// URL may hold a password
    return {
        "config": {**settings, "approaches": list(config.approaches), "machine": machine(),
                   "timestamp": time.strftime("%Y-%m-%d %H:%M:%S")},
        "results": [_result(m, config, baseline) for m in measured],
    }


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
        "spans": [{**span._asdict(), "start": round(span.start - m.started, 6), "end": round(span.end - m.started, 6)}
                  for span in m.spans],
    }


def summary_table(doc: dict) -> str:
    header = ("approach", "wall s", "per image", "load s", "blur s", "save s", "vs a", "identical to a")
    rows = [header]
    for r in doc["results"]:
        runs = r["wall_runs"]
        spread = f" ± {statistics.stdev(runs):.3f} (n={len(runs)})" if len(runs) > 1 else " (n=1)"
        count = max(len(r["images"]), 1)
        rows.append((
            f"{r['approach']} {r['title']}",
            f"{r['wall_s']:.3f}{spread}",
            f"{r['wall_s'] / count:.3f}",
            *(f"{r['stage_s'].get(stage, 0.0):.3f}" for stage in STAGES),
            f"{r['speedup_vs_a']:.2f}x" if r["speedup_vs_a"] else "-",
            "yes" if r["identical_to_a"] else "NO",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    cfg = doc["config"]
    lines.append(f"kernel {cfg['kernel_size']} ({cfg.get('kernel', 'separable')}), tile {cfg['tile_size']}, "
                 f"workers {cfg['workers']}, png level {cfg['png_level']}; stage seconds are summed over lanes, "
                 "so parallel approaches can exceed their wall time")
    return "\n".join(lines)


def log_text(doc: dict) -> str:
    """The original course's results file: one block per approach."""
    cfg = doc["config"]
    out = ["=== Combined Multi-Algorithm Gaussian Blur Results ===", f"Timestamp: {cfg['timestamp']}", ""]
    for r in doc["results"]:
        count = len(r["images"])
        out += [
            f"=== {r['approach']}_{r['title']} Results ===",
            f"Images processed: {count}",
            f"Kernel size: {cfg['kernel_size']}",
            f"Kernel: {cfg.get('kernel', 'separable')}",
            f"Total blur time: {r['stage_s'].get('blur', 0.0):.2f}s",
            f"Total execution time: {r['wall_s']:.2f}s",
            f"Average time per image: {r['wall_s'] / max(count, 1):.2f}s",
            f"Workers: {r['workers']}",
            f"Tile size: {cfg['tile_size']}",
            "",
            "Input files:",
            *(f"  {i}. {image['source']}" for i, image in enumerate(r["images"], 1)),
            "",
            "Output files:",
            *(f"  {i}. {image['output']}" for i, image in enumerate(r["images"], 1)),
            "",
        ]
    return "\n".join(out) + "\n"


def write_reports(config: RunConfig, doc: dict) -> list[str]:
    """Write logs/<timestamp>.txt and .json, --json FILE and the charts; return a line per failure."""
    stamp = doc["config"]["timestamp"].replace(" ", "_").replace(":", "-")
    payload = json.dumps(doc, indent=1)
    writes = [(config.logs_dir / f"{stamp}.txt", log_text(doc)), (config.logs_dir / f"{stamp}.json", payload)]
    if config.json_path:
        writes.append((config.json_path, payload))
    problems = []
    for path, text in writes:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        except OSError as error:
            problems.append(f"cannot write {path}: {error.strerror or error}")
    if config.charts_dir is not None:
        from approaches.report import draw_all  # matplotlib is slow to import; only when drawing

        try:
            drawn = draw_all(doc, config.charts_dir)
        except OSError as error:
            problems.append(f"cannot draw charts into {config.charts_dir}: {error.strerror or error}")
        else:
            if not config.quiet:
                print(f"charts: {', '.join(str(p) for p in drawn)}")
    if not config.quiet:
        print(f"log: {writes[0][0]}  json: {writes[-1][0]}")
    return problems
