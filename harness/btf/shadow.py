"""Shadow types of struct_ops maps, as bpftool emits them into skeletons.  Pure.

Two rule sets, from the series itself:

mainline (merged v6 onward, bpftool gen.c walk_st_ops_shadow_vars):
  the struct is named `<obj>__<map>__<type>`; for each member i of the map's struct type,
  a gap between the end of the previous kept member and this member's byte offset becomes
  `char __padding_<i>[gap]`; int/float/enum/enum64 members (after skipping modifiers and
  typedefs) keep their declaration; a pointer to a function prototype becomes
  `struct bpf_program *<name>`; anything else becomes `char __unsupported_<i>[size]`; a gap
  at the end becomes `char __padding_end[gap]`.  The shadow's layout equals the original.

v4 (as posted in v4 4/6):
  the struct is anonymous; function pointers become `const struct bpf_program *`; a gap
  before member i is `char __padding_<i-1>[gap]`; an unsupported member i becomes
  `char __padding_<i>[n]` with n reaching to the next member's offset (to the end of the
  struct for the last member); there is no tail padding otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.btf.types import SCALARS, Btf, Composite, Datasec, Enum, Kind, Var
from harness.errors import BtfError

POINTER_SIZE = 8


class Rules(StrEnum):
    MAINLINE = "mainline"
    V4 = "v4"


@dataclass(frozen=True)
class Field:
    decl: str  # the C declaration without indentation or ';' (may span lines)
    offset: int
    size: int
    kept: str | None = None  # the original member's name when its value is kept


@dataclass(frozen=True)
class Shadow:
    map_name: str
    type_name: str
    type_id: int
    size: int
    fields: tuple[Field, ...]
    struct_name: str | None  # None: anonymous (v4)


def struct_ops_maps(btf: Btf, sections: tuple[str, ...]) -> list[tuple[str, int]]:
    """(map name, struct type id) for each variable of each struct_ops DATASEC, in order."""
    maps: list[tuple[str, int]] = []
    for section in sections:
        sec_id = btf.find(section, Kind.DATASEC)
        if sec_id is None:
            raise BtfError(f"{btf.where}: section {section} has no DATASEC in .BTF")
        datasec = btf.get(sec_id)
        assert isinstance(datasec, Datasec)
        for info in datasec.vars:
            var = btf.get(info.type)
            if not isinstance(var, Var):
                raise BtfError(f"{btf.where}: DATASEC {section} entry {info.type} is not a VAR")
            type_id, t = btf.skip_mods_and_typedefs(var.type)
            if not isinstance(t, Composite) or t.kind is not Kind.STRUCT or not t.name:
                raise BtfError(f"{btf.where}: struct_ops map {var.name} is not a named struct")
            maps.append((var.name, type_id))
    return maps


def scalar_decl(btf: Btf, type_id: int, field: str) -> str:
    """What btf_dump__emit_type_decl prints for a scalar type and a field name."""
    t = btf.get(type_id)
    if isinstance(t, Enum):
        if t.name:
            return f"enum {t.name} {field}"
        body = "".join(f"\t\t\t\t{v.name} = {v.value},\n" for v in t.values)
        return f"enum {{\n{body}\t\t\t}} {field}"
    return f"{t.name} {field}"


def _member_bytes(offset: int) -> int:
    return offset // 8


def _unsupported(btf: Btf, st: Composite, i: int, type_id: int, rules: Rules) -> int:
    """Bytes an unsupported member takes: its size, or (v4) up to the next member."""
    if rules is Rules.MAINLINE:
        return btf.resolve_size(type_id)
    members = st.members
    if i == len(members) - 1:
        return st.size - _member_bytes(members[i].offset)
    return (members[i + 1].offset - members[i].offset) // 8


def _fields(btf: Btf, st: Composite, rules: Rules) -> list[Field]:
    v4 = rules is Rules.V4
    fields: list[Field] = []
    next_offset = 0
    for i, m in enumerate(st.members):
        type_id, t = btf.skip_mods_and_typedefs(m.type)
        offset = _member_bytes(m.offset)
        gap = offset - next_offset
        if gap > 0 or (v4 and gap != 0):
            fields.append(Field(f"char __padding_{i - 1 if v4 else i}[{gap}]", next_offset, gap))
        if t.kind in SCALARS:
            size = btf.resolve_size(type_id)
            fields.append(Field(scalar_decl(btf, type_id, m.name), offset, size, m.name))
        elif btf.is_func_ptr(m.type):
            size = POINTER_SIZE
            const = "const " if v4 else ""
            fields.append(Field(f"{const}struct bpf_program *{m.name}", offset, size, m.name))
        else:
            size = _unsupported(btf, st, i, type_id, rules)
            label = "padding" if v4 else "unsupported"
            fields.append(Field(f"char __{label}_{i}[{size}]", offset, size))
        next_offset = offset + size
    if not v4 and next_offset < st.size:
        fields.append(Field(f"char __padding_end[{st.size - next_offset}]", next_offset,
                            st.size - next_offset))
    return fields


def shadow(btf: Btf, map_name: str, type_id: int, obj_name: str, rules: Rules) -> Shadow:
    st = btf.get(type_id)
    assert isinstance(st, Composite)
    name = f"{obj_name}__{map_name}__{st.name}" if rules is Rules.MAINLINE else None
    return Shadow(map_name, st.name, type_id, st.size, tuple(_fields(btf, st, rules)), name)
