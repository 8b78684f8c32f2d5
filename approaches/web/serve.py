"""`blur-suite web` (also `blur-suite serve`): the page on http://127.0.0.1:8000/, until Ctrl-C.

    blur-suite web [--port 8000] [--data data/web] [--keep-hours 24]
    blur-suite web --host 0.0.0.0      (every network the machine is on: there is no login; a warning says so)
    blur-suite web --clean             (remove every finished job's files, then exit)

The server is werkzeug's threaded WSGI server, started from code (no banner, a clean stop): one thread per
request, which suits a page on one's own machine and a few browsers.  Old jobs are removed every
CLEAN_EVERY_S, once older than --keep-hours.  Ctrl-C or SIGTERM stops it; what running jobs started (an
embedded Valkey server, worker processes, a dask cluster) is stopped by their own exit handlers, and the jobs
are marked interrupted at the next start.
"""

import argparse
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from werkzeug.serving import make_server

from approaches.core.errors import ConfigError
from approaches.harness.parsing import OneLineParser
from approaches.web.app import create_app
from approaches.web.jobs import MB, JobStore, Limits

PROG = "blur-suite web"
CLEAN_EVERY_S = 600.0


def build_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = OneLineParser(prog=PROG, description="The suite as a web page: upload images, watch tiles "
                                     "come back from each worker, kill one mid-job, download the results.")
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    add("--port", type=int, default=8000, help="port (default 8000; 0: any free port)")
    add("--data", type=Path, default=Path("data/web"), metavar="DIR", help="where jobs keep their files "
        "(default data/web)")
    add("--keep-hours", type=float, default=defaults.keep_s / 3600, metavar="H",
        help="remove finished jobs after H hours (default 24)")
    add("--clean", action="store_true", help="remove every finished job's files and exit")
    add("--max-file-mb", type=int, default=defaults.file_bytes // MB, metavar="MB", help="largest file (default 50)")
    add("--max-request-mb", type=int, default=defaults.request_bytes // MB, metavar="MB",
        help="largest upload, all files together (default 200)")
    add("--jobs", type=int, default=defaults.running, metavar="N", help="jobs running at once; the rest wait "
        "(default 4)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _check(args)
        store = JobStore(args.data, Limits(file_bytes=args.max_file_mb * MB, request_bytes=args.max_request_mb * MB,
                                           running=args.jobs, keep_s=args.keep_hours * 3600))
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"{PROG}: error: cannot keep jobs in {args.data}: {error.strerror or error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    if args.clean:
        store.close()
        print(f"{PROG}: removed {store.clean(0)} finished jobs from {args.data}")
        return 0
    try:  # our own socket: werkzeug would print its own lines and exit 1 where it cannot bind
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        listening = socket.create_server((args.host, args.port), family=family)
    except OSError as error:
        store.close()
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 2
    if not _loopback(args.host):
        print(f"{PROG}: warning: listening on {args.host}: anyone who can reach this machine can upload images "
              "and run jobs on it; there is no login", file=sys.stderr)
    server = make_server(args.host, args.port, create_app(store), threaded=True, fd=listening.fileno())
    listening.close()  # the server holds its own copy of the socket
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{PROG}: http://{host}:{server.port}/  (jobs in {args.data}; Ctrl-C stops it)", flush=True)
    stop = threading.Event()
    threading.Thread(target=_clean_now_and_then, args=(store, stop), name="cleaner", daemon=True).start()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as on Ctrl-C, so everything started is stopped
    try:
        server.serve_forever()  # werkzeug's returns on Ctrl-C: it catches the KeyboardInterrupt itself
    finally:
        stop.set()
        store.close()
        server.server_close()
    print(f"{PROG}: stopped; jobs still running are marked interrupted at the next start", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> None:
    for flag, value, low, high in (("--port", args.port, 0, 65535), ("--jobs", args.jobs, 1, None),
                                   ("--max-file-mb", args.max_file_mb, 1, None),
                                   ("--max-request-mb", args.max_request_mb, 1, None),
                                   ("--keep-hours", args.keep_hours, 0, None)):
        if high is not None and not low <= value <= high:
            raise ConfigError(f"{flag} must be between {low} and {high}, got {value:g}")
        if value < low:
            raise ConfigError(f"{flag} must be at least {low}, got {value:g}")


def _loopback(host: str) -> bool:
    """Whether host is this machine only.

    >>> _loopback("127.0.0.1"), _loopback("::1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _clean_now_and_then(store: JobStore, stop: threading.Event) -> None:
    while True:
        store.clean()
        if stop.wait(CLEAN_EVERY_S):
            return
