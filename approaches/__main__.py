"""python -m approaches: the same as run_all.py and the blur-suite command."""

from approaches.harness.cli import run_as_script

run_as_script(prog="python -m approaches")
