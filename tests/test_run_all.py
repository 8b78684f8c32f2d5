"""run_all.py end to end: flags, env, the table, logs, JSON, charts, and bad input never stopping a run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from approaches.core import kernel
from approaches.core.images import load_image
from tests.conftest import main
from tests.test_images import bad_inputs

ROOT = Path(__file__).resolve().parent.parent


def run(tmp_path: Path, *args: str, env: dict | None = None) -> int:
    return main([*args, "--logs", str(tmp_path / "logs"), "--charts", str(tmp_path / "charts")], env=env or {})


def test_approach_a_writes_outputs_log_json_and_charts(tmp_path, image_dir, capsys):
    status = run(tmp_path, "--approaches", "a", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                 "--kernel-size", "5", "--json", str(tmp_path / "r.json"), "--repeat", "2")
    assert status == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    (result,) = doc["results"]
    assert result["approach"] == "a" and result["identical_to_a"] and len(result["wall_runs"]) == 2
    assert {i["name"] for i in result["images"]} == {"one", "two", "three"}
    for image in result["images"]:
        assert Path(image["output"]).exists() and image["blur_s"] > 0 and image["load_s"] > 0
    assert {i["mode"] for i in result["images"]} == {"RGBA", "RGB", "L"}
    assert doc["config"]["kernel_size"] == 5 and result["failed"] == []
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    assert "=== a_Sequential Results ===" in log and "Images processed: 3" in log and "Kernel size: 5" in log
    assert (tmp_path / "charts" / "comparison.png").exists() and (tmp_path / "charts" / "timeline_a.png").exists()
    table = capsys.readouterr().out
    assert "a Sequential" in table and "identical to a" in table


def test_bad_images_are_reported_and_the_good_ones_still_processed(tmp_path, image_dir, capsys):
    reasons = bad_inputs(image_dir)
    status = run(tmp_path, "--approaches", "a", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                 "--kernel-size", "3", "--json", str(tmp_path / "r.json"), "--no-charts", "--quiet")
    assert status == 1
    (result,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert {i["name"] for i in result["images"]} == {"one", "two", "three"}
    failed = {Path(f["path"]).name: f["reason"] for f in result["failed"]}
    assert set(failed) == set(reasons)
    for name, reason in reasons.items():
        assert reason in failed[name]
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == len(reasons)


def test_when_no_input_could_be_read_the_table_claims_no_time_per_image_and_no_identity(tmp_path, capsys):
    # Before: a row "0.025 per image ... identical to a: yes" and a log "Average time per image: 0.03s", for 0 images
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.png").write_text("not an image")
    status = run(tmp_path, "--approaches", "a,c", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                 "--no-charts")
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith(("a ", "c "))]
    assert status == 1 and len(rows) == 2 and all(row.split()[-2:] == ["none", "saved"] for row in rows), table
    assert all(row.split()[3] == "-" for row in rows), table  # the per-image column: no image, no time per image
    log = next((tmp_path / "logs").glob("*.txt")).read_text()
    assert "Images processed: 0" in log and "Average time per image: -" in log


@pytest.mark.parametrize("flags,message", [
    (["--kernel-size", "4"], "--kernel-size"),
    (["--kernel-size", "0"], "--kernel-size"),
    (["--kernel-size", "-3"], "--kernel-size"),
    (["--kernel-size", "100001"], "--kernel-size"),
    (["--tile-size", "0"], "--tile-size"),
    (["--tile-size", "-5"], "--tile-size"),
    (["--workers", "0"], "--workers"),
    (["--approaches", "a,z"], "--approaches"),
    (["--kernel", "bogus"], "--kernel must be one of separable, direct"),
])
def test_bad_flags_give_one_line_and_status_2(tmp_path, image_dir, capsys, flags, message):
    assert run(tmp_path, "--input", str(image_dir), "--output", str(tmp_path / "out"), *flags) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_missing_input_directory(tmp_path, capsys):
    assert run(tmp_path, "--input", str(tmp_path / "missing")) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unwritable_output_directory(tmp_path, image_dir, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    assert run(tmp_path, "--input", str(image_dir), "--output", str(blocker / "out")) == 2
    assert "cannot create directory" in capsys.readouterr().err


def test_environment_sets_defaults_and_flags_override_it(tmp_path, image_dir):
    env = {"KERNEL_SIZE": "7", "INPUT_PATH": str(image_dir), "OUTPUT_PATH": str(tmp_path / "env-out"),
           "TILE_SIZE": "64", "NUM_WORKERS": "3"}
    assert run(tmp_path, "--approaches", "a", "--json", str(tmp_path / "r.json"), "--no-charts", "--quiet",
               "--tile-size", "32", env=env) == 0
    config = json.loads((tmp_path / "r.json").read_text())["config"]
    assert (config["kernel_size"], config["tile_size"], config["workers"]) == (7, 32, 3)
    assert (tmp_path / "env-out" / "a" / "one_blurred.png").exists()


def test_bad_environment_value_is_one_line(tmp_path, capsys):
    assert run(tmp_path, env={"KERNEL_SIZE": "big"}) == 2
    assert "KERNEL_SIZE" in capsys.readouterr().err


def test_outputs_keep_the_input_mode(tmp_path, image_dir):
    assert run(tmp_path, "--approaches", "a", "--input", str(image_dir), "--output", str(tmp_path / "out"),
               "--no-charts", "--quiet") == 0
    assert Image.open(tmp_path / "out" / "a" / "one_blurred.png").mode == "RGBA"
    assert Image.open(tmp_path / "out" / "a" / "three_blurred.png").mode == "L"


def test_help_lists_the_flags():
    out = subprocess.run([sys.executable, "run_all.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=True)
    for flag in ("--approaches", "--kernel-size", "--kernel", "--tile-size", "--workers", "--png-level", "--repeat",
                 "--json"):
        assert flag in out.stdout


@pytest.mark.slow
def test_default_input_makes_the_bundled_samples_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--approaches", "a", "--kernel-size", "3", "--no-charts"], env={}) == 0
    # The long silent steps of a first run are announced (before: 5 s of silence)
    err = capsys.readouterr().err
    assert "making 5 sample images" in err and "loading the separable kernel" in err
    made = sorted(p.name for p in (tmp_path / "data" / "input").iterdir())
    assert len(made) >= 5 and all(name.endswith(".png") for name in made)
    assert len(list((tmp_path / "data" / "output" / "a").glob("*_blurred.png"))) == len(made)
    assert list((tmp_path / "logs").glob("*.json"))


@pytest.mark.timeout(120)  # b.shm and c wait on queues: a hang must fail, not stall CI
@pytest.mark.parametrize("approach", ["a", "b.threads", "b.shm", "c", "e", "f", "g"])
def test_kernel_direct_runs_the_direct_kernel_and_is_identical_to_a(tmp_path, image_dir, monkeypatch, capsys,
                                                                     approach):
    # Given a separable kernel that fails loudly (forked b.shm workers inherit the patch)
    def separable_called(*args):
        raise AssertionError("the separable kernel ran under --kernel direct")

    monkeypatch.setattr(kernel, "_blur_rows", separable_called)
    # When the approach runs with --kernel direct on tiles that divide none of the images
    status = run(tmp_path, "--approaches", approach, "--kernel", "direct", "--kernel-size", "5", "--tile-size", "16",
                 "--workers", "2", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                 "--json", str(tmp_path / "r.json"), "--no-charts")
    # Then every output has exactly the direct kernel's whole-image pixels, and the run says which kernel
    assert status == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    (result,) = doc["results"]
    assert doc["config"]["kernel"] == "direct" and result["identical_to_a"] and len(result["images"]) == 3
    for image in result["images"]:
        expected = kernel.blur(load_image(Path(image["source"])).pixels, 5, method="direct")
        assert np.array_equal(load_image(Path(image["output"])).pixels, expected), image["name"]
    assert "Kernel: direct" in next((tmp_path / "logs").glob("*.txt")).read_text()
    assert "kernel 5 (direct)" in capsys.readouterr().out


def test_blur_kernel_environment_sets_the_kernel_and_the_flag_overrides_it(tmp_path, image_dir):
    args = ["--approaches", "a", "--kernel-size", "3", "--input", str(image_dir), "--output", str(tmp_path / "out"),
            "--json", str(tmp_path / "r.json"), "--no-charts", "--quiet"]
    assert run(tmp_path, *args, env={"BLUR_KERNEL": "direct"}) == 0
    assert json.loads((tmp_path / "r.json").read_text())["config"]["kernel"] == "direct"
    assert run(tmp_path, *args, "--kernel", "separable", env={"BLUR_KERNEL": "direct"}) == 0
    assert json.loads((tmp_path / "r.json").read_text())["config"]["kernel"] == "separable"


@pytest.mark.parametrize("entry,name", [("run_all.py", "run_all.py"), ("approaches", "python -m approaches"),
                                        ("console script", "blur-suite")])
def test_each_entry_point_names_itself_in_its_help_and_points_to_serve_and_service(monkeypatch, capsys, entry, name):
    # Before: blur-suite --help and python -m approaches --help said "usage: run_all.py" and never named service.
    # Each entry runs here as Python would run it, without an interpreter's start per case.
    import runpy
    from importlib.metadata import entry_points

    monkeypatch.setattr(sys, "argv", [entry, "--help"])
    with pytest.raises(SystemExit) as ended:
        if entry == "run_all.py":
            runpy.run_path(str(ROOT / "run_all.py"), run_name="__main__")
        elif entry == "approaches":
            runpy.run_module("approaches", run_name="__main__")
        else:
            (script,) = entry_points(group="console_scripts", name="blur-suite")
            script.load()()
    out = capsys.readouterr().out
    assert ended.value.code == 0 and out.startswith(f"usage: {name} ")
    assert f"`{name} serve --help`" in out and f"`{name} service --help`" in out


@pytest.mark.parametrize("argv", [["--aproaches", "a"], ["--kernel-size", "abc"], ["serve", "--port", "abc"],
                                  ["service", "--mode", "bogus"]])
def test_a_flag_argparse_refuses_is_one_line_too(capsys, argv):
    # Before: argparse printed its whole usage block (8 to 11 lines) above the one line that matters
    from approaches.harness.cli import run_as_script

    with pytest.raises(SystemExit) as ended:
        run_as_script(argv, prog="run_all.py")
    err = capsys.readouterr().err
    assert ended.value.code == 2 and len(err.strip().splitlines()) == 1 and "error: " in err and "--help" in err


# --- subcommands, and the spellings from before them ------------------------------------------------------


@pytest.mark.parametrize("old,new", [
    ([], ["run"]),
    (["--approaches", "a", "--quick"], ["run", "--approaches", "a", "--quick"]),
    (["--workers", "2", "--chaos", "e,f", "--scenarios", "junk"], ["chaos", "e,f", "--workers", "2", "--scenarios",
                                                                    "junk"]),
    (["--sweep", "workers", "--approaches", "a"], ["sweep", "workers", "--approaches", "a"]),
    (["--sweep=tile-size"], ["sweep", "tile-size"]),
    (["--compare", "old.json", "new.json"], ["compare", "old.json", "new.json"]),
    (["--redraw", "run.json", "--charts", "c"], ["redraw", "run.json", "--charts", "c"]),
], ids=["nothing", "run", "chaos", "sweep", "sweep=", "compare", "redraw"])
def test_every_spelling_from_before_subcommands_means_its_subcommand(old, new):
    from approaches.harness.cli import parse

    def parsed(argv: list[str]) -> dict:
        return {key: value for key, value in vars(parse(argv)).items() if key != "command_parser"}

    assert parsed(old) == parsed(new) and parsed(new)["command"] == new[0]


def test_chaos_without_letters_kills_in_every_approach_that_has_workers_to_kill():
    from approaches.harness.cli import config_from, parse

    assert config_from(parse(["chaos"]), {}).approaches == ("e", "f", "g", "h", "j")
    assert config_from(parse(["--chaos", "g,e"]), {}).approaches == ("g", "e")


@pytest.mark.parametrize("command", ["run", "chaos", "sweep", "compare", "redraw", "web", "serve", "service"])
def test_each_subcommand_has_its_own_help(capsys, command):
    from approaches.harness.cli import run_as_script

    with pytest.raises(SystemExit) as ended:
        run_as_script([command, "--help"], prog="run_all.py")
    out = capsys.readouterr().out
    assert ended.value.code == 0 and out.startswith("usage: ")
    assert "--approaches" in out if command in ("run", "sweep") else "--approaches" not in out


def test_a_flag_a_subcommand_does_not_know_is_one_line_pointing_to_its_help(capsys):
    from approaches.harness.cli import run_as_script

    with pytest.raises(SystemExit) as ended:
        run_as_script(["chaos", "e", "--quick"], prog="run_all.py")  # chaos times no rounds
    assert ended.value.code == 2
    assert capsys.readouterr().err == ("run_all.py chaos: error: unrecognized arguments: --quick "
                                       "(see run_all.py chaos --help)\n")


def test_help_and_version_import_no_numpy_numba_matplotlib_or_dask():
    # Before: --help imported every lesson, numba and redis first (0.4-0.8 s); help is for reading, at once.
    # And importlib.metadata (20 ms), which only a results file's provenance needs
    script = ("import sys\nfrom approaches.harness.cli import run_as_script\n"
              "for argv in (['--help'], ['--version'], ['run', '--help'], ['chaos', '--help'], ['sweep', '--help'],"
              " ['redraw', '--help'], ['compare', '--help'], ['--sweep', 'workers', '--help']):\n"
              "    try:\n        run_as_script(argv)\n    except SystemExit:\n        pass\n"
              "heavy = ('numpy', 'numba', 'matplotlib', 'dask', 'distributed', 'redis', 'PIL', 'tqdm',"
              " 'importlib.metadata')\n"
              "print(sorted(name for name in heavy if name in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr == "[]\n"


def test_a_run_of_c_imports_no_broker_amqp_or_dask_client(tmp_path, image_dir):
    # Before: prepare imported the broker's, RabbitMQ's and dask's checks for every run (redis alone 0.1 s of a
    # one-approach process), though only e-g, j and h need them
    script = ("import sys\nfrom approaches.harness.cli import main\n"
              f"status = main(['--approaches', 'c', '--quick', '--no-charts', '--quiet', '--input', {str(image_dir)!r},"
              f" '--output', {str(tmp_path / 'out')!r}, '--logs', {str(tmp_path / 'logs')!r}])\n"
              "heavy = ('redis', 'pika', 'distributed', 'approaches.cluster.broker', 'approaches.cluster.amqp')\n"
              "print(status, sorted(name for name in heavy if name in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr.splitlines()[-1] == "0 []"


def test_the_command_exits_without_the_interpreter_collecting_what_the_run_loaded(tmp_path, image_dir):
    # Before: after the run, the interpreter's last garbage collections walked every object numba, numpy and the
    # lessons had made (0.2-0.4 s of a one-approach process, doing nothing); frozen, they are not walked
    script = ("import gc, sys\nfrom approaches.harness.cli import run_as_script\n"
              f"argv = ['--approaches', 'a', '--quick', '--no-charts', '--quiet', '--input', {str(image_dir)!r},"
              f" '--output', {str(tmp_path / 'out')!r}, '--logs', {str(tmp_path / 'logs')!r}]\n"
              "try:\n    run_as_script(argv)\nexcept SystemExit as end:\n"
              "    print(end.code, gc.get_freeze_count() > 0, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stderr.splitlines()[-1] == "0 True"


def test_every_approach_names_a_run_function_its_lesson_has():
    # The registry imports a lesson at its first run; a renamed function must fail here, not at a run
    import importlib

    from approaches.registry import APPROACHES

    for approach in APPROACHES.values():
        module, function = approach.run.__qualname__.split(".")
        assert callable(getattr(importlib.import_module(f"approaches.{module}"), function)), approach.letter
