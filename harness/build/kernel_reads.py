"""Which files of a tree the kernel build reads: the rule behind `--kernel auto`.

A prebuilt kernel can stand for a tree only when the tree differs from the kernel's
source in files the kernel build never reads.  The rule, derived from the tree itself:

* Everything outside `tools/` is read, except documentation and licence texts
  (`Documentation/` but for its Kconfig files, `LICENSES/`, top-level texts such as
  MAINTAINERS) and git's own files (`.gitignore`, `.mailmap`, ...).
* Under `tools/`, kbuild builds and runs the tools its top-level Makefile names as
  prerequisites of `prepare` (`prepare: tools/objtool`, `prepare: tools/bpf/resolve_btfids`
  in 6.12).  Each tool's Makefile and Build files name what else they read, through
  `$(srctree)/tools/...` and relative paths, and their C sources include files by relative
  paths (objtool's decoder includes tools/arch/x86/lib/insn.c): tools/lib/bpf (linked
  into resolve_btfids),
  tools/lib/subcmd, tools/include, tools/arch, tools/build, tools/scripts, single files of
  tools/lib.  Those are followed, Makefile by Makefile, and are read too.  The rest of
  `tools/` (bpftool, the selftests, perf, ...) is outside the kernel build.

`derive(tree)` reads the Makefiles once; `Rule.reason(path)` is pure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ARCH_VARIABLES = ("$(SRCARCH)", "$(HOSTARCH)", "$(ARCH)", "$(SUBARCH)")
PREPARE_RE = re.compile(r"^prepare:\s*(tools/[\w/.-]+)\s*$", re.M)
SRCTREE_RE = re.compile(r"\$\((?:abs_)?srctree\)/(tools/[\w/.$()%-]*)")
RELATIVE_RE = re.compile(r"(?<![\w/.$)])((?:\.\./)+[\w/.$()%-]+)")
INCLUDED_RE = re.compile(r"^(?:Makefile\.\w+|.+\.mak)$")  # make fragments an include reads
UNREAD_TOP = frozenset({
    "Documentation", "LICENSES", "COPYING", "CREDITS", "MAINTAINERS", "README",
})
UNREAD_NAMES = frozenset({
    ".gitignore", ".gitattributes", ".mailmap", ".clang-format", ".cocciconfig",
    ".get_maintainer.ignore", ".editorconfig",
})


@dataclass(frozen=True)
class Rule:
    """The parts of tools/ the kernel build reads, each with why."""

    tools: dict[str, str]  # "tools/lib/bpf" → "read by the build of tools/bpf/..."

    def reason(self, path: str) -> str | None:
        """Why the kernel build reads `path` (relative to the tree), or None if it does not."""
        parts = path.split("/")
        if parts[-1] in UNREAD_NAMES:
            return None
        if parts[0] == "Documentation":
            return "a Kconfig file, read by the kernel build" if (
                parts[-1].startswith("Kconfig")) else None
        if parts[0] in UNREAD_TOP:
            return None
        if parts[0] != "tools":
            return "kernel source: the kernel build reads everything outside tools/"
        return next((why for ref, why in self.tools.items() if covers(ref, path)), None)

    def with_read(self, extra: dict[str, str]) -> Rule:
        """The rule with more references read (the selftests profile reads the tree's
        tools/testing/selftests/bpf/config files as kernel config)."""
        return Rule({**self.tools, **extra})

    def read_paths(self, paths: Iterable[str]) -> list[tuple[str, str]]:
        """(path, reason) for each of `paths` the kernel build reads, in the given order."""
        return [(p, why) for p in paths if (why := self.reason(p)) is not None]


def covers(ref: str, path: str) -> bool:
    """A reference covers itself, what is under it, and ('%', make's pattern) its matches."""
    if "%" in ref:
        pattern = "[^/]*".join(re.escape(part) for part in ref.split("%"))
        return re.fullmatch(pattern, path) is not None
    return path == ref or path.startswith(ref + "/")


def _arch(text: str, arch: str) -> str:
    for var in ARCH_VARIABLES:
        text = text.replace(var, arch)
    return text


def _clean(ref: str) -> str | None:
    """A reference cut before any make variable left in it, normalized."""
    ref = ref.split("$(", 1)[0].rstrip("/")
    if not ref:
        return None
    ref = os.path.normpath(ref)
    return ref if ref.startswith("tools/") else None


def references(text: str, tool_dir: str, arch: str = "x86") -> set[str]:
    """tools/ paths one Makefile or Build file names (relative paths from `tool_dir`)."""
    text = _arch(text, arch)
    found = {m[1] for m in SRCTREE_RE.finditer(text)}
    for m in RELATIVE_RE.finditer(text):
        found.add(os.path.normpath(os.path.join(tool_dir, m[1])))
    return {c for ref in found if (c := _clean(ref)) is not None}


INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"((?:\.\./)+[^"]+)"', re.M)
SOURCE_SUFFIXES = (".c", ".h")


def c_includes(text: str, file_dir: str) -> set[str]:
    """tools/ files a C source includes by a relative path that leaves its directory
    (objtool's x86 decoder includes tools/arch/x86/lib/insn.c so)."""
    found = {os.path.normpath(os.path.join(file_dir, m[1])) for m in INCLUDE_RE.finditer(text)}
    return {c for ref in found if (c := _clean(ref)) is not None}


def _source_refs(tree: Path, tool_dir: str) -> set[str]:
    root = tree / tool_dir
    if not root.is_dir():
        return set()
    refs: set[str] = set()
    for f in root.rglob("*"):
        if f.suffix in SOURCE_SUFFIXES and f.is_file():
            rel = str(f.parent.relative_to(tree))
            refs |= c_includes(f.read_text(errors="replace"), rel)
    return refs


def _make_files(tree: Path, tool_dir: str) -> list[Path]:
    root = tree / tool_dir
    if root.is_file():  # an included make fragment
        return [root]
    files = [root / "Makefile"] if (root / "Makefile").is_file() else []
    return files + sorted(root.rglob("Build"))


def _followed(tree: Path, ref: str) -> bool:
    """Whether a reference is itself make input to read: a directory with a Makefile (a
    library built by sub-make) or an included fragment."""
    path = tree / ref
    return (path / "Makefile").is_file() or (path.is_file() and bool(INCLUDED_RE.match(path.name)))


def derive(tree: Path, arch: str = "x86") -> Rule:
    """Follow the Makefiles from kbuild's `prepare: tools/...` lines (see the module doc)."""
    top = (tree / "Makefile").read_text(errors="replace")
    roots = PREPARE_RE.findall(top)
    tools = {r: f"built and run by the kernel build (Makefile: prepare: {r})" for r in roots}
    pending = [(r, r) for r in roots]
    while pending:
        tool_dir, root = pending.pop(0)
        base = tool_dir if (tree / tool_dir).is_dir() else root
        found = _source_refs(tree, tool_dir)
        for f in _make_files(tree, tool_dir):
            found |= references(f.read_text(errors="replace"), base, arch)
        for ref in sorted(found):
            if any(covers(k, ref) for k in tools):
                continue
            tools[ref] = f"read by the build of {root}, which the kernel build runs"
            if _followed(tree, ref):
                pending.append((ref, root))
    return Rule(tools)
