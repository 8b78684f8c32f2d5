"""The suite's command lines report a mistake in one line, as they report every other, and name it as a flag.

argparse prints its whole usage block above the error; for a mistyped flag that buries the one line that
matters.  --help still shows the usage.  A setting core refuses is named in words (``tile size must be ...``);
`in_flags` names it as the flag a person typed.

>>> parser = OneLineParser(prog="run_all.py")
>>> _ = parser.add_argument("--kernel-size", type=int)
>>> parser.parse_args(["--kernel-size", "abc"])
Traceback (most recent call last):
...
SystemExit: 2
"""

import argparse
from collections.abc import Mapping
from typing import NoReturn

from approaches.core.errors import SettingError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose error is one line on stderr (`prog: error: ...; see prog --help`), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def in_flags(error: Exception, flags: Mapping[str, str]) -> str:
    """The error's message, a refused setting named as the flag that sets it: --field-name unless flags says
    otherwise (core names settings in words, the command line as flags).

    >>> in_flags(SettingError("input_dir", "is missing"), {"input_dir": "--input"})
    '--input is missing'
    >>> in_flags(SettingError("tile_size", "must be between 1 and 65536, got 0"), {})
    '--tile-size must be between 1 and 65536, got 0'
    """
    if isinstance(error, SettingError):
        return f"{flags.get(error.setting, '--' + error.setting.replace('_', '-'))} {error.problem}"
    return str(error)
