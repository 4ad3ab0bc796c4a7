"""The BTF parser and shadow generator on BTF written by tests/btf_builder.py."""

from __future__ import annotations

import pytest
from btf_builder import Builder

from harness.btf import parse, render, shadow
from harness.btf.shadow import Rules
from harness.btf.types import Composite, Enum, Kind
from harness.errors import BtfError

BITS = 8


def _edge_ops() -> tuple[bytes, int]:
    """A struct_ops-like struct with every member shape the rules distinguish."""
    b = Builder()
    i32 = b.int_("int", 4)
    i8 = b.int_("char", 1)
    i64 = b.int_("long long", 8)
    u32 = b.int_("unsigned int", 4, signed=False)
    proto = b.func_proto(i32, [])
    fnptr = b.ptr(proto)
    cb_t = b.ref(Kind.TYPEDEF, fnptr, "cb_t")
    const_cb = b.ref(Kind.CONST, cb_t)
    my_int = b.ref(Kind.TYPEDEF, i32, "my_int")
    volatile_int = b.ref(Kind.VOLATILE, my_int)
    cv_int = b.ref(Kind.CONST, volatile_int)
    e64 = b.enum("big", 8, [("BIG_A", 1 << 40), ("BIG_B", -1 & 0xFFFFFFFFFFFFFFFF)], wide=True)
    color = b.enum("color", 4, [("RED", 0), ("GREEN", 1)])
    f32 = b.float_("float", 4)
    f64 = b.float_("double", 8)
    arr = b.array(i8, i32, 5)
    pp = b.ptr(b.ptr(i32))
    inner = b.struct("", 8, [("a", i32, 0), ("b", u32, 32)])
    onion = b.struct("", 8, [("x", i32, 0), ("y", i64, 0)], union=True)
    ops = b.struct("edge_ops", 112, [
        ("c", i8, 0),                # 0..1
        ("x", i64, 8 * BITS),        # gap of 7 before it
        ("fn", fnptr, 16 * BITS),
        ("cb", const_cb, 24 * BITS),  # const typedef of a function pointer
        ("v", cv_int, 32 * BITS),     # const volatile typedef int, then a gap of 4
        ("e", e64, 40 * BITS),
        ("col", color, 48 * BITS),
        ("f", f32, 52 * BITS),
        ("d", f64, 56 * BITS),
        ("name", arr, 64 * BITS),     # array: unsupported
        ("pp", pp, 72 * BITS),        # pointer to pointer: unsupported
        ("in", inner, 80 * BITS),     # nested anonymous struct
        ("un", onion, 88 * BITS),     # anonymous union
        ("last", i32, 96 * BITS),     # then a tail gap of 12
    ])
    var = b.var("edge_map", ops)
    b.datasec(".struct_ops.link", [(var, 0, 112)])
    return b.build(), ops


EDGE_MAINLINE = """\
\tstruct {
\t\tstruct obj__edge_map__edge_ops {
\t\t\tchar c;
\t\t\tchar __padding_1[7];
\t\t\tlong long x;
\t\t\tstruct bpf_program *fn;
\t\t\tstruct bpf_program *cb;
\t\t\tint v;
\t\t\tchar __padding_5[4];
\t\t\tenum big e;
\t\t\tenum color col;
\t\t\tfloat f;
\t\t\tdouble d;
\t\t\tchar __unsupported_9[5];
\t\t\tchar __padding_10[3];
\t\t\tchar __unsupported_10[8];
\t\t\tchar __unsupported_11[8];
\t\t\tchar __unsupported_12[8];
\t\t\tint last;
\t\t\tchar __padding_end[12];
\t\t} *edge_map;
\t} struct_ops;
"""

EDGE_V4 = """\
\tstruct {
\t\tstruct {
\t\t\tchar c;
\t\t\tchar __padding_0[7];
\t\t\tlong long x;
\t\t\tconst struct bpf_program *fn;
\t\t\tconst struct bpf_program *cb;
\t\t\tint v;
\t\t\tchar __padding_4[4];
\t\t\tenum big e;
\t\t\tenum color col;
\t\t\tfloat f;
\t\t\tdouble d;
\t\t\tchar __padding_9[8];
\t\t\tchar __padding_10[8];
\t\t\tchar __padding_11[8];
\t\t\tchar __padding_12[8];
\t\t\tint last;
\t\t} *edge_map;
\t} struct_ops;
"""


def _block(data: bytes, rules: Rules) -> str:
    btf = parse.parse(data, "edge.bpf.o")
    maps = shadow.struct_ops_maps(btf, (".struct_ops.link",))
    return render.render_block([shadow.shadow(btf, m, t, "obj", rules) for m, t in maps])


def test_parse_kinds() -> None:
    data, ops = _edge_ops()
    btf = parse.parse(data, "edge.bpf.o")
    st = btf.get(ops)
    assert isinstance(st, Composite) and st.name == "edge_ops" and len(st.members) == 14
    e64 = btf.get(btf.find("big", Kind.ENUM64) or 0)
    assert isinstance(e64, Enum) and [v.value for v in e64.values] == [1 << 40, (1 << 64) - 1]
    assert btf.resolve_size(st.members[9].type) == 5
    assert btf.is_func_ptr(st.members[3].type) and not btf.is_func_ptr(st.members[10].type)


def test_mainline_edge_cases() -> None:
    assert _block(_edge_ops()[0], Rules.MAINLINE) == EDGE_MAINLINE


def test_v4_edge_cases() -> None:
    assert _block(_edge_ops()[0], Rules.V4) == EDGE_V4


def test_mainline_layout_is_contiguous_and_kept_offsets_match() -> None:
    data, ops = _edge_ops()
    btf = parse.parse(data, "edge.bpf.o")
    s = shadow.shadow(btf, "edge_map", ops, "obj", Rules.MAINLINE)
    end = 0
    for f in s.fields:
        assert f.offset == end
        end += f.size
    assert end == s.size == 112
    st = btf.get(ops)
    assert isinstance(st, Composite)
    kept = {f.kept: f.offset for f in s.fields if f.kept}
    assert kept == {m.name: m.offset // 8 for m in st.members if m.name in kept}


def test_anonymous_enum_printed_inline() -> None:
    b = Builder()
    anon = b.enum("", 4, [("A", 0), ("B", 7)])
    ops = b.struct("o", 4, [("mode", anon, 0)])
    b.datasec(".struct_ops", [(b.var("m", ops), 0, 4)])
    assert "\t\t\tenum {\n\t\t\t\tA = 0,\n\t\t\t\tB = 7,\n\t\t\t} mode;\n" in (
        _block_sec(b.build(), ".struct_ops"))


def _block_sec(data: bytes, section: str) -> str:
    btf = parse.parse(data, "x.o")
    maps = shadow.struct_ops_maps(btf, (section,))
    return render.render_block([shadow.shadow(btf, m, t, "x", Rules.MAINLINE) for m, t in maps])


def test_bad_magic_and_version() -> None:
    with pytest.raises(BtfError, match=r"x\.o: \.BTF offset 0: bad magic 0x1234"):
        parse.parse(Builder().build(magic=0x1234), "x.o")
    with pytest.raises(BtfError, match="big-endian"):
        parse.parse(Builder().build(magic=0x9FEB), "x.o")
    with pytest.raises(BtfError, match="offset 2: unsupported BTF version 9"):
        parse.parse(Builder().build(version=9), "x.o")


def test_truncated() -> None:
    data, _ = _edge_ops()
    with pytest.raises(BtfError, match="offset 0: truncated header"):
        parse.parse(data[:10], "x.o")
    with pytest.raises(BtfError, match=r"runs past the end"):
        parse.parse(data[: len(data) // 2], "x.o")
    b = Builder()
    b.int_("int", 4)
    b.raw(b"\x01\x00\x00\x00\x00\x00\x00\x04")  # half a STRUCT header
    with pytest.raises(BtfError, match=r"x\.o: \.BTF offset 40: truncated: needs 12 bytes"):
        parse.parse(b.build(), "x.o")


def test_type_id_out_of_range() -> None:
    b = Builder()
    b.struct("s", 4, [("a", 999, 0)])
    with pytest.raises(BtfError, match=r"type id 1 .STRUCT. refers to type id 999, out of range"):
        parse.parse(b.build(), "x.o")


def test_cycle() -> None:
    b = Builder()
    b.ref(Kind.TYPEDEF, 2, "a")
    b.ref(Kind.CONST, 1)
    with pytest.raises(BtfError, match="reference cycle"):
        parse.parse(b.build(), "x.o")


def test_unknown_kind_and_bad_name_offset() -> None:
    b = Builder()
    b.raw(b"\x00\x00\x00\x00\x00\x00\x00\x1f\x00\x00\x00\x00")
    with pytest.raises(BtfError, match="unknown kind 31"):
        parse.parse(b.build(), "x.o")
    b = Builder()
    b.raw(b"\xff\x00\x00\x00\x00\x00\x00\x10\x04\x00\x00\x00")  # FLOAT, name at 255
    with pytest.raises(BtfError, match="name offset 255 beyond the string section"):
        parse.parse(b.build(), "x.o")


def test_struct_ops_section_without_datasec() -> None:
    btf = parse.parse(Builder().build(), "x.o")
    with pytest.raises(BtfError, match=r"section \.struct_ops has no DATASEC"):
        shadow.struct_ops_maps(btf, (".struct_ops",))


def test_bitfield_offsets_read_raw_like_bpftool() -> None:
    """With kind_flag, btf_member.offset is (bitfield size << 24) | bit offset; bpftool
    divides the raw value by 8, and so does the emulator (see test_emulator for the oracle)."""
    b = Builder()
    i32 = b.int_("int", 4)
    ops = b.struct("bits", 8, [("a", i32, 0), ("flag", i32, (3 << 24) | 32)], kflag=True)
    b.datasec(".struct_ops", [(b.var("m", ops), 0, 8)])
    block = _block_sec(b.build(), ".struct_ops")
    assert "\t\t\tint a;\n\t\t\tchar __padding_1[6291456];\n\t\t\tint flag;\n" in block
