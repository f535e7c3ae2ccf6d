"""Shared machinery of the generated flyweight codecs.

Theory of operation
-------------------
A generated decoder is a flyweight: ``wrap`` points it at a buffer and nothing
is read until a property is asked for.  Fixed fields sit at known offsets in
the block and are read in place by precompiled ``struct`` objects (generated
inline, for speed).  What follows the block -- groups, then var data -- has no
fixed offsets: each section starts where the previous one ended.  The root
decoder keeps that running position in ``_limit``.

To make access order forgiving, every message and group entry numbers its
sections (``_section`` is the next one expected) and owns a table of *skip*
functions, one per section, that advance ``_limit`` over a section without
decoding it.  Asking for a later section skips the ones in between; asking
for an earlier one rewinds to the end of the block and skips forward again; a
group left half-iterated is finished (skipped) first.  All of this costs one
integer comparison on the in-order path.

Encoders mirror this: sections are written in schema order; a section that is
jumped over is written empty, and a group whose declared count was not
filled is an error.

Bounds: ``wrap`` checks the block fits; every section read checks its length
against the buffer before touching it; every failure is a ``CodecError``
naming the message, the field and the offset.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from codegen.runtime.errors import (
    BufferTooShortError,
    CodecError,
    EncodeValueError,
    SchemaIdMismatchError,
    UnknownTemplateError,
    UnsupportedVersionError,
)

__all__ = [
    "Cursor",
    "EncodeCursor",
    "GroupDecoder",
    "GroupEncoder",
    "buffer_length",
    "decode_text",
    "encode_text",
    "enum_to_json",
    "is_read_only",
    "set_to_json",
    "too_short",
    "zero_nothing",
]

SkipFn = Callable[["Cursor"], None]


def buffer_length(buffer: Any) -> int:
    """Length in bytes of any buffer-protocol object (memoryviews of any format too)."""
    if isinstance(buffer, memoryview):
        return buffer.nbytes
    return len(buffer)


def byte_view(buffer: Any) -> Any:
    """``buffer`` itself, or, for a memoryview of another item format or shape, a flat byte view of it
    (so offsets and slices count bytes)."""
    if type(buffer) is memoryview and (buffer.format != "B" or buffer.ndim != 1 or not buffer.c_contiguous):
        if not buffer.c_contiguous:
            raise CodecError("a memoryview must be C-contiguous to be decoded or encoded")
        return buffer.cast("B")
    return buffer


def is_read_only(buffer: Any) -> bool:
    """Whether ``buffer`` cannot be written in place (or is no buffer at all): what an encoder of a block
    of no bytes checks in ``wrap``, where a block-clearing ``pack_into`` would otherwise find out."""
    try:
        with memoryview(buffer) as view:
            return view.readonly
    except TypeError:
        return True


def zero_nothing(buffer: Any, offset: int) -> None:
    """The block clearing of a group entry of no bytes: there is nothing to clear."""


def too_short(message: str, field: str | None, offset: int, need: int, have: int) -> BufferTooShortError:
    """The error for a read or write at ``offset`` needing the buffer to reach ``need`` bytes."""
    reason = (
        f"offset {offset} is negative"
        if offset < 0
        else f"buffer too short: need {need} bytes, have {max(have, 0)}"
    )
    return BufferTooShortError(reason, message_name=message, field=field, offset=offset)


_CODEC_CACHE: dict[str, str] = {}


def _codec(encoding: str) -> str:
    name = _CODEC_CACHE.get(encoding)
    if name is None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            name = "latin-1"
        _CODEC_CACHE[encoding] = name
    return name


def decode_text(raw: bytes | memoryview, encoding: str, message: str, field: str, offset: int) -> str:
    try:
        return bytes(raw).decode(_codec(encoding))
    except UnicodeDecodeError as exc:
        raise CodecError(
            f"text is not valid {encoding}: {exc.reason}",
            message_name=message,
            field=field,
            offset=offset + exc.start,
        ) from None


def encode_text(value: str, encoding: str, message: str, field: str) -> bytes:
    try:
        return value.encode(_codec(encoding))
    except UnicodeEncodeError as exc:
        raise EncodeValueError(
            f"text cannot be encoded as {encoding}: {exc.reason}", message_name=message, field=field
        ) from None


def enum_to_json(value: int, names: dict[int, str], null: int) -> str | int | None:
    """An enum's JSON form: its name, ``None`` for the null value, else the number."""
    name = names.get(value)
    if name is not None:
        return name
    return None if value == null else value


def set_to_json(value: int, choices: tuple[tuple[str, int], ...]) -> list[str | int]:
    """A set's JSON form: the names of the choices set, then any unnamed bits as numbers."""
    out: list[str | int] = [name for name, bit in choices if value >> bit & 1]
    known = 0
    for _, bit in choices:
        known |= 1 << bit
    rest = value & ~known
    bit = 0
    while rest:
        if rest & 1:
            out.append(bit)
        rest >>= 1
        bit += 1
    return out


def _run_sections(cursor: Any, table: tuple[Callable[[Any], None], ...], upto: int) -> None:
    """Apply ``table``'s per-section action (skip it, or write it empty) from the cursor's next section
    up to, not including, ``upto``."""
    while cursor._section < upto:
        table[cursor._section](cursor._root)
        cursor._section += 1


class Cursor:
    """State shared by a root decoder and its group entries: buffer, limit, sections."""

    __slots__ = ("_buffer", "_end", "_limit", "_pending", "_root", "_section")

    NAME: ClassVar[str] = ""
    _SECTIONS: ClassVar[tuple[SkipFn, ...]] = ()

    _buffer: Any
    _end: int
    _limit: int
    _section: int
    _pending: GroupDecoder | None
    _root: Cursor

    def _block_end(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _enter(self, index: int) -> None:
        """Bring the cursor to section ``index`` (skipping or rewinding), then mark it taken."""
        if self._pending is not None:
            self._pending._finish()
        if self._section > index:
            self._root._limit = self._block_end()
            self._section = 0
        _run_sections(self, self._SECTIONS, index)
        self._section = index + 1

    def _finish_sections(self) -> None:
        if self._pending is not None:
            self._pending._finish()
        _run_sections(self, self._SECTIONS, len(self._SECTIONS))

    def _var_data(
        self, length_unpack: Callable[[Any, int], tuple[int, ...]], prefix: int, field: str
    ) -> memoryview:
        root = self._root
        start = _advance_var_data(root, length_unpack, prefix, self.NAME, field)
        return memoryview(root._buffer)[start : root._limit]

    def total_length(self) -> int:
        """Bytes from the block's start to the end of the last section (reads every section)."""
        self._finish_sections()
        return self._root._limit - self._block_start()

    def _block_start(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


def _advance_var_data(
    root: Cursor, length_unpack: Callable[[Any, int], tuple[int, ...]], prefix: int, owner: str, field: str
) -> int:
    """Move ``root``'s limit over the var-data section at it; return where its bytes start."""
    limit = root._limit
    end = root._end
    if limit + prefix > end:
        raise too_short(owner, field, limit, limit + prefix, end)
    start = limit + prefix
    n = length_unpack(root._buffer, limit)[0]
    if start + n > end:
        raise too_short(owner, field, start, start + n, end)
    root._limit = start + n
    return start


def skip_var_data(
    length_unpack: Callable[[Any, int], tuple[int, ...]], prefix: int, owner: str, field: str, since: int = 0
) -> SkipFn:
    def skip(root: Cursor) -> None:
        if since and root._acting_version < since:  # type: ignore[attr-defined]
            return
        _advance_var_data(root, length_unpack, prefix, owner, field)

    return skip


MAX_EMPTY_ENTRIES = 65536
"""The most entries a group may declare when its entries can take no bytes at all."""


def open_group(
    root: Cursor,
    dim_unpack: Callable[[Any, int], tuple[int, ...]],
    dim_size: int,
    bl_index: int,
    count_index: int,
    min_block: int,
    section_min: int,
    owner: str,
    field: str,
) -> tuple[int, int]:
    """Read and check the group dimension at ``root``'s limit and move past it: (block length, count).

    The count is checked against the bytes left before any entry is read, counting for each entry its
    block plus the fewest bytes its sections can take, so a forged count cannot make us loop."""
    limit = root._limit
    end = root._end
    if limit + dim_size > end:
        raise too_short(owner, field, limit, limit + dim_size, end)
    dims = dim_unpack(root._buffer, limit)
    block, count = dims[bl_index], dims[count_index]
    if block < min_block:
        raise UnsupportedVersionError(
            f"group entry block length {block} is shorter than {min_block}",
            message_name=owner,
            field=field,
            offset=limit,
        )
    limit += dim_size
    entry_min = block + section_min
    if limit + count * entry_min > end:
        raise too_short(owner, field, limit, limit + count * entry_min, end)
    if entry_min == 0 and count > MAX_EMPTY_ENTRIES:
        raise CodecError(
            f"{count} entries of zero bytes is more than {MAX_EMPTY_ENTRIES}",
            message_name=owner,
            field=field,
            offset=limit - dim_size,
        )
    root._limit = limit
    return block, count


def skip_group(
    dim_unpack: Callable[[Any, int], tuple[int, ...]],
    dim_size: int,
    bl_index: int,
    count_index: int,
    min_block: int,
    section_min: int,
    entry_sections: tuple[SkipFn, ...],
    owner: str,
    field: str,
    since: int = 0,
) -> SkipFn:
    def skip(root: Cursor) -> None:
        if since and root._acting_version < since:  # type: ignore[attr-defined]
            return
        block, count = open_group(
            root, dim_unpack, dim_size, bl_index, count_index, min_block, section_min, owner, field
        )
        for _ in range(count):
            root._limit += block
            if root._limit > root._end:
                raise too_short(owner, field, root._limit - block, root._limit, root._end)
            for section in entry_sections:
                section(root)

    return skip


class GroupDecoder(Cursor):
    """A repeating group: iterate it to visit each entry (the decoder itself is the entry flyweight)."""

    __slots__ = ("_acting_block_length", "_acting_version", "_count", "_index", "_offset", "_parent")

    _DIM: Callable[[Any, int], tuple[int, ...]]
    _DIM_SIZE: ClassVar[int]
    _BL_INDEX: ClassVar[int] = 0
    _COUNT_INDEX: ClassVar[int] = 1
    _MIN_BLOCK: ClassVar[int] = 0
    _SECTION_MIN: ClassVar[int] = 0

    _offset: int
    _acting_block_length: int
    _count: int
    _index: int
    _acting_version: int
    _parent: Cursor

    def __init__(self, parent: Cursor) -> None:
        self._parent = parent
        self._root = parent._root
        self._buffer = b""
        self._end = 0
        self._offset = 0
        self._acting_block_length = 0
        self._count = 0
        self._index = 0
        self._section = 0
        self._pending = None
        self._acting_version = 0

    def _absent(self) -> GroupDecoder:
        """An empty group: this section is newer than the acting version, so not on the wire."""
        self._count = 0
        self._index = 0
        self._section = len(self._SECTIONS)
        return self

    def _start(self, acting_version: int) -> GroupDecoder:
        root = self._root
        parent = self._parent
        block, count = open_group(
            root,
            self._DIM,
            self._DIM_SIZE,
            self._BL_INDEX,
            self._COUNT_INDEX,
            self._MIN_BLOCK,
            self._SECTION_MIN,
            parent.NAME,
            self.NAME,
        )
        buffer = root._buffer
        end = root._end
        self._buffer = buffer
        self._end = end
        self._acting_block_length = block
        self._count = count
        self._index = 0
        self._section = len(self._SECTIONS)
        self._pending = None
        self._acting_version = acting_version
        parent._pending = self
        return self

    @property
    def count(self) -> int:
        return self._count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        self._finish_sections()
        if self._index >= self._count:
            if self._parent._pending is self:
                self._parent._pending = None
            raise StopIteration
        root = self._root
        start = root._limit
        end = start + self._acting_block_length
        if end > root._end:
            raise too_short(self._parent.NAME, f"{self.NAME}[{self._index}]", start, end, root._end)
        self._offset = start
        root._limit = end
        self._index += 1
        self._section = 0
        return self

    def _finish(self) -> None:
        """Skip whatever of this group the caller did not read."""
        self._finish_sections()
        root = self._root
        sections = self._SECTIONS
        while self._index < self._count:
            root._limit += self._acting_block_length
            for section in sections:
                section(root)
            self._index += 1
        if self._parent._pending is self:
            self._parent._pending = None

    def _block_end(self) -> int:
        return self._offset + self._acting_block_length

    def _block_start(self) -> int:
        return self._offset


class EncodeCursor:
    """State of a root encoder and its group entries: buffer, limit, sections written."""

    __slots__ = ("_buffer", "_end", "_limit", "_pending", "_root", "_section")

    NAME: ClassVar[str] = ""
    _EMPTY: ClassVar[tuple[Callable[[EncodeCursor], None], ...]] = ()

    _buffer: Any
    _end: int
    _limit: int
    _section: int
    _pending: GroupEncoder | None
    _root: EncodeCursor

    def _enter(self, index: int, field: str) -> None:
        if self._pending is not None:
            self._pending._close()
        if self._section > index:
            raise EncodeValueError(
                "sections must be written in schema order",
                message_name=self.NAME,
                field=field,
                offset=self._root._limit,
            )
        _run_sections(self, self._EMPTY, index)
        self._section = index + 1

    def _finish_sections(self) -> None:
        if self._pending is not None:
            self._pending._close()
        _run_sections(self, self._EMPTY, len(self._EMPTY))

    def _put_var_data(
        self, length_pack: Callable[..., None], prefix: int, max_length: int, value: Any, field: str
    ) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeValueError(
                f"var data must be bytes-like (or str, for text), not {type(value).__name__}",
                message_name=self.NAME,
                field=field,
            )
        data = value
        n = buffer_length(data)
        if n > max_length:
            raise EncodeValueError(
                f"{n} bytes exceed the maximum length {max_length}", message_name=self.NAME, field=field
            )
        root = self._root
        limit = root._limit
        if limit + prefix + n > root._end:
            raise too_short(self.NAME, field, limit, limit + prefix + n, root._end)
        length_pack(root._buffer, limit, n)
        start = limit + prefix
        root._buffer[start : start + n] = data
        root._limit = start + n


def empty_var_data(
    length_pack: Callable[..., None], prefix: int, owner: str, field: str
) -> Callable[[EncodeCursor], None]:
    def write(root: EncodeCursor) -> None:
        limit = root._limit
        if limit + prefix > root._end:
            raise too_short(owner, field, limit, limit + prefix, root._end)
        length_pack(root._buffer, limit, 0)
        root._limit = limit + prefix

    return write


def empty_group(
    dim_pack: Callable[..., None], dim_size: int, block_length: int, owner: str, field: str
) -> Callable[[EncodeCursor], None]:
    def write(root: EncodeCursor) -> None:
        limit = root._limit
        if limit + dim_size > root._end:
            raise too_short(owner, field, limit, limit + dim_size, root._end)
        dim_pack(root._buffer, limit, block_length, 0)
        root._limit = limit + dim_size

    return write


class GroupEncoder(EncodeCursor):
    """Writes a repeating group: ``next()`` moves to the next entry (the encoder is the entry flyweight)."""

    __slots__ = ("_count", "_index", "_offset", "_parent")

    BLOCK_LENGTH: ClassVar[int] = 0
    _DIM_PACK: ClassVar[Callable[..., None]]
    _DIM_SIZE: ClassVar[int]
    _MAX_COUNT: ClassVar[int] = 0
    _ZERO_PACK: Callable[[Any, int], None]

    _offset: int
    _count: int
    _index: int
    _parent: EncodeCursor

    def __init__(self, parent: EncodeCursor) -> None:
        self._parent = parent
        self._root = parent._root
        self._buffer = bytearray()
        self._end = 0
        self._offset = 0
        self._count = 0
        self._index = 0
        self._section = 0
        self._pending = None

    def _start(self, count: int) -> GroupEncoder:
        if not isinstance(count, int) or isinstance(count, bool):
            raise EncodeValueError(
                f"a group count must be an integer, not {count!r}",
                message_name=self._parent.NAME,
                field=self.NAME,
            )
        if not 0 <= count <= self._MAX_COUNT:
            raise EncodeValueError(
                f"group count {count} is outside 0..{self._MAX_COUNT}",
                message_name=self._parent.NAME,
                field=self.NAME,
            )
        root = self._root
        limit = root._limit
        need = limit + self._DIM_SIZE + count * self.BLOCK_LENGTH
        if need > root._end:
            raise too_short(self._parent.NAME, self.NAME, limit, need, root._end)
        self._DIM_PACK(root._buffer, limit, self.BLOCK_LENGTH, count)
        root._limit = limit + self._DIM_SIZE
        self._buffer = root._buffer
        self._end = root._end
        self._count = count
        self._index = 0
        self._section = len(self._EMPTY)
        self._pending = None
        self._parent._pending = self
        return self

    def next(self) -> Any:
        """Move to the next entry and return this encoder, positioned on it."""
        self._finish_sections()
        if self._index >= self._count:
            raise EncodeValueError(
                f"group has only {self._count} entries", message_name=self._parent.NAME, field=self.NAME
            )
        root = self._root
        self._offset = root._limit
        end = self._offset + self.BLOCK_LENGTH
        if end > root._end:
            raise too_short(self.NAME, None, self._offset, end, root._end)
        self._ZERO_PACK(root._buffer, self._offset)
        root._limit = end
        self._index += 1
        self._section = 0
        return self

    def _close(self) -> None:
        self._finish_sections()
        if self._index != self._count:
            raise EncodeValueError(
                f"group declared {self._count} entries but {self._index} were written",
                message_name=self._parent.NAME,
                field=self.NAME,
            )
        if self._parent._pending is self:
            self._parent._pending = None


def check_header(
    message: str, schema_id: int, template_id: int, want_schema: int, want_template: int, offset: int
) -> None:
    if schema_id != want_schema:
        raise SchemaIdMismatchError(
            f"schema id {schema_id} is not {want_schema}", message_name=message, offset=offset
        )
    if template_id != want_template:
        raise UnknownTemplateError(
            f"template id {template_id} is not {want_template}", message_name=message, offset=offset
        )


def pack_error(exc: Exception, message: str, field: str | None) -> EncodeValueError:
    return EncodeValueError(f"value does not fit: {exc}", message_name=message, field=field)
