"""The suite as a web page (`blur-suite web`): upload images, watch tiles come back, kill a worker mid-job.

The seeds this suite descends from (003, 004) were upload -> split into parts -> process in parallel ->
recombine -> download, behind a Flask page.  This is that page over the suite's own machinery: the
approaches run unchanged (harness/live.py streams their spans and kills their pods), and the page
shows the lesson: tiles appearing as workers finish them, a killed worker's tiles coming back under f
and g, and holes staying holes under e.

    app.py     the routes            jobs.py    uploads checked, the queue, each job's files
    events.py  the live stream       serve.py   the command line: bind, print the URL, clean up
    static/index.html                the page: plain JS and <canvas>, no build step

Harness side: it may import lessons, cluster and core; nothing imports it but the command line.
"""
