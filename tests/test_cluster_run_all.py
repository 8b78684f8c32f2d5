"""run_all.py with the cluster approaches: d, e and f give a's pixels on both brokers; --broker and BROKER_URL."""

import json

import pytest

from tests.conftest import main


@pytest.mark.parametrize("broker", [
    # embedded:// runs each of these in its own tests (d always starts a process)
    pytest.param("memory://", marks=pytest.mark.timeout(60)),
])
def test_a_d_e_and_f_agree_on_every_pixel(tmp_path, image_dir, broker):
    status = main(["--approaches", "a,d,e,f", "--input", str(image_dir), "--output", str(tmp_path / "out"),
                   "--kernel-size", "5", "--tile-size", "16", "--workers", "2", "--json", str(tmp_path / "r.json"),
                   "--logs", str(tmp_path / "logs"), "--no-charts", "--quiet"], env={"BROKER_URL": broker})
    assert status == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["config"]["broker"] == broker
    results = {r["approach"]: r for r in doc["results"]}
    assert set(results) == {"a", "d", "e", "f"} and all(r["identical_to_a"] for r in results.values())
    assert results["d"]["stage_s"]["start"] > 0 and results["e"]["stage_s"]["start"] > 0


@pytest.mark.timeout(60)
def test_an_unreachable_broker_is_one_line_without_the_password_and_status_2(tmp_path, image_dir, capsys):
    status = main(["--approaches", "a,e", "--broker", "redis://user:hunter2@127.0.0.1:1/0", "--input",
                   str(image_dir), "--output", str(tmp_path / "out"), "--logs", str(tmp_path / "logs"), "--no-charts",
                   "--quiet"], env={})
    assert status == 2  # nothing listens there: said once, before any approach runs
    err = capsys.readouterr().err
    assert err.startswith("run_all.py: error: cannot reach redis://user:***@127.0.0.1:1/0") and "hunter2" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "logs").exists()


@pytest.mark.parametrize("args,env", [(["--broker", "http://x"], {}), ([], {"BROKER_URL": "kafka://x"})])
def test_a_bad_broker_url_is_one_line_and_status_2(tmp_path, image_dir, capsys, args, env):
    assert main(["--input", str(image_dir), "--output", str(tmp_path / "out"), *args], env=env) == 2
    err = capsys.readouterr().err
    assert "--broker" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["x", "e,d", ","])
def test_an_unknown_chaos_approach_is_one_line_and_status_2(tmp_path, image_dir, capsys, value):
    assert main(["--chaos", value, "--input", str(image_dir), "--output", str(tmp_path / "out")], env={}) == 2
    err = capsys.readouterr().err
    assert err.startswith("run_all.py: error: chaos: unknown") and len(err.strip().splitlines()) == 1
