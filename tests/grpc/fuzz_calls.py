"""Whole generated calls for the fuzzer: a request from ``tests.grpc.proto_strategies``, its
encoding (now and then broken: invalid UTF-8, truncation, bad tags), and the call metadata
(the strongest key the RPC admits, mostly; else a weaker, foreign, revoked, malformed or
missing key, or large headers).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from router.server import MAX_REQUEST_BYTES
from tests.grpc.proto_strategies import requests
from tests.grpc.value_strategies import Floor, weighted

Metadata = tuple[tuple[str, str | bytes], ...]


# --- the encoding ---------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string_fields(desc: Descriptor) -> list[int]:
    return [f.number for f in desc.fields if f.type == FieldDescriptor.TYPE_STRING] or [
        f.number for f in desc.fields
    ]


DAMAGE = ("invalid utf-8", "truncated", "garbage", "field number 0", "wrong wire type")
#: A string field this long makes a request larger than the server reads.
OVERSIZE = MAX_REQUEST_BYTES + 1_000
#: A header this long is past gRPC's hard limit of 16 KiB.
OVERSIZE_HEADER = 17_000
_INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"a\xf0\x28\x8c\xbc")


def wire_damage(desc: Descriptor) -> st.SearchStrategy[Callable[[bytes], tuple[str, bytes]]]:
    """How to break an encoding of a `desc` message: a function of the bytes returning
    (what was broken, the new bytes); it leaves them whole 9 times in 10."""
    numbers = st.sampled_from(_string_fields(desc) or [1])

    def damage(
        kind: str, number: int, bad: bytes, cut: float
    ) -> Callable[[bytes], tuple[str, bytes]]:
        def apply(wire: bytes) -> tuple[str, bytes]:
            if kind == "invalid utf-8":
                return kind, wire + _varint(number << 3 | 2) + _varint(len(bad)) + bad
            if kind == "truncated":
                return kind, wire[: int(len(wire) * cut)]
            if kind == "garbage":
                return kind, wire + bad
            if kind == "field number 0":
                return kind, b"\x02\x01a" + wire
            return kind, wire + _varint(number << 3 | 5)  # a fixed32 tag with no payload

        return apply

    broken = st.builds(
        damage,
        st.sampled_from(DAMAGE),
        numbers,
        st.sampled_from(_INVALID_UTF8) | st.binary(min_size=1, max_size=32),
        st.floats(0, 0.99),
    )
    return weighted((9, st.just(lambda wire: ("", wire))), (1, broken))


# --- metadata -------------------------------------------------------------------------------

_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


#: Header sizes under gRPC's soft limit of 8 KiB (past it a call is refused at random, and
#: slowly: see `oversize_cases`).
LARGE_HEADERS = (4_000, 7_000)


def metadata(
    keys: Mapping[str, Metadata], strongest: str
) -> st.SearchStrategy[tuple[str, Metadata]]:
    """(which key, call metadata): mostly `keys[strongest]`, else another of `keys` (weaker
    roles, another tenant, revoked), a malformed or missing key, or large headers."""
    md = keys[strongest]
    named = st.sampled_from(sorted(keys)).map(lambda k: (k, keys[k]))
    bad: st.SearchStrategy[tuple[str, Metadata]] = st.sampled_from(
        [
            ("missing", ()),
            ("empty bearer", (("authorization", "Bearer "),)),
            ("basic scheme", (("authorization", "Basic " + _bearer(md)),)),
            ("huge bearer", (("authorization", "Bearer " + "a" * 7_000),)),
        ]
    )
    junk = _HEADER_VALUE.map(lambda v: ("junk bearer", (("authorization", "Bearer " + v),))) | (
        _HEADER_VALUE.map(lambda v: ("junk x-api-key", (("x-api-key", v),)))
    )

    def sized(n: int) -> tuple[str, Metadata]:
        return f"header of {n} B", (*md, ("x-fuzz", "a" * n))

    def headers(n: int) -> tuple[str, Metadata]:
        return f"{n} headers", (*md, *((f"x-fuzz-{i}", "v" * 64) for i in range(n)))

    large = st.sampled_from(LARGE_HEADERS).map(sized) | st.just(60).map(headers)
    binary = st.binary(max_size=64).map(lambda b: ("binary header", (*md, ("x-fuzz-bin", b))))
    return weighted(
        (800, st.just((strongest, md))),
        (80, named),
        (40, bad),
        (40, junk),
        (20, large),
        (20, binary),
    )


def _bearer(md: Metadata) -> str:
    for key, value in md:
        if key == "authorization" and isinstance(value, str):
            return value.partition(" ")[2]
    return ""


def call_cases(
    method: MethodDescriptor,
    floor: Floor,
    keys: Mapping[str, Metadata],
    strongest: str,
    seeds: Sequence[Message] = (),
) -> st.SearchStrategy[Case]:
    """Whole calls of `method`: the request (a mutant of one of `seeds` half of the time,
    if any are given), its bytes (broken now and then), the metadata."""
    built = requests(method, floor, seeds)
    headers = metadata(keys, strongest)
    damages = wire_damage(method.input_type)

    @st.composite
    def case(draw: st.DrawFn) -> Case:
        request = draw(built)
        damage, wire = draw(damages)(request.SerializeToString())
        key, md = draw(headers)
        return Case(request, wire, damage, key, md)

    return case()


def oversize_cases(
    method: MethodDescriptor, keys: Mapping[str, Metadata], strongest: str, seed: Message
) -> list[Case]:
    """A request larger than the server reads, and a header past gRPC's hard limit: both
    end RESOURCE_EXHAUSTED, at a cost of 0.1-1 s each, so they are made once per RPC
    rather than drawn."""
    number = (_string_fields(method.input_type) or [1])[0]
    wire = seed.SerializeToString()
    big = wire + _varint(number << 3 | 2) + _varint(OVERSIZE) + b"a" * OVERSIZE
    header = (*keys[strongest], ("x-fuzz", "a" * OVERSIZE_HEADER))
    return [
        Case(seed, big, f"{len(big)} bytes", strongest, keys[strongest], stream_wait_s=5.0),
        Case(seed, wire, "", f"header of {OVERSIZE_HEADER} B", header, stream_wait_s=5.0),
    ]


@dataclass(frozen=True, slots=True, repr=False)
class Case:
    """One generated call (its repr is `summary`: the bytes may be megabytes)."""

    request: Message
    wire: bytes
    damage: str
    key: str
    metadata: Metadata
    #: How long a stream is read for its first message or status (None: the default).
    stream_wait_s: float | None = None

    def summary(self, limit: int = 600) -> str:
        """The call in a few lines (long values cut) for a failure message."""
        text = str(self.request)
        text = re.sub(r'"([^"]{80})[^"]{20,}"', lambda m: f'"{m.group(1)}..."', text)
        if len(text) > limit:
            text = text[:limit] + f"... ({self.request.ByteSize()} bytes)"
        headers = sum(len(k) + len(v) for k, v in self.metadata)
        damage = f", encoding: {self.damage}" if self.damage else ""
        return f"key: {self.key} ({headers} B of metadata){damage}\n{text}"

    def __repr__(self) -> str:
        return self.summary()
