"""Random valid schemas: Hypothesis writes the schema, its codec is generated in memory, then round-tripped.

For each drawn schema (``support.random_schemas``) and each of its messages, random valid values
(``support.sbe_values``) must encode to the same bytes in the generated codec, in ``codegen.otf`` and in
the independent ``construct`` oracle; the generated decoder and the OTF codec must read the values back
(keys in schema order, ``docs/sbe-json.md``); and the generated one-pass ``XDecoder.unpack`` must give
the same raw tuple as the general ``codegen.runtime.records.unpack_record`` walk.  A failure prints
the schema's XML and the values.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from support.construct_oracle import oracle_decode, oracle_encode
from support.generated_import import import_schema
from support.random_schemas import RandomSchema, schemas
from support.sbe_values import values_for

from codegen.otf import OtfCodec
from codegen.runtime.records import unpack_record
from codegen.schema import parse_schema_bytes


def assert_same_json(actual: Any, expected: Any) -> None:
    """Equal values, and every object's keys in the same order."""
    assert actual == expected
    assert json.dumps(actual) == json.dumps(expected), "same values, keys in another order"


def raw(value: Any) -> Any:
    """A raw unpacked tuple made comparable: NaN (an optional float's null) equal to NaN, views as bytes."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, memoryview):
        return ("view", bytes(value))
    if isinstance(value, tuple | list):
        return (type(value).__name__, [raw(item) for item in value])
    return value


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(rs=schemas(), data=st.data())
def test_random_schema_codecs_agree_with_the_oracle(rs: RandomSchema, data: st.DataObject) -> None:
    note(f"schema XML:\n{rs.xml}")
    schema = parse_schema_bytes(rs.xml.encode(), source="random.xml")
    module = import_schema(schema, "random")
    otf = OtfCodec(schema)
    for message in schema.messages:
        fields = data.draw(values_for(schema, message), label=f"fields of {message.name}")
        expected = oracle_encode(schema, message.name, fields)
        note(f"{message.name} oracle bytes: {expected.hex()}")
        name, oracle_fields = oracle_decode(schema, expected)
        assert name == message.name
        assert oracle_fields == fields

        assert module.encode_dict(message.name, fields) == expected, f"generated encode of {message.name}"
        assert_same_json(module.decode(expected).to_dict(), oracle_fields)

        decoder_class = module.MESSAGES_BY_NAME[message.name][0]
        assert raw(decoder_class.unpack(expected)) == raw(unpack_record(module.decode(expected)))

        assert otf.encode(message.name, fields) == expected, f"OTF encode of {message.name}"
        decoded = otf.decode(expected)
        assert decoded.name == message.name
        assert_same_json(decoded.fields, oracle_fields)
