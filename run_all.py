"""Blur a folder of images with every approach, time them, check they agree with a, and chart it.

    python run_all.py --help          (the same as `blur-suite` and `python -m approaches`)
"""

from approaches.harness.cli import run_as_script

if __name__ == "__main__":
    run_as_script(prog="run_all.py")
