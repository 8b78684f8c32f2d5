"""What the distributed approaches d–j run on: the simulated (or real) cluster, and the engines' start-up.

    broker.py        connect(url): memory:// (fakeredis), embedded:// (a Valkey started here), redis://
    board.py         one run's shared records in Redis under blur:<run>:, read defensively; a run's end
    wire.py          every message and record that crosses the broker, as bytes, validated on the way in
    queues.py        the work queue's protocol (put, next, ack, nack, requeue, reclaim, ...) and dead letters;
                     its three variants are the lessons e, f and g
    worker.py        the one worker loop of e, f and g, given the lesson's queue
    planning.py      a coordinator's steps: load, plan, queue each image whole; resume only the same images
    assembly.py      the assemblers: e's in memory, f's and g's from the results stored in Redis
    pods.py          pods: threads or processes that can be started, killed and restarted
    deployment.py    a queue approach's coordinator, workers and assembler as pods, and the run's end
    dask_cluster.py  h's dask client and LocalCluster, started quietly; dask's task stream as spans
    mpi_launch.py    i's mpiexec launch of N ranks and rank 0's report read back
    amqp.py          j's RabbitMQ: a private node started here, or any amqp:// URL
    guardian.py      what a run starts outside itself (a server, mpiexec, a node) stopped, and its folder
                     removed, even when the run is killed

It imports only core/ (never a lesson: a lesson passes in what is its own, such as its queue); the chaos
demo that kills its pods is the harness's (harness/chaos.py).
"""
