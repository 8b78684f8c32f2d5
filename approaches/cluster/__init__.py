"""The simulated (or real) cluster that approaches d–g run on.

    broker.py      connect(url): memory:// (fakeredis), embedded:// (a Valkey started here), redis://
    board.py       one run's shared records in Redis under blur:<run>:, read defensively; a run's end
    wire.py        every message and record that crosses the broker, as bytes, validated on the way in
    queues.py      the work queue: one protocol (put, next, ack, nack, requeue, reclaim, ...), three variants
    worker.py      the one worker loop of e, f and g
    planning.py    a coordinator's steps: load, plan, queue each image whole; resume only the same images
    assembly.py    the assembler of f and g: saves each image once all its results are in Redis
    pods.py        pods: threads or processes that can be started, killed and restarted
    deployment.py  a queue approach's coordinator, workers and assembler as pods, and the run's end

It imports only core/; the chaos demo that kills its pods is the harness's (harness/chaos.py).
"""
