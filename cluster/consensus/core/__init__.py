"""The sans-IO consensus core: membership, quorum rules, the recording log model, configuration.

Nothing here touches sockets, files, threads, clocks or randomness; decoded messages and ``now_ns``
go in, values and actions come out. ``tests/consensus/test_core_imports.py`` and ``lint-imports`` hold it.
"""
