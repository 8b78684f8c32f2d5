"""The suite's exceptions: each says what went wrong with which file or flag, in one line."""


class BlurSuiteError(Exception):
    """Base of every error the suite reports to a person instead of a traceback."""


class ConfigError(BlurSuiteError, ValueError):
    """A flag or environment variable has a value the suite cannot use."""


class ImageError(BlurSuiteError):
    """One input image cannot be read, or one output cannot be written; the others go on."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason
