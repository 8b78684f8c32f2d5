"""``run_all.py crossover``: which approach is fastest where, over two maps of the work, on this machine.

Which approach wins depends on the work: on small images start-up and hand-offs dominate and the simplest
approach wins; on large images and wide kernels the pixels dominate and whoever keeps every core busy wins.
So the command measures two grids of workloads (harness/workloads.py) and names the fastest approach in each
cell, with its margin over the runner-up:

    image size × kernel size    (4 images each)
    number of images × image size    (kernel 21, or --kernel-size)

In each cell every approach is timed as a run times them (harness/measure.py: rounds in a rotating order,
the median of the timed runs) and checked against a's pixels; an approach that fails or differs cannot win.
The margin is the runner-up's median over the fastest's; a cell is a tie when the two overlap in this run —
the fastest's slowest run is no faster than the runner-up's fastest — since then the run's own noise could
have swapped them.  Each cell is written to a ``.partial.json`` file as it completes, so Ctrl-C keeps what
was measured.
"""

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from approaches.core.config import RunConfig, cores_present
from approaches.harness.measure import Measured, measure_all, method_of, verify
from approaches.harness.results import Output, aligned, reserve, settings_of, write_document, write_partial
from approaches.harness.workloads import BASE, WORKLOAD_AXES, Workload, inputs_for
from approaches.registry import APPROACHES
from visualize.documents import crossover_cell

MAPS = (("image-size", "kernel-size"), ("images", "image-size"))  # (x axis, y axis) of each map
DEFAULTS = {"image-size": (0.25, 1, 4), "kernel-size": (3, 21, 63), "images": (1, 4, 16)}  # a few minutes here


def crossover(config: RunConfig, out: Output, values: dict[str, Sequence[float]]) -> int:
    """Measure both maps over values (axis name -> its values; DEFAULTS where missing); print their tables, write
    the JSON and the chart; 1 when an approach failed or differed from a."""
    grids = {name: tuple(values.get(name) or DEFAULTS[name]) for name in DEFAULTS}
    doc = crossover_document(config, grids)
    partial = reserve(out.logs_dir, doc["config"]["timestamp"].replace(" ", "_").replace(":", "-") + "_crossover",
                      ".partial.json")
    cells = [(m, x, y) for m in doc["maps"] for y in m["y"]["values"] for x in m["x"]["values"]]
    runs = len(config.approaches) * (config.warmups + config.repeat)
    images = sum(_workload(m, x, y).images for m, x, y in cells) * runs
    with tqdm(total=images, unit="image", disable=True if out.quiet else None, leave=False) as bar:
        try:
            for map_, x, y in cells:
                workload = _workload(map_, x, y)
                bar.set_description(f"{map_['name']}: {x:g} × {y:g}: inputs")
                sources = inputs_for(workload, config.output_dir / "_workloads")
                at = replace(config, kernel_size=workload.kernel_size)
                bar.set_description(f"{map_['name']}: {x:g} × {y:g}: {runs} runs")
                measured = measure_all([APPROACHES[letter] for letter in config.approaches], at, sources, bar.update)
                verify(measured, sources, at)
                map_["cells"].append({"x": x, "y": y, "megapixels": round(workload.pixels / 1e6, 4),
                                      **winner(measured)})
                write_partial(partial, doc)
        except KeyboardInterrupt:
            print(f"interrupted: the cells measured are kept in {partial}", file=sys.stderr)
            raise
    if not out.quiet:
        print("\n\n".join(crossover_table(doc, m) for m in doc["maps"]))
    problems = [f"{r['approach']} at {m['name']} {c['x']:g} × {c['y']:g}: {r['problem']}"
                for m in doc["maps"] for c in m["cells"] for r in c["results"] if r.get("problem")]
    problems += write_document(out, doc, "_crossover", draw=lambda folder: [_draw(doc, folder)])
    partial.unlink(missing_ok=True)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def crossover_document(config: RunConfig, grids: dict[str, Sequence[float]]) -> dict:
    """The maps as plain data, their cells appended as they are measured."""
    maps = []
    for x, y in MAPS:
        held = {field: value for field, value in vars(replace(BASE, kernel_size=config.kernel_size)).items()
                if field not in (WORKLOAD_AXES[x].field, WORKLOAD_AXES[y].field)}
        maps.append({"name": f"{x} × {y}", "held": held, "cells": [],
                     **{key: {"name": name, "field": WORKLOAD_AXES[name].field, "unit": WORKLOAD_AXES[name].unit,
                              "values": list(grids[name])} for key, name in (("x", x), ("y", y))}})
    return {"kind": "crossover", "config": {**settings_of(config), "cores": cores_present()},
            "method": {**method_of(config, config.approaches),
                       "tie": "the fastest's slowest run is no faster than the runner-up's fastest"},
            "maps": maps}


def winner(measured: Sequence[Measured]) -> dict:
    """Every approach's median and runs in one cell, the fastest of those that produced a's pixels, the
    runner-up, the margin (runner-up's median / fastest's) and whether the two are a tie."""
    results = [{"approach": m.approach.letter, "wall_s": round(m.wall_s, 6),
                "wall_runs": [round(t, 6) for t in m.wall_runs],
                **({"problem": "; ".join([*(f"{f.path}: {f.reason}" for f in m.outcome.failed), *m.mismatches])}
                   if m.outcome.failed or m.mismatches else {})} for m in measured]
    ranked = sorted((r for r in results if "problem" not in r), key=lambda r: r["wall_s"])
    if len(ranked) < 2:
        return {"results": results, "fastest": ranked[0]["approach"] if ranked else None, "runner_up": None,
                "margin": None, "tie": False}
    best, second = ranked[:2]
    return {"results": results, "fastest": best["approach"], "runner_up": second["approach"],
            "margin": round(second["wall_s"] / best["wall_s"], 3),
            "tie": max(best["wall_runs"]) >= min(second["wall_runs"])}


def crossover_table(doc: dict, map_: dict) -> str:
    """One map as text: a row per y value, a column per x value, each cell the fastest and its margin."""
    x, y = map_["x"], map_["y"]
    cells = {(c["x"], c["y"]): c for c in map_["cells"]}
    header = (f"{y['name']} \\ {x['name']}", *(f"{v:g}" for v in x["values"]))
    rows = [header] + [(f"{w:g}", *(crossover_cell(cells.get((v, w))) for v in x["values"])) for w in y["values"]]
    lines = aligned(rows)
    held = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in map_["held"].items())
    lines.insert(0, f"fastest by {x['unit']} (columns) and {y['unit']} (rows); {held}; margin: runner-up's median "
                    f"over the fastest's; on {doc['config']['machine']}")
    return "\n".join(lines)


def _workload(map_: dict, x: float, y: float) -> Workload:
    return Workload(**{**map_["held"], map_["x"]["field"]: x, map_["y"]["field"]: y})


def _draw(doc: dict, folder: Path) -> Path:
    from visualize.growth import draw_crossover  # matplotlib is slow to import: only when drawing

    return draw_crossover(doc, folder / "crossover.png")
