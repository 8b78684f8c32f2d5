"""The harness: everything around the lessons, and nothing they import.

    cli.py      flags and environment -> RunConfig; a measured run, a sweep or the chaos demo; signals
    measure.py  run one approach and time it; check every output against a's pixels
    sweep.py    the approaches at each tile size or worker count
    chaos.py    kill pods of the queue approaches mid-run, and report truthfully what was lost
    results.py  the one writer: JSON, the original course's text log, the table
    charts.py   charts drawn from a results document alone
    service.py  approach g's command line: `blur-suite service --mode ...`
"""
