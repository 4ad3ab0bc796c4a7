"""Differential check of the emulator against the real bpftool, and a compiled layout check.

For each object: the emulated block must equal the one in `bpftool gen skeleton` output,
byte for byte; and a C file holding the object's own types (`bpftool btf dump ... format
c`) plus the shadow structs must compile with static assertions that sizes and every kept
member's offset equal the original struct's.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.btf import elf, parse, render, shadow
from harness.btf.shadow import Rules, Shadow
from harness.host import proc

TIMEOUT = 120


@dataclass(frozen=True)
class Emulated:
    obj: Path
    name: str
    shadows: tuple[Shadow, ...]
    block: str


def skeleton_name(obj: Path) -> str:
    """bpftool's default: the file name without '.o', other non-identifier chars as '_'."""
    return re.sub(r"[^A-Za-z0-9_]", "_", obj.name.removesuffix(".o"))


def emulate(obj: Path, rules: Rules, name: str | None = None) -> Emulated:
    loaded = elf.load(obj)
    btf = parse.parse(loaded.btf, str(obj))
    skel = name or skeleton_name(obj)
    shadows = tuple(shadow.shadow(btf, m, t, skel, rules)
                    for m, t in shadow.struct_ops_maps(btf, loaded.struct_ops_sections))
    return Emulated(obj=obj, name=skel, shadows=shadows, block=render.render_block(shadows))


@dataclass(frozen=True)
class Verdict:
    obj: Path
    identical: bool
    diff: str
    layout_ok: bool
    layout_log: str | None

    @property
    def ok(self) -> bool:
        return self.identical and self.layout_ok


def bpftool_block(bpftool: Path, obj: Path, name: str, log_dir: Path) -> str:
    out = log_dir / f"{name}.skel.h"
    proc.run([str(bpftool), "gen", "skeleton", str(obj), "name", name],
             log=log_dir / f"{name}.gen-skeleton.log", timeout=TIMEOUT, stdout=out)
    return render.extract_block(out.read_text())


def layout_check_source(types_header: str, em: Emulated) -> str:
    """C with the object's types, the shadow structs and static assertions."""
    lines = [types_header, "\nstruct bpf_program;\n",
             "#define offsetof(t, m) __builtin_offsetof(t, m)\n"]
    for i, s in enumerate(em.shadows):
        tag = s.struct_name or f"harness_shadow_{i}"
        body = "".join(f"\t{f.decl.replace(chr(10) + chr(9) * 3, chr(10) + chr(9))};\n"
                       for f in s.fields)
        lines.append(f"struct {tag} {{\n{body}}};\n")
        lines.append(f"_Static_assert(sizeof(struct {tag}) == sizeof(struct {s.type_name}), "
                     f"\"{s.map_name}: size\");\n")
        for f in s.fields:
            if f.kept:
                lines.append(
                    f"_Static_assert(offsetof(struct {tag}, {f.kept}) == "
                    f"offsetof(struct {s.type_name}, {f.kept}), \"{s.map_name}.{f.kept}\");\n")
    return "".join(lines)


def check_layout(bpftool: Path, em: Emulated, clang: str, log_dir: Path) -> tuple[bool, Path]:
    header = log_dir / f"{em.name}.types.h"
    proc.run([str(bpftool), "btf", "dump", "file", str(em.obj), "format", "c"],
             log=log_dir / f"{em.name}.btf-dump.log", timeout=TIMEOUT, stdout=header)
    source = log_dir / f"{em.name}.layout.c"
    source.write_text(layout_check_source(header.read_text(), em))
    log = log_dir / f"{em.name}.layout.log"
    done = proc.run([clang, "--target=bpf", "-fsyntax-only", "-Wno-everything", str(source)],
                    log=log, timeout=TIMEOUT, check=False)
    return done.returncode == 0, log


def verify(bpftool: Path, obj: Path, rules: Rules, *, clang: str, log_dir: Path,
           name: str | None = None) -> Verdict:
    em = emulate(obj, rules, name)
    log_dir.mkdir(parents=True, exist_ok=True)
    real = bpftool_block(bpftool, obj, em.name, log_dir)
    diff = "".join(difflib.unified_diff(real.splitlines(True), em.block.splitlines(True),
                                        "bpftool", "emulator"))
    layout_ok, layout_log = check_layout(bpftool, em, clang, log_dir) if em.shadows else (
        True, None)
    return Verdict(obj=obj, identical=real == em.block, diff=diff, layout_ok=layout_ok,
                   layout_log=str(layout_log) if layout_log else None)
