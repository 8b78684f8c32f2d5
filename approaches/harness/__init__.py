"""The harness: everything around the lessons, and nothing they import.

    cli.py      the subcommands (run, web, service, chaos, sweep, crossover, compare, redraw), flags and environment
                -> RunConfig
    run.py      the checks before run, sweep and chaos (inputs, broker, writable places, the kernel), and a measured run
    measure.py  time the approaches (a warm-up, then rotated timed rounds); check every output against a's pixels
    sweep.py    the approaches at each tile size or worker count
    workloads.py  the work to grow (image size, number of images, kernel size) and its generated input folders
    scaling.py  the approaches as the work grows, a fresh process per point: time, memory, growth exponents
    crossover.py  which approach is fastest where: two maps of workloads, margins and ties
    chaos.py    kill pods of the queue approaches mid-run, and report truthfully what was lost
    results.py  the one writer: JSON (with its schema and provenance), the original course's text log, the table;
                Output, where results go and how much a command says
    footprint.py  a command's peak memory, its whole process tree added up (benchmarks, sweeps)
    traceevents.py  a measured run's timelines as a Chrome trace-event file (Perfetto, chrome://tracing)
    offline.py  compare two results files, redraw the charts of one (drawn by the visualize package)
    service.py  approach g's command line: `blur-suite service --mode ...`
"""
