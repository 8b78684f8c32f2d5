"""Refresh requirements.lock: the newest versions within pyproject's ranges, written only once the tests pass.

    python tools/refresh_lock.py            resolve, install into a scratch venv, run the tests, then write
    python tools/refresh_lock.py --no-test  resolve and write (to see what would change)
    python tools/refresh_lock.py --keep     keep every version the lock pins; resolve only what pyproject added

A maintainer's tool: it needs uv (`pip install uv`), which resolves for every platform at once
(`uv pip compile --universal`).  Users never run uv: they install with pip through the lock
(`PIP_CONSTRAINT=requirements.lock`), which also reaches pip's isolated build step, so the build backend and
pip itself are pinned too.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PYTHON = "3.11"  # the oldest Python pyproject allows: uv resolves for it and every newer one


def resolve(target: Path, keep: bool) -> None:
    """Write the lock for pyproject's dependencies, every extra, the build backend and pip to target (the newest
    within pyproject's ranges, or with keep the versions the lock pins already, where they still fit)."""
    uv = shutil.which("uv") or sys.exit("refresh_lock: uv is not installed (pip install uv)")
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    if keep:
        shutil.copyfile(LOCK, target)  # uv prefers the versions an existing output file pins
    subprocess.run([uv, "pip", "compile", "--quiet", "--universal", "--python-version", PYTHON, "--all-extras",
                    *([] if keep else ["--upgrade"]), "--custom-compile-command", "python tools/refresh_lock.py",
                    "pyproject.toml", "-", "-o", str(target)],  # "-": pip and the build backend, from stdin
                   input="\n".join(["pip", *build]), text=True, cwd=ROOT, check=True)


def tests_pass(lock: Path, scratch: Path) -> bool:
    """Install the suite through lock into a fresh venv, as the README does, and run its test command."""
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {**os.environ, "PIP_CONSTRAINT": str(lock)}
    for what in (["--upgrade", "pip"], ["-e", ".[dev,bench]"]):
        subprocess.run([python, "-m", "pip", "install", "-q", *what], cwd=ROOT, env=env, check=True)
    return subprocess.run([python, "-m", "pytest", "-q"], cwd=ROOT, env=env).returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-test", action="store_true", help="write the new lock without running the tests")
    parser.add_argument("--keep", action="store_true", help="keep the versions the lock pins; add what is new")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="blur-lock-") as scratch:
        candidate = Path(scratch) / "requirements.lock"
        resolve(candidate, args.keep)
        if not args.no_test and not tests_pass(candidate, Path(scratch)):
            print("refresh_lock: the tests failed with the new versions; requirements.lock is unchanged",
                  file=sys.stderr)
            return 1
        shutil.copyfile(candidate, LOCK)
    print(f"refresh_lock: wrote {LOCK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
