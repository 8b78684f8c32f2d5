"""Charts of how the work grows: a workload sweep (time, throughput, memory) and the crossover map.

Drawn from the documents of ``run_all.py sweep kernel-size|image-size|images`` and ``run_all.py crossover``
only, like every chart here (visualize/charts.py says why).  The sweep's axes are logarithmic both ways, so a
straight line is a power law and its slope the growth exponent the table gives.
"""

from pathlib import Path
from typing import Any

from matplotlib.colors import to_rgb
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter, LogLocator

from visualize.charts import APPROACH_STYLES, _approach_label, _new_figure, _save, _say, _title

PANELS = (("wall_s", "in-run wall time, s (median)"),
          ("throughput", "throughput, MP/s\n(megapixels blurred ÷ wall time)"),
          ("peak_mib", "peak memory of the process tree, MiB"))


def draw_scaling(doc: dict[str, Any], path: Path) -> Path:
    """Time, throughput and peak memory per approach against the swept quantity, on log-log axes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    axis, results = doc.get("axis") or {}, doc.get("results") or []
    fig = _new_figure(doc, 17.0, 5.0)
    axes = fig.subplots(1, 3)
    _title(fig, f"Growing the work: {axis.get('name', 'sweep')} — time, throughput and memory per approach")
    measured = [r for r in results if any("wall_s" in p for p in r["points"])]
    if not measured:
        for ax in axes:
            _say(ax, "no results")
        return _save(fig, path)
    for index, result in enumerate(results):
        points = [p for p in result["points"] if "wall_s" in p and not p.get("failed")]
        if not points:
            continue
        colour, marker = APPROACH_STYLES[index % len(APPROACH_STYLES)]
        series = {"wall_s": [p["wall_s"] for p in points],
                  "throughput": [p["megapixels"] / p["wall_s"] for p in points],
                  "peak_mib": [p["peak_bytes"] / 2**20 for p in points]}
        exponent = result.get("time_exponent")
        label = _approach_label(result) + (f" (time ∝ x^{exponent:.2f})" if exponent is not None else "")
        for ax, (key, _) in zip(axes, PANELS, strict=True):
            ax.plot([p["value"] for p in points], series[key], marker=marker, color=colour,
                    label=label if key == "wall_s" else None)
    values = sorted({p["value"] for r in results for p in r["points"]})
    for ax, (_, label) in zip(axes, PANELS, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(values, [f"{value:g}" for value in values])
        ax.minorticks_off()
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # a narrow range still gets labels
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        ax.set_xlabel(axis.get("unit", ""))
        ax.set_ylabel(label)
        ax.grid(color="#DDDDDD", which="both")
        ax.set_axisbelow(True)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[2].legend(handles, labels, title="approach", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                   fontsize=8)
    return _save(fig, path)


def draw_crossover(doc: dict[str, Any], path: Path) -> Path:
    """Each map as a grid: a cell per workload, coloured by its fastest approach and labelled with the margin over
    the runner-up, or with both names where they tie."""
    path.parent.mkdir(parents=True, exist_ok=True)
    maps = doc.get("maps") or []
    fig = _new_figure(doc, 6.0 * max(1, len(maps)), 5.5)
    _title(fig, "Crossover — the fastest approach per workload, and its margin over the runner-up")
    if not maps:
        _say(fig.subplots(), "no maps")
        return _save(fig, path)
    letters = list(doc["config"].get("approaches") or [])
    colour = {letter: APPROACH_STYLES[i % len(APPROACH_STYLES)][0] for i, letter in enumerate(letters)}
    for ax, map_ in zip(fig.subplots(1, len(maps), squeeze=False)[0], maps, strict=True):
        xs, ys = map_["x"]["values"], map_["y"]["values"]
        for cell in map_["cells"]:
            i, j = xs.index(cell["x"]), ys.index(cell["y"])
            fill = "#EEEEEE" if cell["tie"] or not cell["fastest"] else colour.get(cell["fastest"], "#999999")
            ax.add_patch(_square(i, j, fill))
            text = (f"tie\n{cell['fastest']} / {cell['runner_up']}" if cell["tie"]
                    else f"{cell['fastest']}\n×{cell['margin']:.2f} over {cell['runner_up']}"
                    if cell["runner_up"] else str(cell["fastest"]))
            ax.text(i, j, text, ha="center", va="center", fontsize=8, color=_ink(fill))
        ax.set_xlim(-0.5, len(xs) - 0.5)
        ax.set_ylim(-0.5, len(ys) - 0.5)
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
        ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
        ax.set_xlabel(map_["x"]["unit"])
        ax.set_ylabel(map_["y"]["unit"])
        held = ", ".join(f"{k.replace('_', ' ')} {v:g}" for k, v in map_["held"].items())
        ax.set_title(f"{map_['name']} ({held})", fontsize=10)
    return _save(fig, path)


def _square(i: int, j: int, fill: str) -> Rectangle:
    return Rectangle((i - 0.5, j - 0.5), 1, 1, facecolor=fill, edgecolor="#FFFFFF", linewidth=2)


def _ink(fill: str) -> str:
    """Black text on a light cell, white on a dark one."""
    red, green, blue = to_rgb(fill)
    return "#000000" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "#FFFFFF"
