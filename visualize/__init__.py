"""Charts as a pure function of a results document: what blur-suite's runs, sweeps and chaos demos write.

    documents.py  read a results document (any schema up to this one), tell its kind, name its method, order lanes
    charts.py     draw it: the comparison and a timeline per approach, a sweep's lines, the chaos demo's bars

Nothing here imports the suite's approaches: a document saved on one machine is drawn again on another,
long after (``python -m visualize RUN.json``, or ``run_all.py redraw RUN.json``).  matplotlib loads only with
charts.py, so the harness reads documents through documents.py without paying for it.
"""
