"""The work behind `run`, `sweep` and `chaos`: what each needs before it starts, and the measured run itself.

Before any work, everything a person can get wrong is found and said in one line: the input folder (the
sample images are made on a first run), a broker or dask scheduler nothing answers, a place that cannot be
written.  Then the kernel is loaded (compiled on a first run), so no approach's first timing pays for it.
"""

import itertools
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from approaches.core.config import RunConfig
from approaches.core.errors import ConfigError
from approaches.core.images import ImageSource, find_images
from approaches.core.kernel import warm_up
from approaches.core.trace import Span
from approaches.harness.measure import document, measure_all, verify
from approaches.harness.results import Output, check_writable, failed_once, log_text, summary_table, write_document
from approaches.registry import APPROACHES
from approaches.samples import SAMPLES, ensure_samples


def prepare(config: RunConfig, out: Output, letters: Sequence[str], folders: Sequence[str],
            default_input: bool) -> list[ImageSource]:
    """The input images, once every check has passed and the kernel is loaded.  letters: the approaches that
    will run; folders: the ones under --output they write; default_input: make the samples if missing."""
    sources = _inputs(config, out, default_input, _say(out))
    check_ready(config, out, letters, folders)
    return sources


def check_ready(config: RunConfig, out: Output, letters: Sequence[str], folders: Sequence[str]) -> None:
    """prepare without the input images (a command that makes its own): the engines answer, the folders can be
    written, the kernel is loaded."""
    # Each check's module (redis, RabbitMQ's, dask's) is imported only where a run needs it: not for a run of c
    if any(APPROACHES[letter].uses_broker for letter in letters):
        from approaches.cluster.broker import check_reachable

        check_reachable(config.broker)  # one line now, not one failure per image and approach
    if config.amqp is not None and "j" in letters:
        from approaches.cluster.amqp import check_reachable as check_amqp_reachable

        check_amqp_reachable(config.amqp)  # likewise: j would fail every image with it
    if config.scheduler is not None and "h" in letters:
        from approaches.cluster.dask_cluster import check_scheduler_reachable

        check_scheduler_reachable(config.scheduler)  # likewise: h would wait 30 s for it, then fail every image
    problems = check_writable(config, out, folders)
    if problems:
        raise ConfigError(problems[0])  # one line: the first place that cannot be written
    _say(out)(f"loading the {config.kernel} kernel (compiled on the first run, read from numba's cache after)")
    warm_up(config.kernel_size, method=config.kernel)


def _say(out: Output) -> Callable[[str], None]:
    return (lambda text: None) if out.quiet else (lambda text: print(text, file=sys.stderr))


def run(config: RunConfig, out: Output, sources: Sequence[ImageSource], check: bool = True) -> int:
    """Time every approach, then (check: unless --no-verify) check every output against a's pixels, as a stage of
    its own; print the table, write the results; the exit status (1 when an image failed or differs from a)."""
    runs = len(config.approaches) * (config.warmups + config.repeat)
    with _bar(out, len(sources) * runs, f"{runs} runs") as bar:
        measured = measure_all([APPROACHES[letter] for letter in config.approaches], config, sources, bar.update,
                               on_span=_count_tiles(bar))
    verified = None
    if check:
        with _bar(out, len(sources), "checking every output against a") as bar:
            verified = verify(measured, sources, config, bar.update)
    doc = document(config, measured, verified)
    if not out.quiet:
        print(summary_table(doc))
    problems = failed_once(doc["results"])
    problems += [f"{m.approach.letter}: differs from a: {reason}" for m in measured for reason in m.mismatches]
    problems += write_document(out, doc, text=log_text(doc), draw=lambda folder: _draw_all(doc, folder))
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


def _draw_all(doc: dict, folder: Path) -> list[Path]:
    from visualize.charts import draw_all  # matplotlib is slow to import: only when drawing

    return draw_all(doc, folder)


@contextmanager
def _bar(out: Output, total: int, description: str = "") -> Iterator[tqdm]:
    with tqdm(total=total, unit="image", desc=description, disable=True if out.quiet else None, leave=False) as bar:
        yield bar


def _inputs(config: RunConfig, out: Output, default_input: bool, say: Callable[[str], None]) -> list[ImageSource]:
    if default_input:
        missing = [spec for spec in SAMPLES if not (config.input_dir / f"{spec.name}.png").exists()]
        if missing:
            say(f"making {len(missing)} sample images in {config.input_dir} (first run only)")
        with _bar(out, len(missing), "making samples") as bar:
            ensure_samples(config.input_dir, png_level=config.png_level, progress=bar.update)
    sources = find_images(config.input_dir)
    if not sources:
        raise ConfigError(f"no images in {config.input_dir} (looked for .png, .jpg, .bmp, .gif, .tif, .webp)")
    return sources
