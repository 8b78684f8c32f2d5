"""The loss demo, run as a person runs it (run_all.py --chaos e): it must show loss, truthfully, on both brokers."""

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
def test_killing_every_worker_mid_run_loses_tiles_and_the_summary_says_so(tmp_path, image_dir, capsys, monkeypatch,
                                                                          broker, kill, give_up_s):
    # Given e with slow workers, and an assembler that gives up give_up_s after the last result
    monkeypatch.setitem(chaos.SCENARIOS, "e", partial(chaos.tile_loss, tile_delay_s=0.05, give_up_s=give_up_s))
    stale = tmp_path / "out" / chaos.LETTER / "one_blurred.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left over from an earlier run")
    # When the demo runs
    status = main(["--chaos", "e", "--broker", broker, "--input", str(image_dir), "--output", str(tmp_path / "out"),
                   "--tile-size", "16", "--kernel-size", "3", "--workers", "2", "--quiet"], env={})
    out = capsys.readouterr().out
    # Then workers were killed while holding tiles, and were restarted
    assert re.search(rf"^[2-9]\d* tiles in flight: killing worker-1, worker-2 \({kill}\)$", out, re.M), out
    assert "restarted worker-1, worker-2" in out, out
    assert re.search(r"^left in the queues: jobs=\d+ results=\d+$", out, re.M), out
    # And every image has a truthful line: an image is saved exactly when none of its tiles is missing
    rows = {m[1]: m for m in (LINE.match(line) for line in out.splitlines()) if m}
    assert set(rows) == {"one", "two", "three"}
    total = 0
    for name, row in rows.items():
        expected, processed, missing, duplicates = map(int, row.group(2, 3, 4, 5))
        assert expected == processed + missing and duplicates == 0
        assert (row[6] == "present") == (missing == 0), name
        total += missing
    # And the loss shows, with status 1 as in the original
    assert total > 0 and status == 1
    assert f"RESULT: tile loss: {total} tiles missing" in out
