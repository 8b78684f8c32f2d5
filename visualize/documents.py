"""What a results document holds, read without the suite: its schema, its kind, how it was measured, its lanes.

The suite writes every document (harness/results.py); the charts, `compare` and the trace file read them
through these functions, so each question about a document (which kind is it, how were its walls measured,
in what order do its lanes go) has one answer.
"""

import json
import re
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2  # 1: before "kind", "method" and "provenance" were written (read as runs, sweeps or chaos)
KINDS = ("run", "sweep", "chaos", "scaling", "crossover")
LANE_RANKS = (  # (rank, name fragments), first match wins: readers on top, writers at the bottom
    (4, ("assembl",)),
    (5, ("saver", "writer")),
    (0, ("loader", "reader")),
    (2, ("worker", "rank")),
    (1, ("main", "coordinator", "dispatcher", "producer")),
)
OTHER_LANE_RANK = 3


class DocumentError(ValueError):
    """A file is not a results document this version reads; the message says why, in one line, without the path
    (each reader names the file its own way)."""


def read_document(path: Path) -> dict[str, Any]:
    """A results document (any schema version up to this one), or DocumentError saying why path is not one.

    >>> read_document(Path("/no/such/run.json"))
    Traceback (most recent call last):
    ...
    visualize.documents.DocumentError: no such file
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DocumentError("no such file") from None
    except OSError as error:
        raise DocumentError(f"cannot read: {error.strerror or error}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DocumentError(f"not JSON ({error})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise DocumentError("not a blur-suite results file (it has no config)")
    if doc.get("schema_version", 1) > SCHEMA_VERSION:
        raise DocumentError(f"schema version {doc['schema_version']} is newer than this blur-suite reads "
                            f"({SCHEMA_VERSION}): upgrade it")
    return doc


def document_kind(doc: dict[str, Any]) -> str:
    """"run", "sweep" or "chaos"; documents of schema 1 carry no kind, and are told apart by their keys.

    >>> document_kind({"axis": {}, "results": []}), document_kind({"chaos": []}), document_kind({"results": []})
    ('sweep', 'chaos', 'run')
    """
    if doc.get("kind") in KINDS:
        return doc["kind"]
    return "sweep" if "axis" in doc else "chaos" if "chaos" in doc else "run"


def method_of_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """The document's method; schema 1 had none: its repeat from the config, no warm-up, a fixed order."""
    method = doc.get("method")
    return method if method else {"repeat": doc["config"].get("repeat", 1), "warmups": 0, "rounds": None}


def method_label(doc: dict[str, Any]) -> str:
    """How a table's wall seconds were measured, in a few words.

    >>> method_label({"method": {"repeat": 3, "warmups": 1, "rounds": [["a", "b"], ["b", "a"], ["a", "b"]]}})
    '(n=3, median, rotated order, 1 warm-up) [fastest–slowest run]'
    >>> method_label({"method": {"repeat": 1, "warmups": 0, "rounds": [["a"]]}})
    '(n=1, single pass, no warm-up: --quick; noisy, and no spread to show it)'
    """
    method = method_of_doc(doc)
    n, warmups = method["repeat"], method["warmups"]
    warm = f"{warmups} warm-up" if warmups else "no warm-up"
    if n == 1:
        return f"(n=1, single pass, {warm}{': --quick' if not warmups else ''}; noisy, and no spread to show it)"
    order = "rotated order" if method.get("rounds") else "fixed order"
    return f"(n={n}, median, {order}, {warm}) [fastest–slowest run]"


def axis_stem(doc: dict[str, Any]) -> str:
    """How a workload sweep's files are named: its axis as the command line says it, in a file name's spelling.

    >>> axis_stem({"axis": {"name": "image-size"}})
    'image_size'
    """
    return doc["axis"]["name"].replace("-", "_")


def crossover_cell(cell: dict[str, Any] | None) -> str:
    """What a cell of a crossover map says: the fastest approach and its margin over the runner-up, or a tie.

    >>> crossover_cell({"fastest": "c", "runner_up": "b.threads", "margin": 1.31, "tie": False})
    'c ×1.31'
    >>> crossover_cell({"fastest": "c", "runner_up": "a", "margin": 1.02, "tie": True})
    'tie c/a'
    """
    if cell is None:
        return ""
    if cell["fastest"] is None:
        return "none"
    if cell["runner_up"] is None:
        return cell["fastest"]
    return f"tie {cell['fastest']}/{cell['runner_up']}" if cell["tie"] else f"{cell['fastest']} ×{cell['margin']:.2f}"


def timed_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's results, then its check against a's pixels where it was checked: what is charted and traced."""
    row = verify_row(doc)
    return [*(doc.get("results") or []), *([row] if row else [])]


def verify_row(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A run's check against a's pixels as a result row like an approach's (its wall, its stage seconds summed
    over lanes, its spans), so the table, the comparison chart, the timelines and the trace file show it as a
    stage of its own; None where the run was not checked (--no-verify) or was written before it was timed.

    >>> row = verify_row({"verify": {"reference": "a's outputs from this run", "seconds": 0.5, "spans": [
    ...     {"lane": "verify_0", "stage": "load", "image": "x", "tile": None, "start": 0.0, "end": 0.25}]}})
    >>> row["approach"], row["wall_s"], row["stage_s"], row["images"]
    ('verify', 0.5, {'load': 0.25}, [{'name': 'x'}])
    >>> verify_row({"verify": {"reference": None, "seconds": None, "spans": []}}) is None
    True
    """
    verify = doc.get("verify") or {}
    if verify.get("seconds") is None:
        return None
    spans = verify.get("spans") or []
    stage_s: dict[str, float] = {}
    for span in spans:
        stage_s[span["stage"]] = stage_s.get(span["stage"], 0.0) + span["end"] - span["start"]
    return {"approach": "verify", "title": "check against a", "wall_s": verify["seconds"], "wall_runs": [],
            "last_wall_s": verify["seconds"], "stage_s": stage_s, "spans": spans, "speedup_vs_a": None,
            "identical_to_a": None, "images": [{"name": name} for name in dict.fromkeys(s["image"] for s in spans)],
            "failed": []}


def lane_key(lane: str) -> tuple[int, list[Any]]:
    """Order lanes as work flows: loaders, main/coordinator, workers by number, assembler, savers.

    >>> sorted(["saver-1", "worker-10", "worker-2", "coordinator", "loader-1"], key=lane_key)
    ['loader-1', 'coordinator', 'worker-2', 'worker-10', 'saver-1']
    """
    lowered = lane.lower()
    rank = next((rank for rank, names in LANE_RANKS if any(n in lowered for n in names)), OTHER_LANE_RANK)
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", lowered)]
    return rank, natural
