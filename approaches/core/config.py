"""One frozen RunConfig from command-line flags and environment variables (flags win over env)."""

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from approaches.cluster.broker import DEFAULT_URL, check_url
from approaches.core.errors import ConfigError
from approaches.core.kernel import MAX_KERNEL_SIZE, validate_kernel_size

MAX_TILE_SIZE = 1 << 16
CHAOS_APPROACHES = ("e", "f")  # the queue approaches that run_all.py --chaos can kill workers of


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
    json_path: Path | None = None
    logs_dir: Path = Path("logs")
    charts_dir: Path | None = Path("visualize")
    quiet: bool = False
    sweep: str | None = None
    broker: str = DEFAULT_URL
    chaos: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            validate_kernel_size(self.kernel_size)
        except ValueError as error:
            raise ConfigError(f"--kernel-size: {error}") from None
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
        "TILE_SIZE, BROKER_URL set defaults; flags override them.",
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
    add("--json", type=Path, metavar="FILE", help="also write the results document to FILE")
    add("--logs", type=Path, default=Path("logs"), metavar="DIR", help="where the run log goes (default: logs)")
    add("--charts", type=Path, default=Path("visualize"), metavar="DIR", help="where charts go (default: visualize)")
    add("--no-charts", action="store_true", help="do not draw charts")
    add("--quiet", action="store_true", help="no progress bar and no table, only errors")
    add("--sweep", choices=("tile-size",),
        help="run the approaches at tile sizes 64..1024 and chart it (visualize/sweep_tile_size.png)")
    add("--broker", metavar="URL", help="the broker of the queue approaches: memory:// (default, fakeredis in "
        "this process), embedded:// (a Valkey server started here), or redis://host:port/db")
    add("--chaos", metavar="e,f", help="kill every worker of each approach named while tiles are in flight, "
        "restart them, and report per image what was lost (e loses tiles, f does not)")
    return parser


def config_from(args: argparse.Namespace, env: Mapping[str, str], known_approaches: Sequence[str]) -> RunConfig:
    """Merge defaults, environment and flags into a validated RunConfig."""
    values = {"workers": cores_present(), **_env_defaults(env)}
    flags = {"kernel_size": args.kernel_size, "tile_size": args.tile_size, "workers": args.workers,
             "input_dir": args.input, "output_dir": args.output, "broker": args.broker}
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
        **values,
    )


def _parse_chaos(text: str | None) -> tuple[str, ...]:
    if text is None:
        return ()
    chosen = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    unknown = [letter for letter in chosen if letter not in CHAOS_APPROACHES]
    if unknown or not chosen:
        raise ConfigError(f"--chaos: unknown {','.join(unknown) or 'empty list'}; choose from "
                          f"{','.join(CHAOS_APPROACHES)}")
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
