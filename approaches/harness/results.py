"""The one writer of results: a run's document as JSON, the original course's text log, the table, and charts.

Every kind of run (measured approaches, a sweep, the chaos demo) makes a plain, JSON-able document and hands
it here.  Files are named from the start time, and two runs started in the same second still get a log each
(the name is reserved with an exclusive create).  A file is reported as written only once it has been.
"""

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import shown
from approaches.core.urls import redact

STAGES = ("load", "blur", "save")

Say = Callable[[str], None]


def machine() -> str:
    """CPU model, cores, memory, OS and Python: what every document records about where it was measured."""
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


def timestamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def reserve(directory: Path, stem: str, suffix: str) -> Path:
    """A new file directory/<stem><suffix>, created empty so no other run can take its name; -2, -3, ...
    are added to the stem while the name is taken.  OSError if directory cannot be written."""
    directory.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        path = directory / f"{stem}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for {stem}{suffix} in {directory}")


def write_document(config: RunConfig, doc: dict, kind: str = "", text: str | None = None,
                   draw: Callable[[Path], list[Path]] | None = None, say: Say = print) -> list[str]:
    """Write logs/<stamp><kind>.json (and .txt when text is given), --json FILE and, unless charts are off,
    what draw(charts_dir) draws; say what was written; return a line per file that could not be."""
    stamp = doc["config"]["timestamp"].replace(" ", "_").replace(":", "-") + kind
    payload = json.dumps(doc, indent=1)
    problems, written = [], []
    try:
        log_json = reserve(config.logs_dir, stamp, ".json")
        targets = [(log_json, payload)]
        if text is not None:
            targets.insert(0, (log_json.with_suffix(".txt"), text))
    except OSError as error:
        problems.append(f"cannot write into {shown(config.logs_dir)}: {error.strerror or error}")
        targets = []
    if config.json_path:
        targets.append((config.json_path, payload))
    for path, content in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", errors="backslashreplace")
        except OSError as error:
            problems.append(f"cannot write {shown(path)}: {error.strerror or error}")
        else:
            written.append(path)
    if draw is not None and config.charts_dir is not None:
        try:
            written += draw(config.charts_dir)
        except OSError as error:
            problems.append(f"cannot draw charts into {shown(config.charts_dir)}: {error.strerror or error}")
    if written and not config.quiet:
        say(f"written: {', '.join(shown(path) for path in written)}")
    return problems


def check_writable(config: RunConfig, approaches: Sequence[str]) -> list[str]:
    """Every place this run will write, tried before any work: a line per one that cannot be written."""
    folders = [config.logs_dir, *(config.output_dir / letter for letter in approaches)]
    if config.charts_dir is not None:
        folders.append(config.charts_dir)
    problems = [problem for folder in folders if (problem := _writable_folder(folder))]
    if config.json_path is not None:
        if config.json_path.is_dir():
            problems.append(f"--json {shown(config.json_path)} is a directory, not a file")
        elif problem := _writable_folder(config.json_path.parent):
            problems.append(f"--json: {problem}")
    return problems


def _writable_folder(folder: Path) -> str | None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot create directory {shown(folder)}: {error.strerror or error}"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"directory {shown(folder)} is not writable"
    return None


def settings_of(config: RunConfig) -> dict[str, Any]:
    """Every setting of the run as plain data, the broker's password hidden."""
    plain: dict[str, Any] = {}
    for key in config.__dataclass_fields__:
        value = getattr(config, key)
        if key == "settings":
            value = value.plain()
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        plain[key] = value
    plain["broker"] = redact(config.broker)
    return {**plain, "machine": machine(), "timestamp": timestamp()}


# --- a measured run: table and log -----------------------------------------------------------------------


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
    """The original course's results file: one block per approach, then each failed input once, with why."""
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
            *(f"  {i}. {shown(image['source'])}" for i, image in enumerate(r["images"], 1)),
            "",
            "Output files:",
            *(f"  {i}. {shown(image['output'])}" for i, image in enumerate(r["images"], 1)),
            "",
        ]
    failures = failed_once(doc["results"])
    if failures:
        out += ["=== Failed inputs ===", *(f"  {line}" for line in failures), ""]
    return "\n".join(out) + "\n"


def failed_once(results: Sequence[dict]) -> list[str]:
    """One line per failed input, with its reason, naming the approaches only when not all of them failed it.

    >>> failed_once([{"approach": "a", "failed": [{"path": "x.png", "reason": "empty file"}]},
    ...              {"approach": "c", "failed": [{"path": "x.png", "reason": "empty file"}]}])
    ['x.png: empty file']
    """
    by_input: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for failure in r["failed"]:
            by_input.setdefault((failure["path"], failure["reason"]), []).append(r["approach"])
    everyone = len(results)
    return [f"{shown(path)}: {shown(reason)}" + ("" if len(letters) == everyone else f" ({', '.join(letters)})")
            for (path, reason), letters in by_input.items()]
