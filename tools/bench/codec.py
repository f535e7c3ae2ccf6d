"""``python -m tools bench codec``: the generated SBE codecs against hand-written ``struct`` floors.

Two messages, three jobs each, every one timed side by side with the fastest plain CPython we would
write by hand for the same job (see :mod:`tools.bench.harness` for the method):

* **SessionMessageHeader** (Aeron Cluster, template 1: 8-byte header + 24-byte block of three int64),
  the prefix of every client message, so the hottest decode in the cluster.
* **Car**, SBE's well-known example: a 45-byte block with arrays, enums, a set and nested composites,
  two groups (one with var data per entry, one with a nested group) and three var-data fields.  Its
  schema is ``car-schema.xml`` next to this module; the codec is generated in memory at start, exactly
  as ``python -m tools codegen`` would render it.

The jobs are a full decode (``Decoder.unpack``, the one-pass fast path returning a raw tuple), a single
field read on an already wrapped flyweight, and an encode of header + block (``Encoder.pack_into``).
The floors do the same work *and the same checks* (template and schema id, block lengths, every
bounds check of the generated fast path), and return the same shapes, which is asserted once before
timing.  Rows without a target are informational: the flyweight paths, compared with the same floor.
"""

from __future__ import annotations

import argparse
import hashlib
import struct
import sys
from collections.abc import Buffer, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from tools.bench.harness import Case, Result, Settings, Snippet, format_table, run_cases, to_json

__all__ = [
    "CAR_FIELDS",
    "CAR_SCHEMA_PATH",
    "DECODE_TARGET",
    "ENCODE_TARGET",
    "READ_TARGET",
    "build_cases",
    "car_floor_decode",
    "car_floor_encode",
    "car_floor_pack",
    "configure",
    "load_car_codec",
    "run",
    "smh_floor_decode",
    "smh_floor_encode",
]

DECODE_TARGET: Final = 2.0
ENCODE_TARGET: Final = 2.0
READ_TARGET: Final = 1.5

FULL: Final = Settings(repeats=15, budget_s=0.010)
QUICK: Final = Settings(repeats=3, budget_s=0.001)

CAR_SCHEMA_PATH: Final = Path(__file__).with_name("car-schema.xml")

# ------------------------------------------------------------------------------ SessionMessageHeader

_SMH: Final = struct.Struct("<HHHHqqq")  # messageHeader, then leadershipTermId, clusterSessionId, timestamp
_SMH_TEMPLATE_ID: Final = 1
_CLUSTER_SCHEMA_ID: Final = 111
_CLUSTER_SCHEMA_VERSION: Final = 12
_I64: Final = struct.Struct("<q")


def smh_floor_decode(buf: Buffer, off: int = 0) -> tuple[int, int, int]:
    """Hand-written floor: every field of a SessionMessageHeader, with the header's identity checked."""
    bl, tid, sid, ver, a, b, c = _SMH.unpack_from(buf, off)  # noqa: RUF059 (the floor reads them all)
    if tid != _SMH_TEMPLATE_ID or sid != _CLUSTER_SCHEMA_ID:
        raise ValueError(f"not a SessionMessageHeader: template {tid}, schema {sid}")
    return a, b, c


def smh_floor_encode(buf: Buffer, off: int, a: int, b: int, c: int) -> int:
    """Hand-written floor: header + block of a SessionMessageHeader; returns the bytes written."""
    _SMH.pack_into(buf, off, 24, _SMH_TEMPLATE_ID, _CLUSTER_SCHEMA_ID, _CLUSTER_SCHEMA_VERSION, a, b, c)
    return 32


# ----------------------------------------------------------------------------------------------- Car

# messageHeader + the 45-byte Car block, flattened: serialNumber, modelYear, available, code,
# someNumbers[4], vehicleCode, extras, engine (capacity, numCylinders, manufacturerCode, efficiency,
# boosterEnabled, booster (boostType, horsePower)).
_CAR: Final = struct.Struct("<HHHHQHBBIIII6sBHB3sbBBB")
_CAR_UNPACK: Final = _CAR.unpack_from
_CAR_PACK: Final = _CAR.pack_into
_CAR_HEADER_AND_BLOCK: Final = 8 + 45
_GROUP_DIM: Final = struct.Struct("<HH")  # blockLength, numInGroup
_GROUP_DIM_UNPACK: Final = _GROUP_DIM.unpack_from
_GROUP_DIM_PACK: Final = _GROUP_DIM.pack_into
_FUEL: Final = struct.Struct("<HfI")  # speed, mpg, then usageDescription's length prefix
_FUEL_UNPACK: Final = _FUEL.unpack_from
_FUEL_PACK: Final = _FUEL.pack_into
_PERF: Final = struct.Struct("<BHH")  # octaneRating, then the acceleration group's dimensions
_PERF_UNPACK: Final = _PERF.unpack_from
_PERF_PACK: Final = _PERF.pack_into
_ACCEL: Final = struct.Struct("<Hf")  # mph, seconds
_ACCEL_UNPACK: Final = _ACCEL.unpack_from
_ACCEL_PACK: Final = _ACCEL.pack_into
_LENGTH: Final = struct.Struct("<I")  # var data length prefix
_LENGTH_UNPACK: Final = _LENGTH.unpack_from
_LENGTH_PACK: Final = _LENGTH.pack_into
_U16: Final = struct.Struct("<H")

# The Car of SBE's example, as a JSON-style dict (docs/sbe-json.md); encoded with the generated codec.
CAR_FIELDS: Final[dict[str, Any]] = {
    "serialNumber": 1234,
    "modelYear": 2013,
    "available": "T",
    "code": "A",
    "someNumbers": [0, 1, 2, 3],
    "vehicleCode": "abcdef",
    "extras": ["sunRoof", "cruiseControl"],
    "engine": {
        "capacity": 2000,
        "numCylinders": 4,
        "manufacturerCode": "123",
        "efficiency": 35,
        "boosterEnabled": "T",
        "booster": {"BoostType": "NITROUS", "horsePower": 200},
    },
    "fuelFigures": [
        {"speed": 30, "mpg": 35.9, "usageDescription": "Urban Cycle"},
        {"speed": 55, "mpg": 49.0, "usageDescription": "Combined Cycle"},
        {"speed": 75, "mpg": 40.0, "usageDescription": "Highway Cycle"},
    ],
    "performanceFigures": [
        {
            "octaneRating": 95,
            "acceleration": [
                {"mph": 30, "seconds": 4.0},
                {"mph": 60, "seconds": 7.5},
                {"mph": 100, "seconds": 12.2},
            ],
        },
        {
            "octaneRating": 99,
            "acceleration": [
                {"mph": 30, "seconds": 3.8},
                {"mph": 60, "seconds": 7.1},
                {"mph": 100, "seconds": 11.8},
            ],
        },
    ],
    "manufacturer": "Honda",
    "model": "Civic VTi",
    "activationCode": "abcdef",
}


def car_floor_decode(buf: Buffer, off: int = 0) -> tuple[Any, ...]:
    """Hand-written floor: the whole Car in the shape of ``CarDecoder.unpack`` (memoryviews for var data).

    Checks what the generated fast path checks: template id, schema id and block length; each group's
    entry block length; group count x entry size and every var-data length against the buffer's end.
    """
    head = _CAR_UNPACK(buf, off)
    if head[1] != 1 or head[2] != 1 or head[0] != 45:
        raise ValueError(f"not a version-0 Car: header {head[:4]}")
    view = memoryview(buf)
    end = view.nbytes
    pos = off + _CAR_HEADER_AND_BLOCK
    block_length, count = _GROUP_DIM_UNPACK(buf, pos)
    pos += 4
    if block_length != 6 or pos + count * 6 > end:
        raise ValueError(f"fuelFigures: bad dimensions at {pos - 4}")
    fuel_figures = []
    for _ in range(count):
        speed, mpg, length = _FUEL_UNPACK(buf, pos)
        pos += 10
        if pos + length > end:
            raise ValueError(f"usageDescription: {length} bytes overrun the buffer at {pos}")
        fuel_figures.append((speed, mpg, view[pos : pos + length]))
        pos += length
    block_length, count = _GROUP_DIM_UNPACK(buf, pos)
    pos += 4
    if block_length != 1 or pos + count > end:
        raise ValueError(f"performanceFigures: bad dimensions at {pos - 4}")
    performance_figures = []
    for _ in range(count):
        octane_rating, block_length, accel_count = _PERF_UNPACK(buf, pos)
        pos += 5
        if block_length != 6 or pos + accel_count * 6 > end:
            raise ValueError(f"acceleration: bad dimensions at {pos - 4}")
        acceleration = []
        for _ in range(accel_count):
            acceleration.append(_ACCEL_UNPACK(buf, pos))
            pos += 6
        performance_figures.append((octane_rating, acceleration))
    (length,) = _LENGTH_UNPACK(buf, pos)
    pos += 4
    if pos + length > end:
        raise ValueError(f"manufacturer: {length} bytes overrun the buffer at {pos}")
    manufacturer = view[pos : pos + length]
    pos += length
    (length,) = _LENGTH_UNPACK(buf, pos)
    pos += 4
    if pos + length > end:
        raise ValueError(f"model: {length} bytes overrun the buffer at {pos}")
    model = view[pos : pos + length]
    pos += length
    (length,) = _LENGTH_UNPACK(buf, pos)
    pos += 4
    if pos + length > end:
        raise ValueError(f"activationCode: {length} bytes overrun the buffer at {pos}")
    activation_code = view[pos : pos + length]
    return head[4:] + (fuel_figures, performance_figures, manufacturer, model, activation_code)  # noqa: RUF005


def car_floor_pack(
    buf: Buffer,
    off: int,
    serial_number: int,
    model_year: int,
    available: int,
    code: int,
    number0: int,
    number1: int,
    number2: int,
    number3: int,
    vehicle_code: bytes,
    extras: int,
    capacity: int,
    num_cylinders: int,
    manufacturer_code: bytes,
    efficiency: int,
    booster_enabled: int,
    boost_type: int,
    horse_power: int,
) -> int:
    """Hand-written floor: header + Car block from raw values; returns the bytes written."""
    _CAR_PACK(
        buf, off, 45, 1, 1, 0,
        serial_number, model_year, available, code, number0, number1, number2, number3, vehicle_code,
        extras, capacity, num_cylinders, manufacturer_code, efficiency, booster_enabled, boost_type,
        horse_power,
    )  # fmt: skip
    return _CAR_HEADER_AND_BLOCK


def car_floor_encode(buf: bytearray, off: int, car: tuple[Any, ...]) -> int:
    """Hand-written floor: a whole Car from the shape ``car_floor_decode`` returns; returns its length."""
    end = len(buf)
    _CAR_PACK(buf, off, 45, 1, 1, 0, *car[:17])
    fuel_figures, performance_figures = car[17], car[18]
    pos = off + _CAR_HEADER_AND_BLOCK
    _GROUP_DIM_PACK(buf, pos, 6, len(fuel_figures))
    pos += 4
    for speed, mpg, usage_description in fuel_figures:
        length = len(usage_description)
        _FUEL_PACK(buf, pos, speed, mpg, length)
        pos += 10
        if pos + length > end:
            raise ValueError(f"usageDescription: {length} bytes do not fit at {pos}")
        buf[pos : pos + length] = usage_description
        pos += length
    _GROUP_DIM_PACK(buf, pos, 1, len(performance_figures))
    pos += 4
    for octane_rating, acceleration in performance_figures:
        _PERF_PACK(buf, pos, octane_rating, 6, len(acceleration))
        pos += 5
        for mph, seconds in acceleration:
            _ACCEL_PACK(buf, pos, mph, seconds)
            pos += 6
    for data in car[19:]:
        length = len(data)
        _LENGTH_PACK(buf, pos, length)
        pos += 4
        if pos + length > end:
            raise ValueError(f"var data: {length} bytes do not fit at {pos}")
        buf[pos : pos + length] = data
        pos += length
    return pos - off


def car_flyweight_decode(dec: Any, buf: Buffer) -> tuple[Any, ...]:
    """Our flyweight path for a whole Car: wrap_header, read_block, iterate the groups, var data."""
    d = dec.wrap_header(buf)
    block = d.read_block()
    fuel_figures = [(e.speed, e.mpg, e.usage_description()) for e in d.fuel_figures()]
    performance_figures = [
        (e.octane_rating, [(a.mph, a.seconds) for a in e.acceleration()]) for e in d.performance_figures()
    ]
    return (*block, fuel_figures, performance_figures, d.manufacturer(), d.model(), d.activation_code())


def car_flyweight_encode(enc: Any, buf: bytearray, car: tuple[Any, ...]) -> int:
    """Our flyweight path for a whole Car: wrap_and_apply_header, every setter, groups and var data."""
    (
        serial_number, model_year, available, code, n0, n1, n2, n3, vehicle_code, extras,
        capacity, num_cylinders, manufacturer_code, efficiency, booster_enabled, boost_type, horse_power,
        fuel_figures, performance_figures, manufacturer, model, activation_code,
    ) = car  # fmt: skip
    e = enc.wrap_and_apply_header(buf, 0)
    e.serial_number = serial_number
    e.model_year = model_year
    e.available = available
    e.code = code
    e.some_numbers = (n0, n1, n2, n3)
    e.vehicle_code = vehicle_code
    e.extras = extras
    engine = e.engine
    engine.capacity = capacity
    engine.num_cylinders = num_cylinders
    engine.manufacturer_code = manufacturer_code
    engine.efficiency = efficiency
    engine.booster_enabled = booster_enabled
    booster = engine.booster
    booster.boost_type = boost_type
    booster.horse_power = horse_power
    fuel = e.fuel_figures_count(len(fuel_figures))
    for speed, mpg, usage_description in fuel_figures:
        fuel.next()
        fuel.speed = speed
        fuel.mpg = mpg
        fuel.put_usage_description(usage_description)
    perf = e.performance_figures_count(len(performance_figures))
    for octane_rating, acceleration in performance_figures:
        perf.next()
        perf.octane_rating = octane_rating
        accel = perf.acceleration_count(len(acceleration))
        for mph, seconds in acceleration:
            accel.next()
            accel.mph = mph
            accel.seconds = seconds
    e.put_manufacturer(manufacturer)
    e.put_model(model)
    e.put_activation_code(activation_code)
    return 8 + e.encoded_length()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------- the cases


def load_car_codec(schema_path: Path = CAR_SCHEMA_PATH) -> ModuleType:
    """Generate the Car codec in memory, as ``python -m tools codegen`` would render it, and import it."""
    from codegen import load_schema
    from codegen.targets.python import render_module

    schema = load_schema(schema_path)
    text = render_module(schema, "car", schema_path.name)
    name = f"_bench_car_codecs_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    module = ModuleType(name)
    module.__file__ = f"<generated from {schema_path.name}>"
    sys.modules[name] = module  # enum and dataclass machinery look classes' modules up here
    try:
        exec(compile(text, module.__file__, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _plain(value: Any) -> Any:
    """``value`` with memoryviews turned into bytes and lists into tuples, for equality checks."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, list | tuple):
        return tuple(_plain(item) for item in value)
    return value


def _check_same(what: str, ours: Any, floor: Any) -> None:
    if _plain(ours) != _plain(floor):
        raise AssertionError(f"{what}: ours and the floor disagree:\n  ours  {ours!r}\n  floor {floor!r}")


def _session_message_header_cases() -> list[Case]:
    from generated.aeron_cluster_codecs import SessionMessageHeaderDecoder, SessionMessageHeaderEncoder

    a, b, c = 7, -42, 1_700_000_000_123_456_789
    out = bytearray(64)
    smh_floor_encode(out, 0, a, b, c)
    msg = bytes(out[:32])
    ours_out = bytearray(64)
    SessionMessageHeaderEncoder.pack_into(ours_out, 0, a, b, c)
    _check_same("SessionMessageHeader encode", bytes(ours_out), bytes(out))
    unpack = SessionMessageHeaderDecoder.unpack
    dec = SessionMessageHeaderDecoder()
    _check_same("SessionMessageHeader decode", unpack(msg), smh_floor_decode(msg))
    flyweight = dec.wrap_header(msg)
    _check_same(
        "SessionMessageHeader flyweight decode",
        (flyweight.leadership_term_id, flyweight.cluster_session_id, flyweight.timestamp),
        (a, b, c),
    )
    wrapped = SessionMessageHeaderDecoder().wrap_header(msg)
    _check_same("SessionMessageHeader one field", wrapped.cluster_session_id, _I64.unpack_from(msg, 16)[0])
    enc = SessionMessageHeaderEncoder()
    values = {"a": a, "b": b, "c": c}
    floor_decode = Snippet("r = floor(buf)", {"floor": smh_floor_decode, "buf": msg})
    floor_encode = Snippet("floor(buf, 0, a, b, c)", {"floor": smh_floor_encode, "buf": out, **values})
    return [
        Case(
            "session_message_header.decode",
            "SessionMessageHeader: decode all fields (unpack)",
            floor_decode,
            Snippet("r = unpack(buf)", {"unpack": unpack, "buf": msg}),
            DECODE_TARGET,
        ),
        Case(
            "session_message_header.decode_flyweight",
            "SessionMessageHeader: decode all fields (wrap_header + 3 properties)",
            floor_decode,
            Snippet(
                "d = dec.wrap_header(buf); r = (d.leadership_term_id, d.cluster_session_id, d.timestamp)",
                {"dec": dec, "buf": msg},
            ),
            None,
        ),
        Case(
            "session_message_header.read_field",
            "SessionMessageHeader: read one field (cluster_session_id)",
            Snippet("r = Q.unpack_from(buf, 16)[0]", {"Q": _I64, "buf": msg}),
            Snippet("r = dec.cluster_session_id", {"dec": wrapped}),
            READ_TARGET,
        ),
        Case(
            "session_message_header.encode",
            "SessionMessageHeader: encode header + block (pack_into)",
            floor_encode,
            Snippet(
                "pack(buf, 0, a, b, c)",
                {"pack": SessionMessageHeaderEncoder.pack_into, "buf": ours_out, **values},
            ),
            ENCODE_TARGET,
        ),
        Case(
            "session_message_header.encode_flyweight",
            "SessionMessageHeader: encode (wrap_and_apply_header + 3 setters)",
            floor_encode,
            Snippet(
                "e = enc.wrap_and_apply_header(buf, 0); e.leadership_term_id = a; "
                "e.cluster_session_id = b; e.timestamp = c",
                {"enc": enc, "buf": ours_out, **values},
            ),
            None,
        ),
    ]


def _car_cases() -> list[Case]:
    codec = load_car_codec()
    car_decoder, car_encoder = codec.CarDecoder, codec.CarEncoder
    msg: bytes = codec.encode_dict("Car", CAR_FIELDS)
    car = car_floor_decode(msg)
    _check_same("Car decode", car_decoder.unpack(msg), car)
    dec = car_decoder()
    _check_same("Car flyweight decode", car_flyweight_decode(dec, msg), car)
    floor_out, ours_out = bytearray(512), bytearray(512)
    length = car_floor_encode(floor_out, 0, car)
    _check_same("Car encode (hand-written floor)", bytes(floor_out[:length]), msg)
    enc = car_encoder()
    length = car_flyweight_encode(enc, ours_out, car)
    _check_same("Car flyweight encode", bytes(ours_out[:length]), msg)
    block = car[:17]
    length = car_encoder.pack_into(ours_out, 0, *block)
    _check_same("Car pack_into", bytes(ours_out[:length]), msg[:length])
    length = car_floor_pack(floor_out, 0, *block)
    _check_same("Car pack_into (hand-written floor)", bytes(floor_out[:length]), msg[:length])
    wrapped = car_decoder().wrap_header(msg)
    _check_same("Car one field", wrapped.model_year, _U16.unpack_from(msg, 16)[0])
    floor_decode = Snippet("r = floor(buf)", {"floor": car_floor_decode, "buf": msg})
    return [
        Case(
            "car.decode",
            "Car: full decode with groups and var data (unpack)",
            floor_decode,
            Snippet("r = unpack(buf)", {"unpack": car_decoder.unpack, "buf": msg}),
            DECODE_TARGET,
        ),
        Case(
            "car.decode_flyweight",
            "Car: full decode (wrap_header + read_block + group iteration + var data)",
            floor_decode,
            Snippet("r = f(dec, buf)", {"f": car_flyweight_decode, "dec": dec, "buf": msg}),
            None,
        ),
        Case(
            "car.read_field",
            "Car: read one field (model_year)",
            Snippet("r = H.unpack_from(buf, 16)[0]", {"H": _U16, "buf": msg}),
            Snippet("r = dec.model_year", {"dec": wrapped}),
            READ_TARGET,
        ),
        Case(
            "car.encode",
            "Car: encode header + block (pack_into)",
            Snippet("floor(buf, 0, *block)", {"floor": car_floor_pack, "buf": floor_out, "block": block}),
            Snippet("pack(buf, 0, *block)", {"pack": car_encoder.pack_into, "buf": ours_out, "block": block}),
            ENCODE_TARGET,
        ),
        Case(
            "car.encode_flyweight",
            "Car: full encode with groups and var data (flyweight setters)",
            Snippet("floor(buf, 0, car)", {"floor": car_floor_encode, "buf": floor_out, "car": car}),
            Snippet("f(enc, buf, car)", {"f": car_flyweight_encode, "enc": enc, "buf": ours_out, "car": car}),
            None,
        ),
    ]


def build_cases() -> list[Case]:
    """Every case, after checking once that each pair computes the same thing."""
    return _session_message_header_cases() + _car_cases()


# ------------------------------------------------------------------------------------------- command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with every result")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (few, short repeats)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help="interleaved repeats per case (default 15; 3 with --quick)",
    )


def _settings(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else FULL
    if args.repeats is None:
        return base
    if args.repeats < 1:
        raise _UsageError(f"--repeats must be at least 1, not {args.repeats}")
    return Settings(repeats=args.repeats, budget_s=base.budget_s)


class _UsageError(ValueError):
    is_user_error = True


def _progress(result: Result) -> None:
    print(f"  {result.case.id}: {result.ratio:.2f}x", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    cases = build_cases()
    results: Sequence[Result] = run_cases(cases, settings, None if args.json or args.quick else _progress)
    if args.json:
        print(to_json("codec", results, settings, args.quick))
    else:
        print(format_table("codec benchmark", results, settings))
    return 0
