"""The suite's exceptions: each says what went wrong with which file or setting, in one line."""


def shown(text: object) -> str:
    """A path or name as text that is safe to print or log: one line, valid UTF-8 (escapes otherwise).

    >>> shown("a\\nb.png"), shown("caf\\udce9.png")
    ("'a\\\\nb.png'", "'caf\\\\udce9.png'")
    """
    text = str(text)
    if text.isprintable() and not any(0xD800 <= ord(char) < 0xE000 for char in text):
        return text
    return ascii(text)


class BlurSuiteError(Exception):
    """Base of every error the suite reports to a person instead of a traceback."""


class ConfigError(BlurSuiteError, ValueError):
    """A flag, environment variable or form field has a value the suite cannot use."""


class SettingError(ConfigError):
    """One setting's value is refused.  ``setting`` names it as RunConfig does (``tile_size``) and ``problem``
    says why, so each front end names the setting its own way: the command line as its flag, the page as its
    form field.  The message names it in words.

    >>> str(SettingError("tile_size", "must be between 1 and 65536, got 0"))
    'tile size must be between 1 and 65536, got 0'
    """

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting.replace('_', ' ')} {problem}")
        self.setting = setting
        self.problem = problem


class Crashed(BlurSuiteError):
    """Something failed that no input or flag explains (a bug, a dead peer): the run ends with this reason."""


class ImageError(BlurSuiteError):
    """One input image cannot be read, or one output cannot be written; the others go on."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{shown(path)}: {reason}")
        self.path = str(path)
        self.reason = reason
