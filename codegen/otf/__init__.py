"""The on-the-fly (run-time) SBE codec: decode and encode any schema from its IR, no generated code.

Theory of operation
-------------------
Like SBE's OTF decoder, :class:`OtfCodec` interprets a schema at run time.  Unlike a naive
interpreter it walks the IR only once, at construction, compiling every message into *plans*:

* each fixed-size value becomes a :class:`~codegen.otf._values.Slot`, a ``struct`` format fragment
  with a decode and an encode converter (scalars, arrays, char arrays, enums, sets, composites);
* each block (a message's root block, a group's entry) concatenates its slots into one
  ``struct.Struct`` in the schema's byte order, so the common case reads a block with a single
  ``unpack_from`` and writes it with a single ``pack_into``;
* groups and var data keep small precompiled ``Struct`` objects for their dimension and length prefix.

Values follow ``docs/sbe-json.md`` exactly, so decoding a reference vector gives its ``fields`` and
encoding those fields gives its bytes.  A lone ``char`` (not covered by the table there) is a
one-character string, ``""`` for the NUL byte.

Versioning follows SBE readers: the header's version and block length are the *acting* ones.  A
field, group or var-data section newer than the acting version is ``None``.  An acting block longer
than the schema's has its extra bytes skipped; a field that does not fit in a *shorter* acting block
is treated as absent (``None``) rather than read from beyond the block.

Every bad input raises a :class:`~codegen.runtime.errors.CodecError` subclass naming message, field
path (``fuelFigures[1].usageDescription``) and absolute byte offset; no ``IndexError``,
``struct.error`` or ``UnicodeDecodeError`` escapes.
"""

from __future__ import annotations

from codegen.otf._codec import DecodedMessage, OtfCodec

__all__ = ["DecodedMessage", "OtfCodec"]
