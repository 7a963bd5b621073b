"""Hypothesis strategies for the values of request fields, bad ones mostly: empty, huge,
unicode, control-character and NUL strings; resource ids and names of the wrong shape, of
another tenant, or of the test floor; boundary, negative and huge integers; NaN, infinities
and signed zeros; unknown and UNSPECIFIED enum numbers. ``tests.grpc.proto_strategies``
puts them into messages.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from hypothesis import strategies as st

from router.server import SERVICE_NAMES

HUGE_LENGTHS = (10_000, 70_000, 300_000)
NASTY = (
    "\x00",
    "a\x00b",
    " ",
    "\t\n",
    "\r\n",
    "\u202e",
    "\ufeff",
    "\u200b",
    "💥",
    "é",
    "ｔｅｎａｎｔｓ/t1",
    "../../etc/passwd",
    "%s%n%x",
    "${jndi:ldap://x}",
    "*",
    "?",
    "null",
    "None",
    "-1",
    "0",
    "1e309",
    "NaN",
    "/",
    "//",
    "tenants/",
    "tenants//agents/",
    "omr:{t1}:queue",
    "{t1}",
    "a" * 63,
    "a" * 64,
    "A",
)
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0.0,
    -1.0,
    0.5,
    1.0,
    1.0000000000000002,
    100.0,
    100.1,
    1e308,
    -1e308,
    5e-324,
)
_FLOATS32 = (float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1.0, 3.4028234663852886e38)


@dataclass(frozen=True, slots=True)
class Floor:
    """What the running server holds, so that some names hit real resources."""

    tenant: str
    foreign_tenant: str
    ids: tuple[str, ...]
    names: tuple[str, ...]


@st.composite
def _pick(
    draw: st.DrawFn,
    slots: st.SearchStrategy[int],
    choices: tuple[st.SearchStrategy[Any], ...],
) -> Any:
    return draw(choices[draw(slots)])


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of `choices`, each picked in proportion to its weight (shrinks to the first).
    `one_of` picks among distinct branches alike whatever their repetitions, and an
    integer draw lands on its bounds far more often than its share: one slot per unit of
    weight, sampled, keeps the proportions."""
    slots = tuple(i for i, (weight, _) in enumerate(choices) for _ in range(weight))
    return _pick(st.sampled_from(slots), tuple(strategy for _, strategy in choices))


# --- names --------------------------------------------------------------------------------


@functools.cache
def collections() -> tuple[str, ...]:
    """Resource collections of the API: each message an RPC takes or returns (at any depth)
    that has a `name` field and is not a request or response, lower camel case and plural
    (``Agent`` -> ``agents``, ``RoutingRule`` -> ``routingRules``)."""
    found: set[str] = set()
    seen: set[str] = set()

    def walk(d: Descriptor) -> None:
        if d.full_name in seen:
            return
        seen.add(d.full_name)
        if "name" in d.fields_by_name and not d.name.endswith(("Request", "Response")):
            found.add(d.name[:1].lower() + d.name[1:] + "s")
        for f in d.fields:
            if f.message_type is not None:
                walk(f.message_type)

    for service in map(descriptor_pool.Default().FindServiceByName, SERVICE_NAMES):
        for m in service.methods:
            walk(m.input_type)
            walk(m.output_type)
    return tuple(sorted(found))


# --- scalars ----------------------------------------------------------------------------


def huge_strings() -> st.SearchStrategy[str]:
    """10 to 300 kB of text, built by repetition (cheap to draw): multi-byte, NULs, deep
    nesting for a field that holds YAML or JSON."""
    unit = st.sampled_from(["a", "é", "\x00", "💥", "tenants/t1/", "a b", "[", "{a: "])
    return st.builds(lambda u, n: u * (n // len(u.encode())), unit, st.sampled_from(HUGE_LENGTHS))


def bad_ids(floor: Floor) -> st.SearchStrategy[str]:
    """Resource ids: the floor's, unknown ones, and ids of the wrong shape."""
    return weighted(
        (12, st.sampled_from(floor.ids)),
        (6, st.sampled_from(["ghost", "x", "c1", "0", "a-", "_a"])),
        (6, st.sampled_from(NASTY)),
        (6, st.from_regex(r"[a-z0-9_-]{0,70}", fullmatch=True)),
        (4, st.text(max_size=12)),
        (2, st.sampled_from(["UPPER", "has space", "a/b", "a\x00", "A1", ""])),
        (1, huge_strings()),
    )


def resource_names(floor: Floor) -> st.SearchStrategy[str]:
    """`tenants/{t}[/{collection}/{id}]...`, usually of some wrong shape."""
    tenants = weighted(
        (10, st.just(floor.tenant)),
        (3, st.just(floor.foreign_tenant)),
        (2, st.sampled_from(["t9", "T1", "", "t1 ", "t1\x00", "-t", "ｔ1"])),
        (1, st.text(max_size=8)),
    )
    roots = weighted((9, st.just("tenants")), (1, st.sampled_from(NASTY)))
    pairs = weighted((4, st.just(0)), (11, st.just(1)), (5, st.integers(2, 3)))
    kinds = weighted(
        (8, st.sampled_from(collections())),
        (1, st.sampled_from(["agent", "Agents", "", "offers", "*"])),
        (1, st.text(max_size=6)),
    )
    ids = bad_ids(floor)

    @st.composite
    def name(draw: st.DrawFn) -> str:
        parts = [draw(roots), draw(tenants)]
        for _ in range(draw(pairs)):
            parts += [draw(kinds), draw(ids)]
        text = "/".join(parts)
        mangle = draw(st.sampled_from(range(20)))  # integers() would favour 0
        if mangle == 0:
            text += "/"
        elif mangle == 1:
            text = "/" + text
        elif mangle == 2:
            text = text.replace("/", "//", 1)
        elif mangle == 3 and len(parts) > 2:
            text = "/".join(parts[:-1])  # a collection without its id
        return text

    return name()


def strings(floor: Floor, words: Sequence[str], *, is_name: bool) -> st.SearchStrategy[str]:
    """Any string field: more resource names where the field holds one."""
    return weighted(
        (2, st.just("")),
        (10 if is_name else 2, resource_names(floor)),
        (3 if is_name else 1, st.sampled_from(floor.names)),
        (1 if is_name else 5, bad_ids(floor)),
        (2, st.sampled_from(words or ("x",))),
        (3, st.text(max_size=24)),
        (2, st.text(st.characters(max_codepoint=0x1F) | st.sampled_from("\x7f\x00"), max_size=8)),
        (2, st.sampled_from(NASTY)),
        (1, huge_strings()),
    )


def integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Boundaries, small numbers around the usual ranges, and anything in the type."""
    edges = sorted(
        {lo, lo + 1, hi - 1, hi}
        | {
            v
            for v in (-(2**31), -1, 0, 1, 2, 5, 6, 9, 10, 50, 51, 100, 1000, 1001)
            if lo <= v <= hi
        }
    )
    return weighted(
        (2, st.sampled_from(edges)),
        (2, st.integers(max(lo, -3), min(hi, 12))),
        (1, st.integers(lo, hi)),
    )


def floats(width: int) -> st.SearchStrategy[float]:
    """NaN, infinities, signed zeros, boundaries, huge and tiny numbers."""
    specials = _FLOATS if width == 64 else _FLOATS32
    return weighted(
        (2, st.sampled_from(specials)),
        (2, st.floats(width=width)),
        (1, st.floats(0, 1, width=width)),
    )


def enums(field: FieldDescriptor) -> st.SearchStrategy[int]:
    """0 (UNSPECIFIED), the known numbers, and unknown ones (enums are open in proto3)."""
    known = sorted(v.number for v in field.enum_type.values)
    return weighted(
        (1, st.just(0)),
        (1, st.sampled_from(known)),
        (1, st.sampled_from([-1, max(known) + 1, 99, 2**31 - 1, -(2**31)])),
        (1, st.integers(-(2**31), 2**31 - 1)),
    )
