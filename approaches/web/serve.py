"""`blur-suite serve`: the page on http://127.0.0.1:8000/, until Ctrl-C.

    blur-suite serve [--port 8000] [--data data/web] [--keep-hours 24]
    blur-suite serve --host 0.0.0.0      (every network the machine is on: there is no login; a warning says so)
    blur-suite serve --clean             (remove every finished job's files, then exit)

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
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from werkzeug.serving import make_server

from approaches.web.app import create_app
from approaches.web.jobs import MB, JobStore, Limits

PROG = "blur-suite serve"
CLEAN_EVERY_S = 600.0


def build_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = argparse.ArgumentParser(prog=PROG, description="The suite as a web page: upload images, watch tiles "
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
    if not (0 <= args.port <= 65535 and args.jobs >= 1 and args.max_file_mb >= 1 and args.max_request_mb >= 1
            and args.keep_hours >= 0):
        print(f"{PROG}: error: --port must be 0..65535, --jobs, --max-file-mb and --max-request-mb at least 1, "
              "--keep-hours at least 0", file=sys.stderr)
        return 2
    limits = Limits(file_bytes=args.max_file_mb * MB, request_bytes=args.max_request_mb * MB, running=args.jobs,
                    keep_s=args.keep_hours * 3600)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    store = JobStore(args.data, limits)
    if args.clean:
        store.close()
        print(f"{PROG}: removed {store.clean(0)} finished jobs from {args.data}")
        return 0
    if not _loopback(args.host):
        print(f"{PROG}: warning: listening on {args.host}: anyone who can reach this machine can upload images "
              "and run jobs on it; there is no login", file=sys.stderr)
    try:
        server = make_server(args.host, args.port, create_app(store), threaded=True)
    except OSError as error:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
        return 2
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{PROG}: http://{host}:{server.server_port}/  (jobs in {args.data}; Ctrl-C stops it)", flush=True)
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
