"""Fault harness for the live service: three ``omniroute serve`` replicas on one real Redis,
simulated platforms and agents, faults at random times, a recorded history of every client
operation and server state change, and an offline checker of the routing promises.

``history`` records, ``checker`` judges (pure), ``proxy`` injects network faults between one
replica and Redis, ``cluster`` owns the processes, ``workload`` plays platforms and agents,
``nemesis`` schedules faults, ``harness`` runs it all, ``report`` writes the figures and
``cli`` is ``python -m router.chaos``.
"""
