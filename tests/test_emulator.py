"""The emulator against the real bpftool: the tree's struct_ops objects, generated structs
compiled with clang-19, and hypothesis properties of the layout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from btf_builder import Builder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import cli
from harness.boot import kernel
from harness.btf import parse, shadow, verify
from harness.btf.shadow import Rules
from harness.build import discover
from harness.build import targeted as build
from harness.config import Toolchain
from harness.host.cache import Cache
from harness.source import tree

# name → (C declaration pattern, size, alignment)
MENU: dict[str, tuple[str, int, int]] = {
    "char": ("char {}", 1, 1), "short": ("short {}", 2, 2), "int": ("int {}", 4, 4),
    "u32": ("unsigned int {}", 4, 4), "s64": ("long long {}", 8, 8),
    "float": ("float {}", 4, 4), "double": ("double {}", 8, 8),
    "enum": ("enum e32 {}", 4, 4), "enum64": ("enum e64 {}", 8, 8),
    "fnptr": ("int (*{})(int)", 8, 8), "ptr": ("int *{}", 8, 8), "pptr": ("int **{}", 8, 8),
    "arr3": ("char {}[3]", 3, 1), "arr_i2": ("int {}[2]", 8, 4),
    "nested": ("struct {{ int a; char b; }} {}", 8, 4),
    "union": ("union {{ int x; long long y; }} {}", 8, 8),
    "cv": ("const volatile int {}", 4, 4), "td": ("my_int_t {}", 4, 4),
    "cbtd": ("cb_t {}", 8, 8),
}
PRELUDE = """\
#define SEC(n) __attribute__((section(n), used))
enum e32 { E32_A = 1, E32_B = 2 };
enum e64 { E64_A = 0x100000000ULL };
typedef int my_int_t;
typedef int (*cb_t)(void);
"""

members = st.lists(st.sampled_from(sorted(MENU)), min_size=1, max_size=10)


def c_source(kinds: list[str], tail: bool) -> str:
    fields = "".join(f"\t{MENU[k][0].format(f'm{i}')};\n" for i, k in enumerate(kinds))
    if tail:  # a trailing char makes the compiler add tail padding
        fields += "\tchar last;\n"
    return (f"{PRELUDE}struct gen_ops {{\n{fields}}};\n"
            "SEC(\".struct_ops.link\") struct gen_ops gen_map = {};\n"
            "char _license[] SEC(\"license\") = \"GPL\";\n")


def _layout(kinds: list[str]) -> tuple[list[int], int]:
    """C's natural layout: member offsets and the struct size."""
    offsets, end, align = [], 0, 1
    for k in kinds:
        _, size, a = MENU[k]
        end = -(-end // a) * a
        offsets.append(end)
        end += size
        align = max(align, a)
    return offsets, -(-end // align) * align


def _builder_struct(kinds: list[str]) -> tuple[bytes, int]:
    """The same struct written directly as BTF (only the shapes the rules care about)."""
    b = Builder()
    i32, i8 = b.int_("int", 4), b.int_("char", 1)
    fnptr = b.ptr(b.func_proto(i32, [i32]))
    blob = {n: b.array(i8, i32, n) for n in (1, 2, 3, 4, 8)}
    offsets, size = _layout(kinds)
    fields = []
    for i, (k, off) in enumerate(zip(kinds, offsets, strict=True)):
        _, width, _ = MENU[k]
        if k in ("fnptr", "cbtd"):
            t = fnptr
        elif k in ("int", "u32", "cv", "td", "enum", "float"):
            t = i32
        elif k == "char":
            t = i8
        else:  # everything else: an unsupported blob of the same width
            t = blob[width]
        fields.append((f"m{i}", t, off * 8))
    ops = b.struct("gen_ops", size, fields)
    b.datasec(".struct_ops.link", [(b.var("gen_map", ops), 0, size)])
    return b.build(), ops


@given(members)
def test_mainline_shadow_layout_equals_original(kinds: list[str]) -> None:
    data, ops = _builder_struct(kinds)
    btf = parse.parse(data, "gen.o")
    s = shadow.shadow(btf, "gen_map", ops, "gen", Rules.MAINLINE)
    end = 0
    for f in s.fields:
        assert f.offset == end  # contiguous: no implicit padding is needed
        end += f.size
    offsets, size = _layout(kinds)
    assert end == size == s.size
    for f in s.fields:
        if f.kept:
            assert f.offset == offsets[int(f.kept[1:])]


@given(members)
def test_v4_shadow_keeps_member_offsets(kinds: list[str]) -> None:
    data, ops = _builder_struct(kinds)
    s = shadow.shadow(parse.parse(data, "gen.o"), "gen_map", ops, "gen", Rules.V4)
    offsets, _ = _layout(kinds)
    end = 0
    for f in s.fields:
        assert f.offset == end
        end += f.size
        if f.kept:
            assert f.offset == offsets[int(f.kept[1:])]


@pytest.fixture(scope="session")
def bpftool(default_tree: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real bpftool, built from the default tree (cached)."""
    t = tree.default_tree(Cache(cache), tmp_path_factory.mktemp("logs"))
    ctx = build.BuildContext(tree=t.path, tree_key=t.key, cache=Cache(cache),
                             log_dir=tmp_path_factory.mktemp("build"), toolchain=Toolchain(),
                             jobs=2)
    with Cache(cache).lock(t.key):
        return build.build_tools(ctx).bpftool


def compile_bpf(tmp: Path, source: str) -> Path:
    c = tmp / "gen.c"
    c.write_text(source)
    obj = tmp / "gen.bpf.o"
    subprocess.run(["clang-19", "-g", "-O2", "--target=bpf", "-c", str(c), "-o", str(obj)],
                   check=True)
    return obj


@pytest.mark.build
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=members, tail=st.booleans())
def test_generated_objects_match_bpftool(bpftool: Path, tmp_path: Path, kinds: list[str],
                                         tail: bool) -> None:
    obj = compile_bpf(tmp_path, c_source(kinds, tail))
    v = verify.verify(bpftool, obj, Rules.MAINLINE, clang="clang-19", log_dir=tmp_path / "v")
    assert v.identical, v.diff
    assert v.layout_ok, v.layout_log


@pytest.mark.build
def test_bitfields_match_bpftool_but_break_the_layout(bpftool: Path, tmp_path: Path) -> None:
    """bpftool reads raw member offsets, so bitfields (kind_flag) get huge padding.  The
    emulator reproduces it, and the compiled layout check catches it."""
    bits = "\tint flag:3;\n\tint more:5;\n};\nSEC"
    src = c_source(["fnptr"], tail=False).replace("};\nSEC", bits)
    obj = compile_bpf(tmp_path, src)
    v = verify.verify(bpftool, obj, Rules.MAINLINE, clang="clang-19", log_dir=tmp_path / "v")
    assert v.identical, v.diff
    assert not v.layout_ok
    assert "char __padding_1[6291456];" in verify.emulate(obj, Rules.MAINLINE).block


@pytest.mark.build
def test_every_struct_ops_object_of_the_tree(default_tree: Path, cache: Path, bpftool: Path,
                                             tmp_path: Path) -> None:
    """Byte-identical to real bpftool on each selftests object with a struct_ops map."""
    t = tree.default_tree(Cache(cache), tmp_path)
    ctx = build.BuildContext(tree=t.path, tree_key=t.key, cache=Cache(cache), log_dir=tmp_path,
                             toolchain=Toolchain(), jobs=2)
    plan = discover.load_objects_plan(t.path)
    assert len(plan.bpf_objects) >= 25
    with Cache(cache).lock(t.key):
        objects = build.build_objects(ctx, plan, build.build_tools(ctx),
                                      kernel.find_prebuilt(t.version))
    results = {o.name: verify.verify(bpftool, o, Rules.MAINLINE, clang="clang-19",
                                     log_dir=tmp_path / "v") for o in objects}
    assert {n: (v.identical, v.layout_ok) for n, v in results.items()} == {
        n: (True, True) for n in results}
    assert sum(bool(verify.emulate(o, Rules.MAINLINE).shadows) for o in objects) == len(objects)


def test_skeleton_name_default() -> None:
    assert verify.skeleton_name(Path("/x/bf.bpf.o")) == "bf_bpf"
    assert verify.skeleton_name(Path("struct_ops_module.o")) == "struct_ops_module"


def test_bad_objects(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not an object\n")
    assert cli.main(["shadow", str(text)]) == cli.EXIT_BAD_OBJECT
    err = capsys.readouterr().err
    assert f"{text}: not an ELF object" in err and "Traceback" not in err
    c = tmp_path / "nobtf.c"
    c.write_text("int x;\n")
    obj = tmp_path / "nobtf.o"
    subprocess.run(["clang-19", "--target=bpf", "-c", str(c), "-o", str(obj)], check=True)
    assert cli.main(["shadow", str(obj)]) == cli.EXIT_BAD_OBJECT
    assert f"{obj}: no .BTF section" in capsys.readouterr().err


def test_corrupt_btf_in_a_real_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from elftools.elf.elffile import ELFFile  # noqa: PLC0415

    obj = compile_bpf(tmp_path, c_source(["int", "fnptr"], tail=False))
    with obj.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".BTF")
        assert section is not None
        start, size = section["sh_offset"], section["sh_size"]
    data = bytearray(obj.read_bytes())
    bad_magic = tmp_path / "magic.o"
    bad_magic.write_bytes(bytes(data[:start]) + b"\x00\x00" + bytes(data[start + 2:]))
    assert cli.main(["shadow", str(bad_magic)]) == cli.EXIT_BAD_OBJECT
    assert f"{bad_magic}: .BTF offset 0: bad magic 0x0000" in capsys.readouterr().err
    # A type section claiming more bytes than the section holds.
    struct_len = int.from_bytes(data[start + 12: start + 16], "little")
    data[start + 12: start + 16] = (struct_len + size).to_bytes(4, "little")
    long_types = tmp_path / "long.o"
    long_types.write_bytes(bytes(data))
    assert cli.main(["shadow", str(long_types)]) == cli.EXIT_BAD_OBJECT
    assert "runs past the end" in capsys.readouterr().err
