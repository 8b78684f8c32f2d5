"""requirements.lock pins what CI tested: every dependency pyproject names is in it, at a version pyproject allows."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def pinned(lock_text: str) -> dict[str, list[str]]:
    """name -> the versions the lock pins (one per Python-version fork).

    >>> pinned("numpy==2.4.6 ; python_version < '3.12'\\n    # via x\\nnumpy==2.5.5 ; python_version > '3.11'")
    {'numpy': ['2.4.6', '2.5.5']}
    """
    versions: dict[str, list[str]] = {}
    for line in lock_text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, version = line.split(";")[0].strip().partition("==")
            versions.setdefault(canonicalize_name(name), []).append(version)
    return versions


def declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    names = [*project["project"]["dependencies"], *project["build-system"]["requires"], "pip"]
    names += [name for extra in project["project"]["optional-dependencies"].values() for name in extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize("requirement", declared(), ids=str)
def test_every_dependency_is_locked_within_its_range(requirement):
    versions = pinned((ROOT / "requirements.lock").read_text()).get(canonicalize_name(requirement.name))
    assert versions, f"{requirement.name} is not in requirements.lock: run python tools/refresh_lock.py"
    for version in versions:
        assert requirement.specifier.contains(version, prereleases=True), \
            f"requirements.lock pins {requirement.name}=={version}, outside pyproject's {requirement.specifier}"
