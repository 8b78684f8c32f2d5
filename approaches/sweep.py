"""``run_all.py --sweep tile-size``: the chosen approaches at tile sizes 64 … 1024, as a table and a chart.

Small tiles waste work on halos (with k = 21, a 64-px tile blurs rows of 64 + 20 pixels, so its
horizontal pass does 31 % more work) and each costs a queue hand-off; large tiles leave workers idle at
the end of each image (at 1024 px the smallest sample is one tile, so one worker).  The sweep shows where
that balance lies on this machine; every output is still checked against a at every size.
"""

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import replace

from tqdm import tqdm

from approaches.core.config import RunConfig
from approaches.core.images import ImageSource
from approaches.registry import APPROACHES
from approaches.runner import Measured, document, measure, verify

TILE_SIZES = (64, 128, 256, 512, 1024)


def sweep(config: RunConfig, sources: Sequence[ImageSource]) -> int:
    """Measure every chosen approach at every tile size; print, write JSON and chart; 1 if anything failed."""
    runs: dict[str, list[Measured]] = {letter: [] for letter in config.approaches}
    total = len(sources) * len(config.approaches) * config.repeat * len(TILE_SIZES)
    with tqdm(total=total, unit="image", disable=True if config.quiet else None, leave=False) as bar:
        for size in TILE_SIZES:
            sized = replace(config, tile_size=size)
            bar.set_description(f"tile {size}")
            measured = [measure(APPROACHES[letter], sized, sources, bar.update) for letter in config.approaches]
            verify(measured, sources, sized)
            for m in measured:
                runs[m.approach.letter].append(m)
    doc = sweep_document(config, runs)
    problems = []
    for letter, ms in runs.items():
        for size, m in zip(TILE_SIZES, ms, strict=True):
            problems += [f"{letter} at tile {size}: {f.path}: {f.reason}" for f in m.outcome.failed]
            problems += [f"{letter} at tile {size}: differs from a: {reason}" for reason in m.mismatches]
    if not config.quiet:
        print(sweep_table(doc))
    problems += _write(config, doc)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def sweep_document(config: RunConfig, runs: dict[str, list[Measured]]) -> dict:
    """Plain data for the JSON file and the chart: per approach, one value per tile size."""
    return {
        "config": {**document(config, [])["config"], "tile_size": None, "sweep": "tile_size"},
        "tile_sizes": list(TILE_SIZES),
        "results": [
            {
                "approach": letter,
                "title": APPROACHES[letter].title,
                "wall_s": [round(m.wall_s, 6) for m in ms],
                "wall_runs": [[round(t, 6) for t in m.wall_runs] for m in ms],
                "blur_s": [round(m.stage_seconds()["blur"], 6) for m in ms],
                "identical_to_a": [m.identical_to_a for m in ms],
            }
            for letter, ms in runs.items()
        ],
    }


def sweep_table(doc: dict) -> str:
    """Median wall seconds (± stdev over the repeats) by approach and tile size."""
    header = ("approach", *(f"tile {size}" for size in doc["tile_sizes"]))
    rows = [header]
    for r in doc["results"]:
        cells = []
        for wall, runs in zip(r["wall_s"], r["wall_runs"], strict=True):
            spread = f" ± {statistics.stdev(runs):.3f}" if len(runs) > 1 else ""
            cells.append(f"{wall:.3f}{spread}")
        rows.append((f"{r['approach']} {r['title']}", *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    cfg = doc["config"]
    lines.append(f"median wall seconds over {cfg['repeat']} run(s); kernel {cfg['kernel_size']}, "
                 f"workers {cfg['workers']}, png level {cfg['png_level']}")
    return "\n".join(lines)


def _write(config: RunConfig, doc: dict) -> list[str]:
    stamp = doc["config"]["timestamp"].replace(" ", "_").replace(":", "-")
    paths = [config.logs_dir / f"{stamp}_sweep_tile_size.json", *([config.json_path] if config.json_path else [])]
    problems = []
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(doc, indent=1))
        except OSError as error:
            problems.append(f"cannot write {path}: {error.strerror or error}")
    if config.charts_dir is not None:
        from approaches.report import draw_sweep  # matplotlib is slow to import; only when drawing

        try:
            chart = draw_sweep(doc, config.charts_dir / "sweep_tile_size.png")
        except OSError as error:
            problems.append(f"cannot draw the sweep chart into {config.charts_dir}: {error.strerror or error}")
        else:
            if not config.quiet:
                print(f"chart: {chart}")
    return problems
