"""Hypothesis strategies derived from the proto descriptors: for any RPC of the API, a
request that is malformed in as many ways as its message allows.

Nothing here knows a particular RPC. `requests` walks the method's input message field by
field (scalars, enums, nested and well-known messages, repeated and map fields): a few of
its fields, now and then all of them, are set, each to a value mostly bad
(``tests.grpc.value_strategies``), the others are missing; repeated and map fields get none,
a few or hundreds of items; Durations and Timestamps negative, out-of-range and huge seconds
and nanos. Mutants of valid seed requests, with one or two fields broken at any depth, let
bad values pass the first checks and reach deeper validation. ``tests.grpc.fuzz_calls``
turns requests into whole calls.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.grpc.value_strategies import (
    INT_RANGES,
    Floor,
    enums,
    floats,
    huge_strings,
    integers,
    strings,
    weighted,
)

#: How deep nested messages are built; deeper ones are left unset.
MAX_DEPTH = 5
#: A repeated field with many items stays below this many bytes, as huge strings stay at
#: 300 kB: a request past the server's limit costs a tenth of a second or more, so those
#: are made on purpose, once per RPC (``tests.grpc.fuzz_calls.oversize_cases``).
MANY_ITEMS_BYTES = 300_000


def vocabulary(desc: Descriptor) -> tuple[str, ...]:
    """Field names and enum value names reachable from `desc` (for field masks, codes, ...)."""
    words: set[str] = set()
    seen: set[str] = set()

    def walk(d: Descriptor) -> None:
        if d.full_name in seen:
            return
        seen.add(d.full_name)
        for f in d.fields:
            words.add(f.name)
            if f.enum_type is not None:
                words.update(v.name for v in f.enum_type.values)
            if f.message_type is not None:
                walk(f.message_type)

    walk(desc)
    return tuple(sorted(words))


# --- messages -----------------------------------------------------------------------------

_NAME_FIELDS = re.compile(r"^(name|parent|agent|merged|contact|customer)$")


@dataclass(frozen=True, slots=True)
class _Context:
    floor: Floor
    words: tuple[str, ...]


def _scalar(field: FieldDescriptor, ctx: _Context) -> st.SearchStrategy[Any]:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        return strings(ctx.floor, ctx.words, is_name=bool(_NAME_FIELDS.match(field.name)))
    if t == FieldDescriptor.TYPE_BYTES:
        return weighted((7, st.binary(max_size=64)), (3, huge_strings().map(str.encode)))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t == FieldDescriptor.TYPE_ENUM:
        return enums(field)
    if t == FieldDescriptor.TYPE_DOUBLE:
        return floats(64)
    if t == FieldDescriptor.TYPE_FLOAT:
        return floats(32)
    lo, hi = INT_RANGES[t]
    return integers(lo, hi)


def _size(value: Any) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, str | bytes):
        return len(value)
    return 8


def _many(items: list[Any], n: int) -> list[Any]:
    """`n` items cycling through `items`, fewer if they would pass MANY_ITEMS_BYTES."""
    per_item = max(1, max(_size(i) for i in items))
    n = max(1, min(n, MANY_ITEMS_BYTES // per_item))
    return [items[i % len(items)] for i in range(n)]


def _repeated(item: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return weighted(
        (8, st.just([])),
        (9, st.lists(item, min_size=1, max_size=3)),
        (
            3,
            st.builds(
                _many,
                st.lists(item, min_size=1, max_size=2),
                st.sampled_from([11, 33, 101, 201, 1001, 5000]),
            ),
        ),
    )


def _map(entry: Descriptor, ctx: _Context, depth: int) -> st.SearchStrategy[dict[Any, Any]]:
    key = _scalar(entry.fields_by_name["key"], ctx)
    value_field = entry.fields_by_name["value"]
    value = (
        _message(value_field.message_type, ctx, depth + 1)
        if value_field.message_type is not None
        else _scalar(value_field, ctx)
    )

    def many(v: Any, n: int) -> dict[Any, Any]:
        n = max(1, min(n, MANY_ITEMS_BYTES // max(1, _size(v))))
        return {f"k{i}": v for i in range(n)}

    few = st.dictionaries(key, value, min_size=1, max_size=3)
    many_items = st.builds(many, value, st.sampled_from([33, 100, 1000]))
    if entry.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
        many_items = few
    return weighted((8, st.just({})), (9, few), (3, many_items))


_TIME_PAIRS = (
    (0, 0),
    (1, 0),
    (30, 0),
    (-1, 0),
    (0, -1),
    (0, 999_999_999),
    (0, 1_000_000_000),
    (-1, 500_000_000),
    (86_400 * 367, 0),
    (315_576_000_001, 0),
    (2**63 - 1, 0),
    (-(2**63), -(2**31)),
)


def _seconds_and_nanos(desc: Descriptor) -> st.SearchStrategy[Message]:
    """Duration and Timestamp: negative, out-of-range and huge seconds and nanos (two
    fields, drawn as one pair: these messages appear many times in a request)."""
    cls = message_factory.GetMessageClass(desc)
    pairs = weighted(
        (3, st.sampled_from(_TIME_PAIRS)),
        (1, st.tuples(integers(-(2**63), 2**63 - 1), integers(-(2**31), 2**31 - 1))),
    )
    return pairs.map(lambda p: cls(seconds=p[0], nanos=p[1]))


_SECONDS_AND_NANOS = {"google.protobuf.Duration", "google.protobuf.Timestamp"}


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _value(field: FieldDescriptor, ctx: _Context, depth: int) -> st.SearchStrategy[Any]:
    """Values for one field (a set but empty message among them)."""
    if _is_map(field):
        return _map(field.message_type, ctx, depth)
    if field.message_type is not None:
        if depth >= MAX_DEPTH:
            return st.just([] if field.is_repeated else None)
        item: st.SearchStrategy[Any] = (
            _seconds_and_nanos(field.message_type)
            if field.message_type.full_name in _SECONDS_AND_NANOS
            else _message(field.message_type, ctx, depth + 1)
        )
    else:
        item = _scalar(field, ctx)
    if field.is_repeated:
        return _repeated(item)
    if field.message_type is not None:
        empty = st.builds(message_factory.GetMessageClass(field.message_type))
        return weighted((1, empty), (6, item))
    return item


def _field(field: FieldDescriptor, ctx: _Context, depth: int) -> st.SearchStrategy[Any]:
    """Values for one field; None leaves it unset (a missing field)."""
    return weighted((1, st.none()), (3, _value(field, ctx, depth)))


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    """Set `field` of `message` to `value`; None clears it."""
    message.ClearField(field.name)
    if value is None:
        return
    target = getattr(message, field.name)
    if _is_map(field):
        if field.message_type.fields_by_name["value"].message_type is not None:
            for k, v in value.items():
                target[k].CopyFrom(v)
        else:
            target.update(value)
    elif field.is_repeated:
        target.extend(value)
    elif field.message_type is not None:
        target.CopyFrom(value)
        target.SetInParent()
    else:
        setattr(message, field.name, value)


def _message(desc: Descriptor, ctx: _Context, depth: int) -> st.SearchStrategy[Message]:
    """Messages with a few fields set (the others missing), or now and then all of them.
    (Drawing every field every time would cost most of the fuzzer's time in messages with
    many output-only fields.)"""
    cls = message_factory.GetMessageClass(desc)
    fields = list(desc.fields)
    values = [_value(f, ctx, depth) for f in fields]
    indices = st.sampled_from(range(len(fields))) if fields else st.nothing()
    some = st.lists(indices, unique=True, max_size=min(len(fields), 4))
    chosen = weighted((4, some), (1, st.just(list(range(len(fields))))))

    @st.composite
    def message(draw: st.DrawFn) -> Message:
        msg = cls()
        for i in draw(chosen):
            value = draw(values[i])
            if value is not None:
                _set(msg, fields[i], value)
        return msg

    return message()


def _mutants(seed: Message, ctx: _Context, depth: int) -> st.SearchStrategy[Message]:
    """`seed` with one or two fields (at any depth) replaced or cleared: bad values that
    reach past the checks before them."""
    fields = list(seed.DESCRIPTOR.fields)

    def change(f: FieldDescriptor) -> st.SearchStrategy[Any]:
        nested = (
            f.message_type is not None
            and not f.is_repeated
            and seed.HasField(f.name)
            and depth < MAX_DEPTH
            and f.message_type.full_name not in _SECONDS_AND_NANOS
        )
        if nested:
            inner = _mutants(getattr(seed, f.name), ctx, depth + 1)
            return weighted((1, _field(f, ctx, depth)), (2, inner))
        return _field(f, ctx, depth)

    changes = [change(f) for f in fields]
    which = st.lists(
        st.sampled_from(range(len(fields))), min_size=1, max_size=min(len(fields), 2), unique=True
    )

    @st.composite
    def mutant(draw: st.DrawFn) -> Message:
        message = type(seed)()
        message.CopyFrom(seed)
        for i in draw(which):
            _set(message, fields[i], draw(changes[i]))
        return message

    return mutant()


def requests(
    method: MethodDescriptor, floor: Floor, seeds: Sequence[Message] = ()
) -> st.SearchStrategy[Message]:
    """Requests of `method`, built field by field from its input message's descriptor;
    half of them, when `seeds` (valid requests) are given, are mutants of a seed."""
    ctx = _Context(floor, vocabulary(method.input_type))
    built = _message(method.input_type, ctx, 0)
    if not seeds:
        return built
    return weighted((1, built), (1, st.one_of(*(_mutants(s, ctx, 0) for s in seeds))))
