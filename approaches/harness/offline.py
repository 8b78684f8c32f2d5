"""What run_all.py does with results files already written: compare OLD.json NEW.json, and redraw RUN.json.

A change is only a change if it is bigger than the noise.  Each approach's wall time is a median of
several timed runs; its fastest and slowest run bound where the next median is likely to fall.  So
compare prints new/old of the medians, with the range the ratio could take between those bounds
(fastest new / slowest old … slowest new / fastest old), and calls an approach faster or slower only
when the two runs' ranges do not overlap at all.  One pass (--quick) has no range: it gets no verdict.
Settings that differ between the two files are listed first, since they, not the code, may be the cause.
"""

import statistics
from pathlib import Path
from typing import Any

from approaches.core.errors import ConfigError
from approaches.core.images import shown
from approaches.harness.results import aligned, spread
from visualize.documents import DocumentError, document_kind, read_document

COMPARED_SETTINGS = ("kernel_size", "kernel", "tile_size", "workers", "png_level", "png_encoder", "broker",
                     "truncate", "machine")


def compare_files(old_path: Path, new_path: Path) -> str:
    """compare: the report on two measured runs' files (ConfigError, one line, for anything else)."""
    old, new = _read(old_path), _read(new_path)
    for path, doc in ((old_path, old), (new_path, new)):
        if document_kind(doc) != "run":
            raise ConfigError(f"compare reads measured runs; {shown(path)} is a {document_kind(doc)} document")
    heading = f"{_named(old_path, old)}  ->  {_named(new_path, new)}"
    return "\n".join([heading, *compare(old, new)])


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The lines of the report: settings that differ, a row per approach in both, approaches in only one.

    >>> old = {"config": {"workers": 2}, "results": [{"approach": "a", "title": "Sequential",
    ...                                               "wall_runs": [1.0, 1.1, 1.2]}]}
    >>> new = {"config": {"workers": 2}, "results": [{"approach": "a", "title": "Sequential",
    ...                                               "wall_runs": [0.5, 0.55, 0.6]}]}
    >>> print(compare(old, new)[-1])
    a Sequential  1.100 [1.000–1.200]  0.550 [0.500–0.600]  0.50×    0.42–0.60×  faster
    """
    lines = [f"settings differ: {key} {old['config'].get(key)!r} -> {new['config'].get(key)!r}"
             for key in COMPARED_SETTINGS if old["config"].get(key) != new["config"].get(key)]
    old_by, new_by = _by_approach(old), _by_approach(new)
    rows = [("approach", "old wall s", "new wall s", "new/old", "could be", "verdict")]
    for letter, new_result in new_by.items():
        if letter in old_by:
            rows.append(_row(old_by[letter], new_result))
    lines += aligned(rows, rule=False)
    only_old, only_new = [x for x in old_by if x not in new_by], [x for x in new_by if x not in old_by]
    if only_old:
        lines.append(f"only in the old run: {', '.join(only_old)}")
    if only_new:
        lines.append(f"only in the new run: {', '.join(only_new)}")
    return lines


def _row(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    old_runs, new_runs = _runs(old), _runs(new)
    old_median, new_median = statistics.median(old_runs), statistics.median(new_runs)
    ratio = new_median / old_median if old_median > 0 else float("inf")
    low = min(new_runs) / max(old_runs) if max(old_runs) > 0 else float("inf")
    high = max(new_runs) / min(old_runs) if min(old_runs) > 0 else float("inf")
    if len(old_runs) < 2 or len(new_runs) < 2:
        verdict = "no verdict: a single pass has no spread"
    elif max(new_runs) < min(old_runs):
        verdict = "faster"
    elif min(new_runs) > max(old_runs):
        verdict = "slower"
    else:
        verdict = "within the noise (the ranges overlap)"
    return (f"{new['approach']} {new.get('title', '')}".rstrip(), f"{old_median:.3f}{spread(old_runs)}",
            f"{new_median:.3f}{spread(new_runs)}", f"{ratio:.2f}×", f"{low:.2f}–{high:.2f}×", verdict)


def _runs(result: dict[str, Any]) -> list[float]:
    """The per-run walls; files written before wall_runs existed have only the one wall_s."""
    return list(result.get("wall_runs") or [result["wall_s"]])


def _by_approach(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(result["approach"]): result for result in doc.get("results") or []}


def _named(path: Path, doc: dict[str, Any]) -> str:
    """A file, when it was measured, and from which commit (when known)."""
    commit = ((doc.get("provenance") or {}).get("commit") or "")[:10]
    return f"{shown(path)} ({doc['config'].get('timestamp', '?')}{', commit ' + commit if commit else ''})"


def redraw_file(path: Path, charts_dir: Path) -> list[Path]:
    """redraw: a saved document's charts, drawn again into charts_dir, whatever kind of run wrote it."""
    doc = _read(path)
    from visualize.redraw import redraw  # matplotlib is slow to import: only when drawing

    return redraw(doc, charts_dir)


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_document(path)
    except DocumentError as error:
        raise ConfigError(f"{shown(path)}: {error}") from None
