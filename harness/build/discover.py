"""Find what a targeted test_progs needs, from the selftest sources themselves.

For each selected prog_test file: the test functions it defines (tests.h), the skeletons
it includes and the BPF programs behind them, and the .bpf.o files it opens at run time.
From the selftests Makefile: the runner's helper sources, linked-skeleton recipes and
per-program compiler flags.  All functions here are pure (text in, data out) except the
few that read files of the tree, which are named `load_*`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.build import select
from harness.errors import BuildError, SelectionError, TreeError

SELFTESTS = Path("tools/testing/selftests/bpf")

TEST_FN_RE = re.compile(r"^void (?:serial_)?test_([a-zA-Z0-9_]+)\((?:void)?\)", re.M)
# `#include "x.skel.h"`, and `#include <x.skel.h>` (prog_tests/preempt_lock.c)
SKEL_RE = re.compile(r'^\s*#\s*include\s+["<]([A-Za-z0-9_]+)\.(skel|lskel|subskel)\.h[">]',
                     re.M)
# However the path is written: "x.bpf.o", "./x.bpf.o", "progs/x.bpf.o"
OBJ_RE = re.compile(r'"(?:[A-Za-z0-9_./\-]*/)?([A-Za-z0-9_\-]+\.bpf\.o)"')
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
    source: str = field(default="", repr=False, compare=False)


@dataclass(frozen=True)
class Extra:
    """A file the selftests Makefile ships beside test_progs (TRUNNER_EXTRA_FILES)."""

    name: str  # its name in test_progs' directory: "urandom_read", "ima_setup.sh"
    kind: str  # "module" (X/ built against the kernel), "program" (built by the
    #            tree's own Makefile), "file" (copied from the selftests directory)
    mention: str = ""  # what a test that uses it names (default: its file name)


@dataclass(frozen=True)
class Plan:
    """Everything the targeted build compiles, for the selected test files."""

    tests: tuple[TestFile, ...]
    extra_sources: tuple[str, ...]  # runner helpers: test_progs.c, cgroup_helpers.c, ...
    prog_cflags: dict[str, str]
    objects: tuple[str, ...] = ()  # BPF objects wanted on their own (the emulator's corpus)
    selection: select.Resolved | None = None  # what test_progs is told to run
    extras: tuple[Extra, ...] = ()  # test modules, helper programs and files to ship
    unbuilt: tuple[str, ...] = ()  # runtime objects named in a test with no progs/ source

    @property
    def functions(self) -> tuple[str, ...]:
        """Every test the linked files define (tests.h must list them all)."""
        return tuple(f for t in self.tests for f in t.functions)

    @property
    def selected(self) -> tuple[str, ...]:
        """The tests test_progs is asked to run."""
        return self.selection.tests if self.selection else self.functions

    @property
    def calls_bpftool(self) -> bool:
        """A selected file runs `./bpftool` (the selftests Makefile links one there)."""
        return any("./bpftool" in t.source for t in self.tests)

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.extras if e.kind == "module")

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


# "btf__core_reloc_" #name ".bpf.o": a macro pastes the rest of the name (core_reloc.c)
OBJ_PREFIX_RE = re.compile(r'"([A-Za-z0-9_\-]+)"\s*#\s*\w+\s*"\.bpf\.o"')


def pasted_objects(source: str, progs: Iterable[str]) -> tuple[str, ...]:
    """Objects whose names a macro pastes together: every progs/<prefix>*.c."""
    prefixes = set(OBJ_PREFIX_RE.findall(source))
    return tuple(sorted(f"{p}.bpf.o" for p in progs
                        if any(p.startswith(x) for x in prefixes)))


def runtime_objects(source: str) -> tuple[str, ...]:
    """BPF object files a test opens by name at run time ("foo.bpf.o")."""
    return tuple(sorted(set(OBJ_RE.findall(source))))


def parse_test_file(stem: str, source: str, deps: dict[str, tuple[str, ...]],
                    progs: Iterable[str] = ()) -> TestFile:
    return TestFile(
        stem=stem,
        functions=test_functions(source),
        skeletons=skeletons(source, deps),
        runtime_objects=tuple(sorted({*runtime_objects(source),
                                      *pasted_objects(source, progs)})),
        source=source,
    )


EXTRA_OUTPUT_RE = re.compile(r"^\$\(OUTPUT\)/([A-Za-z0-9_.\-]+)$")
EXTRA_WILDCARD_RE = re.compile(r"^\$\(wildcard\s+([^)\s]+)\)$")


def extra_files(makefile: str, root: Path) -> tuple[Extra, ...]:
    """test_progs' TRUNNER_EXTRA_FILES: `$(OUTPUT)/X.ko` with an X/ directory is a test
    module, another `$(OUTPUT)/X` a program the Makefile builds, a plain name or a
    `$(wildcard ...)` files copied from the selftests directory."""
    try:
        text = _joined_assignment(makefile, "TRUNNER_EXTRA_FILES")
    except BuildError:  # a tree without extras: test_progs runs with what it links
        text = ""
    words = re.findall(r"\$\(wildcard\s+[^)]*\)|\S+", text)
    found: list[Extra] = []
    for word in words:
        if m := EXTRA_OUTPUT_RE.match(word):
            name = m[1]
            module = name.endswith(".ko") and (root / name.removesuffix(".ko")).is_dir()
            found.append(Extra(name.removesuffix(".ko") if module else name,
                               "module" if module else "program"))
        elif m := EXTRA_WILDCARD_RE.match(word):
            prefix = Path(m[1]).name.split("*", 1)[0]  # "btf_dump_test_case_"
            found += [Extra(str(p.relative_to(root)), "file", prefix)
                      for p in sorted(root.glob(m[1])) if not p.name.endswith(".bpf.o")]
        elif not word.startswith("$"):
            found.append(Extra(word, "file"))
    return tuple(found)


def needed_extras(extras: tuple[Extra, ...], texts: list[str], root: Path,
                  ) -> tuple[Extra, ...]:
    """The extras the selected tests use: bpf_testmod (test_progs loads it itself), and
    every extra whose name a test (or a needed script) mentions, with `libX.so` for a
    needed program X; followed to a fixed point."""
    needed = {e for e in extras if e.kind == "module" and e.name == "bpf_testmod"}
    texts = list(texts)
    while True:
        more = {e for e in extras if e not in needed and _mentioned(e, texts, needed)}
        if not more:
            return tuple(e for e in extras if e in needed)
        needed |= more
        texts += [_text(root / e.name) for e in more if e.kind == "file"]


def _mentioned(e: Extra, texts: list[str], needed: set[Extra]) -> bool:
    name = Path(e.name).name
    key = e.mention or (f"{name}.ko" if e.kind == "module" else name)
    if any(f"lib{n.name}.so" == name for n in needed if n.kind == "program"):
        return True
    return any(key in t for t in texts)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def tree_lists(root: Path, arch: str, version: str) -> list[tuple[str, str]]:
    """The tree's deny lists that exist, as (name, text)."""
    return [(name, (root / name).read_text(errors="replace"))
            for name in select.tree_list_names(arch, version) if (root / name).is_file()]


def _makefile(root: Path) -> str:
    try:
        return (root / "Makefile").read_text(errors="replace")
    except OSError as exc:
        raise TreeError(f"{root / 'Makefile'}: cannot read ({exc.strerror}); the tree's BPF "
                        f"selftests are incomplete") from exc


def load_plan(tree: Path, request: select.Request, *, arch: str = "x86_64",
              version: str = "") -> Plan:
    """Read the tree's selftests and return what the selected tests need."""
    root = tree / SELFTESTS
    makefile = _makefile(root)
    sources = {p.stem: p.read_text(errors="replace")
               for p in sorted((root / "prog_tests").glob("*.c"))}
    available = {stem: test_functions(text) for stem, text in sources.items()}
    resolved = select.resolve(request, available, tree_lists(root, arch, version))
    deps = linked_deps(makefile)
    stems = with_providers(resolved.stems, sources)
    progs = sorted(p.stem for p in (root / "progs").glob("*.c"))
    tests = tuple(parse_test_file(s, sources[s], deps, progs) for s in stems)
    for t in tests:
        if not t.functions:
            raise SelectionError(f"prog_tests/{t.stem}.c defines no test_*() function")
        _check_programs(root, t)
    plan = Plan(tests=tests, extra_sources=extra_sources(makefile),
                prog_cflags=prog_cflags(makefile), selection=resolved,
                extras=needed_extras(extra_files(makefile, root),
                                     [t.source for t in tests], root))
    return _only_built(plan, root)


# A top-level function definition that is not static: `int stack_mprotect(void)\n{`.
DEFINITION_RE = re.compile(r"^(?!static\b)[A-Za-z_][\w \t*]*?\b(\w+)\s*\([^;{}]*\)\s*\{",
                           re.M)
CALL_RE = re.compile(r"\b(\w+)\s*\(")


def exported(source: str) -> set[str]:
    """Functions a prog_tests file defines for the others (test entry points aside)."""
    return {m[1] for m in DEFINITION_RE.finditer(source)} - set(test_functions(source)) - {
        f"test_{fn}" for fn in test_functions(source)}


def with_providers(stems: tuple[str, ...], sources: dict[str, str]) -> tuple[str, ...]:
    """The selected files plus the prog_tests files defining functions they call
    (6.12's iters.c calls stack_mprotect() from test_lsm.c: upstream links every file
    into one binary, the targeted build must link the provider too)."""
    providers = {name: stem for stem, text in sources.items() for name in exported(text)}
    chosen = list(stems)
    for stem in chosen:  # grows while iterating: providers' own needs too
        for name in dict.fromkeys(CALL_RE.findall(sources[stem])):
            p = providers.get(name)
            if p is not None and p not in chosen:
                chosen.append(p)
    return tuple(chosen)


def _only_built(plan: Plan, root: Path) -> Plan:
    """Runtime objects without a progs/ source are listed, not built (make would stop)."""
    missing = tuple(o for o in plan.runtime_objects
                    if not (root / "progs" / f"{o.removesuffix('.bpf.o')}.c").is_file())
    if not missing:
        return plan
    tests = tuple(TestFile(t.stem, t.functions, t.skeletons,
                           tuple(o for o in t.runtime_objects if o not in missing), t.source)
                  for t in plan.tests)
    return dataclasses.replace(plan, tests=tests, unbuilt=missing)


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
