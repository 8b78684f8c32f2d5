"""``run_all.py sweep kernel-size|image-size|images``: how each approach's time and memory grow with the work.

A tile-size or workers sweep changes how an approach cuts one job; these change the job.  At every point each
approach runs in a fresh process of its own (``run_all.py run --approaches X --no-verify``), so that one
point's peak memory cannot hide another's, and the sweep samples the resident memory of that process's whole
tree while it runs: pods, workers, ranks, dask's workers, an embedded server (harness/footprint.py).  Time is
the approach's own wall time inside that process (the median of its timed runs); the process's start-up is
recorded beside it, not in it.  a runs first at every point, and every other approach's outputs are then
compared with a's pixels by the sweep itself, outside any measured process: verification counts in neither
time nor memory.

For each approach the table gives the growth exponent of time and of memory against the swept quantity: the
slope of a straight line through the points on log-log axes (1.0: twice the work takes twice as long).
Memory starts from the interpreter's fixed hundred-odd megabytes, so its exponent only nears 1 once images
dominate it.  Every point is written to a ``.partial.json`` file as it completes: Ctrl-C keeps what was
measured, and ``run_all.py redraw`` draws it.
"""

import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from approaches.core.config import RunConfig, cores_present
from approaches.core.errors import ImageError
from approaches.core.images import ImageSource, load_image, output_path
from approaches.harness.footprint import measure_command
from approaches.harness.results import Output, aligned, reserve, settings_of, write_document, write_partial
from approaches.harness.workloads import BASE, WORKLOAD_AXES, Workload, WorkloadAxis, inputs_for
from approaches.registry import APPROACHES
from visualize.documents import axis_stem


def scaling_sweep(config: RunConfig, out: Output, name: str, values: Sequence[float] | None,
                  given: Sequence[ImageSource] | None) -> int:
    """Measure every chosen approach at every value of the workload axis `name`; print, write JSON and charts;
    1 when an approach failed or differed from a.  given: the person's --input images, or None to generate."""
    axis = WORKLOAD_AXES[name]
    values = tuple(values or axis.values)
    letters = ("a", *(letter for letter in config.approaches if letter != "a"))  # a is every point's reference
    base = replace(BASE, kernel_size=config.kernel_size, images=len(given) if given else BASE.images)
    doc = scaling_document(config, axis, base, letters)
    partial = reserve(out.logs_dir, doc["config"]["timestamp"].replace(" ", "_").replace(":", "-")
                      + f"_sweep_{axis_stem(doc)}", ".partial.json")
    inputs = config.output_dir / "_workloads"
    with tqdm(total=len(values) * len(letters), unit="run", disable=True if out.quiet else None,
              leave=False) as bar, tempfile.TemporaryDirectory(prefix="blur-sweep-") as scratch:
        try:
            for value in values:
                workload = axis.workload(value, base)
                bar.set_description(f"{axis.name} {value:g}: inputs")
                sources = (given if given is not None and axis.field == "kernel_size"
                           else inputs_for(workload, inputs, given, resize=axis.field == "megapixels"))
                workload = replace(workload, images=len(sources))
                for letter in letters:
                    bar.set_description(f"{axis.name} {value:g}: {letter}")
                    point = measure_point(letter, workload, sources, config, inputs / "out", Path(scratch))
                    _result(doc, letter)["points"].append({"value": value, **point})
                    write_partial(partial, doc)
                    bar.update()
                bar.set_description(f"{axis.name} {value:g}: checking against a")
                _check_against_a(doc, value, sources, inputs / "out")
                write_partial(partial, doc)
        except KeyboardInterrupt:
            print(f"interrupted: the points measured are kept in {partial}", file=sys.stderr)
            raise
    for result in doc["results"]:
        result.update(growth(result["points"]))
    if not out.quiet:
        print(scaling_table(doc))
    problems = [f"{r['approach']} at {axis.name} {p['value']:g}: {p.get('failed') or 'differs from a: ' + p['differs']}"
                for r in doc["results"] for p in r["points"] if p.get("failed") or p.get("differs")]
    problems += write_document(out, doc, f"_sweep_{axis_stem(doc)}", draw=lambda folder: [_draw(doc, folder)])
    partial.unlink(missing_ok=True)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def scaling_document(config: RunConfig, axis: WorkloadAxis, base: Workload, letters: Sequence[str]) -> dict:
    """The sweep as plain data (its points are appended as they are measured)."""
    return {
        "kind": "scaling",
        "config": {**settings_of(config), "sweep": axis.name, "cores": cores_present()},
        "method": {"repeat": config.repeat, "warmups": config.warmups, "statistic": "median",
                   "process": "a fresh process per approach and point",
                   "memory": "peak resident memory of the process tree, sampled",
                   "verify": "after each point, against a's outputs; counted in neither time nor memory"},
        "axis": {**asdict(axis), "values": None},
        "base": asdict(base),
        "results": [{"approach": letter, "title": APPROACHES[letter].title, "points": []} for letter in letters],
    }


def measure_point(letter: str, workload: Workload, sources: Sequence[ImageSource], config: RunConfig,
                  output: Path, scratch: Path) -> dict:
    """One approach on one workload, in a process of its own: its in-run wall times, the process's wall time
    and the peak memory of its tree, or the problem that stopped it."""
    folder = sources[0].path.parent
    report = scratch / f"{letter}.json"
    argv = [sys.executable, "-m", "approaches", "run", "--approaches", letter, "--input", str(folder),
            "--output", str(output), "--json", str(report), "--logs", str(scratch / "logs"), "--no-charts",
            "--quiet", "--no-verify", *child_flags(replace(config, kernel_size=workload.kernel_size))]
    report.unlink(missing_ok=True)
    footprint = measure_command(argv, cwd=Path.cwd())
    point = {"megapixels": round(workload.pixels / 1e6, 4), "kernel_size": workload.kernel_size,
             "images": workload.images, "process_s": round(footprint.wall_s, 6), "peak_bytes": footprint.peak_bytes}
    try:
        result = json.loads(report.read_text(encoding="utf-8"))["results"][0]
    except (OSError, ValueError, KeyError, IndexError):
        last = footprint.output.strip().splitlines()[-1:] or [f"exit status {footprint.returncode}"]
        return {**point, "failed": f"its run failed: {last[0]}"}
    failed = [f"{f['path']}: {f['reason']}" for f in result["failed"]]
    return {**point, "wall_s": result["wall_s"], "wall_runs": result["wall_runs"],
            **({"failed": "; ".join(failed)} if failed else {})}


def child_flags(config: RunConfig) -> list[str]:
    """The flags that give a child `run` this config's settings (everything but approaches and folders).

    >>> child_flags(RunConfig(kernel_size=7, workers=2, repeat=1))
    ['--kernel-size', '7', '--tile-size', '256', '--workers', '2', '--png-level', '1', '--png-encoder', 'fpng', \
'--kernel', 'separable', '--broker', 'memory://', '--max-pixels', '89478485', '--quick']
    """
    flags = ["--kernel-size", str(config.kernel_size), "--tile-size", str(config.tile_size), "--workers",
             str(config.workers), "--png-level", str(config.png_level), "--png-encoder", config.png_encoder,
             "--kernel", config.kernel, "--broker", config.broker, "--max-pixels", str(config.max_pixels)]
    for flag, value in (("--scheduler", config.scheduler), ("--mpi-hosts", config.mpi_hosts),
                        ("--amqp", config.amqp)):
        if value is not None:
            flags += [flag, str(value)]
    if config.truncate:
        flags.append("--truncate")
    return flags + (["--quick"] if config.repeat == 1 and not config.warmups else ["--repeat", str(config.repeat)])


def growth(points: Sequence[dict]) -> dict:
    """The growth exponents of time and of memory against the swept quantity: least-squares slopes on log-log
    axes over the points measured (None with fewer than two).

    >>> growth([{"value": 1, "wall_s": 2.0, "peak_bytes": 100}, {"value": 4, "wall_s": 8.0, "peak_bytes": 100}])
    {'time_exponent': 1.0, 'memory_exponent': 0.0}
    """
    def slope(key: str) -> float | None:
        pairs = [(math.log(p["value"]), math.log(p[key])) for p in points if p.get(key) and not p.get("failed")]
        if len(pairs) < 2 or len({x for x, _ in pairs}) < 2:
            return None
        mean_x = sum(x for x, _ in pairs) / len(pairs)
        mean_y = sum(y for _, y in pairs) / len(pairs)
        return round(sum((x - mean_x) * (y - mean_y) for x, y in pairs)
                     / sum((x - mean_x) ** 2 for x, _ in pairs), 2)

    return {"time_exponent": slope("wall_s"), "memory_exponent": slope("peak_bytes")}


def scaling_table(doc: dict) -> str:
    """Median in-run seconds and peak memory per approach and point, then the growth exponents."""
    axis = doc["axis"]
    values = sorted({p["value"] for r in doc["results"] for p in r["points"]})
    header = ("approach", *(f"{v:g} {axis['unit'].split(',')[0]}" for v in values), "time exp", "memory exp")
    rows = [header]
    for r in doc["results"]:
        by_value = {p["value"]: p for p in r["points"]}
        cells = [_cell(by_value.get(v)) for v in values]
        exps = [f"{r[key]:.2f}" if r.get(key) is not None else "–" for key in ("time_exponent", "memory_exponent")]
        rows.append((f"{r['approach']} {r['title']}", *cells, *exps))
    lines = aligned(rows)
    base, cfg = doc["base"], doc["config"]
    held = {"kernel_size": f"kernel {base['kernel_size']}", "megapixels": f"{base['megapixels']:g} MP images",
            "images": f"{base['images']} images"}
    held.pop(axis["field"])
    lines.append(f"median in-run seconds (n={doc['method']['repeat']}) / peak memory of the process tree, "
                 f"a fresh process per approach and point; {', '.join(held.values())}, {cfg['kernel']} kernel, "
                 f"{cfg['workers']} workers; exponents: log-log slopes against {axis['name']}")
    return "\n".join(lines)


def _cell(point: dict | None) -> str:
    if point is None:
        return ""
    if "wall_s" not in point or point.get("failed"):
        return "failed"
    if point.get("differs"):
        return "differs from a"
    return f"{point['wall_s']:.3f} s / {point['peak_bytes'] / 2**20:.0f} MiB"


def _result(doc: dict, letter: str) -> dict:
    return next(r for r in doc["results"] if r["approach"] == letter)


def _check_against_a(doc: dict, value: float, sources: Sequence[ImageSource], output: Path) -> None:
    """Mark each approach's point at value identical to a or not, comparing its saved outputs with a's, one
    image at a time (memory does not grow with their number); None where nothing could be compared."""
    points = [(r["approach"], r["points"][-1]) for r in doc["results"]
              if r["points"] and r["points"][-1]["value"] == value]
    compared = 0
    for source in sources:
        try:
            reference = load_image(output_path(output, "a", source.name)).pixels
        except ImageError:
            continue  # a did not save it: its run said why, and nothing here can be compared
        compared += 1
        for letter, point in points[1:]:
            if "wall_s" not in point or point.get("differs"):
                continue
            try:
                same = np.array_equal(load_image(output_path(output, letter, source.name)).pixels, reference)
                why = "pixels differ from a's"
            except ImageError as error:
                same, why = False, error.reason
            if not same:
                point["differs"] = f"{source.name}: {why}"
    for letter, point in points:
        checked = compared and "wall_s" in point
        point["identical_to_a"] = (not point.get("differs")) if checked or letter == "a" else None


def _draw(doc: dict, folder: Path) -> Path:
    from visualize.growth import draw_scaling  # matplotlib is slow to import: only when drawing

    return draw_scaling(doc, folder / f"sweep_{axis_stem(doc)}.png")
