"""Reading the Java SBE decoders' ``toString()`` renderings that the reference vectors carry.

The vectors' ``crossVersionDecode`` entries record what a real Java decoder made of a message encoded
at another schema version, only as its ``toString()``.  :class:`JavaToString` parses that rendering and
:func:`same_as_java` compares it with our JSON form of the same message.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["JavaToString", "same_as_java"]


class JavaToString:
    """Parse a Java SBE decoder's ``toString()``: ``[Car](sbe...):a=1|b=(c=2)|d=[..]|e={x,y}|f='s'``."""

    STOP = "|)],}"

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def parse(self) -> tuple[dict[str, str], dict[str, Any]]:
        head_end = self.text.index("):")
        meta = dict(item.split("=", 1) for item in self.text[self.text.index("](") + 2 : head_end].split("|"))
        self.i = head_end + 2
        return meta, self.pairs(end="")

    def pairs(self, end: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        while self.i < len(self.text) and self.text[self.i] != end:
            eq = self.text.index("=", self.i)
            key = self.text[self.i : eq]
            self.i = eq + 1
            out[key] = self.value()
            if self.i < len(self.text) and self.text[self.i] == "|":
                self.i += 1
        self.i += 1  # the closing bracket (or past the end)
        return out

    def value(self) -> Any:
        c = self.text[self.i] if self.i < len(self.text) else ""
        if c == "(":
            self.i += 1
            return self.pairs(end=")")
        if c == "[":
            self.i += 1
            items = []
            while self.text[self.i] != "]":
                items.append(self.value())
                if self.text[self.i] == ",":
                    self.i += 1
            self.i += 1
            return items
        if c == "{":
            end = self.text.index("}", self.i)
            body = self.text[self.i + 1 : end]
            self.i = end + 1
            return ("set", body.split(",") if body else [])
        if c == "'":
            end = self.text.index("'", self.i + 1)
            text = self.text[self.i + 1 : end]
            self.i = end + 1
            return text
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in self.STOP:
            self.i += 1
        return self.text[start : self.i]


def _f32(value: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def same_as_java(java: Any, ours: Any, where: str) -> None:
    """Does our JSON value read the same as the Java decoder's rendering of it?"""
    if isinstance(ours, dict):
        assert isinstance(java, dict), where
        lowered = {k.lower(): v for k, v in java.items()}
        for key, value in ours.items():
            assert key.lower() in lowered, f"{where}.{key} missing from the Java reading"
            same_as_java(lowered[key.lower()], value, f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(java, tuple):
        assert java == ("set", ours), where
    elif isinstance(ours, list):
        assert isinstance(java, list) and len(java) == len(ours), where
        for k, (j, o) in enumerate(zip(java, ours, strict=True)):
            same_as_java(j, o, f"{where}[{k}]")
    elif isinstance(ours, bool) or ours is None:
        raise AssertionError(f"{where}: unexpected {ours!r} (Java: {java!r})")
    elif isinstance(ours, int):
        assert int(java) in (ours, ours - 2**64), f"{where}: Java {java} vs ours {ours}"
    elif isinstance(ours, float):
        assert _f32(float(java)) == ours, f"{where}: Java {java} vs ours {ours}"
    else:
        assert java == ours, f"{where}: Java {java!r} vs ours {ours!r}"
