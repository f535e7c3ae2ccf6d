"""Where generated files go: a directory, or memory (for tests and ``codegen --check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

__all__ = ["DirectoryOutput", "MemoryOutput", "Output"]


class Output(Protocol):
    def write(self, relative_path: str, text: str) -> None: ...


class MemoryOutput:
    """Collects generated files in ``files`` (relative path -> text)."""

    def __init__(self) -> None:
        self.files: dict[str, str] = {}

    def write(self, relative_path: str, text: str) -> None:
        self.files[relative_path] = text


class DirectoryOutput:
    """Writes generated files below ``root``, creating folders; unchanged files are not rewritten."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.written: list[Path] = []

    def write(self, relative_path: str, text: str) -> None:
        path = self.root / relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return
        path.write_text(text, encoding="utf-8")
        self.written.append(path)
