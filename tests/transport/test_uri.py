"""Channel URIs (``docs/transport.md``, "Channel URIs"): Aeron's syntax, the driver's parameter rules, and
round-trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.transport.errors import ChannelUriError
from cluster.transport.uri import ChannelParams, ChannelUri

FULL = (
    "aeron:udp?endpoint=host:40123|control=ctl:40124|control-mode=manual|term-length=65536|mtu=1408"
    "|init-term-id=0|term-id=5|term-offset=64|session-id=7"
)


# ---------------------------------------------------------------------------- full URI examples


def test_full_udp_uri_accessors() -> None:
    uri = ChannelUri.parse(FULL)
    assert uri.media == "udp"
    assert uri.prefix == ""
    assert uri.endpoint == ("host", 40123)
    assert uri.control == ("ctl", 40124)
    assert uri.control_mode == "manual"
    assert uri.term_length == 65536
    assert uri.mtu == 1408
    assert (uri.init_term_id, uri.term_id, uri.term_offset) == (0, 5, 64)
    assert uri.session_id == 7
    assert uri.session_id_tag is None
    assert str(uri) == FULL
    assert uri.build() == FULL


@pytest.mark.parametrize(
    "text",
    [
        "aeron:ipc",
        "aeron:udp",
        "aeron:ipc?term-length=128k",
        "aeron:udp?term-length=64k",
        "aeron:udp?tags=1,2|session-id=99|alias=log",
        "aeron:udp?endpoint=localhost:0",
        "aeron-spy:aeron:udp?endpoint=224.0.1.1:40456|interface=192.168.1.0/24",
        "aeron:udp?endpoint=[::1]:40123",
        "aeron:udp?endpoint=[fe80::1%eth0]:40123",
        "aeron:udp?control=localhost:40457|control-mode=dynamic",
        "aeron:udp?control-mode=manual",
        "aeron:udp?control-mode=response|control=localhost:10001",
        "aeron:udp?session-id=tag:1001",
        "aeron:udp?alias=a=b:c",
        "aeron:udp?fc=tagged,g:123|gtag=123|cc=cubic|unknown-key=whatever",
    ],
)
def test_well_formed_text_round_trips(text: str) -> None:
    uri = ChannelUri.parse(text)
    assert str(uri) == text
    assert ChannelUri.parse(str(uri)) == uri
    assert hash(ChannelUri.parse(str(uri))) == hash(uri)


def test_ipc_and_spy_prefix() -> None:
    assert ChannelUri.parse("aeron:ipc") == ChannelUri("ipc")
    assert ChannelUri.parse("aeron:ipc").params == {}
    spy = ChannelUri.parse("aeron-spy:aeron:udp?endpoint=localhost:40123")
    assert spy.prefix == "aeron-spy"
    assert spy.is_spy
    assert spy.endpoint == ("localhost", 40123)


def test_values_split_on_first_equals() -> None:
    uri = ChannelUri.parse("aeron:udp?alias=a=b:c|x=?y")
    assert uri.alias == "a=b:c"
    assert uri.get("x") == "?y"


def test_unknown_keys_kept_in_order() -> None:
    uri = ChannelUri.parse("aeron:udp?zeta=1|alpha=2|endpoint=h:1")
    assert list(uri.params) == ["zeta", "alpha", "endpoint"]
    assert uri.get("zeta") == "1"
    assert uri.get("missing") is None


def test_sizes_take_k_m_g_suffixes() -> None:
    assert ChannelUri.parse("aeron:udp?term-length=64k").term_length == 64 * 1024
    assert ChannelUri.parse("aeron:udp?term-length=64K").term_length == 64 * 1024
    assert ChannelUri.parse("aeron:udp?term-length=16m").term_length == 16 * 1024 * 1024
    assert ChannelUri.parse("aeron:udp?term-length=1G").term_length == 1024**3
    assert ChannelUri.parse("aeron:udp?mtu=8k").mtu == 8192


def test_ipv6_endpoint_without_brackets_in_result() -> None:
    assert ChannelUri.parse("aeron:udp?endpoint=[::1]:40123").endpoint == ("::1", 40123)
    assert ChannelUri.parse("aeron:udp?endpoint=[fe80::1%eth0]:7").endpoint == ("fe80::1%eth0", 7)


def test_other_accessors() -> None:
    uri = ChannelUri.parse(
        "aeron:udp?linger=5s|ttl=16|reliable=false|sparse=true|alias=log|tags=3,4|session-id=-5"
    )
    assert uri.linger_ns == 5_000_000_000
    assert uri.ttl == 16
    assert uri.reliable is False
    assert uri.sparse is True
    assert uri.alias == "log"
    assert uri.tags == (3, 4)
    assert uri.session_id == -5
    assert ChannelUri.parse("aeron:udp?linger=250ms").linger_ns == 250_000_000
    assert ChannelUri.parse("aeron:udp?linger=7").linger_ns == 7
    assert ChannelUri.parse("aeron:udp?tags=3").tags == (3, None)
    assert ChannelUri.parse("aeron:udp?tags=,4").tags == (None, 4)
    empty = ChannelUri.parse("aeron:udp")
    assert empty.endpoint is None and empty.term_length is None and empty.tags is None
    assert empty.linger_ns is None and empty.reliable is None and empty.control_mode is None


def test_session_id_tag_form() -> None:
    uri = ChannelUri.parse("aeron:udp?session-id=tag:1001")
    assert uri.session_id is None
    assert uri.session_id_tag == 1001


def test_initial_position_limits_follow_aeron() -> None:
    # term-offset may equal term-length (Aeron rejects only term-offset > term-length).
    ChannelUri.parse("aeron:udp?term-length=64k|init-term-id=1|term-id=1|term-offset=65536")
    # term-id before init-term-id is fine when the int32 difference wraps to a non-negative count.
    ChannelUri.parse(f"aeron:udp?init-term-id={2**31 - 1}|term-id={-(2**31)}|term-offset=0")
    # Without term-length the driver's default term length (UDP 16 MiB) bounds the offset.
    ChannelUri.parse("aeron:udp?init-term-id=0|term-id=0|term-offset=16777216")


def test_with_params_and_with_param() -> None:
    base = ChannelUri.parse("aeron:udp?term-length=64k|alias=log")
    changed = base.with_params(endpoint="localhost:20121", session_id=7, sparse=True)
    assert (
        str(changed)
        == "aeron:udp?term-length=64k|alias=log|endpoint=localhost:20121|session-id=7|sparse=true"
    )
    assert str(base) == "aeron:udp?term-length=64k|alias=log"  # unchanged
    assert str(changed.with_param("term-length", "128k")).startswith("aeron:udp?term-length=128k|alias=log")
    assert str(changed.with_params(alias=None, endpoint=None, session_id=None, sparse=None)) == (
        "aeron:udp?term-length=64k"
    )
    with pytest.raises(ChannelUriError, match="session-id=x"):
        base.with_params(session_id="x")


def test_constructor_validates_and_accepts_mappings_or_pairs() -> None:
    uri = ChannelUri("udp", {"endpoint": "h:1", "mtu": "4096"})
    assert str(uri) == "aeron:udp?endpoint=h:1|mtu=4096"
    assert ChannelUri("udp", ChannelParams([("endpoint", "h:1"), ("mtu", "4096")])) == uri
    with pytest.raises(ChannelUriError, match="prefix 'x'"):
        ChannelUri("udp", {}, "x")
    with pytest.raises(ChannelUriError, match="unknown media 'tcp'"):
        ChannelUri("tcp")
    with pytest.raises(ChannelUriError, match=r"alias=a\|b contains '\|'"):
        ChannelUri("udp", {"alias": "a|b"})
    with pytest.raises(ChannelUriError, match="duplicate parameter 'a'"):
        ChannelParams([("a", "1"), ("a", "2")])


def test_params_equality_ignores_order_but_text_keeps_it() -> None:
    a = ChannelUri.parse("aeron:udp?a=1|b=2")
    b = ChannelUri.parse("aeron:udp?b=2|a=1")
    assert a == b and hash(a) == hash(b)
    assert str(a) != str(b)


# ------------------------------------------------------------------------------------ error paths


@pytest.mark.parametrize(
    ("text", "named"),
    [
        # syntax
        ("udp?endpoint=h:1", "does not start with 'aeron:'"),
        ("aeron-spy:udp", "does not start with 'aeron:'"),
        ("", "does not start with 'aeron:'"),
        ("aeron:tcp?endpoint=h:1", "unknown media 'tcp' in 'aeron:tcp?endpoint=h:1'"),
        ("aeron:", "unknown media ''"),
        ("aeron:UDP", "unknown media 'UDP'"),
        ("aeron:udp:x", "media 'udp:x'"),
        ("aeron:udp?", "has '?' but no parameters"),
        ("aeron:udp?endpoint", "parameter 0 'endpoint'"),
        ("aeron:udp?a=1|b", "parameter 1 'b'"),
        ("aeron:udp?a=1|", "parameter 1 ''"),
        ("aeron:udp?=1", "parameter 0 '=1'"),
        ("aeron:udp?a=1|a=2", "duplicate parameter 'a'"),
        ("aeron:udp? endpoint=h:1", "parameter key ' endpoint'"),
        ("aeron:udp?end point=h:1", "parameter key 'end point'"),
        ("aeron:udp?alias=", "alias= has an empty value"),
        # endpoint / control
        ("aeron:udp?endpoint=localhost", "endpoint 'localhost' has no port"),
        ("aeron:udp?endpoint=[::1]", "endpoint '[::1]' has no port"),
        ("aeron:udp?endpoint=localhost:65536", "endpoint=localhost:65536 has a bad port '65536'"),
        ("aeron:udp?endpoint=localhost:-1", "endpoint=localhost:-1 has a bad port '-1'"),
        ("aeron:udp?endpoint=localhost:http", "bad port 'http'"),
        ("aeron:udp?endpoint=:40123", "endpoint=:40123 has a bad host ''"),
        ("aeron:udp?endpoint=::1:40123", "bad host '::1' (IPv6 needs brackets)"),
        ("aeron:udp?endpoint=[zz::1]:40123", "bad IPv6 address 'zz::1'"),
        ("aeron:udp?endpoint=[::1:40123", "endpoint=[::1:40123 is not '[ipv6-address]:port'"),
        ("aeron:udp?control=ctl", "control 'ctl' has no port"),
        ("aeron:udp?control-mode=auto", "control-mode=auto is not one of manual, dynamic, response"),
        # term-length / mtu
        ("aeron:udp?term-length=70000", "term-length=70000 is not a power of two between 64 KiB and 1 GiB"),
        ("aeron:udp?term-length=32k", "term-length=32k is not a power of two"),
        ("aeron:udp?term-length=2g", "term-length=2g is not a power of two"),
        ("aeron:udp?term-length=64kb", "term-length=64kb is not a size"),
        ("aeron:udp?term-length= 64k", "term-length= 64k is not a size"),
        ("aeron:udp?term-length=-64k", "term-length=-64k is not a size"),
        ("aeron:udp?mtu=32", "mtu=32 must be > 32"),
        ("aeron:udp?mtu=65536", "mtu=65536 must be > 32 (header length) and <= 65504"),
        ("aeron:udp?mtu=1400", "mtu=1400 is not a multiple of 32"),
        ("aeron:udp?mtu=1.5k", "mtu=1.5k is not a size"),
        ("aeron:udp?term-length=64k|mtu=16k", "mtu=16384 is greater than the max message length 8192"),
        # initial position
        ("aeron:udp?init-term-id=0|term-id=5", "init-term-id, term-id given without term-offset"),
        ("aeron:udp?term-offset=64", "term-offset given without init-term-id, term-id"),
        ("aeron:udp?init-term-id=0|term-id=0|term-offset=33", "term-offset=33 is not a multiple of 32"),
        ("aeron:udp?init-term-id=0|term-id=0|term-offset=-32", "term-offset=-32 is not in [0, term-length="),
        (
            "aeron:udp?term-length=64k|init-term-id=0|term-id=0|term-offset=65568",
            "term-offset=65568 is not in [0, term-length=65536]",
        ),
        ("aeron:udp?init-term-id=5|term-id=4|term-offset=0", "term-id=4 is before init-term-id=5"),
        ("aeron:udp?init-term-id=x|term-id=0|term-offset=0", "init-term-id=x is not an integer"),
        (
            "aeron:udp?init-term-id=2147483648|term-id=0|term-offset=0",
            "init-term-id=2147483648 is out of range",
        ),
        ("aeron:udp?init-term-id=0|term-id=0x10|term-offset=0", "term-id=0x10 is not an integer"),
        # session-id and the rest
        ("aeron:udp?session-id=abc", "session-id=abc is not an integer"),
        ("aeron:udp?session-id=1_000", "session-id=1_000 is not an integer"),
        ("aeron:udp?session-id=-2147483649", "session-id=-2147483649 is out of range for an int32"),
        ("aeron:udp?session-id=tag:x", "session-id=x is not an integer"),
        ("aeron:udp?session-id=٣", "session-id=٣ is not an integer"),
        ("aeron:udp?linger=5 s", "linger=5 s is not a duration"),
        ("aeron:udp?linger=-1", "linger=-1 is not a duration"),
        ("aeron:udp?linger=5ſ", "linger=5ſ is not a duration"),  # U+017F folds to 's' unless ASCII
        ("aeron:udp?endpoint=[::1%]:1", "bad IPv6 scope ''"),
        ("aeron:udp?endpoint=[]:1", "bad IPv6 address ''"),
        ("aeron:udp?endpoint=h:1\n", "bad port '1\\n'"),
        ("aeron:udp?ttl=256", "ttl=256 is out of range"),
        ("aeron:udp?reliable=yes", "reliable=yes is not 'true' or 'false'"),
        ("aeron:udp?sparse=TRUE", "sparse=TRUE is not 'true' or 'false'"),
        ("aeron:udp?tags=1,2,3", "tags=1,2,3 has more than two tags"),
        ("aeron:udp?tags=a", "tags=a is not an integer"),
    ],
)
def test_bad_uri_error_names_the_bad_part(text: str, named: str) -> None:
    with pytest.raises(ChannelUriError) as caught:
        ChannelUri.parse(text)
    assert named in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ChannelUriError, match="must be a string"):
        ChannelUri.parse(b"aeron:ipc")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------- properties

PORT = st.integers(0, 65535)
HOST = st.sampled_from(["localhost", "127.0.0.1", "node-1.example", "[::1]", "[fe80::1%eth0]"])
INT32 = st.integers(-(2**31), 2**31 - 1)
SIZE_SUFFIX = st.sampled_from(["", "k", "K", "m", "M", "g", "G"])


def size_text(value: int) -> st.SearchStrategy[str]:
    """``value`` written plain or with any suffix that divides it."""
    options = [str(value)]
    for suffix, shift in (("k", 10), ("m", 20), ("g", 30)):
        if value % (1 << shift) == 0:
            options += [f"{value >> shift}{suffix}", f"{value >> shift}{suffix.upper()}"]
    return st.sampled_from(options)


@st.composite
def valid_uris(draw: st.DrawFn) -> str:
    media = draw(st.sampled_from(["udp", "ipc"]))
    term_length = 1 << draw(st.integers(16, 30))
    params: list[tuple[str, str]] = []
    if draw(st.booleans()):
        params.append(("endpoint", f"{draw(HOST)}:{draw(PORT)}"))
    if draw(st.booleans()):
        params.append(("control", f"{draw(HOST)}:{draw(PORT)}"))
    if draw(st.booleans()):
        params.append(("control-mode", draw(st.sampled_from(["manual", "dynamic", "response"]))))
    params.append(("term-length", draw(size_text(term_length))))
    if draw(st.booleans()):
        max_mtu = min(65504, term_length // 8)
        params.append(("mtu", draw(size_text(32 * draw(st.integers(2, max_mtu // 32))))))
    if draw(st.booleans()):
        init = draw(INT32)
        term_count = draw(st.integers(0, 2**31 - 1))
        term_id = ((init + term_count + 2**31) % 2**32) - 2**31
        offset = 32 * draw(st.integers(0, term_length // 32))
        params += [("init-term-id", str(init)), ("term-id", str(term_id)), ("term-offset", str(offset))]
    if draw(st.booleans()):
        params.append(("session-id", str(draw(INT32))))
    if draw(st.booleans()):
        params.append(
            ("linger", f"{draw(st.integers(0, 10**12))}{draw(st.sampled_from(['', 'ns', 'us', 'ms', 's']))}")
        )
    if draw(st.booleans()):
        params.append(
            ("alias", draw(st.text(st.characters(blacklist_characters="|"), min_size=1, max_size=12)))
        )
    if draw(st.booleans()):
        params.append(("x-unknown", draw(st.from_regex(r"[a-z0-9=:?,]{1,10}", fullmatch=True))))
    order = draw(st.permutations(params))
    prefix = draw(st.sampled_from(["", "aeron-spy:"]))
    text = f"{prefix}aeron:{media}?" + "|".join(f"{k}={v}" for k, v in order)
    return text


@settings(max_examples=300, deadline=None)
@given(valid_uris())
def test_generated_valid_uris_round_trip(text: str) -> None:
    uri = ChannelUri.parse(text)
    assert str(uri) == text
    assert ChannelUri.parse(str(uri)) == uri
    assert ChannelUri(uri.media, dict(uri.params), uri.prefix) == uri
    # every accessor is total on a valid URI
    for name in (
        "endpoint", "control", "control_mode", "term_length", "mtu", "init_term_id", "term_id",
        "term_offset", "session_id", "linger_ns", "alias", "tags",
    ):  # fmt: skip
        getattr(uri, name)


URI_ALPHABET = "aeron-spy:udpic?|=[]%.,0123456789kmgKMG- _xtagsession-idtermlengthmtuendpointcontrol"


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=60), st.text(URI_ALPHABET, max_size=80)))
def test_fuzz_parse_raises_only_channel_uri_error(text: str) -> None:
    for candidate in (text, "aeron:udp?" + text, "aeron:ipc?" + text):
        try:
            uri = ChannelUri.parse(candidate)
        except ChannelUriError:
            continue
        assert ChannelUri.parse(str(uri)) == uri
        assert str(uri) == candidate


KEYS = st.sampled_from(
    ["endpoint", "control", "control-mode", "term-length", "mtu", "init-term-id", "term-id", "term-offset",
     "session-id", "linger", "ttl", "reliable", "sparse", "alias", "tags"]
)  # fmt: skip
VALUES = st.one_of(
    st.from_regex(r"[-+]?[0-9]{0,12}[kmgKMG]?", fullmatch=True),
    st.from_regex(r"(tag:)?[-0-9a-z]{0,6}", fullmatch=True),
    st.from_regex(r"\[?[0-9a-f:.%]{0,10}\]?(:[-0-9]{0,7})?", fullmatch=True),
    st.text(max_size=10),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=6))
def test_fuzz_known_params_raise_only_channel_uri_error(pairs: list[tuple[str, str]]) -> None:
    text = "aeron:udp?" + "|".join(f"{k}={v}" for k, v in pairs)
    try:
        uri = ChannelUri.parse(text)
    except ChannelUriError:
        return
    assert str(uri) == text
