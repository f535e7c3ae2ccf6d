"""Hypothesis strategies for random, valid SBE schemas whose layout is worked out independently of the parser.

Use::

    from hypothesis import given
    from support.random_schemas import RandomSchema, schemas

    @given(schemas())
    def test_something(rs: RandomSchema) -> None:
        ir = parse_schema_bytes(rs.xml.encode(), source="<random>")
        ...

``schemas()`` draws a whole ``<messageSchema>`` as XML text, plus what the generator knows about it,
computed from its own choices and its own table of primitive sizes (``PRIMITIVES`` below), never by
asking ``codegen``:

* ``expected_block_lengths``: block length of every message (key ``"Msg"``) and group (key
  ``"Msg.group"``, nested ``"Msg.group.inner"``);
* ``expected_offsets``: offset of every field in its block (key ``"Msg.field"``, ``"Msg.group.field"``);
* ``expected_type_sizes``: encoded size of every named type, top level or inline in a composite;
* ``expected_constants``: value of every constant field (an ``int``, a ``float`` or, for a char array, a
  ``str``; char scalars and char enum values are character codes);
* ``features``: which of ``FEATURES`` this schema uses, so a test can show the strategy covers them all.

What a schema may contain (sizes bounded: at most 6 messages of at most 8 fields, groups nested at
most two deep):

* little- or big-endian byte order; schema version 0..4, ``sinceVersion`` on fields, groups and var data
  (non-decreasing within each block, as SBE extensions are appended);
* fields typed directly by each of the 11 primitives, or by named ``<type>``s: scalars, fixed arrays
  (char arrays included), ``presence="optional"`` with the default or an explicit ``nullValue``,
  ``minValue``/``maxValue``, numeric, char and char-array constants, constants by ``valueRef``;
* char and integer enums (uint8, int8, uint16, int32), used as fields and as constant fields by
  ``valueRef``; sets over uint8, uint16, uint32 and uint64;
* composites of inline types, ``<ref>``s to earlier named types, inline enums/sets/composites
  (nested at most two deep) and constant members, with explicit ``offset``s that leave gaps;
* fields with explicit offsets that leave gaps; declared ``blockLength`` larger than needed;
* repeating groups (default ``groupSizeEncoding`` or a custom dimension with a uint8 ``numInGroup``
  at an explicit offset), nested groups, var data with uint8/uint16/uint32 length prefixes in
  messages and groups.

Values are kept sane for codec round trips: for an optional type with an explicit ``nullValue`` the
null lies outside ``[minValue, maxValue]``; float limits are exact in float32; names are unique across
the whole schema (a counter suffix), valid SBE names, and never clash with primitive names.

Everything is drawn through Hypothesis, so failures shrink and replay from its database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from hypothesis import strategies as st

__all__ = ["FEATURES", "PRIMITIVES", "RandomSchema", "schemas"]


@dataclass(frozen=True, slots=True)
class _Prim:
    size: int
    lo: int | float  # smallest valid (non-null) value by default
    hi: int | float  # largest valid (non-null) value by default
    wire_lo: int | float  # smallest value the wire can carry
    wire_hi: int | float
    is_float: bool = False


def _signed(size: int) -> _Prim:
    bits = 8 * size
    return _Prim(size, -(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _unsigned(size: int) -> _Prim:
    bits = 8 * size
    return _Prim(size, 0, 2**bits - 2, 0, 2**bits - 1)


# The SBE primitives, from the spec's table, independent of codegen.ir.Primitive.
PRIMITIVES: dict[str, _Prim] = {
    "char": _Prim(1, 0x20, 0x7E, 0, 0xFF),
    "int8": _signed(1),
    "uint8": _unsigned(1),
    "int16": _signed(2),
    "uint16": _unsigned(2),
    "int32": _signed(4),
    "uint32": _unsigned(4),
    "int64": _signed(8),
    "uint64": _unsigned(8),
    "float": _Prim(4, -3.4028234663852886e38, 3.4028234663852886e38, float("-inf"), float("inf"), True),
    "double": _Prim(8, -1.7976931348623157e308, 1.7976931348623157e308, float("-inf"), float("inf"), True),
}
INTEGERS = [p for p, info in PRIMITIVES.items() if not info.is_float and p != "char"]
ENUM_ENCODINGS = ["uint8", "int8", "uint16", "int32"]
SET_ENCODINGS = ["uint8", "uint16", "uint32", "uint64"]
VAR_LENGTHS = ["uint8", "uint16", "uint32"]
# Exactly representable in float32, so a float field round-trips them.
FLOAT_LIMITS = [-65504.0, -1000.5, -1.0, 0.0, 0.25, 1.5, 1000.25, 65504.0]
FLOAT_CONSTANTS = [0.0, -2.5, 1.5, 3.0, 1024.125]
WORDS = [
    "price",
    "qty",
    "side",
    "venue",
    "flags",
    "time",
    "id",
    "count",
    "level",
    "code",
    "tag",
    "mode",
    "data",
    "value",
    "limit",
    "state",
]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

MAX_MESSAGES = 6
MAX_FIELDS = 8
MAX_DEPTH = 2

FEATURES = frozenset(
    {
        "little-endian",
        "big-endian",
        "version>0",
        "since-version",
        "several-messages",
        *(f"primitive:{p}" for p in PRIMITIVES),
        "direct-primitive-field",
        "named-type",
        "optional",
        "optional-explicit-null",
        "min-max",
        "constant-numeric",
        "constant-char",
        "constant-char-array",
        "constant-value-ref-type",
        "constant-value-ref-field",
        "enum-char",
        "enum-int",
        "enum-constant-field",
        *(f"set:{p}" for p in SET_ENCODINGS),
        "array",
        "char-array",
        "composite",
        "composite-ref",
        "nested-composite",
        "composite-constant-member",
        "composite-inline-enum",
        "composite-inline-set",
        "explicit-offset-gap",
        "member-offset-gap",
        "block-length-padding",
        "group",
        "nested-group",
        "custom-dimension",
        *(f"var-data:{p}" for p in VAR_LENGTHS),
        "var-data-in-group",
        "description-escaping",
    }
)


@dataclass(frozen=True)
class RandomSchema:
    """A generated schema and the layout facts the generator computed itself (see the module docstring)."""

    xml: str
    expected_block_lengths: dict[str, int]
    expected_offsets: dict[str, int] = field(default_factory=dict)
    expected_type_sizes: dict[str, int] = field(default_factory=dict)
    expected_constants: dict[str, int | float | str] = field(default_factory=dict)
    features: frozenset[str] = frozenset()
    byte_order: str = "littleEndian"
    version: int = 0


# ------------------------------------------------------------------------------------------ XML


@dataclass
class _El:
    tag: str
    attrs: list[tuple[str, str]]
    children: list[_El] = field(default_factory=list)
    text: str | None = None

    def render(self, depth: int, out: list[str]) -> None:
        pad = "    " * depth
        attrs = "".join(f" {k}={quoteattr(v)}" for k, v in self.attrs)
        if self.text is not None:
            out.append(f"{pad}<{self.tag}{attrs}>{escape(self.text)}</{self.tag}>")
        elif not self.children:
            out.append(f"{pad}<{self.tag}{attrs}/>")
        else:
            out.append(f"{pad}<{self.tag}{attrs}>")
            for child in self.children:
                child.render(depth + 1, out)
            out.append(f"{pad}</{self.tag}>")


def _num(value: int | float) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# ------------------------------------------------------------------------------------ the model


@dataclass
class _Type:
    """A named type the generator has declared, as fields and refs may use it."""

    name: str
    kind: str  # "type", "enum", "set", "composite", "vardata", "dimension"
    size: int
    primitive: str | None = None
    constant: int | float | str | None = None
    values: dict[str, int] = field(default_factory=dict)  # enum value name -> value (char: its code)


@dataclass
class _Layout:
    """Running position while laying out a block or composite, the way SBE does it."""

    position: int = 0
    end: int = 0

    def place(self, size: int, gap: int | None) -> int:
        offset = self.position if gap is None else self.position + gap
        self.position = offset + size
        self.end = max(self.end, self.position)
        return offset


class _Builder:
    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.counter = 0
        self.features: set[str] = set()
        self.types: list[_Type] = []
        self.type_els: list[_El] = []
        self.type_sizes: dict[str, int] = {}
        self.block_lengths: dict[str, int] = {}
        self.offsets: dict[str, int] = {}
        self.constants: dict[str, int | float | str] = {}
        self.version = 0

    # -- small helpers -----------------------------------------------------------------------

    def name(self, capital: bool = False) -> str:
        self.counter += 1
        word = self.draw(st.sampled_from(WORDS))
        if capital:
            word = word.capitalize()
        return f"{word}{self.counter}"

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def feature(self, name: str) -> None:
        assert name in FEATURES, name
        self.features.add(name)

    def description(self, attrs: list[tuple[str, str]]) -> None:
        if self.chance(15):
            attrs.append(
                (
                    "description",
                    self.draw(
                        st.sampled_from(
                            ["a plain description", "quotes \" and ' & <angle> brackets", "unicode: é ü ✓"]
                        )
                    ),
                )
            )
            self.feature("description-escaping")

    def gap(self, percent: int = 25) -> int | None:
        """An explicit offset's distance past the packed position, or None for no offset attribute."""
        if not self.chance(percent):
            return None
        return self.draw(st.integers(0, 7))

    def of_kind(self, *kinds: str) -> list[_Type]:
        return [t for t in self.types if t.kind in kinds]

    def int_enums(self) -> list[_Type]:
        return [t for t in self.of_kind("enum") if t.primitive != "char"]

    # -- encoded types ---------------------------------------------------------------------

    def encoded_type(self, name: str, *, allow_constant: bool = True) -> tuple[_El, _Type]:
        """A ``<type>``: scalar, array, optional, min/max or constant, of any primitive."""
        el, node = self._encoded_type(name, allow_constant)
        self.feature(f"primitive:{node.primitive}")
        return el, node

    def _encoded_type(self, name: str, allow_constant: bool) -> tuple[_El, _Type]:
        kind = self.draw(st.sampled_from(["scalar", "array", "optional", "minmax", "constant", "constant"]))
        if kind == "constant" and not allow_constant:
            kind = "scalar"
        # char is drawn more often for constants: char, char-array and numeric constants differ most.
        prim = self.draw(st.sampled_from(list(PRIMITIVES) + (["char"] * 6 if kind == "constant" else [])))
        info = PRIMITIVES[prim]
        attrs: list[tuple[str, str]] = [("name", name), ("primitiveType", prim)]
        if kind == "array":
            length = self.draw(st.integers(2, 8))
            attrs.append(("length", str(length)))
            self.feature("char-array" if prim == "char" else "array")
            if prim == "char" and self.chance(50):
                encoding = self.draw(st.sampled_from(["US-ASCII", "ASCII", "UTF-8"]))
                attrs.append(("characterEncoding", encoding))
            return _El("type", attrs), _Type(name, "type", info.size * length, prim)
        if kind == "constant":
            return self.constant_type(name, prim, attrs)
        if kind in ("optional", "minmax") and prim != "char":
            lo, hi = self.limits(prim)
            explicit_null = kind == "optional" and self.chance(60)
            if kind == "minmax" or explicit_null:
                attrs += [("minValue", _num(lo)), ("maxValue", _num(hi))]
                self.feature("min-max")
            if kind == "optional":
                attrs.append(("presence", "optional"))
                self.feature("optional")
                if explicit_null:
                    attrs.append(("nullValue", _num(self.null_outside(prim, lo, hi))))
                    self.feature("optional-explicit-null")
        elif kind == "optional":
            attrs.append(("presence", "optional"))
            self.feature("optional")
        return _El("type", attrs), _Type(name, "type", info.size, prim)

    def limits(self, prim: str) -> tuple[int | float, int | float]:
        """A [min, max] strictly inside the default range, leaving room for a null on either side."""
        info = PRIMITIVES[prim]
        if info.is_float:
            a, b = sorted(
                self.draw(st.lists(st.sampled_from(FLOAT_LIMITS[1:-1]), min_size=2, max_size=2, unique=True))
            )
            return a, b
        lo, hi = int(info.lo), int(info.hi)
        a = self.draw(st.integers(lo + 1, hi - 2))
        b = self.draw(st.integers(a, hi - 1))
        return a, b

    def null_outside(self, prim: str, lo: int | float, hi: int | float) -> int | float:
        info = PRIMITIVES[prim]
        if info.is_float:
            return self.draw(st.sampled_from([FLOAT_LIMITS[0], FLOAT_LIMITS[-1]]))
        below = (int(info.wire_lo), int(lo) - 1)
        above = (int(hi) + 1, int(info.wire_hi))
        low, high = self.draw(st.sampled_from([below, above]))
        return self.draw(st.integers(low, high))

    def constant_type(self, name: str, prim: str, attrs: list[tuple[str, str]]) -> tuple[_El, _Type]:
        attrs.append(("presence", "constant"))
        info = PRIMITIVES[prim]
        if self.int_enums() and self.chance(40):
            # A constant by valueRef takes the primitive of the enum it refers to.
            enum = self.draw(st.sampled_from(self.int_enums()))
            vname = self.draw(st.sampled_from(sorted(enum.values)))
            assert enum.primitive is not None
            attrs[1] = ("primitiveType", enum.primitive)
            attrs.append(("valueRef", f"{enum.name}.{vname}"))
            self.feature("constant-value-ref-type")
            return _El("type", attrs), _Type(name, "type", 0, enum.primitive, enum.values[vname])
        if prim == "char":
            # Letters only: a one-digit char constant is misread as a number (a known parser bug).
            if self.chance(50):
                text = self.draw(st.text(LETTERS, min_size=2, max_size=8))
                attrs.append(("length", str(len(text))))
                self.feature("constant-char-array")
                return _El("type", attrs, text=text), _Type(name, "type", 0, prim, text)
            letter = self.draw(st.sampled_from(LETTERS))
            self.feature("constant-char")
            return _El("type", attrs, text=letter), _Type(name, "type", 0, prim, ord(letter))
        self.feature("constant-numeric")
        value: int | float
        if info.is_float:
            value = self.draw(st.sampled_from(FLOAT_CONSTANTS))
        else:
            value = self.draw(st.integers(int(info.lo), int(info.hi)))
        return _El("type", attrs, text=_num(value)), _Type(name, "type", 0, prim, value)

    # -- enums and sets ----------------------------------------------------------------------

    def enum(self, name: str) -> tuple[_El, _Type]:
        prim = self.draw(st.sampled_from(["char", *ENUM_ENCODINGS]))
        count = self.draw(st.integers(1, 6))
        values: dict[str, int] = {}
        children = []
        if prim == "char":
            chars = self.draw(
                st.lists(st.sampled_from(LETTERS + "0123456789"), min_size=count, max_size=count, unique=True)
            )
            literals = chars
            codes = [ord(c) for c in chars]
            self.feature("enum-char")
        else:
            info = PRIMITIVES[prim]
            codes = self.draw(
                st.lists(st.integers(int(info.lo), int(info.hi)), min_size=count, max_size=count, unique=True)
            )
            literals = [str(c) for c in codes]
            self.feature("enum-int")
        for literal, code in zip(literals, codes, strict=True):
            vname = self.name()
            values[vname] = code
            children.append(_El("validValue", [("name", vname)], text=literal))
        attrs = [("name", name), ("encodingType", prim)]
        self.description(attrs)
        return _El("enum", attrs, children), _Type(name, "enum", PRIMITIVES[prim].size, prim, values=values)

    def set(self, name: str) -> tuple[_El, _Type]:
        prim = self.draw(st.sampled_from(SET_ENCODINGS))
        size = PRIMITIVES[prim].size
        bits = self.draw(
            st.lists(st.integers(0, 8 * size - 1), min_size=1, max_size=min(8, 8 * size), unique=True)
        )
        self.feature(f"set:{prim}")
        children = [_El("choice", [("name", self.name())], text=str(bit)) for bit in bits]
        return _El("set", [("name", name), ("encodingType", prim)], children), _Type(name, "set", size, prim)

    # -- composites ------------------------------------------------------------------------

    def composite(self, name: str, depth: int) -> tuple[_El, _Type]:
        self.feature("composite")
        if depth > 1:
            self.feature("nested-composite")
        layout = _Layout()
        children: list[_El] = []
        for _ in range(self.draw(st.integers(1, 4))):
            options = ["type", "type", "enum", "set"]
            refs = self.of_kind("type", "enum", "set", "composite")
            if refs:
                options += ["ref", "ref"]
            if self.int_enums():
                options.append("constant")
            if depth < MAX_DEPTH:
                options.append("composite")
            choice = self.draw(st.sampled_from(options))
            mname = self.name()
            if choice == "type":
                el, node = self.encoded_type(mname, allow_constant=False)
            elif choice == "enum":
                el, node = self.enum(mname)
                self.feature("composite-inline-enum")
            elif choice == "set":
                el, node = self.set(mname)
                self.feature("composite-inline-set")
            elif choice == "composite":
                el, node = self.composite(mname, depth + 1)
            elif choice == "constant":
                enum = self.draw(st.sampled_from(self.int_enums()))
                vname = self.draw(st.sampled_from(sorted(enum.values)))
                assert enum.primitive is not None
                el = _El(
                    "type",
                    [
                        ("name", mname),
                        ("primitiveType", enum.primitive),
                        ("presence", "constant"),
                        ("valueRef", f"{enum.name}.{vname}"),
                    ],
                )
                node = _Type(mname, "type", 0, enum.primitive, enum.values[vname])
                self.feature("composite-constant-member")
            else:
                target = self.draw(st.sampled_from(refs))
                el = _El("ref", [("name", mname), ("type", target.name)])
                node = target
                self.feature("composite-ref")
            if choice in ("enum", "set", "composite"):
                self.type_sizes[node.name] = node.size  # inline named types are types of the schema too
            gap = self.gap(30) if node.size else None
            if gap is not None:
                el.attrs.append(("offset", str(layout.position + gap)))
                if gap:
                    self.feature("member-offset-gap")
            layout.place(node.size, gap)
            children.append(el)
        attrs = [("name", name)]
        self.description(attrs)
        return _El("composite", attrs, children), _Type(name, "composite", layout.end)

    def var_data_type(self, name: str, length_prim: str) -> tuple[_El, _Type]:
        length_attrs = [("name", "length"), ("primitiveType", length_prim)]
        if length_prim == "uint32" and self.chance(50):
            length_attrs.append(("maxValue", "1073741824"))
        element = self.draw(st.sampled_from(["uint8", "char"]))
        data_attrs = [("name", "varData"), ("primitiveType", element), ("length", "0")]
        if element == "char" or self.chance(50):
            data_attrs.append(("characterEncoding", self.draw(st.sampled_from(["UTF-8", "US-ASCII"]))))
        el = _El("composite", [("name", name)], [_El("type", length_attrs), _El("type", data_attrs)])
        return el, _Type(name, "vardata", PRIMITIVES[length_prim].size, length_prim)

    def dimension_type(self, name: str) -> tuple[_El, _Type]:
        num = self.draw(st.sampled_from(["uint8", "uint16"]))
        gap = self.draw(st.integers(0, 5))
        el = _El(
            "composite",
            [("name", name)],
            [
                _El("type", [("name", "blockLength"), ("primitiveType", "uint16")]),
                _El("type", [("name", "numInGroup"), ("primitiveType", num), ("offset", str(2 + gap))]),
            ],
        )
        return el, _Type(name, "dimension", 2 + gap + PRIMITIVES[num].size)

    def declare(self, el: _El, node: _Type) -> None:
        self.type_els.append(el)
        self.types.append(node)
        self.type_sizes[node.name] = node.size

    # -- message bodies ----------------------------------------------------------------------

    def since_versions(self, count: int) -> list[int]:
        if self.version == 0 or count == 0:
            return [0] * count
        return sorted(self.draw(st.lists(st.integers(0, self.version), min_size=count, max_size=count)))

    def field(self, path: str, fid: int, layout: _Layout, since: int) -> _El:
        name = self.name()
        key = f"{path}.{name}"
        options = ["primitive", "primitive", "named", "named"]
        if self.of_kind("enum"):
            options.append("enum")
        if self.of_kind("set"):
            options.append("set")
        if self.of_kind("composite"):
            options.append("composite")
        if self.int_enums():
            options.append("value-ref")
        choice = self.draw(st.sampled_from(options))
        attrs: list[tuple[str, str]] = [("name", name), ("id", str(fid))]
        size = 0
        constant: int | float | str | None = None
        if choice == "primitive":
            prim = self.draw(st.sampled_from(list(PRIMITIVES)))
            self.feature(f"primitive:{prim}")
            self.feature("direct-primitive-field")
            attrs.append(("type", prim))
            size = PRIMITIVES[prim].size
            if self.chance(25):
                attrs.append(("presence", "optional"))
                self.feature("optional")
        elif choice == "named":
            pool = self.of_kind("type")
            if not pool:
                el, node = self.encoded_type(self.name(capital=True))
                self.declare(el, node)
                pool = [node]
            node = self.draw(st.sampled_from(pool))
            self.feature("named-type")
            attrs.append(("type", node.name))
            size, constant = node.size, node.constant
        elif choice == "value-ref":
            enum = self.draw(st.sampled_from(self.int_enums()))
            vname = self.draw(st.sampled_from(sorted(enum.values)))
            assert enum.primitive is not None
            by_enum = self.chance(50)
            attrs += [
                ("type", enum.name if by_enum else enum.primitive),
                ("presence", "constant"),
                ("valueRef", f"{enum.name}.{vname}"),
            ]
            self.feature("enum-constant-field" if by_enum else "constant-value-ref-field")
            constant = enum.values[vname]
        else:
            node = self.draw(st.sampled_from(self.of_kind(choice)))
            attrs.append(("type", node.name))
            size = node.size
        gap = self.gap() if size else None
        if gap is not None:
            attrs.append(("offset", str(layout.position + gap)))
            if gap:
                self.feature("explicit-offset-gap")
        self.offsets[key] = layout.place(size, gap)
        if constant is not None:
            self.constants[key] = constant
        self.since(attrs, since)
        self.description(attrs)
        return _El("field", attrs)

    def since(self, attrs: list[tuple[str, str]], since: int) -> None:
        if since:
            attrs.append(("sinceVersion", str(since)))
            self.feature("since-version")

    def body(self, path: str, ids: list[int], depth: int, max_fields: int) -> tuple[list[_El], int]:
        """Fields, then groups, then var data; returns the elements and the computed block length."""
        layout = _Layout()
        n_fields = self.draw(st.integers(0, max_fields))
        n_groups = self.draw(st.integers(0, 2 if depth < MAX_DEPTH else 0))
        n_data = self.draw(st.integers(0, 2))
        sinces = self.since_versions(n_fields + n_groups + n_data)
        children: list[_El] = []
        for i in range(n_fields):
            ids[0] += 1
            children.append(self.field(path, ids[0], layout, sinces[i]))
        for i in range(n_groups):
            children.append(self.group(path, ids, depth + 1, sinces[n_fields + i]))
        for i in range(n_data):
            children.append(self.var_data(path, ids, depth, sinces[n_fields + n_groups + i]))
        return children, layout.end

    def group(self, path: str, ids: list[int], depth: int, since: int) -> _El:
        name = self.name()
        ids[0] += 1
        attrs = [("name", name), ("id", str(ids[0]))]
        self.feature("group")
        if depth > 1:
            self.feature("nested-group")
        dimensions = self.of_kind("dimension")
        if dimensions and self.chance(40):
            attrs.append(("dimensionType", self.draw(st.sampled_from(dimensions)).name))
            self.feature("custom-dimension")
        elif self.chance(50):
            attrs.append(("dimensionType", "groupSizeEncoding"))
        key = f"{path}.{name}"
        children, block_length = self.body(key, ids, depth, 4)
        self.block_lengths[key] = self.padded(attrs, block_length)
        self.since(attrs, since)
        self.description(attrs)
        return _El("group", attrs, children)

    def var_data(self, path: str, ids: list[int], depth: int, since: int) -> _El:
        node = self.draw(st.sampled_from(self.of_kind("vardata")))
        assert node.primitive is not None
        self.feature(f"var-data:{node.primitive}")
        if depth > 0:
            self.feature("var-data-in-group")
        ids[0] += 1
        attrs = [("name", self.name()), ("id", str(ids[0])), ("type", node.name)]
        self.since(attrs, since)
        self.description(attrs)
        return _El("data", attrs)

    def padded(self, attrs: list[tuple[str, str]], block_length: int) -> int:
        if self.chance(20):
            block_length += self.draw(st.integers(0, 16))
            attrs.append(("blockLength", str(block_length)))
            self.feature("block-length-padding")
        return block_length

    def message(self, mid: int) -> _El:
        name = self.name(capital=True)
        attrs = [("name", name), ("id", str(mid))]
        children, block_length = self.body(name, [0], 0, MAX_FIELDS)
        self.block_lengths[name] = self.padded(attrs, block_length)
        self.description(attrs)
        return _El("sbe:message", attrs, children)

    # -- the schema --------------------------------------------------------------------------

    def schema(self) -> RandomSchema:
        draw = self.draw
        byte_order = draw(st.sampled_from(["littleEndian", "bigEndian"]))
        self.feature("big-endian" if byte_order == "bigEndian" else "little-endian")
        self.version = draw(st.integers(0, 4))
        if self.version:
            self.feature("version>0")
        header = _El(
            "composite",
            [("name", "messageHeader")],
            [
                _El("type", [("name", n), ("primitiveType", "uint16")])
                for n in ("blockLength", "templateId", "schemaId", "version")
            ],
        )
        dimension = _El(
            "composite",
            [("name", "groupSizeEncoding")],
            [
                _El("type", [("name", "blockLength"), ("primitiveType", "uint16")]),
                _El("type", [("name", "numInGroup"), ("primitiveType", "uint16")]),
            ],
        )
        self.type_els += [header, dimension]
        self.type_sizes.update(messageHeader=8, groupSizeEncoding=4)
        for length_prim in draw(st.lists(st.sampled_from(VAR_LENGTHS), min_size=1, max_size=3, unique=True)):
            self.declare(*self.var_data_type(self.name(capital=True), length_prim))
        if self.chance(50):
            self.declare(*self.dimension_type(self.name(capital=True)))
        for _ in range(draw(st.integers(0, 2))):  # enums first, so constants can refer to them
            self.declare(*self.enum(self.name(capital=True)))
        makers = [self.encoded_type, self.enum, self.set, lambda n: self.composite(n, 1)]
        for _ in range(draw(st.integers(0, 8))):
            maker = draw(st.sampled_from(makers))
            self.declare(*maker(self.name(capital=True)))
        n_messages = draw(st.integers(1, MAX_MESSAGES))
        if n_messages > 1:
            self.feature("several-messages")
        ids = draw(st.lists(st.integers(1, 60000), min_size=n_messages, max_size=n_messages, unique=True))
        messages = [self.message(mid) for mid in ids]

        root_attrs = [
            ("xmlns:sbe", "http://fixprotocol.io/2016/sbe"),
            ("package", "random.schema"),
            ("id", str(draw(st.integers(1, 65535)))),
            ("version", str(self.version)),
            ("semanticVersion", "5.2"),
        ]
        if byte_order == "bigEndian" or self.chance(50):
            root_attrs.append(("byteOrder", byte_order))
        root = _El("sbe:messageSchema", root_attrs, [_El("types", [], self.type_els), *messages])
        lines = ['<?xml version="1.0" encoding="UTF-8"?>']
        root.render(0, lines)
        return RandomSchema(
            xml="\n".join(lines) + "\n",
            expected_block_lengths=self.block_lengths,
            expected_offsets=self.offsets,
            expected_type_sizes=self.type_sizes,
            expected_constants=self.constants,
            features=frozenset(self.features),
            byte_order=byte_order,
            version=self.version,
        )


@st.composite
def _schemas(draw: st.DrawFn) -> RandomSchema:
    return _Builder(draw).schema()


def schemas() -> st.SearchStrategy[RandomSchema]:
    """Random valid SBE schemas with independently computed layout facts (see the module docstring)."""
    return _schemas()
