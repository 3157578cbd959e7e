"""Hypothesis strategies for protobuf messages of any descriptor, and for payloads that
are not (or not quite) such messages. Used by the gRPC fuzz test (test_fuzz_grpc.py).

``messages(descriptor)`` walks the message's field descriptors: every scalar type with
its extreme values (NaN and infinities for floats), strings from :func:`texts` (empty,
huge, any Unicode but surrogates, control characters), bytes, enums including numbers
the enum does not define, repeated fields of varying (sometimes over-limit) length,
nested messages down to a depth limit, at most one member of each oneof, maps, and
Timestamp/Duration with both valid and out-of-range values. Optional fields are left
unset as often as set, so a message may be empty.

``raw_bytes(descriptor)`` makes request bodies: random bytes, valid serializations cut
short, known fields with the wrong wire type, malformed varints, lengths past the end,
invalid UTF-8 in string fields, unbalanced groups and reserved wire types. Some of them
still parse (protobuf keeps a mismatched field as unknown); most do not.

``string_values(message)`` lists every string in a message (map keys too), for checking
what a server echoes back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor

# ----------------------------------------------------------------------------- scalars

_INT_RANGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1), F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1), F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1), F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1), F.TYPE_FIXED64: (0, 2**64 - 1),
}


def _integers(lo: int, hi: int) -> st.SearchStrategy[int]:
    """Any integer of the range, its ends and the small values around zero."""
    edges = sorted({lo, hi, 0, 1, min(max(-1, lo), hi), min(1000, hi), min(1001, hi),
                    min(10_000, hi), min(10_001, hi)})
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


_UTF8 = st.characters(codec="utf-8")  # every code point but the surrogates
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_CONTROL = st.characters(codec="utf-8", categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Co"))
HUGE_LENGTHS = (2048, 2049, 2049, 20_000, 20_000, 300_000, 1_100_000)
"""Lengths of huge values: around 2048 (a common limit of text fields), and past 1 MiB
(a common limit of a whole request) in any encoding."""


def huge_texts() -> st.SearchStrategy[str]:
    """Long texts: a short drawn piece repeated to one of :data:`HUGE_LENGTHS`."""
    return st.builds(lambda piece, n: (piece * (n // len(piece) + 1))[:n],
                     st.text(_UTF8, min_size=1, max_size=4), st.sampled_from(HUGE_LENGTHS))


def texts(hints: Sequence[str] = (), *, max_size: int = 40) -> st.SearchStrategy[str]:
    """Strings: empty, short Unicode (no surrogates: protobuf cannot hold them), printable
    ASCII, e-mail addresses, control and space characters, huge ones, and ``hints``
    (values the system under test knows) alone or with text around them."""
    parts = [st.just(""), st.text(_UTF8, max_size=max_size),
             st.text(_PRINTABLE, max_size=max_size), st.emails(),
             st.text(_CONTROL, min_size=1, max_size=12), huge_texts()]
    if hints:
        hint = st.sampled_from(list(hints))
        parts += [hint, hint,
                  st.builds(lambda a, h, b: a + h + b, st.text(_CONTROL, max_size=2), hint,
                            st.text(_UTF8, max_size=2))]
    return st.one_of(parts)


def _floats(field: FieldDescriptor) -> st.SearchStrategy[float]:
    width = 32 if field.type == F.TYPE_FLOAT else 64
    return st.one_of(st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0]),
                     st.floats(width=width))


def _enums(field: FieldDescriptor) -> st.SearchStrategy[int]:
    known = [v.number for v in field.enum_type.values]
    if field.enum_type.is_closed:  # proto2 enums refuse numbers they do not define
        return st.sampled_from(known)
    return st.one_of(st.sampled_from(known), _integers(-(2**31), 2**31 - 1))


# ----------------------------------------------------------------------------- messages

def _is_map(field: FieldDescriptor) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


MAX_ELEMENT_LENGTH = 2049
"""Strings and bytes in lists, maps and nested messages are at most this long."""
MAX_REPEATED_LENGTH = 1_000_000
"""A long list repeats its element fewer times when it would pass this many characters."""


def _clip(value: str | bytes) -> str | bytes:
    return value[:MAX_ELEMENT_LENGTH]


def _repeat(element: object, n: int) -> list:
    size = len(element) if isinstance(element, (str, bytes)) else 1
    return [element] * max(1, min(n, MAX_REPEATED_LENGTH // max(size, 1)))


def _lists(element: st.SearchStrategy) -> st.SearchStrategy[list]:
    """Short lists, or one drawn scalar repeated past the servers' 1000-item limits."""
    return st.one_of(st.lists(element, max_size=6),
                     st.builds(_repeat, element, st.sampled_from([1001, 10_001])))


def _timestamps(cls: type[Message], generic: st.SearchStrategy) -> st.SearchStrategy:
    """Valid Timestamps (0001-01-01 to 9999-12-31), or any seconds and nanos (generic)."""
    valid = st.builds(lambda s, n: cls(seconds=s, nanos=n),
                      _integers(-62_135_596_800, 253_402_300_799), _integers(0, 999_999_999))
    return st.one_of(valid, generic)


def _durations(cls: type[Message], generic: st.SearchStrategy) -> st.SearchStrategy:
    """Valid Durations (up to 10,000 years, nanos of the seconds' sign), or any (generic)."""
    valid = st.builds(lambda s, n: cls(seconds=s, nanos=n if s >= 0 else -n),
                      _integers(-315_576_000_000, 315_576_000_000), _integers(0, 999_999_999))
    return st.one_of(valid, generic)


_WELL_KNOWN = {"google.protobuf.Timestamp": _timestamps,
               "google.protobuf.Duration": _durations}


class _Walker:
    """Strategies for the fields and messages of descriptors, cached per (type, depth)."""

    def __init__(self, strings: st.SearchStrategy[str], max_depth: int) -> None:
        self.strings = strings
        self.max_depth = max_depth
        self._cache: dict[tuple[str, int], st.SearchStrategy[Message]] = {}

    def scalar(self, field: FieldDescriptor, depth: int, *, bounded: bool = False
               ) -> st.SearchStrategy | None:
        """One value of the field's type; None for a message type past the depth limit.
        ``bounded`` (or nested) strings and bytes are clipped to :data:`MAX_ELEMENT_LENGTH`,
        so that only a top-level singular field can be huge."""
        t = field.type
        if t in _INT_RANGES:
            return _integers(*_INT_RANGES[t])
        if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
            return _floats(field)
        if t == F.TYPE_BOOL:
            return st.booleans()
        if t in (F.TYPE_STRING, F.TYPE_BYTES):
            values = self.strings if t == F.TYPE_STRING else st.one_of(
                st.binary(max_size=64), huge_texts().map(str.encode))
            return values.map(_clip) if bounded or depth > 0 else values
        if t == F.TYPE_ENUM:
            return _enums(field)
        if t in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            if depth >= self.max_depth:
                return None
            return self.message(field.message_type, depth + 1)
        raise TypeError(f"{field.full_name}: unknown field type {t}")

    def field(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy | None:
        """The whole field's value: a value, a list or a dict; None when it must stay unset."""
        if _is_map(field):
            entry = field.message_type.fields_by_name
            key = self.scalar(entry["key"], depth, bounded=True)
            value = self.scalar(entry["value"], depth, bounded=True)
            if value is None:
                return None
            return st.dictionaries(key, value, max_size=5)
        element = self.scalar(field, depth, bounded=field.is_repeated)
        if element is None:
            return None
        if not field.is_repeated:
            return element
        if field.type in (F.TYPE_MESSAGE, F.TYPE_GROUP):
            return st.lists(element, max_size=4)
        return _lists(element)

    def message(self, descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        key = (descriptor.full_name, depth)
        if key not in self._cache:
            # a placeholder first: a message type that contains itself recurses lazily
            self._cache[key] = st.deferred(lambda: self._cache[key])
            self._cache[key] = self._build_message(descriptor, depth)
        return self._cache[key]

    def _build_message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(descriptor)
        optional: dict[str, st.SearchStrategy] = {}
        oneofs: list[st.SearchStrategy] = []
        for oneof in descriptor.oneofs:
            members = [(f.name, self.field(f, depth)) for f in oneof.fields]
            choices = [st.tuples(st.just(name), s) for name, s in members if s is not None]
            oneofs.append(st.one_of(st.none(), *choices))
        for f in descriptor.fields:
            if f.containing_oneof is not None:
                continue
            strategy = self.field(f, depth)
            if strategy is not None:
                optional[f.name] = strategy
        generic = st.builds(_make, st.just(cls), st.fixed_dictionaries({}, optional=optional),
                            st.tuples(*oneofs))
        special = _WELL_KNOWN.get(descriptor.full_name)
        return special(cls, generic) if special else generic


def _make(cls: type[Message], values: dict, chosen: tuple) -> Message:
    msg = cls()
    items = list(values.items()) + [c for c in chosen if c is not None]
    for name, value in items:
        _set(msg, msg.DESCRIPTOR.fields_by_name[name], value)
    return msg


def _set(msg: Message, field: FieldDescriptor, value: object) -> None:
    if _is_map(field):
        container = getattr(msg, field.name)
        for k, v in value.items():
            if isinstance(v, Message):
                container[k].CopyFrom(v)
            else:
                container[k] = v
    elif field.is_repeated:
        getattr(msg, field.name).extend(value)
    elif isinstance(value, Message):
        sub = getattr(msg, field.name)
        sub.SetInParent()
        sub.CopyFrom(value)
    else:
        setattr(msg, field.name, value)


_TEXTS = texts()


@cache
def _walker(strings: st.SearchStrategy[str], max_depth: int) -> _Walker:
    return _Walker(strings, max_depth)


def messages(descriptor: Descriptor, *, strings: st.SearchStrategy[str] | None = None,
             max_depth: int = 3) -> st.SearchStrategy[Message]:
    """Valid messages of ``descriptor`` (module docstring): every field type with its edge
    values; string fields from ``strings`` (default :func:`texts`); message fields nested
    at most ``max_depth`` levels (deeper ones stay unset)."""
    return _walker(strings if strings is not None else _TEXTS, max_depth).message(descriptor)


# ----------------------------------------------------------------------------- raw bytes

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5

_WIRE_TYPE = {F.TYPE_DOUBLE: _I64, F.TYPE_FIXED64: _I64, F.TYPE_SFIXED64: _I64,
              F.TYPE_FLOAT: _I32, F.TYPE_FIXED32: _I32, F.TYPE_SFIXED32: _I32,
              F.TYPE_STRING: _LEN, F.TYPE_BYTES: _LEN, F.TYPE_MESSAGE: _LEN,
              F.TYPE_GROUP: _SGROUP}  # every other type: varint


def varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def _payload(wire_type: int, body: bytes) -> bytes:
    """A well-formed value of ``wire_type`` (``body`` as its bytes where it has some)."""
    if wire_type == _VARINT:
        return varint(len(body))
    if wire_type == _I64:
        return body[:8].ljust(8, b"\0")
    if wire_type == _I32:
        return body[:4].ljust(4, b"\0")
    return varint(len(body)) + body  # LEN (groups are made by the caller)


@st.composite
def _wrong_wire_type(draw: st.DrawFn, fields: Sequence[FieldDescriptor]) -> bytes:
    field = draw(st.sampled_from(fields))
    right = _WIRE_TYPE.get(field.type, _VARINT)
    wrong = draw(st.sampled_from([w for w in (_VARINT, _I64, _LEN, _I32) if w != right]))
    return tag(field.number, wrong) + _payload(wrong, draw(st.binary(max_size=16)))


@st.composite
def _malformed(draw: st.DrawFn, numbers: Sequence[int]) -> bytes:
    number = draw(st.sampled_from(numbers))
    kind = draw(st.sampled_from(["varint", "length", "utf8", "group", "wire", "zero"]))
    if kind == "varint":  # more than ten continuation bytes
        return tag(number, _VARINT) + b"\xff" * draw(st.integers(10, 20))
    if kind == "length":  # a length past the end of the message
        body = draw(st.binary(max_size=8))
        return tag(number, _LEN) + varint(len(body) + draw(st.integers(1, 2**31))) + body
    if kind == "utf8":  # not UTF-8 where a string is expected
        bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                                    b"\xe2\x82", b"a\x80b"]))
        return tag(number, _LEN) + varint(len(bad)) + bad
    if kind == "group":  # a group end without a start, or a start without an end
        return tag(number, draw(st.sampled_from([_SGROUP, _EGROUP])))
    if kind == "wire":  # wire types 6 and 7 do not exist
        return tag(number, draw(st.sampled_from([6, 7]))) + draw(st.binary(max_size=8))
    return b"\x00" + draw(st.binary(max_size=4))  # field number 0


def _truncate(data: bytes, cut: int) -> bytes:
    """``data`` cut short; a field tag without its value when it is too short to cut."""
    return data[:min(cut, len(data) - 1)] if len(data) > 1 else b"\x0a"


def raw_bytes(descriptor: Descriptor | None = None) -> st.SearchStrategy[bytes]:
    """Request bodies that are not (quite) a message of ``descriptor`` (module docstring).
    Without a descriptor: random bytes and field-agnostic corruptions only."""
    parts: list[st.SearchStrategy[bytes]] = [st.binary(min_size=1, max_size=64)]
    numbers: list[int] = [1, 2, 3, 15, 16, 2**29 - 1]
    if descriptor is not None:
        fields = list(descriptor.fields)
        numbers = sorted({f.number for f in fields} | set(numbers))
        valid = messages(descriptor, max_depth=2).map(lambda m: m.SerializeToString())
        parts.append(st.builds(_truncate, valid, st.integers(1, 64)))
        strings = [f.number for f in fields if f.type == F.TYPE_STRING]
        if strings:  # invalid UTF-8 exactly where the parser checks it
            parts.append(_malformed(strings))
        if fields:
            parts.append(_wrong_wire_type(fields))
            parts.append(st.builds(lambda a, b: a + b, valid, _wrong_wire_type(fields)))
    corrupt = _malformed(numbers)
    parts += [corrupt, st.builds(lambda a, b: a + b, st.binary(max_size=8), corrupt)]
    return st.one_of(parts)


# ----------------------------------------------------------------------------- inspection

def string_values(msg: Message, skip: frozenset[str] = frozenset()) -> Iterator[str]:
    """Every string value in ``msg`` and its nested messages, map keys included, but for
    the fields whose full names are in ``skip``."""
    for field, value in msg.ListFields():
        if field.full_name in skip:
            continue
        if _is_map(field):
            value_field = field.message_type.fields_by_name["value"]
            for k, v in value.items():
                if isinstance(k, str):
                    yield k
                if value_field.type == F.TYPE_MESSAGE:
                    yield from string_values(v, skip)
                elif isinstance(v, str):
                    yield v
            continue
        values = value if field.is_repeated else [value]
        for v in values:
            if isinstance(v, Message):
                yield from string_values(v, skip)
            elif isinstance(v, str):
                yield v


def clipped(msg: Message, *, items: int = 5, chars: int = 100) -> Message:
    """A copy of ``msg`` for showing: lists cut to ``items``, strings and bytes to ``chars``
    (a failing example's request may hold a 10,000-item list or a 4 MB string)."""
    out = type(msg)()
    out.CopyFrom(msg)
    _clip_in_place(out, items, chars)
    return out


def _clip_in_place(msg: Message, items: int, chars: int) -> None:
    for field, value in msg.ListFields():
        if _is_map(field):
            continue  # maps are short (at most five entries)
        if field.is_repeated:
            if len(value) > items:
                del value[items:]
            if field.type == F.TYPE_MESSAGE:
                for sub in value:
                    _clip_in_place(sub, items, chars)
            elif field.type in (F.TYPE_STRING, F.TYPE_BYTES):
                value[:] = [v[:chars] for v in value]
        elif field.type == F.TYPE_MESSAGE:
            _clip_in_place(value, items, chars)
        elif field.type in (F.TYPE_STRING, F.TYPE_BYTES) and len(value) > chars:
            setattr(msg, field.name, value[:chars])
