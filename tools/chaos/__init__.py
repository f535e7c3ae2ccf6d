"""Faults on real processes: a local cluster of ``python -m tools node`` processes with the key-value
service, concurrent clients whose operations are recorded, seeded nemeses, and checkers of the recorded
history (docs/chaos.md). ``python -m tools chaos`` is its command line (``tools.chaos_cmd``).

* ``tools.chaos.run``: ``ChaosRun``, one run's phases, from the start of the processes to their stop;
* ``tools.chaos.nemesis``: the seeded fault schedules and the state machine that injects them;
* ``tools.chaos.history``: the JSON-lines history file;
* ``tools.chaos.checkers``: linearizability per key, lost acknowledged writes, recovery times.
"""
