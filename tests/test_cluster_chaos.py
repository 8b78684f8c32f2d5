"""The loss demo, run as a person runs it (run_all.py --chaos e,f): e must show loss, truthfully, and f none,
on both brokers."""

import re
from functools import partial

import pytest

from approaches.cluster import chaos
from approaches.runner import main

LINE = re.compile(r"^(\w+): expected=(\d+) processed=(\d+) missing=(\d+) duplicates=(\d+) output=(present|absent)$")


@pytest.mark.parametrize("broker,kill,give_up_s", [
    pytest.param("memory://", "each dies at its next fault point", 1.0, marks=pytest.mark.timeout(60)),
    # Real processes, really killed: the assembler must wait longer than a worker process takes to restart
    pytest.param("embedded://", "SIGKILL", 4.0, marks=pytest.mark.timeout(120)),
])
def test_killing_every_worker_mid_run_loses_tiles_in_e_none_in_f_and_says_so(tmp_path, image_dir, capsys, monkeypatch,
                                                                          broker, kill, give_up_s):
    # Given e and f with slow workers, and assemblers that give up give_up_s without progress
    for letter in ("e", "f"):
        monkeypatch.setitem(chaos.SCENARIOS, letter, partial(chaos.tile_loss, letter=letter, tile_delay_s=0.05,
                                                             give_up_s=give_up_s))
    stale = tmp_path / "out" / "chaos-e" / "one_blurred.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    # When the demo runs
    status = main(["--chaos", "e,f", "--broker", broker, "--input", str(image_dir), "--output", str(tmp_path / "out"),
                   "--tile-size", "16", "--kernel-size", "3", "--workers", "2", "--quiet"], env={})
    e_out, f_out = capsys.readouterr().out.split("chaos f: ")
    # Then e lost tiles, truthfully reported
    total = assert_truthful(e_out, kill)
    assert total > 0 and status == 1
    assert f"RESULT: tile loss: {total} tiles missing" in e_out
    # And f, under the same kills, lost none and saved every image
    assert assert_truthful(f_out, kill) == 0 and "RESULT: no missing tiles detected" in f_out
    assert re.search(rf"^e +3 +\d+ +{total} +0 +\d+$", f_out, re.M), f_out  # the side-by-side table
    assert re.search(r"^f +3 +\d+ +0 +\d+ +0$", f_out, re.M), f_out


def assert_truthful(out: str, kill: str) -> int:
    """Check one approach's part of the summary; the tiles it says are missing."""
    # Then workers were killed while holding tiles, and were restarted
    assert re.search(rf"^[2-9]\d* tiles in flight: killing worker-1, worker-2 \({kill}\)$", out, re.M), out
    assert "restarted worker-1, worker-2" in out, out
    assert re.search(r"^left in the queues: jobs=\d+ results=\d+$", out, re.M), out
    # And every image has a truthful line: an image is saved exactly when none of its tiles is missing
    rows = {m[1]: m for m in (LINE.match(line) for line in out.splitlines()) if m}
    assert set(rows) == {"one", "two", "three"}, out
    total = 0
    for name, row in rows.items():
        expected, processed, missing, duplicates = map(int, row.group(2, 3, 4, 5))
        assert expected == processed + missing and duplicates <= 2  # f may blur a killed worker's tile twice
        assert (row[6] == "present") == (missing == 0), name
        total += missing
    return total
