"""Schema errors: each names the file, the line and the problem."""

from __future__ import annotations

__all__ = ["SchemaError"]


class SchemaError(Exception):
    """An SBE schema breaks the spec or cannot be read.

    ``str(error)`` is ``"<file>:<line>: <problem>"`` so editors can jump to it.
    """

    is_user_error = True

    def __init__(self, problem: str, *, file: str, line: int | None) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        super().__init__(f"{file}:{line if line is not None else '?'}: {problem}")
