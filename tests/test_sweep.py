"""run_all.py --sweep tile-size: every chosen approach at every tile size, checked against a, tabled and charted."""

import json

import pytest

from approaches.runner import main
from approaches.sweep import TILE_SIZES


@pytest.mark.timeout(120)
def test_sweep_runs_each_approach_at_each_tile_size_and_draws_the_chart(tmp_path, image_dir, capsys):
    status = main(["--sweep", "tile-size", "--approaches", "a,b.threads,c", "--input", str(image_dir),
                   "--output", str(tmp_path / "out"), "--kernel-size", "3", "--json", str(tmp_path / "sweep.json"),
                   "--logs", str(tmp_path / "logs"), "--charts", str(tmp_path / "charts")], env={})
    assert status == 0
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert doc["tile_sizes"] == list(TILE_SIZES) == [64, 128, 256, 512, 1024]
    assert [r["approach"] for r in doc["results"]] == ["a", "b.threads", "c"]
    for result in doc["results"]:
        assert len(result["wall_s"]) == len(result["blur_s"]) == len(TILE_SIZES)
        assert all(result["identical_to_a"]) and all(wall > 0 for wall in result["wall_s"])
    assert (tmp_path / "charts" / "sweep_tile_size.png").stat().st_size > 0
    assert list((tmp_path / "logs").glob("*_sweep_tile_size.json"))
    table = capsys.readouterr().out
    assert "tile 64" in table and "tile 1024" in table and "c Pipelined" in table


def test_an_unknown_sweep_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--sweep", "kernel-size", "--logs", str(tmp_path / "logs")], env={})
    assert exited.value.code == 2 and "--sweep" in capsys.readouterr().err
