"""The suite's exceptions: each says what went wrong with which file or flag, in one line."""


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
    """A flag or environment variable has a value the suite cannot use."""


class Crashed(BlurSuiteError):
    """Something failed that no input or flag explains (a bug, a dead peer): the run ends with this reason."""


class ImageError(BlurSuiteError):
    """One input image cannot be read, or one output cannot be written; the others go on."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{shown(path)}: {reason}")
        self.path = str(path)
        self.reason = reason
