"""python -m visualize RUN.json [--charts DIR]: a results document's charts, drawn again (the same as
``run_all.py redraw``, without the suite's command line)."""

import argparse
import sys
from pathlib import Path

from visualize.documents import DocumentError, read_document

DEFAULT_CHARTS = Path("logs/charts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m visualize", description="Draw a results document's charts "
                                     "again: a run's comparison and timelines, a sweep's lines, the chaos demo's bars.")
    parser.add_argument("document", type=Path, metavar="RUN.json", help="a run's, a sweep's or a chaos demo's results")
    parser.add_argument("--charts", type=Path, default=DEFAULT_CHARTS, metavar="DIR",
                        help=f"where the charts go (default: {DEFAULT_CHARTS})")
    args = parser.parse_args(argv)
    name = str(args.document)
    try:
        doc = read_document(args.document)
        from visualize.redraw import redraw  # matplotlib is slow to import: not for --help or a bad file

        drawn = redraw(doc, args.charts)
    except (DocumentError, OSError) as error:
        print(f"{parser.prog}: error: {name if name.isprintable() else ascii(name)}: {error}", file=sys.stderr)
        return 2
    print(f"drawn: {', '.join(str(path) for path in drawn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
