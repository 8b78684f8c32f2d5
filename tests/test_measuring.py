"""How the suite measures and what it keeps: warm-up and rotated timed rounds, --quick, provenance in every results
file, the Chrome trace file, --compare of two runs, and --redraw of any results file."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches import __version__
from approaches.core.config import RunConfig
from approaches.core.images import find_images
from approaches.core.job import Job, Outcome
from approaches.core.trace import Span, Tracer
from approaches.harness import cli
from approaches.harness.cli import config_from, parse
from approaches.harness.measure import Measured, measure_all, plan_rounds, verify
from approaches.harness.results import PACKAGES, git_commit
from approaches.registry import APPROACHES, Approach
from tests.conftest import main
from visualize.documents import SCHEMA_VERSION


def run(tmp_path: Path, image_dir: Path, *flags: str, single_pass: bool = True) -> tuple[int, dict]:
    argv = ["--approaches", "a", "--input", str(image_dir), "--output", str(tmp_path / "out"), "--kernel-size", "3",
            "--json", str(tmp_path / "r.json"), "--logs", str(tmp_path / "logs"), "--charts", str(tmp_path / "charts"),
            *flags]
    status = (main if single_pass else cli.main)(argv, env={})
    return status, json.loads((tmp_path / "r.json").read_text())


# --- the method --------------------------------------------------------------------------------------------


def test_with_three_approaches_and_three_rounds_no_approach_is_always_first():
    rounds = plan_rounds(["a", "b", "c"], repeat=3, warmups=1)
    warm, timed = [r for r in rounds if not r.timed], [r for r in rounds if r.timed]
    assert len(warm) == 1 and rounds[0] is warm[0]  # the warm-up comes before every timed round
    assert {r.order[0] for r in timed} == {"a", "b", "c"}
    for position in range(3):  # and every approach takes every position once
        assert {r.order[position] for r in timed} == {"a", "b", "c"}


def test_each_approach_is_warmed_up_untimed_then_timed_in_rotated_rounds(tmp_path):
    calls = []

    def recorder(letter: str):
        def run_it(job, tracer):
            calls.append(letter)
            tracer.spans.append(Span("main", "blur", "x", None, 0.0, float(len(calls))))
            return Outcome()
        return Approach(letter, letter.upper(), "a fake", run_it)

    config = RunConfig(approaches=("x", "y"), repeat=2, warmups=1, output_dir=tmp_path)
    measured = measure_all([recorder("x"), recorder("y")], config, [], lambda: None)
    assert calls == ["x", "y", "x", "y", "y", "x"]  # warm-up, round 1, round 2 rotated
    assert [len(m.wall_runs) for m in measured] == [2, 2]  # the warm-up is not timed
    assert [m.spans[0].end for m in measured] == [6.0, 5.0]  # each keeps its last timed run's spans


def test_by_default_a_warm_up_and_three_timed_runs_quick_is_one_pass_and_repeat_sets_the_runs():
    def method(*flags: str) -> tuple[int, int]:
        config = config_from(parse(flags), {})
        return config.repeat, config.warmups

    assert (cli.REPEAT, cli.WARMUPS) == (3, 1)
    assert method() == (3, 1)
    assert method("--quick") == (1, 0)
    assert method("--repeat", "5") == (5, 1)


def test_the_default_table_reports_a_median_of_three_rotated_runs_after_a_warm_up(tmp_path, image_dir, capsys):
    status, doc = run(tmp_path, image_dir, "--no-charts", single_pass=False)
    assert status == 0
    (result,) = doc["results"]
    assert len(result["wall_runs"]) == 3 and doc["method"]["warmups"] == 1
    assert "(n=3, median, rotated order, 1 warm-up)" in capsys.readouterr().out


def test_quick_is_one_pass_and_the_table_says_so(tmp_path, image_dir, capsys):
    status, doc = run(tmp_path, image_dir, "--quick", "--no-charts")
    assert status == 0 and len(doc["results"][0]["wall_runs"]) == 1
    assert (doc["method"]["repeat"], doc["method"]["warmups"]) == (1, 0)
    assert "(n=1, single pass, no warm-up: --quick" in capsys.readouterr().out


# --- what a results file keeps ------------------------------------------------------------------------------


def test_a_results_file_says_what_made_it_and_its_timelines_open_as_a_chrome_trace(tmp_path, image_dir):
    status, doc = run(tmp_path, image_dir, "--approaches", "a,b.threads", "--tile-size", "16", "--no-charts")
    assert status == 0
    # Then the JSON has its schema, the suite's version, the commit (or None), Python, the packages, the CPU
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "run"
    source = doc["provenance"]
    assert source["suite"] == __version__ and source["python"] and source["cpu"] and source["cores"] >= 1
    assert source["commit"] is None or len(source["commit"]) == 40
    assert set(source["packages"]) == set(PACKAGES) and source["packages"]["numpy"]
    assert set(RunConfig.__dataclass_fields__) <= set(doc["config"])  # and every setting
    # And beside it, a trace-event file: a process per approach, a named thread per lane, a complete event per span
    (trace_file,) = (tmp_path / "logs").glob("*.trace.json")
    events = json.loads(trace_file.read_text())["traceEvents"]
    processes = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert processes == {"a · Sequential", "b.threads · Tile-parallel, threads", "verify · check against a"}
    spans = [e for e in events if e["ph"] == "X"]
    assert len(spans) == sum(len(r["spans"]) for r in doc["results"]) + len(doc["verify"]["spans"])
    assert all(e["dur"] >= 0 and e["ts"] >= 0 and {"pid", "tid", "name"} <= set(e) for e in spans)
    named = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in spans} == set(named)
    lanes = set(named.values())  # which pool thread takes a tile is the scheduler's choice: any worker will do
    assert {"main", "coordinator"} <= lanes and any(lane.startswith("worker-") for lane in lanes)
    assert any(lane.startswith("verify") for lane in lanes)


def test_without_a_git_checkout_the_commit_is_none_not_an_error(tmp_path, monkeypatch):
    assert git_commit(tmp_path) == {"commit": None, "dirty": None}  # tmp: no checkout around it
    monkeypatch.setenv("PATH", str(tmp_path))  # and no git at all
    assert git_commit(Path(__file__).parent) == {"commit": None, "dirty": None}


# --- the check against a's pixels ---------------------------------------------------------------------------


def test_the_check_against_a_is_a_stage_of_its_own_and_reuses_as_outputs_when_a_ran(tmp_path, image_dir, capsys):
    # Before: the check had no time of its own in the table, the JSON or the timelines, and it decoded every input
    # again and blurred a reference even when a had just saved those very pixels
    status, doc = run(tmp_path, image_dir, "--approaches", "a,b.threads", "--tile-size", "16")
    assert status == 0
    checked = doc["verify"]
    assert checked["reference"] == "a's outputs from this run" and (checked["reused"], checked["recomputed"]) == (3, 0)
    # a's three outputs decoded as references and b's three to compare with them: no input, no blur
    assert checked["seconds"] > 0 and [span["stage"] for span in checked["spans"]] == ["load"] * 6
    table = capsys.readouterr().out
    assert re.search(r"^verify +\d+\.\d{3} ", table, re.M) and "against a's outputs from this run" in table
    assert (tmp_path / "charts" / "timeline_verify.png").exists()


def test_without_a_in_the_run_each_reference_is_blurred_again(tmp_path, image_dir):
    status, doc = run(tmp_path, image_dir, "--approaches", "b.threads", "--tile-size", "16", "--no-charts")
    assert status == 0 and doc["results"][0]["identical_to_a"] is True
    assert doc["verify"]["reference"] == "a reference blurred again" and doc["verify"]["recomputed"] == 3
    assert [span["stage"] for span in doc["verify"]["spans"]].count("blur") == 3


def test_an_output_that_differs_from_the_one_a_saved_is_still_found(tmp_path, image_dir):
    config = RunConfig(input_dir=image_dir, output_dir=tmp_path / "out", kernel_size=3, tile_size=16, workers=2)
    sources = find_images(image_dir)
    measured = [Measured(APPROACHES[letter], [1.0], APPROACHES[letter].run(Job(config, tuple(sources), letter),
                                                                           Tracer()), [], 0.0)
                for letter in ("a", "b.threads")]
    wrong = next(saved.output for saved in measured[1].outcome.saved if saved.name == "two")
    pixels = np.array(Image.open(wrong))
    pixels[0, 0] ^= 1  # one level in one pixel
    Image.fromarray(pixels).save(wrong)
    verified = verify(measured, sources, config)
    assert (verified.reused, verified.recomputed) == (3, 0)
    assert measured[0].identical_to_a and measured[0].mismatches == []
    assert measured[1].identical_to_a is False and measured[1].mismatches == [f"two: pixels differ ({wrong})"]


def test_no_verify_skips_the_check_and_the_table_says_not_verified(tmp_path, image_dir, capsys):
    status, doc = run(tmp_path, image_dir, "--approaches", "a,b.threads", "--tile-size", "16", "--no-verify")
    assert status == 0  # nothing checked: no mismatch claimed
    assert doc["verify"] == {"reference": None, "seconds": None, "spans": []}
    assert [r["identical_to_a"] for r in doc["results"]] == [None, None]  # unknown, not False
    table = capsys.readouterr().out
    assert table.count("not verified") == 3 and "--no-verify" in table and not re.search(r"^verify ", table, re.M)
    assert not (tmp_path / "charts" / "timeline_verify.png").exists()


# --- --compare and --redraw -----------------------------------------------------------------------------------


def measured_doc(walls: dict[str, list[float]], **config) -> dict:
    results = []
    for letter, runs in walls.items():
        median = sorted(runs)[len(runs) // 2]
        results.append({"approach": letter, "title": letter.upper(), "wall_s": median, "wall_runs": runs,
                        "last_wall_s": runs[-1], "identical_to_a": True, "speedup_vs_a": 1.0,
                        "stage_s": {"load": 0.1, "blur": 0.2, "blocked": 0.05}, "workers": 2, "failed": [],
                        "images": [{"name": "one"}],
                        "spans": [{"lane": "main", "stage": "blur", "image": "one", "tile": None, "start": 0.0,
                                   "end": median}]})
    return {"kind": "run", "config": {"timestamp": "2026-01-01 00:00:00", "kernel_size": 21, "workers": 2, **config},
            "method": {"repeat": 3, "warmups": 1, "rounds": [[]]}, "results": results}


def write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_compare_calls_a_change_only_when_the_ranges_do_not_overlap(tmp_path, capsys):
    old = write(tmp_path / "old.json", measured_doc({"a": [1.0, 1.1, 1.2], "b": [1.0, 1.1, 1.2],
                                                     "c": [1.0, 1.1, 1.2], "d": [1.0]}))
    new = write(tmp_path / "new.json", measured_doc({"a": [0.5, 0.6, 0.7], "b": [1.3, 1.4, 1.5],
                                                     "c": [0.9, 1.05, 1.15], "d": [0.5], "e": [1.0]}, workers=4))
    assert main(["--compare", str(old), str(new)], env={}) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line[:2] in "a b c d e "}
    assert rows["a"].endswith("faster") and "0.55×" in rows["a"]
    assert rows["b"].endswith("slower") and "1.27×" in rows["b"]
    assert rows["c"].endswith("within the noise (the ranges overlap)")
    assert rows["d"].endswith("no verdict: a single pass has no spread")


def test_compare_lists_the_settings_that_differ_and_the_approaches_in_only_one_run(tmp_path, capsys):
    old = write(tmp_path / "old.json", measured_doc({"a": [1.0, 1.1]}))
    new = write(tmp_path / "new.json", measured_doc({"a": [1.0, 1.1], "e": [2.0, 2.1]}, workers=4))
    assert main(["--compare", str(old), str(new)], env={}) == 0
    out = capsys.readouterr().out
    assert "settings differ: workers 2 -> 4" in out and "only in the new run: e" in out


def test_compare_refuses_what_is_not_a_measured_run_in_one_line(tmp_path, capsys):
    sweep = write(tmp_path / "sweep.json", {"kind": "sweep", "config": {}, "axis": {}, "results": []})
    junk = tmp_path / "junk.json"
    junk.write_text("{not json")
    for args in ([sweep, sweep], [junk, sweep], [tmp_path / "missing.json", sweep]):
        assert main(["--compare", *map(str, args)], env={}) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err


def sweep_doc() -> dict:
    return {"kind": "sweep", "config": {"timestamp": "t", "sweep": "workers", "cores": 2, "kernel_size": 21},
            "axis": {"field": "workers", "values": [1, 2, 3], "column": "workers {}", "label": "workers",
                     "log2": False, "title": "Workers sweep", "panel": "speedup", "panel_label": "speed-up"},
            "results": [{"approach": "a", "title": "Sequential", "tiled": False, "wall_s": [1.0],
                         "wall_runs": [[0.9, 1.0, 1.1]], "blur_s": [0.5], "speedup": [1.0], "identical_to_a": [True]},
                        {"approach": "c", "title": "Pipelined", "tiled": True, "wall_s": [1.0, 0.6, 0.55],
                         "wall_runs": [[1.0], [0.6], [0.55]], "blur_s": [0.5] * 3, "speedup": [1.0, 1.67, 1.82],
                         "identical_to_a": [True] * 3}]}


def chaos_doc() -> dict:
    rows = [{"scenario": scenario, "letter": letter, "images": 3, "expected": 43, "in_flight": 2,
             "missing": 2 if letter == "e" and scenario == "workers" else 0, "duplicates": 1, "unsaved": 0,
             "differ": 0, "recovery_s": None if letter == "e" or scenario == "junk" else 0.4}
            for scenario in ("workers", "junk") for letter in "efg"]
    return {"kind": "chaos", "config": {"timestamp": "t", "kernel_size": 3}, "chaos": rows}


@pytest.mark.parametrize("doc,drawn", [
    (measured_doc({"a": [1.0, 1.1, 1.2], "c": [0.5, 0.6, 0.7]}), {"comparison.png", "timeline_a.png",
                                                                  "timeline_c.png"}),
    (sweep_doc(), {"sweep_workers.png"}),
    (chaos_doc(), {"chaos.png"}),
    ({key: value for key, value in chaos_doc().items() if key != "kind"}, {"chaos.png"}),  # schema 1: no kind
], ids=["run", "sweep", "chaos", "chaos-schema-1"])
def test_redraw_draws_any_results_file_again_without_running(tmp_path, capsys, doc, drawn):
    path = write(tmp_path / "doc.json", doc)
    assert main(["--redraw", str(path), "--charts", str(tmp_path / "charts")], env={}) == 0
    assert {p.name for p in (tmp_path / "charts").iterdir()} == drawn
    assert all(p.stat().st_size > 10_000 for p in (tmp_path / "charts").iterdir())
    assert "drawn:" in capsys.readouterr().out
