"""The command-line tools: ``python -m tools <command>``, the project's outermost ring.

Nothing in ``codegen``, ``generated`` or ``cluster`` imports this package.
"""
