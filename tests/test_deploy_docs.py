"""docs/deploy/ cannot drift from the program: every command its compose file and Kubernetes manifests run is
parsed by the suite's own command line (or, for dask's, checked against `dask ... --help`)."""

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from approaches.harness.cli import parse
from approaches.harness.service import _parser as service_parser

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) for every container of the compose file and the manifests, entrypoint included."""
    found = []
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        if not service["image"].startswith(("valkey/", "rabbitmq:")):
            entry = service.get("entrypoint", ["blur-suite"])
            found.append((f"compose {name}", [*entry, *service.get("command", [])]))
    for manifest in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(manifest.read_text()):
            spec = (doc or {}).get("spec", {})
            pod = spec.get("template", {}).get("spec", {})
            for container in pod.get("containers", []):
                if container["image"] == "blur-suite":
                    entry = container.get("command", ["blur-suite"])
                    found.append((f"{manifest.name} {container['name']}", [*entry, *container.get("args", [])]))
    return found


def test_every_file_parses_and_names_the_image_by_a_parameter():
    yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for manifest in (DEPLOY / "k8s").glob("*.yaml"):
        list(yaml.safe_load_all(manifest.read_text()))
    assert "${BLUR_SUITE_IMAGE" in (DEPLOY / "docker-compose.yml").read_text()
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["name"] == "blur-suite"
    assert 'ENTRYPOINT ["blur-suite"]' in (DEPLOY / "Dockerfile").read_text()
    roles = {where.split()[-1] for where, _ in commands()}
    assert {"coordinator", "worker", "assembler", "scheduler", "client"} <= roles


@functools.cache
def dask_help(command: str) -> str:
    """`dask <command> --help`, asked once per command (each asking starts an interpreter that imports dask)."""
    return subprocess.run([sys.executable, "-m", "distributed.cli.dask_" + command, "--help"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("where,argv", commands(), ids=[where for where, _ in commands()])
def test_every_command_is_one_the_suite_or_dask_accepts(where, argv):
    program, *args = (arg.replace("$(POD_NAME)", "blur-worker-1") for arg in argv)
    if program == "blur-suite" and args[:1] == ["service"]:
        service_parser().parse_args(args[1:])  # exits (SystemExit) on a flag it does not know
    elif program == "blur-suite":
        parse(args)
    else:
        assert program == "dask", where
        usage = dask_help(args[0])
        for flag in (arg for arg in args[1:] if arg.startswith("--")):
            assert flag in usage, (where, flag)


UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
INSTALLED = "/opt/blur-suite/.venv/bin/blur-suite"  # where the units expect the suite's command


@pytest.mark.parametrize("unit", UNITS, ids=[unit.name for unit in UNITS])
def test_every_systemd_unit_verifies_and_runs_a_command_the_suite_accepts(tmp_path, unit):
    text = unit.read_text()
    (command,) = (line.removeprefix("ExecStart=") for line in text.splitlines() if line.startswith("ExecStart="))
    program, *args = command.replace("${BROKER_URL}", "redis://db:6379/0").replace("${BLUR_RUN}", "0123456789abcdef") \
        .replace("%H-%i", "host-1").split()
    assert program == INSTALLED and args[0] in ("web", "service")
    if args[0] == "service":
        service_parser().parse_args(args[1:])
    else:
        from approaches.web.serve import build_parser

        build_parser().parse_args(args[1:])
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here (it comes with systemd): the units are verified where it is")
    # systemd-analyze checks that the executable exists: point the unit at this suite's own command
    here = shutil.which("blur-suite") or str(Path(sys.executable).with_name("blur-suite"))
    copy = tmp_path / unit.name.replace("@.", "@1.")  # a template is verified as one of its instances
    copy.write_text(text.replace(INSTALLED, here))
    done = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    problems = [line for line in done.stderr.splitlines() if unit.name.split("@")[0] in line or "Failed" in line]
    assert done.returncode == 0 and not problems, done.stderr
