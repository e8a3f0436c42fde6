"""Distributed runs on Dask: a Plan split over Dask workers, their seconds merged into one run folder.

    spec.py         --cluster local:N / --scheduler URL (+ Dask TLS), parsed (pure)
    split.py        the Plan split into one shard per Dask worker; pre-flights merged (pure)
    messages.py     what a shard sends the coordinator
    task.py         the Dask task: starts the shard program on its worker, relays its messages
    shard.py        the shard program: pre-flight + the local supervisor, seconds sent instead of written
    coordinator.py  DaskRun: the Supervisor over Dask tasks instead of processes

What `twload run --cluster/--scheduler` calls, execute(), is the command line's: cli/run_cluster.py.
"""
