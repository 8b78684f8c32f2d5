"""run_all.py sweep kernel-size|image-size|images and run_all.py crossover: the work grows, each approach is
measured (time and its process tree's memory), checked against a, and the fastest named per workload."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from approaches.core.images import find_images, output_path
from approaches.harness.crossover import winner
from approaches.harness.scaling import _check_against_a
from approaches.harness.workloads import Workload, inputs_for
from tests.conftest import ctrl_c_as_in_a_terminal, main

ROOT = Path(__file__).resolve().parent.parent


def flags(tmp_path: Path, *more: str) -> list[str]:
    return ["--output", str(tmp_path / "out"), "--json", str(tmp_path / "doc.json"), "--logs", str(tmp_path / "logs"),
            "--charts", str(tmp_path / "charts"), *more]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_images_sweep_measures_each_approach_in_a_process_of_its_own_and_checks_it_against_a(
        tmp_path, image_dir, capsys):
    status = main(["sweep", "images", "--values", "1,3", "--approaches", "b.threads", "--input", str(image_dir),
                   "--kernel-size", "5", *flags(tmp_path)], env={})
    doc = json.loads((tmp_path / "doc.json").read_text())
    assert status == 0, capsys.readouterr().err
    assert doc["kind"] == "scaling" and doc["config"]["sweep"] == "images"
    assert [r["approach"] for r in doc["results"]] == ["a", "b.threads"]  # a always: every point's reference
    for result in doc["results"]:
        assert [p["value"] for p in result["points"]] == [1, 3]
        for point in result["points"]:
            assert point["identical_to_a"] is True and point["wall_s"] > 0 and point["process_s"] > point["wall_s"]
            assert point["peak_bytes"] > 30 * 2**20  # an interpreter with numpy and numba loaded, at least
        assert result["time_exponent"] is not None and result["memory_exponent"] is not None
    assert [p["images"] for p in doc["results"][0]["points"]] == [1, 3]
    assert (tmp_path / "charts" / "sweep_images.png").stat().st_size > 0
    assert not list((tmp_path / "logs").glob("*.partial.json"))  # the finished document replaces it
    table = capsys.readouterr().out
    assert "time exp" in table and "MiB" in table


def test_a_point_whose_output_differs_from_a_is_marked_and_named(tmp_path):
    sources = find_images(_two_images(tmp_path / "in"))
    out = tmp_path / "out"
    for letter in ("a", "c"):
        for source in sources:
            pixels = np.asarray(Image.open(source.path)).copy()
            if letter == "c" and source.name == "two":
                pixels[0, 0] ^= 1
            output_path(out, letter, source.name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(output_path(out, letter, source.name))
    doc = {"results": [{"approach": letter, "points": [{"value": 2, "wall_s": 1.0}]} for letter in ("a", "c")]}
    _check_against_a(doc, 2, sources, out)
    a, c = (r["points"][0] for r in doc["results"])
    assert a["identical_to_a"] is True
    assert c["identical_to_a"] is False and c["differs"] == "two: pixels differ from a's"


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", "kernel-size", "--values", "4"], "--values: kernel-size must be whole numbers (odd) from 1 to 255"),
    (["sweep", "images", "--values", "0,2"], "--values: images must be whole numbers from 1 to 1024, got '0,2'"),
    (["sweep", "image-size", "--values", "big"], "--values: image-size must be numbers from 0.01 to 256"),
    (["sweep", "tile-size", "--values", "64"], "--values is for the sweeps of the work"),
    (["crossover", "--image-counts", "2000"], "--image-counts: images must be whole numbers from 1 to 1024"),
    (["crossover", "--input", "somewhere"], "crossover makes its own images"),
    (["sweep", "image-size", "--values", "1,100"], "--values: images of 100 MP (11547x8660) are over the limit of "
                                                   "89,478,485 pixels an image; raise it with --max-pixels"),
    (["crossover", "--image-sizes", "120"], "--image-sizes: images of 120 MP"),
])
def test_a_bad_sweep_or_map_argument_is_one_line_naming_the_flag_and_the_range(tmp_path, capsys, argv, message):
    assert main([*argv, *flags(tmp_path)], env={}) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_workload_is_made_once_as_deterministic_photos_under_the_output_folder(tmp_path):
    workload = Workload(megapixels=0.01, images=3, kernel_size=21)
    first = inputs_for(workload, tmp_path / "w")
    again = inputs_for(workload, tmp_path / "w")
    assert [s.path for s in first] == [s.path for s in again] and len(first) == 3
    assert Image.open(first[0].path).size == workload.size == (115, 87)
    other = inputs_for(workload, tmp_path / "elsewhere")
    assert first[1].path.read_bytes() == other[1].path.read_bytes()  # the same recipe, the same pixels


def test_the_person_s_images_are_resized_for_an_image_size_sweep_and_taken_round_robin(tmp_path):
    given = find_images(_two_images(tmp_path / "in"))
    made = inputs_for(Workload(0.01, 3, 21), tmp_path / "w", given, resize=True)
    assert [Image.open(s.path).size for s in made] == [(115, 87)] * 3
    assert made[0].path.read_bytes() == made[2].path.read_bytes()  # the first image again


@pytest.mark.timeout(300)
def test_crossover_names_the_fastest_of_the_approaches_per_cell_from_one_command(tmp_path, capsys):
    status = main(["crossover", "--approaches", "a,b.threads", "--image-sizes", "0.01,0.02", "--kernel-sizes", "3",
                   "--image-counts", "1", *flags(tmp_path)], env={})
    doc = json.loads((tmp_path / "doc.json").read_text())
    assert status == 0, capsys.readouterr().err
    first, second = doc["maps"]
    assert (first["x"]["name"], first["y"]["name"], second["x"]["name"]) == ("image-size", "kernel-size", "images")
    assert [(c["x"], c["y"]) for c in first["cells"]] == [(0.01, 3), (0.02, 3)]
    assert [(c["x"], c["y"]) for c in second["cells"]] == [(1, 0.01), (1, 0.02)]
    for cell in first["cells"] + second["cells"]:
        assert {cell["fastest"], cell["runner_up"]} == {"a", "b.threads"} and cell["margin"] >= 1.0
    assert (tmp_path / "charts" / "crossover.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "fastest by MP per image" in out and doc["config"]["machine"] in out


def _measured(letter: str, runs: list[float], failed: bool = False) -> SimpleNamespace:
    return SimpleNamespace(approach=SimpleNamespace(letter=letter), wall_runs=runs, wall_s=float(np.median(runs)),
                           outcome=SimpleNamespace(failed=[SimpleNamespace(path="x.png", reason="bad")] if failed
                                                   else []), mismatches=[])


def test_the_margin_is_the_runner_up_over_the_fastest_and_overlapping_runs_are_a_tie():
    clear = winner([_measured("a", [2.0, 2.1, 2.2]), _measured("c", [1.0, 1.1, 1.2])])
    assert (clear["fastest"], clear["runner_up"], clear["margin"], clear["tie"]) == ("c", "a", 1.909, False)
    close = winner([_measured("a", [1.0, 1.15, 1.3]), _measured("c", [1.05, 1.1, 1.2])])
    assert close["fastest"] == "c" and close["tie"] is True  # c's slowest run is slower than a's fastest
    broken = winner([_measured("a", [2.0]), _measured("c", [1.0], failed=True)])
    assert broken["fastest"] == "a" and broken["runner_up"] is None  # an approach that failed cannot win


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_keeps_the_points_measured_so_far(tmp_path, image_dir):
    process = subprocess.Popen(
        [sys.executable, "run_all.py", "sweep", "images", "--values", "1,2,3,4,5,6", "--approaches", "a",
         "--input", str(image_dir), "--quick", "--kernel-size", "3", *flags(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 240
    while not _points_kept(tmp_path / "logs") and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    (partial,) = (tmp_path / "logs").glob("*.partial.json")
    assert "the points measured are kept in" in err and str(partial.name) in err
    assert len(json.loads(partial.read_text())["results"][0]["points"]) >= 1


def _points_kept(logs: Path) -> bool:
    for path in logs.glob("*.partial.json"):
        try:
            return bool(json.loads(path.read_text())["results"][0]["points"])
        except (ValueError, KeyError, IndexError, OSError):
            return False
    return False


def _two_images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    for name in ("one", "two"):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder
