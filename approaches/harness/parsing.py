"""The suite's command lines report a mistake in one line, as they report every other.

argparse prints its whole usage block above the error; for a mistyped flag that buries the one line that
matters.  --help still shows the usage.

>>> parser = OneLineParser(prog="run_all.py")
>>> _ = parser.add_argument("--kernel-size", type=int)
>>> parser.parse_args(["--kernel-size", "abc"])
Traceback (most recent call last):
...
SystemExit: 2
"""

import argparse
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose error is one line on stderr (`prog: error: ...; see prog --help`), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
