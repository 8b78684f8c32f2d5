"""Draw a saved document's charts again, whatever command wrote it (``run_all.py redraw``, ``python -m visualize``)."""

from pathlib import Path
from typing import Any

from visualize.charts import draw_all, draw_chaos, draw_sweep
from visualize.documents import axis_stem, document_kind
from visualize.growth import draw_crossover, draw_scaling


def redraw(doc: dict[str, Any], directory: Path) -> list[Path]:
    """The document's charts, drawn into directory under the names its command gives them."""
    kind = document_kind(doc)
    if kind == "sweep":
        return [draw_sweep(doc, directory / f"sweep_{doc['config']['sweep']}.png")]
    if kind == "scaling":
        return [draw_scaling(doc, directory / f"sweep_{axis_stem(doc)}.png")]
    if kind == "crossover":
        return [draw_crossover(doc, directory / "crossover.png")]
    if kind == "chaos":
        return [draw_chaos(doc, directory / "chaos.png")]
    return draw_all(doc, directory)
