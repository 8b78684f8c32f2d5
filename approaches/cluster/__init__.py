"""The simulated (or real) cluster that approaches d–g run on.

    broker.py   connect(url): memory:// (fakeredis), embedded:// (a Valkey started here), redis://
    board.py    one run's shared records in Redis under blur:<run>:, and their clean-up
    wire.py     every message and record that crosses the broker, as bytes, validated on the way in
    queues.py   the work queue: next / ack / nack / requeue, whatever Redis structure is behind it
    pods.py     pods: threads or processes that can be started, killed and restarted
    deployment.py  a queue approach's coordinator, workers and assembler as pods, and the run's end

It imports only core/; the chaos demo that kills its pods is the harness's (harness/chaos.py).
"""
