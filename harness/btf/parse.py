"""Bytes of a .BTF section → Btf.  Pure: struct.unpack_from over the header, types, strings."""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from harness.btf.types import (
    HEADER,
    MAGIC,
    TYPE,
    Array,
    Btf,
    Composite,
    Datasec,
    DeclTag,
    Enum,
    Enumerator,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Member,
    Param,
    Ref,
    Type,
    Var,
    VarSecinfo,
    Void,
)
from harness.errors import BtfError

REF_KINDS = (Kind.PTR, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)


@dataclass(frozen=True)
class Header:
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int


class Reader:
    """Reads little-endian records from the type section, naming offsets on error."""

    def __init__(self, data: bytes, start: int, end: int, strings: bytes, where: str) -> None:
        self.data, self.pos, self.end = data, start, end
        self.strings, self.where = strings, where

    def fail(self, message: str, at: int | None = None) -> BtfError:
        return BtfError(f"{self.where}: .BTF offset {self.pos if at is None else at}: {message}")

    def take(self, fmt: struct.Struct) -> tuple[int, ...]:
        if self.pos + fmt.size > self.end:
            raise self.fail(f"truncated: needs {fmt.size} bytes, "
                            f"{self.end - self.pos} left in the type section")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return values

    def name(self, off: int) -> str:
        if off >= len(self.strings):
            raise self.fail(f"name offset {off} beyond the string section "
                            f"({len(self.strings)} bytes)")
        end = self.strings.find(b"\0", off)
        if end < 0:
            raise self.fail(f"string at {off} is not NUL-terminated")
        return self.strings[off:end].decode(errors="replace")


U32 = struct.Struct("<I")
S32 = struct.Struct("<i")
TRIPLE = struct.Struct("<III")
PAIR = struct.Struct("<Ii")
PAIR_U = struct.Struct("<II")


def parse_header(data: bytes, where: str) -> Header:
    if len(data) < HEADER.size:
        raise BtfError(f"{where}: .BTF offset 0: truncated header ({len(data)} bytes)")
    magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = (
        HEADER.unpack_from(data, 0))
    if magic != MAGIC:
        hint = " (big-endian BTF is not supported)" if magic == 0x9FEB else ""
        raise BtfError(f"{where}: .BTF offset 0: bad magic {magic:#06x}{hint}")
    if version != 1:
        raise BtfError(f"{where}: .BTF offset 2: unsupported BTF version {version}")
    header = Header(hdr_len, type_off, type_len, str_off, str_len)
    for name, off, length in (("type", type_off, type_len), ("string", str_off, str_len)):
        if hdr_len + off + length > len(data):
            raise BtfError(f"{where}: .BTF offset {hdr_len + off}: {name} section of "
                           f"{length} bytes runs past the end ({len(data)} bytes)")
    return header


@dataclass(frozen=True)
class Head:
    """The common btf_type fields of one type."""

    kind: Kind
    name: str
    vlen: int
    kflag: bool
    size: int  # size or referenced type id, depending on the kind


def _members(r: Reader, h: Head) -> Type:
    out = []
    for _ in range(h.vlen):
        name_off, type_id, offset = r.take(TRIPLE)
        out.append(Member(r.name(name_off), type_id, offset))
    return Composite(h.kind, h.name, h.size, tuple(out), h.kflag)


def _enum(r: Reader, h: Head) -> Type:
    out = []
    for _ in range(h.vlen):
        if h.kind is Kind.ENUM64:
            name_off, lo, hi = r.take(TRIPLE)
            value = (hi << 32) | lo
            if h.kflag and value >= 1 << 63:
                value -= 1 << 64
        else:
            name_off, value = r.take(PAIR) if h.kflag else r.take(PAIR_U)
        out.append(Enumerator(r.name(name_off), value))
    return Enum(h.kind, h.name, h.size, tuple(out), h.kflag)


def _int(r: Reader, h: Head) -> Type:
    (word,) = r.take(U32)
    return Int(h.name, h.size, (word >> 24) & 0xF, (word >> 16) & 0xFF, word & 0xFF)


def _array(r: Reader, h: Head) -> Type:
    elem, index, nelems = r.take(TRIPLE)
    return Array(elem, index, nelems)


def _func_proto(r: Reader, h: Head) -> Type:
    params = []
    for _ in range(h.vlen):
        name_off, type_id = r.take(PAIR_U)
        params.append(Param(r.name(name_off), type_id))
    return FuncProto(h.size, tuple(params))


def _var(r: Reader, h: Head) -> Type:
    (linkage,) = r.take(U32)
    return Var(h.name, h.size, linkage)


def _datasec(r: Reader, h: Head) -> Type:
    return Datasec(h.name, h.size, tuple(VarSecinfo(*r.take(TRIPLE)) for _ in range(h.vlen)))


def _decl_tag(r: Reader, h: Head) -> Type:
    (component,) = r.take(S32)
    return DeclTag(h.name, h.size, component)


PARSERS: dict[Kind, Callable[[Reader, Head], Type]] = {
    Kind.INT: _int,
    Kind.ARRAY: _array,
    Kind.STRUCT: _members,
    Kind.UNION: _members,
    Kind.ENUM: _enum,
    Kind.ENUM64: _enum,
    Kind.FWD: lambda r, h: Fwd(h.name, h.kflag),
    Kind.FUNC: lambda r, h: Func(h.name, h.size, h.vlen),
    Kind.FUNC_PROTO: _func_proto,
    Kind.VAR: _var,
    Kind.DATASEC: _datasec,
    Kind.FLOAT: lambda r, h: Float(h.name, h.size),
    Kind.DECL_TAG: _decl_tag,
    **{k: (lambda r, h: Ref(h.kind, h.name, h.size)) for k in REF_KINDS},
}


def parse(data: bytes, where: str) -> Btf:
    """Parse a whole .BTF section.  `where` (the object's path) prefixes every error."""
    h = parse_header(data, where)
    strings = data[h.hdr_len + h.str_off: h.hdr_len + h.str_off + h.str_len]
    start = h.hdr_len + h.type_off
    r = Reader(data, start, start + h.type_len, strings, where)
    types: list[Type] = [Void()]
    while r.pos < r.end:
        at = r.pos
        name_off, info, size = r.take(TYPE)
        raw_kind = (info >> 24) & 0x1F
        if raw_kind == 0 or raw_kind > max(Kind):
            raise r.fail(f"type id {len(types)} has unknown kind {raw_kind}", at)
        head = Head(Kind(raw_kind), r.name(name_off), info & 0xFFFF, bool(info >> 31), size)
        types.append(PARSERS[head.kind](r, head))
    btf = Btf(tuple(types), where)
    check_references(btf)
    return btf


def _refs(t: Type) -> list[int]:
    if isinstance(t, Ref | Func | Var | DeclTag):
        return [t.type]
    if isinstance(t, Array):
        return [t.type, t.index_type]
    if isinstance(t, Composite):
        return [m.type for m in t.members]
    if isinstance(t, FuncProto):
        return [t.type, *(p.type for p in t.params)]
    if isinstance(t, Datasec):
        return [v.type for v in t.vars]
    return []


def check_references(btf: Btf) -> None:
    """Every referenced id exists; chains of modifiers/typedefs/pointers do not loop."""
    for type_id, t in enumerate(btf.types):
        for ref in _refs(t):
            if not 0 <= ref < len(btf.types):
                raise BtfError(f"{btf.where}: type id {type_id} ({t.kind.name}) refers to "
                               f"type id {ref}, out of range ({len(btf.types) - 1} types)")
    for type_id in range(len(btf.types)):
        _check_chain(btf, type_id)


def _check_chain(btf: Btf, type_id: int) -> None:
    seen: set[int] = set()
    t = btf.types[type_id]
    while isinstance(t, Ref | Array) and type_id not in seen:
        seen.add(type_id)
        type_id = t.type
        t = btf.types[type_id]
    if type_id in seen:
        raise BtfError(f"{btf.where}: type id {type_id} is part of a reference cycle")
