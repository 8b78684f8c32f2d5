"""One frozen RunConfig from command-line flags and environment variables (flags win over env)."""

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from approaches.cluster.broker import DEFAULT_URL, check_url
from approaches.core.errors import ConfigError
from approaches.core.kernel import KERNELS, MAX_KERNEL_SIZE, validate_kernel_size

MAX_TILE_SIZE = 1 << 16
SWEEPS = ("tile-size", "workers")  # what run_all.py --sweep can vary: see sweep.py
CHAOS_APPROACHES = ("e", "f", "g")  # the queue approaches that run_all.py --chaos can kill pods of
CHAOS_SCENARIOS = ("workers", "one-worker", "assembler", "coordinator", "broker")  # what it kills: see cluster/chaos.py


def cores_present() -> int:
    """Cores this process may run on (respects taskset and container CPU sets)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@dataclass(frozen=True)
class RunConfig:
    approaches: tuple[str, ...] = ("a",)
    input_dir: Path = Path("data/input")
    output_dir: Path = Path("data/output")
    kernel_size: int = 21
    tile_size: int = 256
    workers: int = 1
    png_level: int = 1
    repeat: int = 1
    truncate: bool = False
    kernel: str = "separable"  # one of kernel.KERNELS: "direct" makes a run compute-bound
    json_path: Path | None = None
    logs_dir: Path = Path("logs")
    charts_dir: Path | None = Path("visualize")
    quiet: bool = False
    sweep: str | None = None
    broker: str = DEFAULT_URL
    chaos: tuple[str, ...] = ()
    chaos_scenarios: tuple[str, ...] = CHAOS_SCENARIOS

    def __post_init__(self) -> None:
        try:
            validate_kernel_size(self.kernel_size)
        except ValueError as error:
            raise ConfigError(f"--kernel-size: {error}") from None
        if self.kernel not in KERNELS:
            raise ConfigError(f"--kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.sweep is not None and self.sweep not in SWEEPS:
            raise ConfigError(f"--sweep must be one of {', '.join(SWEEPS)}, got {self.sweep!r}")
        _check_range("--tile-size", self.tile_size, 1, MAX_TILE_SIZE)
        _check_range("--workers", self.workers, 1, 1024)
        _check_range("--png-level", self.png_level, 0, 9)
        _check_range("--repeat", self.repeat, 1, 1000)
        check_url(self.broker)

    @property
    def radius(self) -> int:
        return self.kernel_size // 2


def _check_range(flag: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"{flag} must be between {low} and {high}, got {value}")


ENV_DEFAULTS = {
    "kernel_size": ("KERNEL_SIZE", int),
    "workers": ("NUM_WORKERS", int),
    "tile_size": ("TILE_SIZE", int),
    "input_dir": ("INPUT_PATH", Path),
    "output_dir": ("OUTPUT_PATH", Path),
    "broker": ("BROKER_URL", str),
    "kernel": ("BLUR_KERNEL", str),
}


def _env_defaults(env: Mapping[str, str]) -> dict:
    values = {}
    for field, (variable, kind) in ENV_DEFAULTS.items():
        if variable in env:
            try:
                values[field] = kind(env[variable])
            except ValueError:
                raise ConfigError(f"environment variable {variable}={env[variable]!r} is not a number") from None
    return values


def build_parser(known_approaches: Sequence[str], describe: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_all.py",
        description="Blur a folder of images with each approach, time them, check they agree, and chart it.",
        epilog=f"approaches:\n{describe}\n\nEnvironment: KERNEL_SIZE, NUM_WORKERS, INPUT_PATH, OUTPUT_PATH, "
        "TILE_SIZE, BROKER_URL, BLUR_KERNEL set defaults; flags override them.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--approaches", default="all", metavar="LIST",
        help=f"comma-separated letters from {','.join(known_approaches)}, or 'all' (default: all)")
    add("--input", type=Path, metavar="DIR", help="folder of images (default: data/input, samples made if empty)")
    add("--output", type=Path, metavar="DIR", help="outputs go to DIR/<approach>/ (default: data/output)")
    add("--kernel-size", type=int, metavar="K", help=f"odd Gaussian size 1..{MAX_KERNEL_SIZE}, sigma=K/3 (default 21)")
    add("--tile-size", type=int, metavar="PX", help="tile edge in pixels (default 256)")
    add("--workers", type=int, metavar="N", help=f"workers per approach (default: cores present, {cores_present()})")
    add("--png-level", type=int, default=1, metavar="0-9",
        help="PNG compression level (default 1; 6 is 3-4x slower and would dominate every timing)")
    add("--repeat", type=int, default=1, metavar="N", help="run each approach N times; tables show the spread")
    add("--truncate", action="store_true", help="round blurred values down, as the original course did")
    # Checked by RunConfig, not argparse choices, so a bad value is one line and status 2 like other flags.
    add("--kernel", metavar="{" + ",".join(KERNELS) + "}",
        help="the same Gaussian computed separably (default; 2K taps per pixel, the run is I/O-bound) or "
        "directly in 2-D (K*K taps, as the original did: compute dominates and parallel speed-ups show)")
    add("--json", type=Path, metavar="FILE", help="also write the results document to FILE")
    add("--logs", type=Path, default=Path("logs"), metavar="DIR", help="where the run log goes (default: logs)")
    add("--charts", type=Path, default=Path("visualize"), metavar="DIR", help="where charts go (default: visualize)")
    add("--no-charts", action="store_true", help="do not draw charts")
    add("--quiet", action="store_true", help="no progress bar and no table, only errors")
    add("--sweep", metavar="{" + ",".join(SWEEPS) + "}",  # checked by RunConfig, like --kernel
        help="run the approaches at tile sizes 64..1024 (visualize/sweep_tile_size.png) or at 1..2x cores "
        f"workers (1..{2 * cores_present()} here; visualize/sweep_workers.png), and chart it; a and d blur whole "
        "images on one lane, so they run once and are drawn as a flat reference line")
    add("--broker", metavar="URL", help="the broker of the queue approaches: memory:// (default, fakeredis in "
        "this process), embedded:// (a Valkey server started here), or redis://host:port/db")
    add("--chaos", metavar="e,f,g", help="kill pods of each approach named while tiles are in flight, restart "
        "them, and report per image what was lost (e loses tiles, f and g do not)")
    add("--scenarios", metavar="LIST", help=f"with --chaos: which kills, from {','.join(CHAOS_SCENARIOS)} "
        "(default: all)")
    return parser


def config_from(args: argparse.Namespace, env: Mapping[str, str], known_approaches: Sequence[str]) -> RunConfig:
    """Merge defaults, environment and flags into a validated RunConfig."""
    values = {"workers": cores_present(), **_env_defaults(env)}
    flags = {"kernel_size": args.kernel_size, "tile_size": args.tile_size, "workers": args.workers,
             "input_dir": args.input, "output_dir": args.output, "broker": args.broker, "kernel": args.kernel}
    values.update({name: value for name, value in flags.items() if value is not None})
    return RunConfig(
        approaches=_parse_approaches(args.approaches, known_approaches),
        png_level=args.png_level,
        repeat=args.repeat,
        truncate=args.truncate,
        json_path=args.json,
        logs_dir=args.logs,
        charts_dir=None if args.no_charts else args.charts,
        quiet=args.quiet,
        sweep=args.sweep,
        chaos=_parse_chaos(args.chaos),
        chaos_scenarios=_parse_list("--scenarios", args.scenarios, CHAOS_SCENARIOS),
        **values,
    )


def _parse_chaos(text: str | None) -> tuple[str, ...]:
    return () if text is None else _parse_list("--chaos", text, CHAOS_APPROACHES)


def _parse_list(flag: str, text: str | None, known: Sequence[str]) -> tuple[str, ...]:
    """Comma-separated names from known (all of them when text is None), each once, in the order given."""
    if text is None:
        return tuple(known)
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in known]
    if unknown or not chosen:
        raise ConfigError(f"{flag}: unknown {','.join(unknown) or 'empty list'}; choose from {','.join(known)}")
    return chosen


def _parse_approaches(text: str, known: Sequence[str]) -> tuple[str, ...]:
    """'all', or letters and variants: 'b' selects every variant b.threads, b.processes, ..."""
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
