"""The chaos demo, run as a person runs it (run_all.py --chaos e,f,g): e must show loss, truthfully, and f and g
none, on both brokers and under every scenario.

A minute of killed and restarted pods: a step of its own in CI, beside j's chaos matrix, and out of the
README's test command (`python -m pytest -m slow` runs them)."""

import json
import re

import pytest

from approaches.core.settings import Settings
from approaches.harness import chaos
from approaches.harness.cli import SCENARIOS as CHAOS_SCENARIOS
from tests.conftest import main

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(\w+): expected=(\d+) processed=(\d+) missing=(\d+) duplicates=(\d+) output=(present|absent)$")
ROW = re.compile(r"^([\w-]+) +([efg]) +3 +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+) +(\d+\.\d+|-)$", re.M)


# On memory:// the scenario matrix below checks the same, for e, f and g.
@pytest.mark.parametrize("broker,kill,give_up_s,letters", [
    # Real processes, really killed: the assembler must wait longer than a worker process takes to restart.
    # (f's and g's worker processes are SIGKILLed and restarted in their own tests, losing nothing.)
    pytest.param("embedded://", "SIGKILL", 2.0, "e", marks=pytest.mark.timeout(180)),
])
def test_killing_every_worker_mid_run_loses_tiles_in_e_none_in_f_or_g_and_says_so(tmp_path, image_dir, capsys, broker,
                                                                               kill, give_up_s, letters):
    # Given e, f and g with slow workers, and assemblers that give up give_up_s without progress
    stale = tmp_path / "out" / "chaos-e" / "one_blurred.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    # When the demo runs
    status = main(["--chaos", ",".join(letters), "--scenarios", "workers", "--broker", broker, "--input",
                   str(image_dir), "--output", str(tmp_path / "out"), "--tile-size", "16", "--kernel-size", "3",
                   "--workers", "2", "--quiet", "--logs", str(tmp_path / "logs"), "--no-charts"], env={},
                  settings=Settings(tile_delay_s=0.02, result_wait_s=give_up_s, progress_wait_s=give_up_s))
    out = capsys.readouterr().out
    parts = re.split(r"^chaos [efg] workers: ", out, flags=re.M)[1:]
    e_out, others = parts[0], parts[1:]
    # Then e lost tiles, truthfully reported
    total = assert_truthful(e_out, kill)
    assert total > 0 and status == 1
    assert f"RESULT: tile loss: {total} tiles missing" in e_out
    # And f and g, under the same kills, lost none and saved every image
    for part in others:
        assert assert_truthful(part, kill) == 0 and "RESULT: no missing tiles detected" in part
    # And the side-by-side table says the same
    rows = {row[1]: row for row in ROW.findall(parts[-1])}
    assert int(rows["e"][4]) == total and int(rows["e"][6]) > 0
    assert [(rows[x][4], rows[x][6], rows[x][7]) for x in letters] == [
        (str(total), rows["e"][6], "0"), *[("0", "0", "0")] * (len(letters) - 1)]


def assert_truthful(out: str, kill: str) -> int:
    """Check one approach's part of the summary; the tiles it says are missing."""
    # Then workers were killed while holding tiles, and were restarted
    assert re.search(rf"^[1-9]\d* tiles in flight: killing worker-1, worker-2 \({kill}\)$", out, re.M), out
    assert "restarted worker-1, worker-2" in out, out
    # (e's workers, restarted slowly on a busy machine, may leave jobs, among them the STOP pills the dead never took)
    assert re.search(r"^left in the queues: jobs=\d+( \(among them the STOP pills [^)]*\))? results=\d+$", out,
                     re.M), out
    # And every image has a truthful line: an image is saved exactly when none of its tiles is missing
    rows = {m[1]: m for m in (LINE.match(line) for line in out.splitlines()) if m}
    assert set(rows) == {"one", "two", "three"}, out
    total = 0
    for name, row in rows.items():
        expected, processed, missing, duplicates = map(int, row.group(2, 3, 4, 5))
        assert expected == processed + missing and duplicates <= 4  # f and g may blur a killed worker's tile twice
        assert (row[6] == "present") == (missing == 0), name
        total += missing
    return total


@pytest.mark.timeout(180)
def test_every_scenario_f_and_g_lose_nothing_e_loses_and_the_table_json_and_chart_say_so(tmp_path, image_dir, capsys):
    # Given short timeouts: survivors take a dead worker's tiles over after 0.3 s, assemblers give up after 1.0 s
    # When every scenario runs against e, f and g
    status = main(["--chaos", "e,f,g", "--input", str(image_dir), "--output", str(tmp_path / "out"), "--tile-size",
                   "16", "--kernel-size", "3", "--workers", "2", "--quiet", "--logs", str(tmp_path / "logs"),
                   "--charts", str(tmp_path / "charts")], env={},
                  settings=Settings(tile_delay_s=0.01, result_wait_s=1.0, progress_wait_s=1.0, visibility_s=0.3))
    out = capsys.readouterr().out
    # Then f and g lose nothing and save every image, whatever was killed; e loses tiles when its workers or its
    # assembler die (its coordinator's restart queues an image again instead: duplicates, no loss)
    rows = {(row[0], row[1]): tuple(map(int, row[2:8])) for row in ROW.findall(out)}
    assert "the broker scenario needs --broker embedded://; skipped on memory://" in out
    assert "the hung scenario stops a worker process (SIGSTOP): it needs --broker embedded:// or redis://" in out
    assert set(rows) == {(scenario, letter) for scenario in CHAOS_SCENARIOS if scenario not in ("broker", "hung")
                         for letter in "efg"}, out
    for (scenario, letter), (expected, _, lost, _, unsaved, differ) in rows.items():
        assert expected == 4 + 9 + 30 and differ == 0  # whatever is saved has a's pixels
        if letter in "fg":
            assert (lost, unsaved) == (0, 0), (scenario, letter, out)
    assert all(rows[(scenario, "e")][2] > 0 for scenario in ("workers", "one-worker", "assembler")), out
    assert status == 1
    # And when every worker is killed, each approach's own summary is truthful, image by image
    parts = re.split(r"^chaos ([efg]) ([\w-]+): ", out, flags=re.M)[1:]
    runs = list(zip(parts[::3], parts[1::3], parts[2::3], strict=True))
    assert sorted(letter for letter, scenario, _ in runs if scenario == "workers") == ["e", "f", "g"], out
    for letter, scenario, part in runs:
        if scenario == "workers":
            lost = assert_truthful(part, "each dies at its next fault point")
            assert lost == rows[scenario, letter][2] and (lost > 0) == (letter == "e")
            assert (f"RESULT: tile loss: {lost} tiles missing" if lost else "RESULT: no missing tiles detected") in part
    # And the same table is in logs/ as JSON, with what made it, and drawn
    (written,) = (tmp_path / "logs").glob("*_chaos.json")
    doc = json.loads(written.read_text())
    assert {(row["scenario"], row["letter"]): row["missing"] for row in doc["chaos"]} == {
        key: value[2] for key, value in rows.items()}
    assert doc["kind"] == "chaos" and doc["schema_version"] >= 2 and doc["provenance"]["suite"]
    assert doc["config"]["chaos"] == ["e", "f", "g"] and doc["config"]["settings"]["result_wait_s"] == 1.0
    # And the time to recover: measured where f and g name the tiles their killed workers held; e cannot tell,
    # and junk kills nothing
    recovery = {(row["scenario"], row["letter"]): row["recovery_s"] for row in doc["chaos"]}
    for scenario in ("workers", "one-worker"):
        assert recovery[scenario, "e"] is None
        assert all(0 < recovery[scenario, letter] < 30 for letter in "fg"), recovery
    assert all(recovery["junk", letter] is None for letter in "efg")
    assert (tmp_path / "charts" / "chaos.png").stat().st_size > 10_000


@pytest.mark.timeout(180)
def test_a_broker_restarted_mid_run_loses_f_and_g_nothing_its_append_only_file_brings_every_queue_back(
        tmp_path, image_dir, capsys):
    status = main(["--chaos", "f,g", "--scenarios", "broker", "--broker", "embedded://", "--input", str(image_dir),
                   "--output", str(tmp_path / "out"), "--tile-size", "16", "--kernel-size", "3", "--workers", "2",
                   "--quiet", "--logs", str(tmp_path / "logs"), "--no-charts"], env={},
                  settings=Settings(tile_delay_s=0.02, progress_wait_s=6.0))
    out = capsys.readouterr().out
    assert out.count("tiles in flight: restarting the broker") == 2 and out.count("the broker was down for") == 2
    rows = {row[1]: tuple(map(int, row[2:8])) for row in ROW.findall(out)}
    assert {letter: (lost, unsaved, differ) for letter, (_, _, lost, _, unsaved, differ) in rows.items()} == {
        "f": (0, 0, 0), "g": (0, 0, 0)}, out
    assert status == 0


def test_the_scenarios_run_all_py_offers_are_the_ones_chaos_knows():
    assert tuple(chaos.SCENARIOS) == CHAOS_SCENARIOS


def test_an_unknown_scenario_is_one_line_and_status_2(capsys):
    assert main(["--chaos", "g", "--scenarios", "workers,meteor"], env={}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scenarios: unknown meteor" in err


@pytest.mark.timeout(120)
def test_chaos_h_kills_dask_workers_loses_nothing_and_reports_how_soon_the_lost_tiles_were_redone(tmp_path, image_dir,
                                                                                                capsys):
    # One worker process, then every one, SIGKILLed while the first image's tiles are in flight
    status = main(["--chaos", "h", "--scenarios", "workers,one-worker,junk", "--input", str(image_dir), "--output",
                   str(tmp_path / "out"), "--tile-size", "16", "--kernel-size", "3", "--workers", "2", "--quiet",
                   "--logs", str(tmp_path / "logs"), "--no-charts"], env={}, settings=Settings(tile_delay_s=0.05))
    out = capsys.readouterr().out
    assert status == 0, out
    assert "chaos h junk: skipped; h has no junk to kill" in out
    # dask ran the lost tiles again: nothing missing, every image saved with a's pixels
    rows = [line.split() for line in out.splitlines() if line.startswith(("workers ", "one-worker "))]
    assert [row[0] for row in rows] == ["workers", "one-worker"], out
    for row in rows:
        # lost, images not saved, saved but not a's pixels: none.  Done twice may be more than none: a tile whose
        # result sat in the killed worker's memory, not yet gathered, is computed again (seen on a busy machine)
        assert row[1] == "h" and row[3] == "43" and int(row[4]) >= 1 and [row[5], *row[7:9]] == ["0", "0", "0"]
        assert float(row[9]) > 0  # the lost tiles were redone, this long after the kill
