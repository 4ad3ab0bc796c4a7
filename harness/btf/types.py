"""A pure BTF parser: kinds as in include/uapi/linux/btf.h, one frozen dataclass per kind.

Types are referenced by integer id and resolved through `Btf`; id 0 is void.  Every error
names the object and the byte offset in .BTF where reading failed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from harness.errors import BtfError

MAGIC = 0xEB9F
HEADER = struct.Struct("<HBBIIIII")
TYPE = struct.Struct("<III")


class Kind(IntEnum):
    UNKN = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


MODIFIERS = (Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG)
SCALARS = (Kind.INT, Kind.FLOAT, Kind.ENUM, Kind.ENUM64)


@dataclass(frozen=True)
class Void:
    kind: Kind = Kind.UNKN
    name: str = "void"


@dataclass(frozen=True)
class Int:
    name: str
    size: int
    encoding: int
    offset: int
    bits: int
    kind: Kind = Kind.INT


@dataclass(frozen=True)
class Float:
    name: str
    size: int
    kind: Kind = Kind.FLOAT


@dataclass(frozen=True)
class Ref:
    """PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG: a name (maybe empty) and a type."""

    kind: Kind
    name: str
    type: int


@dataclass(frozen=True)
class Array:
    type: int
    index_type: int
    nelems: int
    name: str = ""
    kind: Kind = Kind.ARRAY


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    offset: int  # the raw btf_member.offset (bit offset; with kind_flag, size << 24 | offset)


@dataclass(frozen=True)
class Composite:
    """STRUCT or UNION."""

    kind: Kind
    name: str
    size: int
    members: tuple[Member, ...]
    kind_flag: bool = False


@dataclass(frozen=True)
class Enumerator:
    name: str
    value: int


@dataclass(frozen=True)
class Enum:
    """ENUM or ENUM64."""

    kind: Kind
    name: str
    size: int
    values: tuple[Enumerator, ...]
    signed: bool = False


@dataclass(frozen=True)
class Fwd:
    name: str
    is_union: bool
    kind: Kind = Kind.FWD


@dataclass(frozen=True)
class Func:
    name: str
    type: int
    linkage: int
    kind: Kind = Kind.FUNC


@dataclass(frozen=True)
class Param:
    name: str
    type: int


@dataclass(frozen=True)
class FuncProto:
    type: int  # return type
    params: tuple[Param, ...]
    name: str = ""
    kind: Kind = Kind.FUNC_PROTO


@dataclass(frozen=True)
class Var:
    name: str
    type: int
    linkage: int
    kind: Kind = Kind.VAR


@dataclass(frozen=True)
class VarSecinfo:
    type: int
    offset: int
    size: int


@dataclass(frozen=True)
class Datasec:
    name: str
    size: int
    vars: tuple[VarSecinfo, ...]
    kind: Kind = Kind.DATASEC


@dataclass(frozen=True)
class DeclTag:
    name: str
    type: int
    component_idx: int
    kind: Kind = Kind.DECL_TAG


Type = (Void | Int | Float | Ref | Array | Composite | Enum | Fwd | Func | FuncProto | Var
        | Datasec | DeclTag)


@dataclass(frozen=True)
class Btf:
    """All types of one .BTF section; `where` names the object in error messages."""

    types: tuple[Type, ...]  # index = type id; 0 is Void
    where: str

    def get(self, type_id: int) -> Type:
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"{self.where}: type id {type_id} out of range "
                           f"(the object has {len(self.types) - 1} types)")
        return self.types[type_id]

    def find(self, name: str, kind: Kind) -> int | None:
        for type_id, t in enumerate(self.types):
            if t.kind is kind and t.name == name:
                return type_id
        return None

    def skip_mods_and_typedefs(self, type_id: int) -> tuple[int, Type]:
        """Follow CONST/VOLATILE/RESTRICT/TYPE_TAG and TYPEDEF to the underlying type."""
        seen: set[int] = set()
        t = self.get(type_id)
        while isinstance(t, Ref) and (t.kind in MODIFIERS or t.kind is Kind.TYPEDEF):
            if type_id in seen:
                raise BtfError(f"{self.where}: type id {type_id} is part of a cycle")
            seen.add(type_id)
            type_id = t.type
            t = self.get(type_id)
        return type_id, t

    def resolve_size(self, type_id: int) -> int:
        """Size in bytes, as libbpf's btf__resolve_size computes it."""
        nelems = 1
        seen: set[int] = set()
        while True:
            if type_id in seen:
                raise BtfError(f"{self.where}: type id {type_id} is part of a cycle")
            seen.add(type_id)
            t = self.get(type_id)
            if isinstance(t, Int | Float | Composite | Enum | Datasec):
                return nelems * t.size
            if isinstance(t, Ref) and t.kind is Kind.PTR:
                return nelems * 8
            if isinstance(t, Ref | Var):
                type_id = t.type
            elif isinstance(t, Array):
                nelems *= t.nelems
                type_id = t.type
            else:
                raise BtfError(f"{self.where}: type id {type_id} ({t.kind.name}) has no size")

    def is_func_ptr(self, type_id: int) -> bool:
        """A pointer (through modifiers/typedefs) to a FUNC_PROTO (libbpf resolve_func_ptr)."""
        _, t = self.skip_mods_and_typedefs(type_id)
        if not (isinstance(t, Ref) and t.kind is Kind.PTR):
            return False
        _, target = self.skip_mods_and_typedefs(t.type)
        return target.kind is Kind.FUNC_PROTO
