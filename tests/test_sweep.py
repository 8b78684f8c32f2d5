"""run_all.py --sweep tile-size|workers: every chosen approach at every value, checked against a, tabled and charted."""

import json

import pytest

from approaches.core.config import cores_present
from approaches.harness.cli import SWEEPS
from approaches.harness.sweep import AXES
from tests.conftest import main


def run_sweep(tmp_path, image_dir, *flags: str, kernel_size: int = 3) -> tuple[int, dict]:
    status = main(["--input", str(image_dir), "--output", str(tmp_path / "out"), "--kernel-size", str(kernel_size),
                   "--json", str(tmp_path / "sweep.json"), "--logs", str(tmp_path / "logs"), *flags], env={})
    return status, json.loads((tmp_path / "sweep.json").read_text())


@pytest.mark.timeout(120)
def test_sweep_runs_each_approach_at_each_tile_size_and_draws_the_chart(tmp_path, image_dir, capsys):
    status, doc = run_sweep(tmp_path, image_dir, "--sweep", "tile-size", "--approaches", "a,b.threads,c",
                            "--charts", str(tmp_path / "charts"))
    assert status == 0
    assert doc["axis"]["values"] == list(AXES["tile-size"].values) == [64, 128, 256, 512, 1024]
    assert doc["config"]["sweep"] == "tile_size" and doc["config"]["tile_size"] is None
    assert [r["approach"] for r in doc["results"]] == ["a", "b.threads", "c"]
    for result in doc["results"][1:]:
        assert len(result["wall_s"]) == len(result["blur_s"]) == 5
        assert all(result["identical_to_a"]) and all(wall > 0 for wall in result["wall_s"])
    assert (tmp_path / "charts" / "sweep_tile_size.png").stat().st_size > 0
    assert list((tmp_path / "logs").glob("*_sweep_tile_size.json"))
    assert doc["kind"] == "sweep" and doc["schema_version"] >= 2 and doc["provenance"]["packages"]["numpy"]
    assert doc["method"]["rounds"] == [["a", "b.threads", "c"]]  # at the first value; one pass in tests
    table = capsys.readouterr().out
    assert "tile 64" in table and "tile 1024" in table and "c Pipelined" in table


@pytest.mark.timeout(120)
def test_a_tiles_nothing_so_a_sweep_measures_it_once(tmp_path, image_dir):
    """a blurs whole images on one lane: neither tile size nor workers changes its work, so it runs once."""
    _, doc = run_sweep(tmp_path, image_dir, "--sweep", "tile-size", "--approaches", "a", "--no-charts")
    (a,) = doc["results"]
    assert a["varies"] is False and len(a["wall_s"]) == len(a["wall_runs"]) == 1 and a["identical_to_a"] == [True]


@pytest.mark.timeout(120)
def test_workers_sweep_goes_from_one_worker_to_twice_the_cores(tmp_path, image_dir, capsys):
    status, doc = run_sweep(tmp_path, image_dir, "--sweep", "workers", "--approaches", "a,b.threads,c,g",
                            "--no-charts", "--repeat", "1")
    assert status == 0
    counts = list(range(1, 2 * cores_present() + 1))
    assert doc["axis"]["values"] == counts and doc["config"]["sweep"] == "workers"
    assert doc["config"]["workers"] is None and doc["config"]["cores"] == cores_present()
    by_letter = {r["approach"]: r for r in doc["results"]}
    assert len(by_letter["a"]["wall_s"]) == 1
    for letter in ("b.threads", "c", "g"):
        result = by_letter[letter]
        assert len(result["wall_s"]) == len(result["speedup"]) == len(counts) and all(result["identical_to_a"])
        assert result["speedup"][0] == 1.0
    assert list((tmp_path / "logs").glob("*_sweep_workers.json"))
    table = capsys.readouterr().out
    assert f"workers {len(counts)}" in table and "g Multithreaded service" in table and "1.00×" in table


@pytest.mark.timeout(120)
def test_workers_sweep_draws_its_chart(tmp_path, image_dir):
    status, _ = run_sweep(tmp_path, image_dir, "--sweep", "workers", "--approaches", "a,b.threads",
                          "--charts", str(tmp_path / "charts"))
    assert status == 0 and (tmp_path / "charts" / "sweep_workers.png").stat().st_size > 0


@pytest.mark.timeout(120)
def test_a_sweep_blurs_with_the_kernel_asked_for(tmp_path, image_dir):
    """--kernel reaches every approach at every value: at k = 5 one pixel of these images differs between the
    separable and the direct kernel, so an approach that fell back to separable would differ from the reference."""
    _, doc = run_sweep(tmp_path, image_dir, "--sweep", "workers", "--approaches", "b.threads,g", "--kernel", "direct",
                       "--no-charts", kernel_size=5)
    assert doc["config"]["kernel"] == "direct"
    assert all(all(r["identical_to_a"]) for r in doc["results"])


def test_an_unknown_sweep_is_one_line_and_status_2(tmp_path, capsys):
    assert main(["--sweep", "tile-sizes", "--logs", str(tmp_path / "logs")], env={}) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "sweep must be one of tile-size, workers, kernel-size, image-size, images, got 'tile-sizes'" in err


def test_every_sweep_the_flag_accepts_has_an_axis():
    assert set(AXES) == set(SWEEPS)
