"""``run_all.py sweep tile-size|workers``: the chosen approaches at each tile size or worker count.

tile-size (64 … 1024): small tiles waste work on halos (with k = 21, a 64-px tile blurs rows of 64 + 20
pixels, so its horizontal pass does 31 % more work) and each costs a queue hand-off; large tiles leave
workers idle at the end of each image (at 1024 px the smallest sample is one tile, so one worker).

workers (1 … 2 × cores): up to the core count the parallel approaches should speed up; past it extra workers
only share the cores, so the line flattens, or rises where hand-offs cost more than the waits they hide.
Approach g's workers are threads in one pod, e's and f's are pods.  Only blur workers vary: c's two
loaders and two savers overlap decoding and encoding at every count, so c is ahead of a even at 1.

Both settings only matter to approaches that cut tiles for workers: a and d blur whole images on one
lane, so they are measured once and drawn as a flat reference line.  Every output is still checked
against a's pixels, with the run's --kernel, at every value.
"""

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm import tqdm

from approaches.core.config import RunConfig, cores_present
from approaches.core.images import ImageSource
from approaches.harness.measure import Measured, measure_all, method_of, verify
from approaches.harness.results import Output, aligned, settings_of, spread, write_document
from approaches.registry import APPROACHES
from visualize.documents import method_label


@dataclass(frozen=True)
class Axis:
    """What a sweep varies, and how its table and chart name it (stored in the JSON, so charts redraw from it)."""

    field: str  # the RunConfig field set to each value
    values: tuple[int, ...]
    column: str  # table column header, formatted with the value
    label: str  # the chart's x axis, with its unit
    log2: bool  # tile sizes double; worker counts step by one
    title: str
    panel: str  # the result key the chart's right-hand panel plots
    panel_label: str


AXES = {  # keyed by the names the command line offers (cli.SWEEPS)
    "tile-size": Axis(
        field="tile_size", values=(64, 128, 256, 512, 1024), column="tile {}", label="tile size, px", log2=True,
        title="Tile-size sweep — wall time and blur work per approach", panel="blur_s",
        panel_label="blur span time, s, summed over lanes\n(halos, and waits for a core or the GIL)"),
    "workers": Axis(
        field="workers", values=tuple(range(1, 2 * cores_present() + 1)), column="workers {}",
        label="workers (threads or processes;\ne, f: pods; g: threads in one pod)", log2=False,
        title="Workers sweep — wall time and speed-up per approach", panel="speedup",
        panel_label="speed-up over 1 worker, ×\n(median wall time at 1 worker ÷ at N)"),
}


def sweep(config: RunConfig, out: Output, name: str, sources: Sequence[ImageSource]) -> int:
    """Measure every chosen approach at every value of the setting AXES[name] varies; print, write JSON and chart;
    1 on failure."""
    axis = AXES[name]
    plan = [(value, [letter for letter in config.approaches
                     if axis.field in APPROACHES[letter].varies or value == axis.values[0]])
            for value in axis.values]
    plan = [(value, letters) for value, letters in plan if letters]
    runs: dict[str, list[tuple[int, Measured]]] = {letter: [] for letter in config.approaches}
    total = len(sources) * (config.warmups + config.repeat) * sum(len(letters) for _, letters in plan)
    with tqdm(total=total, unit="image", disable=True if out.quiet else None, leave=False) as bar:
        for value, letters in plan:
            at = replace(config, **{axis.field: value})  # everything else, --kernel included, as given
            bar.set_description(axis.column.format(value))
            measured = measure_all([APPROACHES[letter] for letter in letters], at, sources, bar.update)
            verify(measured, sources, at)
            for letter, m in zip(letters, measured, strict=True):
                runs[letter].append((value, m))
    doc = sweep_document(config, axis, runs)
    problems = []
    for letter, points in runs.items():
        for value, m in points:
            where = f"{letter} at {axis.column.format(value)}"
            problems += [f"{where}: {f.path}: {f.reason}" for f in m.outcome.failed]
            problems += [f"{where}: differs from a: {reason}" for reason in m.mismatches]
    if not out.quiet:
        print(sweep_table(doc))
    problems += write_document(out, doc, f"_sweep_{name.replace('-', '_')}",
                               draw=lambda folder: [_draw(doc, folder)])
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def sweep_document(config: RunConfig, axis: Axis, runs: dict[str, list[tuple[int, Measured]]]) -> dict:
    """Plain data for the JSON file and the chart: the axis, and per approach one entry per value measured.

    An approach whose work the setting changes (``varies``) has an entry for every value; the others (a and d;
    i for tile sizes) one, at the first value.
    ``speedup`` is the median wall time at the first value over the median wall time at each.
    """
    results = []
    for letter, points in runs.items():
        walls = [m.wall_s for _, m in points]
        results.append({
            "approach": letter,
            "title": APPROACHES[letter].title,
            "varies": axis.field in APPROACHES[letter].varies,
            "wall_s": [round(wall, 6) for wall in walls],
            "wall_runs": [[round(t, 6) for t in m.wall_runs] for _, m in points],
            "blur_s": [round(m.stage_seconds()["blur"], 6) for _, m in points],
            "speedup": [round(walls[0] / wall, 3) for wall in walls],
            "identical_to_a": [m.identical_to_a for _, m in points],
        })
    return {
        "kind": "sweep",
        "config": {**settings_of(config), axis.field: None, "sweep": axis.field, "cores": cores_present()},
        "method": method_of(config, list(runs)),
        "axis": asdict(axis),
        "results": results,
    }


def sweep_table(doc: dict) -> str:
    """Median wall seconds [fastest–slowest run] (and the speed-up, in a workers sweep) by approach and value."""
    axis, cfg = doc["axis"], doc["config"]
    header = ("approach", *(axis["column"].format(value) for value in axis["values"]))
    rows = [header]
    for r in doc["results"]:
        cells = []
        for wall, runs, speedup in zip(r["wall_s"], r["wall_runs"], r["speedup"], strict=True):
            gain = f"  {speedup:.2f}×" if axis["panel"] == "speedup" and r["varies"] else ""
            cells.append(f"{wall:.3f}{spread(runs)}{gain}")
        cells += [""] * (len(axis["values"]) - len(cells))
        rows.append((f"{r['approach']} {r['title']}", *cells))
    lines = aligned(rows)
    gain = f", speed-up over {axis['column'].format(axis['values'][0])}" if axis["panel"] == "speedup" else ""
    settings = [f"kernel {cfg['kernel_size']} ({cfg['kernel']})"]
    settings += [f"{key.replace('_', ' ')} {cfg[key]}" for key in ("tile_size", "workers") if cfg[key] is not None]
    settings.append(f"png level {cfg['png_level']}")
    lines.append(f"wall seconds {method_label(doc)}{gain}; {', '.join(settings)}")
    once = [r["approach"] for r in doc["results"] if not r["varies"]]
    if once:
        lines.append(f"{', '.join(once)}: {axis['field'].replace('_', ' ')} changes nothing in their work "
                     "(whole images on one lane; i: bands of rows): measured once")
    return "\n".join(lines)


def _draw(doc: dict, folder: Path) -> Path:
    from visualize.charts import draw_sweep  # matplotlib is slow to import: only when drawing

    return draw_sweep(doc, folder / f"sweep_{doc['config']['sweep']}.png")
