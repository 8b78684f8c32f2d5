"""Charts drawn from a run's results document: one comparison of all approaches, one timeline each.

Only the plain JSON-able document goes in, so charts can be redrawn from a saved results file
(``python -m visualize RUN.json``, ``run_all.py redraw RUN.json``) without importing any approach.  Figures are
built with ``Figure`` + ``FigureCanvasAgg`` rather than pyplot, so drawing changes no global state (backend,
open-figure list) of the calling program.
"""

import re
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from visualize.documents import lane_key, method_label, timed_rows

DPI = 120
# Okabe-Ito's colours, then Paul Tol's where eight run out: every pair stays distinct under the common
# colour-vision deficiencies (tests/test_charts.py simulates them).  The same stage has the same colour in
# every chart, so the comparison and the timelines read together; the order is the order stacks are drawn in.
STAGE_COLOURS = {
    "start": "#000000",  # a pod, process or MPI rank starting: imports, the kernel loaded
    "load": "#0072B2",
    "cut": "#56B4E9",
    "send": "#225522",  # a tile on its way to a queue
    "scatter": "#332288",  # MPI: bands sent from rank 0
    "exchange": "#D55E00",  # MPI: halo rows swapped with the neighbours
    "blur": "#E69F00",
    "gather": "#AA3377",  # MPI: bands sent back to rank 0
    "assemble": "#CC79A7",
    "save": "#009E73",
    "blocked": "#BBBBBB",
    "wait": "#99DDFF",
}
# Waits are drawn as waits: hatched, half-height bars, so a lane doing nothing never looks busy.
WAIT_STAGES = {
    "blocked": "blocked: a lane waiting for work or room",
    "wait": "wait: a rank waiting for the others",
}
WAIT_HATCH = "////"
OTHER_COLOUR = "#444444"
WALL_COLOUR = "#4C5B69"
MISMATCH_COLOUR = "#D62728"
# A sweep's lines: Okabe-Ito colours, and a marker each, so a line is told from another without its colour.
APPROACH_STYLES = (("#0072B2", "o"), ("#E69F00", "s"), ("#009E73", "^"), ("#CC79A7", "D"), ("#56B4E9", "v"),
                   ("#D55E00", "P"), ("#000000", "X"), ("#332288", "*"), ("#AA3377", "h"), ("#999933", "<"),
                   ("#882255", ">"), ("#44AA99", "d"))  # twelve: one per approach
CHAOS_BARS = (("in_flight", "in flight at the kill", "#BBBBBB"), ("missing", "lost", "#D55E00"),
              ("duplicates", "done twice", "#0072B2"))
CAPTION_COLOUR = "#555555"
LABEL_SPAN_LIMIT = 60  # above this many spans, image labels would only clutter the timeline
MIN_BAR_PX = 2.0  # a bar narrower than this is widened to it: a 0.5 ms tile in a 10 s run still shows its colour
CAPTION_CHARS_PER_INCH = 15  # 8 pt text, with some slack, so a wrapped caption never runs off the page
TITLE_CHARS_PER_INCH = 8  # the same for a 13 pt bold title
CAPTION_SETTINGS = (
    ("kernel_size", "kernel {}"),
    ("kernel", "{} kernel"),  # separable or direct: the same pixels within one, very different timings
    ("tile_size", "tile {} px"),
    ("workers", "workers {}"),
)


def draw_all(doc: dict[str, Any], directory: Path) -> list[Path]:
    """Draw comparison.png and timeline_<approach>.png for every result, and timeline_verify.png for the check
    against a where the run made it, into directory (created)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [draw_comparison(doc, directory / "comparison.png")]
    for result in timed_rows(doc):
        name = re.sub(r"[^\w.-]", "_", str(result["approach"]))
        paths.append(draw_timeline(doc, result, directory / f"timeline_{name}.png"))
    return paths


def draw_comparison(doc: dict[str, Any], path: Path) -> Path:
    """Wall time (left) and per-stage seconds (right) for each approach, side by side; the check against a
    (where made) is the last row."""
    results = timed_rows(doc)
    fig = _new_figure(doc, 11.0, max(5.0, 1.9 + 0.4 * len(results)))
    wall_ax, stage_ax = fig.subplots(1, 2, sharey=True)
    _title(fig, _comparison_title(results))
    if not results:
        for ax in (wall_ax, stage_ax):
            _say(ax, "no results")
        return _save(fig, path)
    _plot_wall(wall_ax, results)
    _plot_stages(stage_ax, results)
    wall_ax.set_yticks(range(len(results)), [_approach_label(result) for result in results])
    wall_ax.set_ylim(len(results) - 0.5, -0.5)  # first approach on top
    stage_ax.tick_params(axis="y", left=False)
    fig.draw_without_rendering()  # settle the layout, then make room for the end-of-bar annotations
    _fit_annotations(wall_ax)
    _fit_annotations(stage_ax)
    return _save(fig, path)


def draw_timeline(doc: dict[str, Any], result: dict[str, Any], path: Path) -> Path:
    """Gantt chart of one approach run: a row per lane, a bar per span, coloured by stage."""
    spans = result.get("spans") or []
    lanes = sorted({span["lane"] for span in spans}, key=lane_key)
    fig = _new_figure(doc, 12.0, max(3.2, 2.0 + 0.42 * len(lanes)))
    ax = fig.subplots()
    ax.set_title(f"Timeline — {_approach_label(result)}", loc="left", fontsize=13, fontweight="bold")
    ax.set_title(_timeline_summary(result, spans), loc="right", fontsize=9, color=CAPTION_COLOUR)
    ax.set_xlabel("seconds since the run started")
    if not spans:
        _say(ax, "no spans recorded")
        return _save(fig, path)
    wall = result.get("last_wall_s", result.get("wall_s"))  # the spans are the last run's
    end = max([wall or 0.0, *(span["end"] for span in spans)]) * 1.01 or 1.0
    handles = _stage_handles(span["stage"] for span in spans)
    if wall is not None:
        ax.axvline(wall, color="#333333", linestyle="--", linewidth=0.9)
        handles.append(Line2D([], [], color="#333333", linestyle="--", linewidth=0.9, label="wall time"))
    ax.set_xlim(0, end)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), frameon=False, fontsize=9)
    _plot_spans(ax, spans, lanes, end)  # after the legend: the layout it settles must leave room for it
    if len(spans) < LABEL_SPAN_LIMIT:
        _label_whole_image_blurs(ax, spans, {lane: row for row, lane in enumerate(lanes)})
    return _save(fig, path)


# --- shared pieces ---------------------------------------------------------------------------------


def _new_figure(doc: dict[str, Any], width: float, height: float) -> Figure:
    """A constrained-layout figure on its own Agg canvas, with the run's settings as a bottom caption."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    caption = "\n".join(textwrap.wrap(_caption(doc), width=int(width * CAPTION_CHARS_PER_INCH)))
    # supxlabel (unlike fig.text) gets space reserved for it by the constrained layout.
    fig.supxlabel(caption, x=0.01, ha="left", fontsize=8, color=CAPTION_COLOUR)
    return fig


def _title(fig: Figure, text: str) -> None:
    """The figure's title, wrapped to its width: a narrow chart (one chaos scenario) must not cut it off."""
    width = int(fig.get_figwidth() * TITLE_CHARS_PER_INCH)
    fig.suptitle("\n".join(textwrap.wrap(text, width=width)), fontsize=13, fontweight="bold")


def _caption(doc: dict[str, Any]) -> str:
    config = doc.get("config", {})
    settings = [template.format(config[key]) for key, template in CAPTION_SETTINGS if config.get(key) is not None]
    if "results" in doc:  # measured walls: say how
        settings.append(f"wall {method_label(doc)}")
    parts = [config.get("machine"), *settings, config.get("timestamp")]
    return " · ".join(str(part) for part in parts if part)


def _approach_label(result: dict[str, Any]) -> str:
    title = result.get("title")
    return f"{result['approach']} · {title}" if title else str(result["approach"])


def _stage_colour(stage: str) -> str:
    return STAGE_COLOURS.get(stage, OTHER_COLOUR)


def _ordered_stages(stages: Iterable[str]) -> list[str]:
    """Known stages in pipeline order, then unknown ones alphabetically, so stacks read left to right."""
    present = set(stages)
    known = [stage for stage in STAGE_COLOURS if stage in present]
    return known + sorted(present - set(STAGE_COLOURS))


def _stage_handles(stages: Iterable[str]) -> list[Any]:
    """Legend entries for the stages present; unknown stages share one grey entry, as they share a colour."""
    ordered = _ordered_stages(stages)
    handles: list[Any] = [_stage_patch(s) for s in ordered if s in STAGE_COLOURS]
    others = [stage for stage in ordered if stage not in STAGE_COLOURS]
    if others:
        handles.append(Patch(color=OTHER_COLOUR, label="other: " + ", ".join(others)))
    return handles


def _stage_patch(stage: str) -> Patch:
    if stage in WAIT_STAGES:
        return Patch(facecolor=STAGE_COLOURS[stage], edgecolor=WALL_COLOUR, hatch=WAIT_HATCH, linewidth=0,
                     label=WAIT_STAGES[stage])
    return Patch(color=STAGE_COLOURS[stage], label=stage)


def _format_seconds(seconds: float) -> str:
    """Millisecond resolution below a second, two decimals (as in "1.92 s") above."""
    return f"{seconds:.3f} s" if seconds < 1 else f"{seconds:.2f} s"


def _say(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color=CAPTION_COLOUR)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path)
    return path


# --- comparison ------------------------------------------------------------------------------------


def _comparison_title(results: list[dict[str, Any]]) -> str:
    title = "Gaussian blur — wall time and stage time per approach"
    if not results:
        return title
    images, failed = len(results[0].get("images") or []), len(results[0].get("failed") or [])
    skipped = f", {failed} skipped" if failed else ""
    return f"{title} ({images} images{skipped})"


def _plot_wall(ax: Axes, results: list[dict[str, Any]]) -> None:
    """Bars of wall time with min..max whiskers over the repeated runs, annotated with the speed-up."""
    for row, result in enumerate(results):
        wall = result.get("wall_s") or 0.0
        ax.barh(row, wall, height=0.6, color=WALL_COLOUR)
        runs = result.get("wall_runs") or []
        end = wall
        if runs:
            low, high = min(runs), max(runs)
            whisker = [[max(wall - low, 0.0)], [max(high - wall, 0.0)]]
            ax.errorbar(wall, row, xerr=whisker, fmt="none", ecolor="black", elinewidth=1, capsize=3)
            end = max(wall, high)
        _annotate_wall(ax, row, end, result)
    ax.set_xlabel("wall time, s\n(whiskers: fastest\nto slowest run)")
    ax.grid(axis="x", color="#DDDDDD")
    ax.set_axisbelow(True)


def _annotate_wall(ax: Axes, row: int, end: float, result: dict[str, Any]) -> None:
    text = _format_seconds(result.get("wall_s") or 0.0)
    speedup = result.get("speedup_vs_a")
    if speedup is not None:
        text += f" · {speedup:.1f}× vs a" if speedup >= 1 else f" · {speedup:.2f}× vs a"
    label = _annotate_end(ax, row, end, text)
    if result.get("identical_to_a") is False:  # None means a was not run: nothing to compare with
        ax.annotate(
            "≠ a",
            xy=(1, 0.5),
            xycoords=label,
            xytext=(5, 0),
            textcoords="offset points",
            va="center",
            color=MISMATCH_COLOUR,
            fontweight="bold",
            fontsize=9,
        )


def _annotate_end(ax: Axes, row: int, end: float, text: str) -> Text:
    """Text just right of a bar's end; _fit_annotations later widens the axes to make it fit."""
    return ax.annotate(text, xy=(end, row), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)


def _plot_stages(ax: Axes, results: list[dict[str, Any]]) -> None:
    """Stacked bars of seconds per stage, summed over lanes, with the total at the end."""
    stage_seconds = [result.get("stage_s") or {} for result in results]
    stages = _ordered_stages(stage for seconds in stage_seconds for stage in seconds)
    rows = range(len(results))
    left = [0.0] * len(results)
    for stage in stages:
        widths = [seconds.get(stage) or 0.0 for seconds in stage_seconds]
        if stage in WAIT_STAGES:  # hatched as in the timelines (the hatch takes the edge's colour)
            ax.barh(rows, widths, left=left, height=0.6, color=_stage_colour(stage), edgecolor=WALL_COLOUR,
                    hatch=WAIT_HATCH, linewidth=0)
        else:
            ax.barh(rows, widths, left=left, height=0.6, color=_stage_colour(stage), edgecolor="white", linewidth=0.6)
        left = [start + width for start, width in zip(left, widths, strict=True)]
    for row, total in enumerate(left):
        if total:
            _annotate_end(ax, row, total, _format_seconds(total))
    ax.set_xlabel("stage time, s\n(summed over lanes:\ncan exceed wall time)")
    ax.grid(axis="x", color="#DDDDDD")
    ax.set_axisbelow(True)
    if stages:
        ax.legend(
            handles=_stage_handles(stages),
            title="stage",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=9,
        )


def _fit_annotations(ax: Axes) -> None:
    """Widen the x range just enough that every end-of-bar annotation ends inside the axes.

    Annotations sit a fixed number of pixels right of their data point, so for a bar ending at x with
    text w pixels wide in an axes W pixels wide, the range must reach x * W / (W - w).
    """
    renderer = ax.figure.canvas.get_renderer()
    box = ax.get_window_extent(renderer)
    x0, x1 = ax.get_xlim()
    right = x1
    for text in ax.texts:
        anchor = _anchor_x(text)
        overhang = text.get_window_extent(renderer).x1 - ax.transData.transform((anchor, 0))[0] + 4
        if overhang < box.width:
            right = max(right, x0 + (anchor - x0) * box.width / (box.width - overhang))
    ax.set_xlim(x0, right)


def _anchor_x(text: Text) -> float:
    """The data x an annotation hangs from (a chained annotation hangs from the one it follows)."""
    while isinstance(text.xycoords, Text):
        text = text.xycoords
    return text.xy[0]


# --- timeline --------------------------------------------------------------------------------------


def _timeline_summary(result: dict[str, Any], spans: list[dict[str, Any]]) -> str:
    """The drawn run's wall (the last timed run) and, beside it, the median the tables report."""
    parts = []
    runs = result.get("wall_runs") or []
    if len(runs) > 1:
        parts.append(f"this run {_format_seconds(runs[-1])} (median of {len(runs)}: "
                     f"{_format_seconds(result['wall_s'])})")
    elif result.get("wall_s") is not None:
        parts.append(f"wall {_format_seconds(result['wall_s'])}")
    parts.append(f"{len(result.get('images') or [])} images")
    if result.get("failed"):
        parts.append(f"{len(result['failed'])} failed")
    parts.append(f"{len(spans):,} spans")
    return " · ".join(parts)


def _plot_spans(ax: Axes, spans: list[dict[str, Any]], lanes: list[str], end: float) -> None:
    """One broken_barh per (lane, stage): tens of thousands of spans draw as a few collections.

    No white edges (on a thin bar they are all there is), and no bar narrower than MIN_BAR_PX: a bar keeps
    its stage's colour however short.  Waits are hatched, half-height bars."""
    row = {lane: index for index, lane in enumerate(lanes)}
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_ylim(len(lanes) - 0.5, -0.5)  # first lane on top
    ax.grid(axis="x", color="#DDDDDD")
    ax.set_axisbelow(True)
    ax.figure.draw_without_rendering()  # the final layout (labels, legend): how many pixels a second is
    narrowest = MIN_BAR_PX * end / max(ax.get_window_extent().width, 1.0)
    bars: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for span in spans:
        bars[span["lane"], span["stage"]].append((span["start"], max(span["end"] - span["start"], narrowest)))
    for (lane, stage), ranges in bars.items():
        if stage in WAIT_STAGES:
            ax.broken_barh(ranges, (row[lane] - 0.2, 0.4), facecolors=_stage_colour(stage), edgecolor=WALL_COLOUR,
                           hatch=WAIT_HATCH, linewidth=0)
        else:
            ax.broken_barh(ranges, (row[lane] - 0.4, 0.8), facecolors=_stage_colour(stage), linewidth=0)


def _label_whole_image_blurs(ax: Axes, spans: list[dict[str, Any]], row: dict[str, int]) -> None:
    """Name the image inside each whole-image blur bar, shortened to fit, or left out if it cannot."""
    fig = ax.figure
    fig.draw_without_rendering()  # the layout must be final to know how many pixels a second is
    renderer = fig.canvas.get_renderer()
    (left, _), (right, _) = ax.transData.transform([(0.0, 0.0), (1.0, 0.0)])
    font = FontProperties(size=8)
    for span in spans:
        if span["stage"] != "blur" or span.get("tile") is not None or not span.get("image"):
            continue
        room = (span["end"] - span["start"]) * (right - left) - 4
        label = _fit_label(str(span["image"]), room, renderer, font)
        if label:
            ax.text(
                (span["start"] + span["end"]) / 2,
                row[span["lane"]],
                label,
                ha="center",
                va="center",
                fontproperties=font,
                clip_on=True,
                in_layout=False,
            )


def _fit_label(label: str, room: float, renderer: RendererBase, font: FontProperties) -> str | None:
    """label, or its longest prefix + '…' of at least two characters, that fits in room pixels."""
    candidates = [label] + [label[:cut] + "…" for cut in range(len(label) - 1, 1, -1)]
    for candidate in candidates:
        width, _, _ = renderer.get_text_width_height_descent(candidate, font, ismath=False)
        if width <= room:
            return candidate
    return None


# --- sweeps ----------------------------------------------------------------------------------------


def draw_sweep(doc: dict[str, Any], path: Path) -> Path:
    """Wall time (left) and the axis's own measure (right: blur work, or speed-up) against the swept setting.

    The document's ``axis`` names the setting, its values and the right-hand panel, so one function draws
    every sweep.  Approaches measured once (a and d: nothing to vary) are dashed flat lines to read the others by.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    axis = doc.get("axis") or {}
    values, results = axis.get("values") or [], doc.get("results") or []
    fig = _new_figure(doc, 11.0, 5.0)
    wall_ax, panel_ax = fig.subplots(1, 2)
    _title(fig, axis.get("title", "Sweep"))
    if not values or not results:
        for ax in (wall_ax, panel_ax):
            _say(ax, "no results")
        return _save(fig, path)
    ends = [values[0], values[-1]]
    for index, result in enumerate(results):
        walls, runs = result["wall_s"], result.get("wall_runs") or [[wall] for wall in result["wall_s"]]
        label, measure = _approach_label(result), result[axis["panel"]]
        colour, marker = APPROACH_STYLES[index % len(APPROACH_STYLES)]
        if result.get("varies", result.get("tiled", True)):  # "tiled": documents written before 0.2
            whiskers = [[wall - min(r) for wall, r in zip(walls, runs, strict=True)],
                        [max(r) - wall for wall, r in zip(walls, runs, strict=True)]]
            wall_ax.errorbar(values, walls, yerr=whiskers, marker=marker, color=colour, capsize=3, label=label)
            panel_ax.plot(values, measure, marker=marker, color=colour)
        else:
            wall_ax.plot(ends, [walls[0]] * 2, linestyle="--", color=colour, label=f"{label} (one lane: run once)")
            wall_ax.fill_between(ends, min(runs[0]), max(runs[0]), color=colour, alpha=0.15, linewidth=0)
            panel_ax.plot(ends, [measure[0]] * 2, linestyle="--", color=colour)
    cores = doc["config"].get("cores") if axis["panel"] == "speedup" else None
    references = _mark_cores(wall_ax, panel_ax, values, cores) if cores else []
    for ax, label in ((wall_ax, "wall time, s\n(whiskers, shading: fastest to slowest run)"),
                      (panel_ax, axis["panel_label"])):
        if axis["log2"]:
            ax.set_xscale("log", base=2)
        ax.set_xticks(values, [str(value) for value in values])
        ax.minorticks_off()
        ax.set_xlabel(axis["label"])
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(color="#DDDDDD")
        ax.set_axisbelow(True)
    handles, _ = wall_ax.get_legend_handles_labels()
    panel_ax.legend(handles=[*handles, *references], title="approach", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                    frameon=False, fontsize=9)
    return _save(fig, path)


def _mark_cores(wall_ax: Axes, panel_ax: Axes, values: list[int], cores: int) -> list[Line2D]:
    """The core count on both panels and the ideal speed-up (linear up to it, flat past it); their legend entries.

    Returned rather than labelled, so the legend lists them after the approaches (it puts lines before errorbars).
    """
    core_style = {"color": "#BBBBBB", "linewidth": 1.5, "zorder": 1}  # behind the approaches' lines
    ideal_style = {"color": WALL_COLOUR, "linewidth": 1.0, "linestyle": ":"}
    for ax in (wall_ax, panel_ax):
        ax.axvline(cores, **core_style)
    panel_ax.plot(values, [min(value, cores) for value in values], **ideal_style)
    return [Line2D([], [], label=f"{cores} cores present", **core_style),
            Line2D([], [], label="ideal speed-up: ×N up to the cores", **ideal_style)]


def draw_chaos(doc: dict[str, Any], path: Path) -> Path:
    """Per scenario (a column each), per approach: above, tiles in flight at the kill, lost, and done twice;
    below, the recovery time: from the kill until the last tile in flight at it was done again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = doc.get("chaos") or []
    scenarios = list(dict.fromkeys(row["scenario"] for row in rows))
    fig = _new_figure(doc, max(6.0, 3.2 * len(scenarios)), 7.0)
    _title(fig, "Chaos — tiles lost, tiles done twice, and the time to recover when pods are killed")
    if not rows:
        _say(fig.subplots(), "no scenarios run")
        return _save(fig, path)
    axes = fig.subplots(2, len(scenarios), sharey="row", squeeze=False, height_ratios=(3, 2))
    for tiles_ax, recovery_ax, scenario in zip(axes[0], axes[1], scenarios, strict=True):
        here = [row for row in rows if row["scenario"] == scenario]
        _plot_chaos_tiles(tiles_ax, here)
        tiles_ax.set_title(f"kill: {scenario}", fontsize=10)
        _plot_recovery(recovery_ax, here)
    axes[0][0].set_ylabel("tiles")
    axes[0][0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1][0].set_ylabel("recovery, s\n(kill → last tile in flight\ndone again)")
    longest = max([row.get("recovery_s") or 0.0 for row in rows] + [0.1])
    axes[1][0].set_ylim(0, longest * 1.25)  # the row shares one y axis: set it once, for the longest
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    return _save(fig, path)


def _plot_chaos_tiles(ax: Axes, rows: list[dict[str, Any]]) -> None:
    for offset, (key, label, colour) in enumerate(CHAOS_BARS):
        xs = [i + (offset - 1) * 0.27 for i in range(len(rows))]
        drawn = ax.bar(xs, [row[key] for row in rows], width=0.27, color=colour, label=label)
        ax.bar_label(drawn, fontsize=8, padding=1)
    ax.set_xticks(range(len(rows)), [f"{row['letter']}\n{row['unsaved']}/{row['images']}\nunsaved" for row in rows],
                  fontsize=8)
    ax.grid(axis="y", color="#DDDDDD")
    ax.set_axisbelow(True)


def _plot_recovery(ax: Axes, rows: list[dict[str, Any]]) -> None:
    """A bar per approach that recovered; "lost" where tiles never came back, "n/a" where nothing was killed or
    the approach cannot tell which tiles it held (e)."""
    seconds = [row.get("recovery_s") for row in rows]
    drawn = ax.bar(range(len(rows)), [value or 0.0 for value in seconds], width=0.5, color=WALL_COLOUR)
    labels = [_format_seconds(value) if value is not None else "lost" if row["missing"] else "n/a"
              for value, row in zip(seconds, rows, strict=True)]
    ax.bar_label(drawn, labels=labels, fontsize=8, padding=1)
    ax.set_xticks(range(len(rows)), [row["letter"] for row in rows], fontsize=9)
    ax.grid(axis="y", color="#DDDDDD")
    ax.set_axisbelow(True)
