"""The command line: flags and environment variables -> a RunConfig -> a measured run, a sweep or the chaos demo.

    python run_all.py [flags]      blur-suite [flags]      python -m approaches [flags]

Everything a person can get wrong (a flag, a folder, an unreachable broker) is found before any work
starts and said in one line, with status 2.  A run then always ends: Ctrl-C and SIGTERM stop it in one
line (status 130 and 143), and what it started (worker processes, pods, an embedded server and its
files) is stopped and removed on the way out.
"""

import argparse
import itertools
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from approaches import __version__, h_dask
from approaches.cluster.broker import check_reachable
from approaches.core.config import (
    CHAOS_APPROACHES,
    CHAOS_SCENARIOS,
    MAX_TILE_SIZE,
    MIN_QUEUE_TILE_SIZE,
    SWEEPS,
    RunConfig,
    check_queue_tile_size,
    cores_present,
    max_workers,
)
from approaches.core.errors import BlurSuiteError, ConfigError, Crashed
from approaches.core.images import ImageSource, find_images
from approaches.core.kernel import KERNELS, MAX_KERNEL_SIZE, warm_up
from approaches.core.png import DEFAULT_ENCODER, PNG_ENCODERS, resolve_encoder
from approaches.core.settings import Settings
from approaches.core.trace import Span
from approaches.harness.measure import document, measure_all, verify
from approaches.harness.parsing import OneLineParser
from approaches.harness.results import check_writable, failed_once, log_text, summary_table, write_document
from approaches.registry import APPROACHES
from approaches.samples import SAMPLES, ensure_samples

PROG = "run_all.py"
REPEAT, WARMUPS = 3, 1  # the default method: timed runs and untimed warm-up runs per approach (harness/measure.py)
ENV_DEFAULTS = {
    "kernel_size": ("KERNEL_SIZE", int),
    "workers": ("NUM_WORKERS", int),
    "tile_size": ("TILE_SIZE", int),
    "input_dir": ("INPUT_PATH", Path),
    "output_dir": ("OUTPUT_PATH", Path),
    "broker": ("BROKER_URL", str),
    "kernel": ("BLUR_KERNEL", str),
    "scheduler": ("DASK_SCHEDULER_ADDRESS", str),  # dask's own variable, which a bare Client() reads too
    "mpi_hosts": ("MPI_HOSTS", Path),
}


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so every ``finally`` and context manager cleans up."""


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         settings: Settings | None = None, prog: str = PROG) -> int:
    """Run the suite as the command line says; the exit status.  settings: timing and fault settings
    (tests shorten them; None: a normal run's, or the chaos demo's slow workers); prog: the command's name
    in its messages (run_all.py, blur-suite or python -m approaches)."""
    env = os.environ if env is None else env
    args = build_parser(prog).parse_args(argv)
    with _terminate_on_sigterm():
        try:
            return _run(args, env, settings)
        except Crashed as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 1
        except BlurSuiteError as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted; everything it started is stopped", file=sys.stderr)
            return 130
        except Terminated:
            print(f"{prog}: terminated; everything it started is stopped", file=sys.stderr)
            return 143


def _run(args: argparse.Namespace, env: Mapping[str, str], settings: Settings | None) -> int:
    if args.compare is not None or args.redraw is not None:
        return _offline(args)  # saved results only: no images, no broker, no kernel
    config = config_from(args, env, settings)
    say = (lambda text: None) if config.quiet else (lambda text: print(text, file=sys.stderr))
    sources = _inputs(config, args.input is None and "INPUT_PATH" not in env, say)
    if config.chaos or any(APPROACHES[letter].uses_broker for letter in config.approaches):
        check_reachable(config.broker)  # one line now, not one failure per image and approach
    if config.scheduler is not None and "h" in (config.chaos or config.approaches):
        h_dask.check_reachable(config.scheduler)  # likewise: h would wait 30 s for it, then fail every image
    folders = [f"chaos-{letter}" for letter in config.chaos] if config.chaos else config.approaches
    problems = check_writable(config, folders)
    if problems:
        raise ConfigError(problems[0])  # one line: the first place that cannot be written
    _warm_up(config, say)
    if config.sweep:
        from approaches.harness.sweep import sweep

        return sweep(config, sources)
    if config.chaos:
        from approaches.harness.chaos import DEMO_SETTINGS, chaos

        return chaos(config if settings is not None else replace(config, settings=DEMO_SETTINGS), sources)
    return _measure_all(config, sources)


def _measure_all(config: RunConfig, sources: Sequence[ImageSource]) -> int:
    runs = len(config.approaches) * (config.warmups + config.repeat)
    with _bar(config, len(sources) * runs, f"{runs} runs") as bar:
        measured = measure_all([APPROACHES[letter] for letter in config.approaches], config, sources, bar.update,
                               on_span=_count_tiles(bar))
    with _bar(config, len(sources), "checking every output against a") as bar:
        verify(measured, sources, config, bar.update)
    doc = document(config, measured)
    if not config.quiet:
        print(summary_table(doc))
    problems = failed_once(doc["results"])
    problems += [f"{m.approach.letter}: differs from a: {reason}" for m in measured for reason in m.mismatches]
    problems += write_document(config, doc, text=log_text(doc), draw=lambda folder: _draw_all(doc, folder))
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


def _count_tiles(bar: tqdm) -> Callable[[Span], None]:
    """A span listener (the live stream of harness/live.py) that shows the tiles blurred so far beside the bar."""
    blurred = itertools.count(1)

    def heard(span: Span) -> None:
        if span.stage == "blur" and span.tile is not None:
            bar.set_postfix_str(f"{next(blurred)} tiles", refresh=False)

    return heard


def _offline(args: argparse.Namespace) -> int:
    from approaches.harness.offline import compare_files, redraw_file

    if args.compare is not None:
        print(compare_files(*args.compare))
    if args.redraw is not None:
        drawn = redraw_file(args.redraw, None if args.no_charts else args.charts)
        print(f"drawn: {', '.join(str(path) for path in drawn)}")
    return 0


def _draw_all(doc: dict, folder: Path) -> list[Path]:
    from visualize.charts import draw_all  # matplotlib is slow to import: only when drawing

    return draw_all(doc, folder)


@contextmanager
def _bar(config: RunConfig, total: int, description: str = "") -> Iterator[tqdm]:
    with tqdm(total=total, unit="image", desc=description, disable=True if config.quiet else None,
              leave=False) as bar:
        yield bar


def _inputs(config: RunConfig, using_default_input: bool, say: Callable[[str], None]) -> list[ImageSource]:
    if using_default_input:
        missing = [spec for spec in SAMPLES if not (config.input_dir / f"{spec.name}.png").exists()]
        if missing:
            say(f"making {len(missing)} sample images in {config.input_dir} (first run only)")
        with _bar(config, len(missing), "making samples") as bar:
            ensure_samples(config.input_dir, png_level=config.png_level, progress=bar.update)
    sources = find_images(config.input_dir)
    if not sources:
        raise ConfigError(f"no images in {config.input_dir} (looked for .png, .jpg, .bmp, .gif, .tif, .webp)")
    return sources


def _warm_up(config: RunConfig, say: Callable[[str], None]) -> None:
    say(f"loading the {config.kernel} kernel (compiled on the first run, read from numba's cache after)")
    warm_up(config.kernel_size, method=config.kernel)


@contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """While the run lasts, SIGTERM raises Terminated in the main thread, as Ctrl-C raises KeyboardInterrupt."""
    def terminate(signum: int, frame: object) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --- flags and environment ------------------------------------------------------------------------------


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    describe = "\n".join(f"  {a.letter}  {a.title}: {a.lesson}" for a in APPROACHES.values())
    cores = cores_present()
    parser = OneLineParser(
        prog=prog,
        description="Blur a folder of images with each approach, time them, check they agree, and chart it.\n"
        f"Also: `{prog} serve --help` (the web page) and `{prog} service --help` (approach g as a service).",
        epilog=f"approaches:\n{describe}\n\nEnvironment: KERNEL_SIZE, NUM_WORKERS, INPUT_PATH, OUTPUT_PATH, "
        "TILE_SIZE, BROKER_URL, BLUR_KERNEL, DASK_SCHEDULER_ADDRESS, MPI_HOSTS set defaults; flags override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--version", action="version", version=f"blur-suite {__version__}")
    add("--approaches", default="all", metavar="LIST",
        help=f"comma-separated letters from {','.join(APPROACHES)}, or 'all' (default: all)")
    add("--input", type=Path, metavar="DIR", help="folder of images (default: data/input, samples made if empty)")
    add("--output", type=Path, metavar="DIR", help="outputs go to DIR/<approach>/ (default: data/output)")
    add("--kernel-size", type=int, metavar="K", help=f"odd Gaussian size 1..{MAX_KERNEL_SIZE}, sigma=K/3 (default 21)")
    add("--tile-size", type=int, metavar="PX", help=f"tile edge in pixels, 1..{MAX_TILE_SIZE} (default 256; at least "
        f"{MIN_QUEUE_TILE_SIZE} for the queue approaches)")
    add("--workers", type=int, metavar="N", help=f"workers per approach, 1..{max_workers()} (default: "
        f"the cores present, {cores})")
    add("--png-level", type=int, default=1, metavar="0-9",
        help="Pillow's PNG compression level (default 1; 6 is 3-4x slower and would dominate every timing); "
        "fpng has no levels")
    add("--png-encoder", choices=PNG_ENCODERS, default=DEFAULT_ENCODER,
        help=f"PNG writer for RGB/RGBA outputs: fpng (fast, files ~17%% larger) or pillow (default "
        f"{DEFAULT_ENCODER}); L and LA images, and platforms where fpng does not import, use Pillow")
    add("--repeat", type=int, metavar="N", help=f"timed runs of each approach, after {WARMUPS} untimed warm-up, in "
        f"an order that rotates each round; tables show the median and the spread (default {REPEAT})")
    add("--quick", action="store_true", help="one timed pass, no warm-up: quicker, noisier, and the table says so")
    add("--truncate", action="store_true", help="round blurred values down, as the original course did")
    # Checked by RunConfig, not argparse choices, so a bad value is one line and status 2 like other flags.
    add("--kernel", metavar="{" + ",".join(KERNELS) + "}",
        help="the same Gaussian computed separably (default; 2K taps per pixel, the run is I/O-bound) or "
        "directly in 2-D (K*K taps, as the original did: compute dominates and parallel speed-ups show)")
    add("--json", type=Path, metavar="FILE", help="also write the results document to FILE")
    add("--logs", type=Path, default=Path("logs"), metavar="DIR", help="where the run log goes (default: logs)")
    add("--charts", type=Path, default=Path("logs/charts"), metavar="DIR",
        help="where charts go (default: logs/charts)")
    add("--no-charts", action="store_true", help="do not draw charts")
    add("--quiet", action="store_true", help="no progress bar and no table, only errors")
    add("--sweep", metavar="{" + ",".join(SWEEPS) + "}",  # checked by RunConfig, like --kernel
        help="run the approaches at tile sizes 64..1024 (logs/charts/sweep_tile_size.png) or at 1..2x cores "
        f"workers (1..{2 * cores} here; logs/charts/sweep_workers.png), and chart it; a and d blur whole "
        "images on one lane, so they run once and are drawn as a flat reference line")
    add("--broker", metavar="URL", help="the broker of the queue approaches: memory:// (default, fakeredis in "
        "this process), embedded:// (a Valkey server started here), or redis://host:port/db")
    add("--scheduler", metavar="tcp://HOST:PORT", help="approach h: the dask scheduler to run on (default: a "
        "LocalCluster of worker processes started here); it ships pickled functions: a trusted network only")
    add("--mpi-hosts", type=Path, metavar="FILE", help="approach i: an MPI host file (one host[:ranks] a line), "
        "so the ranks run on those machines; every machine needs the suite and the input and output folders")
    add("--chaos", metavar="e,f,g,h", help="kill pods (h: dask worker processes) of each approach named while "
        "tiles are in flight, restart them, and report per image what was lost and how soon it was redone (e loses "
        "tiles; f, g and h do not)")
    add("--serve", action="store_true", help="start the web page instead, on http://127.0.0.1:8000/ (its flags: "
        "--port, --host, --data, --clean; see blur-suite serve --help)")
    add("--compare", nargs=2, type=Path, metavar=("OLD.json", "NEW.json"), help="no run: print each approach's "
        "new/old median wall time and its range, and which got faster or slower beyond the noise")
    add("--redraw", type=Path, metavar="RUN.json", help="no run: draw the charts of a results file (a run, a sweep "
        "or the chaos demo) again into --charts")
    add("--scenarios", metavar="LIST", help=f"with --chaos: which kills, from {','.join(CHAOS_SCENARIOS)} "
        "(default: all)")
    return parser


def config_from(args: argparse.Namespace, env: Mapping[str, str], settings: Settings | None = None) -> RunConfig:
    """Merge defaults, environment and flags into a validated RunConfig."""
    values = {"workers": cores_present(), **_env_defaults(env)}
    flags = {"kernel_size": args.kernel_size, "tile_size": args.tile_size, "workers": args.workers,
             "input_dir": args.input, "output_dir": args.output, "broker": args.broker, "kernel": args.kernel,
             "scheduler": args.scheduler, "mpi_hosts": args.mpi_hosts}
    values.update({name: value for name, value in flags.items() if value is not None})
    config = RunConfig(
        approaches=_parse_approaches(args.approaches),
        png_level=args.png_level,
        png_encoder=resolve_encoder(args.png_encoder),  # fpng missing: one line, then Pillow
        repeat=(1 if args.quick else REPEAT) if args.repeat is None else args.repeat,
        warmups=0 if args.quick else WARMUPS,
        truncate=args.truncate,
        json_path=args.json,
        logs_dir=args.logs,
        charts_dir=None if args.no_charts else args.charts,
        quiet=args.quiet,
        sweep=args.sweep,
        chaos=() if args.chaos is None else _parse_list("--chaos", args.chaos, CHAOS_APPROACHES),
        chaos_scenarios=_parse_list("--scenarios", args.scenarios, CHAOS_SCENARIOS),
        **values,
    )
    queues = [letter for letter in (config.chaos or config.approaches) if letter in CHAOS_APPROACHES]
    if queues and config.sweep != "tile-size":
        check_queue_tile_size(config.tile_size, ",".join(queues))
    return config if settings is None else replace(config, settings=settings)


def _env_defaults(env: Mapping[str, str]) -> dict:
    values = {}
    for field, (variable, kind) in ENV_DEFAULTS.items():
        if variable in env:
            try:
                values[field] = kind(env[variable])
            except ValueError:
                raise ConfigError(f"environment variable {variable}={env[variable]!r} is not a number") from None
    return values


def _parse_list(flag: str, text: str | None, known: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated names from known (all of them when text is None), each once, in the order given."""
    if text is None:
        return tuple(known)
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise ConfigError(f"{flag}: unknown {','.join(unknown) or 'empty list'}; choose from {','.join(known)}")
    return chosen


def _parse_approaches(text: str) -> tuple[str, ...]:
    """'all', or letters and variants: 'b' selects every variant b.threads, b.processes, ..."""
    known = list(APPROACHES)
    if text.strip().lower() == "all":
        return tuple(known)
    chosen, unknown = [], []
    for token in (part.strip().lower() for part in text.split(",") if part.strip()):
        matches = [key for key in known if key == token or key.startswith(f"{token}.")]
        chosen += matches
        if not matches:
            unknown.append(token)
    if unknown or not chosen:
        raise ConfigError(f"--approaches: unknown {','.join(unknown) or 'empty list'}; choose from {','.join(known)}")
    return tuple(dict.fromkeys(chosen))


def run_as_script(argv: Sequence[str] | None = None, prog: str = "blur-suite") -> None:
    """The console script's entry: `blur-suite service ...` is approach g as a service (harness/service.py),
    `blur-suite serve ...` (or run_all.py --serve ...) the web page (web/serve.py), anything else run_all.py's
    flags; exit with the status.  prog: how the command was called, for its help and messages."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"] or "--serve" in argv:  # the web page (approaches/web/serve.py): its own flags
        from approaches.web import serve

        sys.exit(serve.main([arg for arg in argv if arg not in ("serve", "--serve")]))
    if argv[:1] == ["service"]:
        from approaches.harness import service

        sys.exit(service.main(argv[1:]))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    sys.exit(main(argv, prog=prog))
