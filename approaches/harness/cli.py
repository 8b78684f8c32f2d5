"""The command line: a subcommand per kind of work, flags and environment variables -> a RunConfig.

    run_all.py [run] [flags]               every approach on a folder of images: timed, checked against a, charted
    run_all.py web [flags]                 the web page (`serve` is its other name)
    run_all.py service --mode ROLE ...     approach g as a service
    run_all.py chaos [e,f,g,h] [flags]     the fault demo
    run_all.py sweep AXIS                  the approaches at each tile size or worker count, or as the work grows
    run_all.py crossover                   which approach is fastest where: two maps of workloads
    run_all.py compare OLD.json NEW.json   faster or slower, beyond the noise?
    run_all.py redraw RUN.json             the charts again, from any results file

The same program is `blur-suite` and `python -m approaches`.  The spellings from before subcommands still
work: flags alone are `run`, and --serve, --chaos LIST, --sweep NAME, --compare OLD NEW and --redraw FILE
name theirs (`subcommand_first`).  Building the parser loads no lesson, numpy or numba, so --help and
--version answer at once; the work's modules load when it starts.

Everything a person can get wrong (a flag, a folder, an unreachable broker) is found before any work
starts and said in one line, with status 2.  A run then always ends: Ctrl-C and SIGTERM stop it in one
line (status 130 and 143), and what it started (worker processes, pods, an embedded server and its
files) is stopped and removed on the way out.
"""

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from approaches import __version__
from approaches.core.config import (
    MAX_TILE_SIZE,
    MIN_QUEUE_TILE_SIZE,
    RunConfig,
    check_queue_tile_size,
    cores_present,
    max_workers,
)
from approaches.core.errors import BlurSuiteError, ConfigError, Crashed
from approaches.core.limits import (
    DEFAULT_ENCODER,
    DEFAULT_MAX_PIXELS,
    KERNELS,
    MAX_KERNEL_SIZE,
    MAX_PIXELS,
    PNG_ENCODERS,
)
from approaches.core.settings import Settings
from approaches.harness.parsing import OneLineParser, in_flags
from approaches.harness.results import Output
from approaches.registry import APPROACHES

PROG = "run_all.py"
REPEAT, WARMUPS = 3, 1  # the default method: timed runs and untimed warm-up runs per approach (harness/measure.py)
CHARTS = Path("logs/charts")
SWEEPS = ("tile-size", "workers")  # the keys of harness/sweep.AXES: the run's settings, in this process
WORKLOADS = ("kernel-size", "image-size", "images")  # the keys of harness/workloads.WORKLOAD_AXES: the work itself
CROSSOVER_APPROACHES = "a,b,c,g"  # d, e, f, h, i and j start pods, a cluster or ranks: seconds a run, 18 cells
CROSSOVER_WHY = ("; the others start pods, a cluster or ranks for every run, seconds each, which would make the maps "
                 "take half an hour: name them, or all, to map them too")
SCENARIOS = ("workers", "one-worker", "assembler", "coordinator", "broker", "junk", "hung")  # chaos.SCENARIOS
KILLABLE = tuple(letter for letter, approach in APPROACHES.items() if approach.killable)  # what chaos can kill
COMMANDS = ("run", "web", "serve", "service", "chaos", "sweep", "crossover", "compare", "redraw")
HANDED_ON = ("web", "serve", "service")  # each has its own parser: web/serve.py, harness/service.py
OLD_SPELLINGS = {"--serve": ("web", 0), "--chaos": ("chaos", 1), "--sweep": ("sweep", 1), "--compare": ("compare", 2),
                 "--redraw": ("redraw", 1)}  # flag -> (its subcommand, how many values it takes)
FLAGS = {"input_dir": "--input", "output_dir": "--output"}  # RunConfig fields whose flag is not --field-name
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
    "amqp": ("AMQP_URL", str),
    "max_pixels": ("BLUR_MAX_PIXELS", int),
}


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C, so every ``finally`` and context manager cleans up."""


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
         settings: Settings | None = None, prog: str = PROG) -> int:
    """Run the suite as the command line says; the exit status.  settings: timing and fault settings
    (tests shorten them; None: a normal run's, or the chaos demo's slow workers); prog: the command's name
    in its messages (run_all.py, blur-suite or python -m approaches)."""
    env = os.environ if env is None else env
    argv = subcommand_first(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["web"], ["serve"]):
        from approaches.web import serve

        return serve.main(argv[1:])
    if argv[:1] == ["service"]:
        from approaches.harness import service

        return service.main(argv[1:])
    args = parse(argv, prog)
    with _terminate_on_sigterm():
        try:
            return _command(args, env, settings)
        except Crashed as error:
            print(f"{prog}: error: {error}", file=sys.stderr)
            return 1
        except BlurSuiteError as error:
            print(f"{prog}: error: {in_flags(error, FLAGS)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted; everything it started is stopped", file=sys.stderr)
            return 130
        except Terminated:
            print(f"{prog}: terminated; everything it started is stopped", file=sys.stderr)
            return 143


def run_as_script(argv: Sequence[str] | None = None, prog: str = "blur-suite") -> None:
    """The console script's entry: main, then exit with its status.  prog: how the command was called, for its
    help and messages.

    Before exiting, every object is frozen out of the garbage collector: the interpreter's last collections
    would otherwise walk all that numba, numpy and the lessons made, 0.2-0.4 s of a one-approach process spent
    on memory the exit frees anyway.  Exit handlers (atexit, logging, multiprocessing) still run."""
    argv = subcommand_first(sys.argv[1:] if argv is None else argv)
    if argv[:1] not in [[command] for command in HANDED_ON]:  # those configure their own logging
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(threadName)s %(levelname)s %(message)s")
    status = main(argv, prog=prog)
    gc.freeze()
    sys.exit(status)


def subcommand_first(argv: Sequence[str]) -> list[str]:
    """argv with its subcommand first, as the parser reads it.  The spellings from before subcommands name theirs
    with a flag anywhere in argv (--chaos e,f is chaos e,f; --serve is web), and flags alone are run.

    >>> subcommand_first(["--workers", "2", "--chaos", "e,f"]), subcommand_first(["--port", "80", "--serve"])
    (['chaos', 'e,f', '--workers', '2'], ['web', '--port', '80'])
    >>> subcommand_first([]), subcommand_first(["--quick"]), subcommand_first(["--help"])
    (['run'], ['run', '--quick'], ['--help'])
    """
    argv = list(argv)
    if argv[:1] and argv[0] in COMMANDS:
        return argv
    for at, arg in enumerate(argv):
        flag, equals, value = arg.partition("=")
        if flag in OLD_SPELLINGS:
            command, takes = OLD_SPELLINGS[flag]
            end = at + 1 + (0 if equals else takes)
            return [command, *([value] if equals else argv[at + 1:end]), *argv[:at], *argv[end:]]
    if argv[:1] in (["-h"], ["--help"], ["--version"]):
        return argv
    return ["run", *argv]


def parse(argv: Sequence[str], prog: str = PROG) -> argparse.Namespace:
    """The flags of a run, sweep, chaos demo, compare or redraw, in any spelling the command line takes; a flag
    the command does not know is one line that points to the command's own --help."""
    args, unknown = build_parser(prog).parse_known_args(subcommand_first(argv))
    if unknown:
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def _command(args: argparse.Namespace, env: Mapping[str, str], settings: Settings | None) -> int:
    if args.command == "compare":  # saved results only: no images, no broker, no kernel
        from approaches.harness.offline import compare_files

        print(compare_files(args.old, args.new))
        return 0
    if args.command == "redraw":
        from approaches.harness.offline import redraw_file

        drawn = redraw_file(args.document, args.charts)
        print(f"drawn: {', '.join(str(path) for path in drawn)}")
        return 0
    config = _without_unavailable(config_from(args, env, settings))
    if config.max_pixels > DEFAULT_MAX_PIXELS:
        print(f"warning: --max-pixels {config.max_pixels:,} is over Pillow's own limit of {DEFAULT_MAX_PIXELS:,}: "
              "an image that large is decoded, bomb or not, into about 2.3 bytes of memory per byte of pixels",
              file=sys.stderr)
    out = Output(logs_dir=args.logs, charts_dir=None if args.no_charts else args.charts, json_path=args.json,
                 quiet=args.quiet)
    default_input = args.input is None and "INPUT_PATH" not in env
    from approaches.harness.run import check_ready, prepare, run

    if args.command == "sweep" and args.axis in WORKLOADS:
        from approaches.harness.scaling import scaling_sweep
        from approaches.harness.workloads import WORKLOAD_AXES, check_sizes

        values = WORKLOAD_AXES[args.axis].parse(args.values, "--values") if args.values is not None else None
        if args.axis == "image-size":
            check_sizes(values or WORKLOAD_AXES[args.axis].values, config.max_pixels, "--values")
        given = None if default_input else prepare(config, out, config.approaches, ["_workloads"], False)
        if given is None:
            check_ready(config, out, config.approaches, ["_workloads"])
        return scaling_sweep(config, out, args.axis, values, given)
    if args.command == "sweep":
        if args.axis not in SWEEPS:
            raise ConfigError(f"sweep must be one of {', '.join(SWEEPS + WORKLOADS)}, got {args.axis!r}")
        if args.values is not None:
            raise ConfigError(f"--values is for the sweeps of the work ({', '.join(WORKLOADS)}), not {args.axis}")
        from approaches.harness.sweep import sweep

        return sweep(config, out, args.axis, prepare(config, out, config.approaches, config.approaches, default_input))
    if args.command == "crossover":
        if args.input is not None:
            raise ConfigError("crossover makes its own images (generated photos of each size); --input is for run "
                              "and sweep")
        from approaches.harness.crossover import DEFAULTS, crossover
        from approaches.harness.workloads import WORKLOAD_AXES, check_sizes

        values = {name: WORKLOAD_AXES[name].parse(text, flag) for name, flag, text in (
            ("image-size", "--image-sizes", args.image_sizes), ("kernel-size", "--kernel-sizes", args.kernel_sizes),
            ("images", "--image-counts", args.image_counts)) if text is not None}
        check_sizes(values.get("image-size", DEFAULTS["image-size"]), config.max_pixels, "--image-sizes")
        check_ready(config, out, config.approaches, ["_workloads"])
        return crossover(config, out, values)
    if args.command == "chaos":
        from approaches.harness.chaos import DEMO_SETTINGS, chaos

        letters, scenarios = config.approaches, _parse_list("--scenarios", args.scenarios, SCENARIOS)
        sources = prepare(config, out, letters, [f"chaos-{letter}" for letter in letters], default_input)
        demo = config if settings is not None else replace(config, settings=DEMO_SETTINGS)
        return chaos(demo, out, letters, scenarios, sources)
    return run(config, out, prepare(config, out, config.approaches, config.approaches, default_input),
               check=not args.no_verify)


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


# --- the parsers ------------------------------------------------------------------------------------------


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The command line's parser: a subparser per command (web and service only listed: they parse their own).
    Its --help ends with run's flags, since run is what the program does without a command."""
    parser = OneLineParser(
        prog=prog,
        usage=f"{prog} [COMMAND] [flags]",
        description="Blur a folder of images with each approach, time them, check they agree, and chart it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"blur-suite {__version__}")
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND", prog=prog)
    approaches = "\n".join(f"  {a.letter}  {a.title}: {a.lesson}" for a in APPROACHES.values())
    environment = ("Environment: KERNEL_SIZE, NUM_WORKERS, INPUT_PATH, OUTPUT_PATH, TILE_SIZE, BROKER_URL, "
                   "BLUR_KERNEL, DASK_SCHEDULER_ADDRESS, MPI_HOSTS, AMQP_URL, BLUR_MAX_PIXELS set defaults; flags "
                   "override them.")
    shared = _setting_flags(), _cluster_flags(), _output_flags()  # what run, sweep and chaos all take
    command = commands.add_parser(
        "run", parents=[_approaches_flag(), *shared, _timing_flags(), _verify_flag()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="(the default) run the approaches on a folder of images, time them, check them against a, chart it",
        description="Blur a folder of images with each approach, time them, check they agree, and chart it.",
        epilog=f"approaches:\n{approaches}\n\n{environment}")
    commands.add_parser("web", aliases=["serve"], add_help=False,
                        help="the web page: upload images, watch an approach blur them, kill a worker")
    commands.add_parser("service", add_help=False,
                        help="approach g as a service: a coordinator, workers and an assembler, anywhere")
    command = commands.add_parser(
        "chaos", parents=list(shared), help="the fault demo: kill pods mid-run, report what was lost and how soon "
        "it was redone", description=f"Kill pods of each approach named ({','.join(KILLABLE)}; h: dask worker "
        "processes) while tiles are in flight, restart them, and report per image what was lost and how soon it "
        "was redone: e loses tiles; f, g, h and j do not.", epilog=environment)
    command.add_argument("approaches", nargs="?", default=",".join(KILLABLE), metavar=",".join(KILLABLE),
                         help="the approaches whose workers to kill (default: all of them)")
    command.add_argument("--scenarios", metavar="LIST", help=f"which kills, from {','.join(SCENARIOS)} "
                         "(default: all)")
    cores = cores_present()
    command = commands.add_parser(
        "sweep", parents=[_approaches_flag(), *shared, _timing_flags()],
        help="run the approaches at each tile size or worker count, or as the work grows, and chart it",
        description=f"Run the approaches at tile sizes 64..1024 ({CHARTS}/sweep_tile_size.png) or at 1..2x cores "
        f"workers (1..{2 * cores} here; {CHARTS}/sweep_workers.png); a and d blur whole images on one lane, so "
        "they run once and are drawn as a flat reference line.  Or grow the work: kernel sizes 3..255, image "
        "sizes 0.25..4 MP, 1..16 images (generated photos, or --input's), each approach in a fresh process per "
        "point, timed and its process tree's peak memory sampled; log-log charts and each approach's growth "
        "exponents.  Every point is saved as it completes: Ctrl-C keeps them.", epilog=environment)
    command.add_argument("axis", metavar="{" + ",".join(SWEEPS + WORKLOADS) + "}",
                         help="what to vary")  # checked as --kernel is
    command.add_argument("--values", metavar="LIST", help="the values to sweep, comma-separated (kernel-size: odd, "
                         "1..255; image-size: megapixels, 0.01..256; images: 1..1024); default: the ranges above")
    command = commands.add_parser(
        "crossover", parents=[_approaches_flag(CROSSOVER_APPROACHES, CROSSOVER_WHY), *shared, _timing_flags()],
        help="which approach is fastest where: image size x kernel size, and number of images x image size",
        description="Time the approaches on generated photos over two grids of workloads, image size x kernel "
        "size and number of images x image size, and name the fastest in each cell with its margin over the "
        f"runner-up, or a tie where this run's noise could swap them ({CHARTS}/crossover.png).", epilog=environment)
    add = command.add_argument_group("the maps").add_argument
    add("--image-sizes", metavar="LIST", help="megapixels per image, 0.01..256 (default 0.25,1,4)")
    add("--kernel-sizes", metavar="LIST", help="odd kernel sizes, 1..255 (default 3,21,63)")
    add("--image-counts", metavar="LIST", help="numbers of images, 1..1024 (default 1,4,16)")
    command = commands.add_parser(
        "compare", help="no run: which approaches got faster or slower between two results files, beyond the noise",
        description="Print each approach's new/old median wall time and its range, and which got faster or "
        "slower beyond the noise.")
    command.add_argument("old", type=Path, metavar="OLD.json")
    command.add_argument("new", type=Path, metavar="NEW.json")
    command = commands.add_parser(
        "redraw", help="no run: draw the charts of a results file (a run, a sweep or the chaos demo) again",
        description="Draw the charts of a results file (a run, a sweep or the chaos demo) again; the same as "
        "`python -m visualize RUN.json`.")
    command.add_argument("document", type=Path, metavar="RUN.json")
    command.add_argument("--charts", type=Path, default=CHARTS, metavar="DIR", help=f"where (default: {CHARTS})")
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)  # for an unknown flag's message: see parse
    run_help = commands.choices["run"].format_help()
    parser.epilog = (
        f"Each command's flags: `{prog} run --help`, `{prog} chaos --help`, `{prog} sweep --help`,\n"
        f"`{prog} crossover --help`, `{prog} compare --help`, `{prog} redraw --help`, `{prog} service --help`, and\n"
        f"`{prog} web --help` (the same as `{prog} serve --help`).\n\n"
        f"Without a COMMAND, {prog} runs `run`: `{prog} --approaches a` is `{prog} run --approaches a`.\n\n"
        f"run's flags:{run_help[run_help.index(chr(10) + 'options:') + len('options:') + 1:]}")
    return parser


def _approaches_flag(default: str = "all", why: str = "") -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--approaches", default=default, metavar="LIST",
                       help=f"comma-separated letters from {','.join(APPROACHES)}, or 'all' (default: {default}{why})")
    return flags


def _setting_flags() -> argparse.ArgumentParser:
    """What every approach is run with: the images, the kernel, tiles, workers, PNGs."""
    flags = argparse.ArgumentParser(add_help=False)
    add = flags.add_argument_group("settings").add_argument
    add("--input", type=Path, metavar="DIR", help="folder of images (default: data/input, samples made if empty)")
    add("--output", type=Path, metavar="DIR", help="outputs go to DIR/<approach>/ (default: data/output)")
    add("--kernel-size", type=int, metavar="K", help=f"odd Gaussian size 1..{MAX_KERNEL_SIZE}, sigma=K/3 (default 21)")
    add("--tile-size", type=int, metavar="PX", help=f"tile edge in pixels, 1..{MAX_TILE_SIZE} (default 256; at least "
        f"{MIN_QUEUE_TILE_SIZE} for the queue approaches)")
    add("--workers", type=int, metavar="N", help=f"workers per approach, 1..{max_workers()} (default: "
        f"the cores present, {cores_present()})")
    add("--png-level", type=int, default=1, metavar="0-9",
        help="Pillow's PNG compression level (default 1; 6 is 3-4x slower and would dominate every timing); "
        "fpng has no levels")
    add("--png-encoder", choices=PNG_ENCODERS, default=DEFAULT_ENCODER,
        help=f"PNG writer for RGB/RGBA outputs: fpng (fast, files ~17%% larger) or pillow (default "
        f"{DEFAULT_ENCODER}); L and LA images, and platforms where fpng does not import, use Pillow")
    add("--truncate", action="store_true", help="round blurred values down, as the original course did")
    add("--max-pixels", type=int, metavar="N", help=f"refuse an image of more than N pixels, 1..{MAX_PIXELS} "
        f"(default {DEFAULT_MAX_PIXELS}, Pillow's own limit against decompression bombs; above it, one warning)")
    # Checked by RunConfig, not argparse choices, so a bad value is one line and status 2 like other flags.
    add("--kernel", metavar="{" + ",".join(KERNELS) + "}",
        help="the same Gaussian computed separably (default; 2K taps per pixel, the run is I/O-bound) or "
        "directly in 2-D (K*K taps, as the original did: compute dominates and parallel speed-ups show)")
    return flags


def _cluster_flags() -> argparse.ArgumentParser:
    """Where the distributed approaches run: the broker (d to g, j's results), dask's scheduler (h), MPI's hosts
    (i), RabbitMQ (j)."""
    flags = argparse.ArgumentParser(add_help=False)
    add = flags.add_argument_group("broker and engines").add_argument
    add("--broker", metavar="URL", help="the broker of the queue approaches: memory:// (default, fakeredis in "
        "this process), embedded:// (a Valkey server started here), or redis://host:port/db")
    add("--scheduler", metavar="tcp://HOST:PORT", help="approach h: the dask scheduler to run on (default: a "
        "LocalCluster of worker processes started here); it ships pickled functions: a trusted network only")
    add("--mpi-hosts", type=Path, metavar="FILE", help="approach i: an MPI host file (one host[:ranks] a line), "
        "so the ranks run on those machines; every machine needs the suite and the input and output folders")
    add("--amqp", metavar="URL", help="approach j: a running RabbitMQ, amqp://user:password@host:port/vhost "
        "(default: a private node started here, where RabbitMQ is installed); its password is never shown")
    return flags


def _output_flags() -> argparse.ArgumentParser:
    """Where the results go, and how much is said."""
    flags = argparse.ArgumentParser(add_help=False)
    add = flags.add_argument_group("results").add_argument
    add("--json", type=Path, metavar="FILE", help="also write the results document to FILE")
    add("--logs", type=Path, default=Path("logs"), metavar="DIR", help="where the run log goes (default: logs)")
    add("--charts", type=Path, default=CHARTS, metavar="DIR", help=f"where charts go (default: {CHARTS})")
    add("--no-charts", action="store_true", help="do not draw charts")
    add("--quiet", action="store_true", help="no progress bar and no table, only errors")
    return flags


def _timing_flags() -> argparse.ArgumentParser:
    """How the approaches are timed."""
    flags = argparse.ArgumentParser(add_help=False)
    add = flags.add_argument_group("timing").add_argument
    add("--repeat", type=int, metavar="N", help=f"timed runs of each approach, after {WARMUPS} untimed warm-up, in "
        f"an order that rotates each round; tables show the median and the spread (default {REPEAT})")
    add("--quick", action="store_true", help="one timed pass, no warm-up: quicker, noisier, and the table says so")
    return flags


def _verify_flag() -> argparse.ArgumentParser:
    """Whether a run checks its outputs against a's pixels (a stage of its own, after the timed runs)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument_group("checking").add_argument(
        "--no-verify", action="store_true", help="do not check the outputs against a's pixels (a stage of its own, "
        "timed apart: a's outputs decoded where a ran, else each input blurred again); the table says 'not verified'")
    return flags


# --- flags and environment -> RunConfig ---------------------------------------------------------------------


def config_from(args: argparse.Namespace, env: Mapping[str, str], settings: Settings | None = None) -> RunConfig:
    """Merge defaults, environment and flags into a validated RunConfig."""
    values = {"workers": cores_present(), **_env_defaults(env)}
    flags = {"kernel_size": args.kernel_size, "tile_size": args.tile_size, "workers": args.workers,
             "input_dir": args.input, "output_dir": args.output, "broker": args.broker, "kernel": args.kernel,
             "scheduler": args.scheduler, "mpi_hosts": args.mpi_hosts, "amqp": args.amqp,
             "max_pixels": args.max_pixels}
    values.update({name: value for name, value in flags.items() if value is not None})
    quick, repeat = getattr(args, "quick", False), getattr(args, "repeat", None)  # chaos times no rounds
    chaos = args.command == "chaos"
    config = RunConfig(
        approaches=_parse_list("chaos", args.approaches, KILLABLE) if chaos else _parse_approaches(args.approaches),
        png_level=args.png_level,
        png_encoder=_resolve_encoder(args.png_encoder),
        repeat=(1 if quick else REPEAT) if repeat is None else repeat,
        warmups=0 if quick else WARMUPS,
        truncate=args.truncate,
        **values,
    )
    queues = [letter for letter in config.approaches if letter in KILLABLE]
    if queues and not (args.command == "sweep" and args.axis == "tile-size"):
        check_queue_tile_size(config.tile_size, ",".join(queues))
    return config if settings is None else replace(config, settings=settings)


def _without_unavailable(config: RunConfig) -> RunConfig:
    """config without j where it cannot run (no RabbitMQ installed, no --amqp), said in one line; a ConfigError
    if that leaves nothing to run.  (j has no in-memory twin, as memory:// is to Redis.)"""
    if "j" not in config.approaches:
        return config
    from approaches.cluster.amqp import unavailable

    if (why := unavailable(config.amqp)) is None:
        return config
    if config.approaches == ("j",):
        raise ConfigError(why)
    print(f"skipping {why}", file=sys.stderr)
    return replace(config, approaches=tuple(letter for letter in config.approaches if letter != "j"))


def _resolve_encoder(name: str) -> str:
    from approaches.core.png import resolve_encoder  # numpy and Pillow: not for --help

    return resolve_encoder(name)  # fpng missing: one line, then Pillow


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
