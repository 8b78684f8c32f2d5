"""Charts a person reads in one look: every stage its own colour, told apart under colour-vision deficiencies;
a thin bar keeps its colour; waits are drawn, and named, as waits."""

import ast
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visualize import charts

# Machado, Oliveira & Fernandes (2009), severity 1.0, applied to linear RGB.
DEFICIENCIES = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
MIN_DELTA_E = 12  # CIE76: about where two small patches stop being mistaken for one another


def rgb(colour: str) -> np.ndarray:
    return np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], float)


def lab_as_seen(colour: str, deficiency: str) -> np.ndarray:
    srgb = rgb(colour) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(DEFICIENCIES[deficiency] @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / [0.95047, 1.0, 1.08883]  # relative to D65 white
    f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def test_every_stage_an_approach_records_has_a_colour_of_its_own():
    recorded = {"start", "load", "cut", "send", "blur", "assemble", "save", "blocked", "scatter", "exchange",
                "gather", "wait"}
    assert recorded <= set(charts.STAGE_COLOURS)
    colours = [*charts.STAGE_COLOURS.values(), charts.OTHER_COLOUR]
    assert len(set(colours)) == len(colours)


@pytest.mark.parametrize("deficiency", list(DEFICIENCIES))
def test_stage_colours_stay_distinct_under_colour_vision_deficiencies(deficiency):
    colours = {**charts.STAGE_COLOURS, "other": charts.OTHER_COLOUR, "background": "#FFFFFF"}
    for (one, a), (two, b) in itertools.combinations(colours.items(), 2):
        distance = float(np.linalg.norm(lab_as_seen(a, deficiency) - lab_as_seen(b, deficiency)))
        assert distance >= MIN_DELTA_E, f"{one} and {two} look alike under {deficiency} (ΔE {distance:.1f})"


def test_a_half_millisecond_blur_bar_in_a_ten_second_run_is_still_its_stages_colour(tmp_path):
    # Given a 10 s run in which one lane blurs for 0.5 ms, among enough spans for the old edge rule to apply
    spans = [{"lane": "worker-1", "stage": "blur", "image": "one", "tile": 7, "start": 4.0, "end": 4.0005},
             {"lane": "coordinator", "stage": "load", "image": "one", "tile": None, "start": 0.0, "end": 1.0}]
    spans += [{"lane": "worker-2", "stage": "blocked", "image": "", "tile": None, "start": i * 0.01,
               "end": i * 0.01 + 0.005} for i in range(50)]
    result = {"approach": "b", "title": "B", "wall_s": 10.0, "wall_runs": [10.0], "images": [], "spans": spans}
    path = charts.draw_timeline({"config": {}}, result, tmp_path / "t.png")
    # Then pixels of the blur colour are drawn (not washed out to white or a pale tint of it), left of the legend
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    plot = pixels[:, : pixels.shape[1] * 7 // 10]
    orange = np.abs(plot - rgb(charts.STAGE_COLOURS["blur"])).max(axis=-1) <= 8
    assert orange.sum() >= 20  # at least a pixel wide, down most of the lane's height


def test_the_legend_tells_a_blocked_lane_from_a_rank_waiting_for_the_others_and_both_from_work():
    handles = charts._stage_handles(["blur", "blocked", "wait"])
    labels = [handle.get_label() for handle in handles]
    assert labels == ["blur", "blocked: a lane waiting for work or room", "wait: a rank waiting for the others"]
    assert all(handle.get_hatch() for handle in handles[1:]) and not handles[0].get_hatch()


def test_a_title_wider_than_its_chart_is_wrapped_to_the_chart_not_cut_off():
    # Before: the chaos chart of one approach and two scenarios (6.4 in wide) cut its 84-character title off
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 7.0))
    charts._title(fig, "Chaos — tiles lost, tiles done twice, and the time to recover when pods are killed")
    lines = fig.get_suptitle().splitlines()
    assert len(lines) == 2 and all(len(line) <= 6.4 * charts.TITLE_CHARS_PER_INCH for line in lines)


def test_python_m_visualize_redraws_a_results_file_and_says_a_bad_one_in_one_line(tmp_path, capsys):
    from visualize.__main__ import main as visualize

    doc = {"kind": "run", "config": {"timestamp": "t"}, "results": [
        {"approach": "a", "title": "Sequential", "wall_s": 1.0, "wall_runs": [1.0], "stage_s": {"blur": 0.5},
         "images": [], "spans": [{"lane": "main", "stage": "blur", "image": "x", "tile": None, "start": 0.0,
                                  "end": 0.5}]}]}
    (tmp_path / "run.json").write_text(json.dumps(doc))
    assert visualize([str(tmp_path / "run.json"), "--charts", str(tmp_path / "charts")]) == 0
    assert {p.name for p in (tmp_path / "charts").iterdir()} == {"comparison.png", "timeline_a.png"}
    assert visualize([str(tmp_path / "none.json")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"python -m visualize: error: {tmp_path}/none.json: "
                                                            "no such file"]


def test_the_charting_package_imports_nothing_from_the_approaches():
    # The layout's promise: charts are a pure function of a results document, drawn without the suite
    imported = set()
    for path in Path(charts.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
    assert "visualize" in imported and "approaches" not in imported
