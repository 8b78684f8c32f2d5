"""Approach j's second broker, RabbitMQ: a private node started here, or any running one.

    (no URL)              where RabbitMQ is installed, a private node: its own name, free ports (AMQP,
                          distribution, and a private epmd), HOME, data and log folders in a temporary folder;
                          stopped, with its epmd, and the folder removed when the run ends, however it ends
    amqp://user:pw@host/  any running broker (--amqp URL, or AMQP_URL); the suite starts nothing, and the URL's
                          password is never shown

The node is started from the package's own `rabbitmq-server` script in its lib folder: the one on PATH is a
wrapper that switches to the rabbitmq user and the system's folders.  That script backgrounds the Erlang VM
and waits for it, unless RUNNING_UNDER_SYSTEMD is set: then it execs the VM, so the process started here *is*
the VM, and the guardian (cluster/guardian.py) can kill it should the run die without cleaning up.  Its epmd
(Erlang's port mapper) is started here too, in the foreground on a free port (ERL_EPMD_PORT), so no daemon
outlives the run.  A node already running on 5672 is never touched.
"""

import atexit
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from approaches.cluster.broker import BrokerError
from approaches.cluster.guardian import Guardian, guarded_folder, sweep
from approaches.core.urls import redact, unanswered

NODE_PREFIX = "blur-rabbit-"
SCRIPTS = (Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),  # Debian, Ubuntu, the rabbitmq-server package
           Path("/opt/homebrew/opt/rabbitmq/sbin/rabbitmq-server"),  # Homebrew
           Path("/usr/local/opt/rabbitmq/sbin/rabbitmq-server"))
INSTALL = "sudo apt-get install rabbitmq-server (macOS: brew install rabbitmq), or give --amqp URL"
START_TIMEOUT_S = 90.0  # a node boots in seconds, more on a busy machine
STOP_TIMEOUT_S = 30.0  # a graceful stop writes the quorum queues' logs
REACH_TIMEOUT_S = 5.0
# A consumer holding a delivery unacked this long has its channel closed and the delivery requeued
# (RabbitMQ's default is 30 minutes); the channel looks every tick.  Private nodes only: a hung worker's tile.
CONSUMER_TIMEOUT_S, CHANNEL_TICK_S = 30, 1

log = logging.getLogger(__name__)
logging.getLogger("pika").setLevel(logging.CRITICAL)  # it logs each failed connection attempt as an error, with a
#                                                       traceback; the suite says in one line what it lost and why


_shared: list["AmqpBroker"] = []  # the process's shared node, once started (open_amqp(shared=True))
_shared_lock = threading.Lock()


class AmqpError(BrokerError):
    """RabbitMQ cannot be started or reached."""


@dataclass(frozen=True)
class AmqpBroker:
    """An open AMQP broker: the URL clients connect to, how to show it, and (a private node) a restart."""

    url: str
    shown: str
    restart: Callable[[], None] | None = field(default=None, compare=False)


def server_script() -> Path | None:
    """The installed package's own rabbitmq-server script, or None where RabbitMQ is not installed."""
    return next((script for script in SCRIPTS if script.is_file()), None)


def unavailable(url: str | None) -> str | None:
    """Why approach j cannot run here, in one line naming the install command; None if it can."""
    if url is None and (server_script() is None or shutil.which("epmd", path=_erlang_path()) is None):
        return f"j needs RabbitMQ: {INSTALL}"
    return None


@contextmanager
def open_amqp(url: str | None, shared: bool = False) -> Iterator[AmqpBroker]:
    """The broker at url (checked to answer), or a private node started for the block (url None); shared: the
    one private node of this process instead, started on its first use and kept until the process ends (a node
    boots in seconds: too slow for each run of j, or each job of the web page)."""
    if url is not None:
        check_reachable(url)
        yield AmqpBroker(url, redact(url))
    elif shared:
        yield _shared_node()
    else:
        with private_node() as broker:
            yield broker


def _shared_node() -> AmqpBroker:
    """This process's shared node, started if need be; stopped at exit (or, if the process is killed, by its
    guardian)."""
    with _shared_lock:
        if not _shared:
            stack = ExitStack()
            _shared.append(stack.enter_context(private_node()))
            atexit.register(stack.close)
        return _shared[0]


def check_reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """AmqpError, once and with the reason (the password left out), if nothing at url answers as a broker."""
    import pika  # only approach j needs it

    def ask() -> None:
        parameters = pika.URLParameters(url)
        parameters.socket_timeout = parameters.blocked_connection_timeout = timeout
        parameters.connection_attempts = 1
        pika.BlockingConnection(parameters).close()

    why = unanswered(ask, timeout)
    if why is not None:
        raise AmqpError(f"cannot reach RabbitMQ at {redact(url)}: {redact(why) or 'no AMQP broker answered'}")


@contextmanager
def private_node() -> Iterator[AmqpBroker]:
    """A RabbitMQ node of this run's own, under a guardian; see the module docstring."""
    script = server_script()
    if (why := unavailable(None)) is not None or script is None:
        raise AmqpError(why or "RabbitMQ is not installed")
    for removed in sweep(NODE_PREFIX):
        log.warning("rabbitmq: %s", removed)
    with guarded_folder(NODE_PREFIX) as guardian:
        folder = guardian.folder
        amqp_port, dist_port, epmd_port = _free_ports(3)
        env = _node_env(folder, amqp_port, dist_port, epmd_port)
        epmd = _started(guardian, [shutil.which("epmd", path=_erlang_path()), "-port", str(epmd_port)], env,
                        folder / "epmd.log")
        node: subprocess.Popen | None = None

        def start() -> None:
            nonlocal node
            node = _started(guardian, [str(script)], env, folder / "node.log", becomes="beam.smp")
            _wait_until_up(node, f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2F", folder)

        def stop() -> None:
            if node is not None:
                guardian.stop(node, STOP_TIMEOUT_S)

        try:
            start()
            yield AmqpBroker(f"amqp://guest:guest@127.0.0.1:{amqp_port}/%2F",
                             f"a private RabbitMQ node (127.0.0.1:{amqp_port})", restart=lambda: (stop(), start()))
        finally:  # also on Ctrl-C, SIGTERM (harness/cli.py raises it as an exception) or an error
            stop()
            guardian.stop(epmd, STOP_TIMEOUT_S)


def _node_env(folder: Path, amqp_port: int, dist_port: int, epmd_port: int) -> dict[str, str]:
    """Everything the node reads, pointed into folder; nothing of the system's RabbitMQ or the caller's shell."""
    (folder / "rabbitmq.conf").write_text(
        f"listeners.tcp.default = 127.0.0.1:{amqp_port}\nloopback_users.guest = true\nlog.console = false\n"
        f"log.file.level = warning\nconsumer_timeout = {CONSUMER_TIMEOUT_S * 1000}\n")
    (folder / "advanced.config").write_text(f"[{{rabbit, [{{channel_tick_interval, {CHANNEL_TICK_S * 1000}}}]}}].\n")
    (folder / "enabled_plugins").write_text("[].\n")
    (folder / "rabbitmq-env.conf").write_text("")
    name = folder.name.removeprefix(NODE_PREFIX).replace("_", "")
    return {"PATH": _erlang_path(), "HOME": str(folder), "LANG": "C.UTF-8", "RUNNING_UNDER_SYSTEMD": "1",
            "ERL_EPMD_PORT": str(epmd_port), "RABBITMQ_NODENAME": f"blur{name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(amqp_port),
            "RABBITMQ_DIST_PORT": str(dist_port), "RABBITMQ_MNESIA_BASE": str(folder / "data"),
            "RABBITMQ_LOG_BASE": str(folder / "log"), "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"), "RABBITMQ_PID_FILE": str(folder / "pid")}


def _erlang_path() -> str:
    return os.pathsep.join([os.environ.get("PATH", ""), "/usr/lib/erlang/bin", "/opt/homebrew/bin", "/usr/local/bin"])


def _free_ports(count: int) -> list[int]:
    """count ports nothing listens on now (the node binds them a moment later: a race no run here loses)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _started(guardian: Guardian, command: list, env: dict[str, str], log_path: Path,
             becomes: str | None = None) -> subprocess.Popen:
    """command started in a session of its own (a terminal's Ctrl-C is the run's to handle) and watched by the
    guardian, once it is the program `becomes` (the script execs the VM; the guardian kills by name)."""
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, env=env, cwd=guardian.folder, stdin=subprocess.DEVNULL, stdout=log_file,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while becomes is not None and process.poll() is None and time.monotonic() < deadline:
        try:
            if psutil.Process(process.pid).name() == becomes:
                break
        except psutil.Error:
            pass
        time.sleep(0.01)
    guardian.watch(process)
    return process


def _wait_until_up(node: subprocess.Popen, url: str, folder: Path) -> None:
    """Until the node takes an AMQP connection: its listener opens last, once the node has booted."""
    import pika

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and node.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", urlsplit(url).port), timeout=1).close()
            pika.BlockingConnection(pika.URLParameters(url)).close()
            return
        except (OSError, pika.exceptions.AMQPError):
            time.sleep(0.1)
    node.kill()
    node.wait()
    why = "it exited" if node.returncode != -signal.SIGKILL else f"no answer in {START_TIMEOUT_S:g} s"
    tail = (folder / "node.log").read_text(errors="replace").strip().splitlines()[-1:]
    raise AmqpError(f"cannot start a private RabbitMQ node: {why}" + (f" ({tail[0][:200]})" if tail else ""))
