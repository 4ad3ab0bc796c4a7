"""Find what a targeted test_progs needs, from the selftest sources themselves.

For each selected prog_test file: the test functions it defines (tests.h), the skeletons
it includes and the BPF programs behind them, and the .bpf.o files it opens at run time.
From the selftests Makefile: the runner's helper sources, linked-skeleton recipes and
per-program compiler flags.  All functions here are pure (text in, data out) except the
few that read files of the tree, which are named `load_*`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError, SelectionError, TreeError

SELFTESTS = Path("tools/testing/selftests/bpf")

TEST_FN_RE = re.compile(r"^void (?:serial_)?test_([a-zA-Z0-9_]+)\((?:void)?\)", re.M)
SKEL_RE = re.compile(r'^\s*#\s*include\s+"([A-Za-z0-9_]+)\.(skel|lskel|subskel)\.h"', re.M)
OBJ_RE = re.compile(r'"([A-Za-z0-9_\-]+\.bpf\.o)"')
DEPS_RE = re.compile(r"^([A-Za-z0-9_]+)\.skel\.h-deps\s*:=\s*(.*)$", re.M)
PROG_CFLAGS_RE = re.compile(r"^progs/([A-Za-z0-9_]+)\.c-CFLAGS\s*:=\s*(.*)$", re.M)


@dataclass(frozen=True)
class Skeleton:
    """A generated header: `name.kind.h`, made from one or several BPF objects."""

    name: str
    kind: str  # "skel", "lskel" or "subskel"
    objects: tuple[str, ...]  # object basenames without .bpf.o, e.g. ("struct_ops_module",)

    @property
    def header(self) -> str:
        return f"{self.name}.{self.kind}.h"


@dataclass(frozen=True)
class TestFile:
    stem: str  # "test_struct_ops_module"
    functions: tuple[str, ...]  # ("struct_ops_module",)
    skeletons: tuple[Skeleton, ...]
    runtime_objects: tuple[str, ...]  # ("xyz.bpf.o", ...) opened by path at run time


@dataclass(frozen=True)
class Plan:
    """Everything the targeted build compiles, for the selected test files."""

    tests: tuple[TestFile, ...]
    extra_sources: tuple[str, ...]  # runner helpers: test_progs.c, cgroup_helpers.c, ...
    prog_cflags: dict[str, str]
    objects: tuple[str, ...] = ()  # BPF objects wanted on their own (the emulator's corpus)

    @property
    def functions(self) -> tuple[str, ...]:
        return tuple(f for t in self.tests for f in t.functions)

    @property
    def skeletons(self) -> tuple[Skeleton, ...]:
        seen: dict[str, Skeleton] = {}
        for t in self.tests:
            for s in t.skeletons:
                seen.setdefault(s.header, s)
        return tuple(seen.values())

    @property
    def bpf_objects(self) -> tuple[str, ...]:
        names = {o for s in self.skeletons for o in s.objects}
        names |= {o.removesuffix(".bpf.o") for t in self.tests for o in t.runtime_objects}
        return tuple(sorted(names | set(self.objects)))

    @property
    def runtime_objects(self) -> tuple[str, ...]:
        return tuple(sorted({o for t in self.tests for o in t.runtime_objects}))


def test_functions(source: str) -> tuple[str, ...]:
    """Names of the test entry points a prog_tests file defines (as tests.h lists them)."""
    return tuple(TEST_FN_RE.findall(source))


def linked_deps(makefile: str) -> dict[str, tuple[str, ...]]:
    """`X.skel.h-deps := a.bpf.o b.bpf.o` → {"X": ("a", "b")}."""
    return {
        m[1]: tuple(o.removesuffix(".bpf.o") for o in m[2].split())
        for m in DEPS_RE.finditer(makefile)
    }


def prog_cflags(makefile: str) -> dict[str, str]:
    """Per-program extra flags: `progs/X.c-CFLAGS := -fno-strict-aliasing`."""
    return {m[1]: m[2].strip() for m in PROG_CFLAGS_RE.finditer(makefile)}


def _joined_assignment(makefile: str, variable: str) -> str:
    """The value of the first `VARIABLE := ...` with its backslash continuations joined."""
    text = makefile.replace("\\\n", " ")
    m = re.search(rf"^{re.escape(variable)}\s*:=(.*)$", text, re.M)
    if m is None:
        raise BuildError(f"selftests Makefile has no {variable} assignment")
    return m[1]


def extra_sources(makefile: str) -> tuple[str, ...]:
    """The C helpers test_progs links (the first TRUNNER_EXTRA_SOURCES, test_progs's)."""
    words = _joined_assignment(makefile, "TRUNNER_EXTRA_SOURCES").split()
    return tuple(w for w in words if w.endswith(".c"))


def skeletons(source: str, deps: dict[str, tuple[str, ...]]) -> tuple[Skeleton, ...]:
    """Skeleton headers a test includes, with the BPF objects each is generated from."""
    found: list[Skeleton] = []
    for m in SKEL_RE.finditer(source):
        name, kind = m[1], m[2]
        objects = deps.get(name, (name,)) if kind != "lskel" else (name,)
        found.append(Skeleton(name=name, kind=kind, objects=objects))
    return tuple(found)


def runtime_objects(source: str) -> tuple[str, ...]:
    """BPF object files a test opens by name at run time ("foo.bpf.o")."""
    return tuple(sorted(set(OBJ_RE.findall(source))))


def parse_test_file(stem: str, source: str, deps: dict[str, tuple[str, ...]]) -> TestFile:
    return TestFile(
        stem=stem,
        functions=test_functions(source),
        skeletons=skeletons(source, deps),
        runtime_objects=runtime_objects(source),
    )


def resolve_names(requested: tuple[str, ...], available: dict[str, tuple[str, ...]]) -> list[str]:
    """Map requested names to prog_tests file stems.

    `available` maps each stem to the test functions it defines.  A name may be a stem
    ("test_struct_ops_module", "test_struct_ops_module.c") or a test function name
    ("struct_ops_module").
    """
    by_function = {fn: stem for stem, fns in available.items() for fn in fns}
    stems: list[str] = []
    for name in requested:
        key = name.removesuffix(".c")
        stem = key if key in available else by_function.get(key)
        if stem is None:
            raise SelectionError(_no_match(name, list(available) + list(by_function)))
        if stem not in stems:
            stems.append(stem)
    return stems


def _no_match(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"--tests {name!r} matches no file or test in "
            f"{SELFTESTS}/prog_tests{hint}")


def _makefile(root: Path) -> str:
    try:
        return (root / "Makefile").read_text(errors="replace")
    except OSError as exc:
        raise TreeError(f"{root / 'Makefile'}: cannot read ({exc.strerror}); the tree's BPF "
                        f"selftests are incomplete") from exc


def load_plan(tree: Path, requested: tuple[str, ...]) -> Plan:
    """Read the tree's selftests and return what the selected tests need."""
    root = tree / SELFTESTS
    makefile = _makefile(root)
    sources = {p.stem: p.read_text(errors="replace") for p in (root / "prog_tests").glob("*.c")}
    available = {stem: test_functions(text) for stem, text in sources.items()}
    stems = resolve_names(requested, available)
    deps = linked_deps(makefile)
    tests = tuple(parse_test_file(s, sources[s], deps) for s in stems)
    for t in tests:
        if not t.functions:
            raise SelectionError(f"prog_tests/{t.stem}.c defines no test_*() function")
        _check_programs(root, t)
    return Plan(tests=tests, extra_sources=extra_sources(makefile),
                prog_cflags=prog_cflags(makefile))


STRUCT_OPS_SEC_RE = re.compile(r'SEC\("\??\.struct_ops(?:\.link)?"\)')


def defines_struct_ops(source: str) -> bool:
    """True when a BPF program source puts a variable in a struct_ops section."""
    return STRUCT_OPS_SEC_RE.search(source) is not None


def load_objects_plan(tree: Path) -> Plan:
    """Every progs/*.c that defines a struct_ops map, to build as plain objects."""
    root = tree / SELFTESTS
    makefile = _makefile(root)
    names = tuple(sorted(p.stem for p in (root / "progs").glob("*.c")
                         if defines_struct_ops(p.read_text(errors="replace"))))
    return Plan(tests=(), extra_sources=(), prog_cflags=prog_cflags(makefile), objects=names)


def _check_programs(root: Path, test: TestFile) -> None:
    for skel in test.skeletons:
        for obj in skel.objects:
            if not (root / "progs" / f"{obj}.c").is_file():
                raise BuildError(
                    f"prog_tests/{test.stem}.c includes {skel.header} but "
                    f"progs/{obj}.c is not in the tree"
                )
