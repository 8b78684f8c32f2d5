"""Every command README.md and docs/ show runs in CI (tools/run_doc_commands.py); here, cheaply, that each block
is one the runner can run: its rule is one of the three, and the README's set-up commands run as typed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

import run_doc_commands  # a script beside the package, not part of it


def test_every_documented_block_has_a_rule_the_runner_knows():
    found = run_doc_commands.documented()  # raises RuleError naming the page and line of an unknown rule
    assert found and all(block.rule == "run" or block.rule.startswith(("skip: ", "serve: ", "exit="))
                         for block in found)


def test_the_readme_s_two_set_up_commands_come_first_and_run_as_typed():
    first = run_doc_commands.documented()[0]
    lines = first.command.splitlines()
    assert first.where.startswith("README.md:") and first.rule == "run" and len(lines) == 2
    assert lines[0].endswith("python run_all.py") and lines[1].endswith("python -m pytest")
    assert all("requirements.lock" in line for line in lines)
