"""Addresses as text: which broker schemes the suite knows, how to show a URL without its password, and
what a dask scheduler address looks like.

Kept apart from cluster/broker.py, which connects to servers, so that a setting can be checked (and a URL
shown in a log, the JSON or an error) without importing any client library.
"""

import re
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from approaches.core.errors import SettingError

SCHEMES = ("memory", "embedded", "redis", "rediss", "unix")
DEFAULT_URL = "memory://"


def check_url(url: str) -> str:
    """Return url if its scheme is one the suite knows, else raise SettingError (the setting ``broker``).

    >>> check_url("redis://localhost:6379/0")
    'redis://localhost:6379/0'
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in SCHEMES:
        raise SettingError("broker", f"{redact(url)!r} is not a broker URL; use memory://, embedded:// or "
                           "redis://host:port/db")
    return url


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for messages, logs, the JSON and charts.

    >>> redact("redis://user:secret@host:6379/0")
    'redis://user:***@host:6379/0'
    >>> redact("redis://:secret@host/0?password=other")
    'redis://:***@host/0?password=***'
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    if password is not None:
        user = f"{parts.username}:" if parts.username else ":"
        url = parts._replace(netloc=f"{user}***@{parts.netloc.rpartition('@')[2]}").geturl()
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def check_amqp_url(url: str) -> str:
    """url if it is amqp:// or amqps:// (approach j's RabbitMQ), else SettingError, its password left out.

    >>> check_amqp_url("amqp://user:secret@rabbit:5672/%2F")
    'amqp://user:secret@rabbit:5672/%2F'
    >>> check_amqp_url("redis://user:secret@rabbit")
    Traceback (most recent call last):
    ...
    approaches.core.errors.SettingError: amqp 'redis://user:***@rabbit' is not amqp://user:password@host:port/vhost
    """
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    if scheme not in ("amqp", "amqps"):
        raise SettingError("amqp", f"{redact(url)!r} is not amqp://user:password@host:port/vhost")
    return url


def check_scheduler(address: str) -> str:
    """The address if it names a dask scheduler as tcp://host:port or tls://host:port, else SettingError.

    >>> check_scheduler("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> check_scheduler("10.0.0.5")
    Traceback (most recent call last):
    ...
    approaches.core.errors.SettingError: scheduler '10.0.0.5' is not tcp://host:port or tls://host:port
    """
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("tcp", "tls") or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise SettingError("scheduler", f"{address!r} is not tcp://host:port or tls://host:port")
    return address


def unanswered(ask: Callable[[], object], timeout: float) -> str | None:
    """Why ask() (one try at reaching a server) failed or did not return within timeout seconds; None if it
    returned.  It runs in a thread of its own: a host name that does not resolve can block in the system's
    resolver longer than any socket timeout.

    >>> unanswered(lambda: None, 1.0) is None, unanswered(lambda: 1 / 0, 1.0)
    (True, 'division by zero')
    """
    errors: list[Exception] = []

    def run() -> None:
        try:
            ask()
        except Exception as error:  # whatever stops the try is the reason given
            errors.append(error)

    thread = threading.Thread(target=run, name="reach-check", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"no answer within {timeout:g} s"
    if not errors:
        return None
    return getattr(errors[0], "strerror", None) or str(errors[0])
