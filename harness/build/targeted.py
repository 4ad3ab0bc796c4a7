"""Build stages: bpftool + libbpf, bpf_testmod.ko, and a targeted test_progs.

Everything is built outside the tree, under a per-tree build directory in the cache, so
make's own dependency tracking makes a second run nearly free.  The targeted test_progs is
driven by a Makefile this module generates from a discover.Plan: only the selected
prog_tests, the skeletons they include and the BPF programs behind them.
"""

from __future__ import annotations

import filecmp
import functools
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.boot.kernel import Kernel
from harness.build import inputs
from harness.build.discover import SELFTESTS, Plan, Skeleton
from harness.config import Toolchain
from harness.errors import NO_SPACE, BuildError, HarnessError, no_space
from harness.host import proc
from harness.host.cache import Cache

TESTMOD = "bpf_testmod"


@dataclass(frozen=True)
class BuildContext:
    """Where and how to build for one tree.

    Outputs go to one directory per tree and per set of inputs: make's own rules follow
    the tree's sources (a checkout rewrites what changed), while what make cannot see
    (the kernel's BTF behind vmlinux.h, the headers a module builds against, the
    compilers and their versions) names the directory instead.
    """

    tree: Path
    tree_key: str
    cache: Cache
    log_dir: Path  # the run directory
    toolchain: Toolchain
    jobs: int
    timeout: float = 1800.0
    versions: Mapping[str, str] = field(default_factory=dict)  # toolchain.versions()
    ledger: dict[str, str] = field(default_factory=dict)  # build → "built" or "reused"
    notes: list[str] = field(default_factory=list)  # what the builds noticed (a damaged cache)

    def key(self, paths: Sequence[str], excluded: Sequence[str] = (),
            extra: Sequence[str] = ()) -> str | None:
        """The content key of what a build reads (harness/build/inputs.py)."""
        return inputs.tree_key(self.tree, paths, self.log_dir, excluded, extra)

    @functools.cached_property
    def tools_key(self) -> str | None:
        """bpftool's and libbpf's key (test_progs and the helpers include it): read once."""
        return self.key(inputs.TOOLS, inputs.TOOLS_EXCLUDED)

    def _compilers(self) -> dict[str, str]:
        return {"cc": self.toolchain.cc, "cc_version": self.versions.get("gcc", ""),
                "clang": self.toolchain.clang, "clang_version": self.versions.get("clang", "")}

    def tools_dir(self) -> Path:
        return self.cache.build(self.tree_key, "tools", self._compilers())

    def testmod_dir(self, kernel: Kernel, module: str = "bpf_testmod") -> Path:
        """Named by the kernel's source state and its BTF: an external module build does
        not follow vmlinux, and a module whose BTF was made against another vmlinux's
        (a relink makes new BTF) does not load."""
        inputs = {"kernel": kernel.fingerprint(), "types": kernel.types_fingerprint(),
                  "headers": str(kernel.headers),
                  "cc": self.toolchain.cc, "cc_version": self.versions.get("gcc", "")}
        part = "testmod" if module == TESTMOD else f"module-{module}"
        return self.cache.build(self.tree_key, part, inputs)

    def selftests_dir(self, kernel: Kernel, flavor: str = "test_progs") -> Path:
        inputs = {"kernel": kernel.types_fingerprint(), "headers": str(kernel.headers),
                  **self._compilers()}
        part = "selftests" if flavor == "test_progs" else f"selftests-{flavor}"
        return self.cache.build(self.tree_key, part, inputs)

    def helpers_dir(self) -> Path:
        """Helper programs the selftests Makefile builds (urandom_read, uprobe_multi, ...)."""
        return self.cache.build(self.tree_key, "helpers", self._compilers())


@dataclass(frozen=True)
class OutputDirs:
    tools: Path
    testmod: Path
    selftests: Path


def output_dirs(cache: Cache, tree_key: str, kernel: Kernel, toolchain: Toolchain,
                versions: Mapping[str, str] | None = None) -> OutputDirs:
    """Every output directory for one tree and kernel (what the context would use)."""
    ctx = BuildContext(tree=Path("."), tree_key=tree_key, cache=cache, log_dir=Path("."),
                       toolchain=toolchain, jobs=1, versions=versions or {})
    return OutputDirs(ctx.tools_dir(), ctx.testmod_dir(kernel), ctx.selftests_dir(kernel))


@dataclass(frozen=True)
class Tools:
    bpftool: Path
    libbpf_a: Path
    libbpf_include: Path


@dataclass(frozen=True)
class Selftests:
    test_progs: Path
    runtime_objects: tuple[Path, ...]


ERROR_LINE_RE = re.compile(r"(?:^|\s)(?:fatal )?error:|\*\*\* |undefined reference", re.I)


def first_error(output: str) -> str:
    """The first compiler/linker/make error line of a build log (else its last line)."""
    lines = output.splitlines()
    found = next((ln.strip() for ln in lines if ERROR_LINE_RE.search(ln)), None)
    return found or (lines[-1].strip() if lines else "no output")


def _make(ctx: BuildContext, args: list[str], log_name: str) -> None:
    argv = [ctx.toolchain.make, f"-j{ctx.jobs}", *args]
    try:
        proc.run(argv, log=ctx.log_dir / log_name, timeout=ctx.timeout)
    except proc.ProcError as exc:
        raise build_error(log_name.removesuffix(".log"), exc.output, exc.log,
                          ctx.cache.root) from exc


def build_error(step: str, output: str, log: Path | None, where: Path) -> HarnessError:
    """A failed build's error: the first compiler error, or a full disk as such."""
    if NO_SPACE in output:
        return no_space(f"{step} failed", where, log)
    return BuildError(f"{step} failed: {first_error(output)}", log)


def _keyed(ctx: BuildContext, name: str, *, out: Path, key: str | None,
           outputs: Sequence[Path], log_name: str, build: Callable[[], None]) -> None:
    """Run `build` unless the directory's last build had the same inputs (then say so in
    the step's log); record which in the context's ledger."""
    damaged = inputs.corrupt(out, outputs)
    if damaged:  # changed since built: rebuilt, never trusted
        inputs.discard(damaged)
        ctx.notes.append(f"{name}: cached {', '.join(str(p) for p in damaged)} changed since "
                         f"it was built (truncated or damaged): deleted and built again")
    current = not damaged and inputs.reusable(out, key, outputs)
    if current or inputs.restore(out, key, outputs):
        inputs.note(ctx.log_dir / log_name, key, out, restored=not current)
        ctx.ledger[name] = "reused"
        return
    inputs.forget(out)
    build()
    inputs.remember(out, key, outputs)
    inputs.snapshot(out, key, outputs)  # best effort: a copy that cannot be made is skipped
    ctx.ledger[name] = "built"


def build_tools(ctx: BuildContext) -> Tools:
    """bpftool from the tree, with the libbpf it builds (shared with test_progs)."""
    out = ctx.tools_dir()
    tools = Tools(bpftool=out / "bpftool/bpftool", libbpf_a=out / "libbpf/libbpf.a",
                  libbpf_include=out / "libbpf-dest/include")
    _keyed(ctx, "bpftool", out=out, key=ctx.tools_key,
           outputs=(tools.bpftool, tools.libbpf_a, tools.libbpf_include),
           log_name="build-bpftool.log", build=lambda: _make_tools(ctx, out))
    for path in (tools.bpftool, tools.libbpf_a, tools.libbpf_include / "bpf/libbpf.h"):
        if not path.exists():
            raise BuildError(f"bpftool build produced no {path}", ctx.log_dir / "build-bpftool.log")
    return tools


def _make_tools(ctx: BuildContext, out: Path) -> None:
    for sub in ("bpftool", "libbpf", "libbpf-dest"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _make(ctx, [
        "-C", str(ctx.tree / "tools/bpf/bpftool"),
        f"OUTPUT={out}/bpftool/", f"LIBBPF_OUTPUT={out}/libbpf/",
        f"LIBBPF_DESTDIR={out}/libbpf-dest/",
        f"CLANG={ctx.toolchain.clang}", f"LLVM_STRIP={ctx.toolchain.llvm_strip}",
    ], "build-bpftool.log")


def sync_dir(src: Path, dest: Path, patterns: tuple[str, ...]) -> None:
    """Copy matching files, leaving unchanged ones (and their mtimes) alone."""
    dest.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for f in src.glob(pattern):
            target = dest / f.name
            if not target.exists() or not filecmp.cmp(f, target, shallow=False):
                shutil.copy2(f, target)


def build_testmod(ctx: BuildContext, kernel: Kernel, module: str = TESTMOD) -> Path:
    """A test module (bpf_testmod.ko, bpf_test_no_cfi.ko, ...), out of tree against the
    kernel's headers (gets module BTF)."""
    src = ctx.tree / SELFTESTS / module
    work = ctx.testmod_dir(kernel, module)
    log = "build-testmod.log" if module == TESTMOD else f"build-{module}.log"
    ko = work / f"{module}.ko"

    def build() -> None:
        sync_dir(src, work, ("*.c", "*.h", "Makefile", "Kbuild"))
        _make(ctx, ["-C", str(kernel.headers), f"M={work}", "modules"], log)

    work.mkdir(parents=True, exist_ok=True)
    _keyed(ctx, module, out=work, key=ctx.key((f"{SELFTESTS}/{module}",)), outputs=(ko,),
           log_name=log, build=build)
    if not ko.is_file():
        raise BuildError(f"module build produced no {ko.name}", ctx.log_dir / log)
    return ko


def build_helpers(ctx: BuildContext, names: tuple[str, ...]) -> list[tuple[str, Path]]:
    """Helper programs test_progs runs, built by the tree's own selftests Makefile (its
    rules, for its targets alone) into a directory of the cache."""
    if not names:
        return []
    out = ctx.helpers_dir()
    suffix = ctx.toolchain.llvm_suffix
    argv = ["-C", str(ctx.tree / SELFTESTS), f"OUTPUT={out}",
            f"CLANG={ctx.toolchain.clang}", f"LLD=lld{suffix}", f"LLC=llc{suffix}",
            f"LLVM_STRIP={ctx.toolchain.llvm_strip}", *(str(out / n) for n in names)]
    key = ctx.key(inputs.SELFTESTS, extra=(str(ctx.tools_key), *names))
    out.mkdir(parents=True, exist_ok=True)
    _keyed(ctx, "helpers", out=out, key=key, outputs=[out / n for n in names],
           log_name="build-helpers.log", build=lambda: _make(ctx, argv, "build-helpers.log"))
    return [(n, out / n) for n in names]


def sys_includes(clang_verbose: str) -> list[str]:
    """-idirafter flags for clang's host include dirs, from `clang -v -E -` output.

    BPF programs compiled with --target=bpf otherwise miss headers such as asm/types.h.
    """
    lines = clang_verbose.splitlines()
    try:
        start = next(i for i, x in enumerate(lines) if x.startswith("#include <...> search"))
    except StopIteration:
        return []
    flags: list[str] = []
    for line in lines[start + 1:]:
        if line.startswith("End of search list"):
            break
        flags += ["-idirafter", line.strip()]
    return flags


def tests_header(plan: Plan) -> str:
    """prog_tests/tests.h: one DEFINE_TEST per linked test function, sorted as upstream."""
    body = "".join(f"DEFINE_TEST({fn})\n" for fn in sorted(plan.functions))
    return "/* Generated by harness for a targeted test_progs */\n" + body


def write_if_changed(path: Path, text: str) -> None:
    """Write only when the content differs, so make does not rebuild for nothing."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@dataclass(frozen=True)
class MakeInputs:
    tree: Path
    out: Path
    tools: Tools
    vmlinux: Path
    toolchain: Toolchain
    arch: str
    sys_includes: tuple[str, ...]
    flavor: str = "test_progs"


def _skeleton_rule(skel: Skeleton) -> str:
    objs = " ".join(f"$(OUT)/{o}.bpf.o" for o in skel.objects)
    linked = f"$(OUT)/{skel.name}.{skel.kind}.linked.o"
    if skel.kind == "lskel":
        gen = f"$(BPFTOOL) gen skeleton -L {linked} name {skel.name}_lskel"
    elif skel.kind == "subskel":
        gen = f"$(BPFTOOL) gen subskeleton {linked} name {skel.name}"
    else:
        gen = f"$(BPFTOOL) gen skeleton {linked} name {skel.name}"
    return (
        f"$(OUT)/{skel.header}: {objs} $(BPFTOOL)\n"
        f"\t$(BPFTOOL) gen object {linked} {objs}\n"
        f"\t{gen} > $@.tmp && mv $@.tmp $@\n"
    )


FLAVOR_CFLAGS = {  # as the selftests Makefile's three runners compile their programs
    "test_progs": "-DENABLE_ATOMICS_TESTS -mcpu=v3",
    "test_progs-no_alu32": "-mcpu=v2",
    "test_progs-cpuv4": "-DENABLE_ATOMICS_TESTS -mcpu=v4",
}


def _header(m: MakeInputs) -> str:
    t = m.tree
    selftests = t / SELFTESTS
    return f"""# Generated by harness: a targeted test_progs build.  Do not edit.
TREE := {t}
SRC := {selftests}
OUT := {m.out}
BPFTOOL := {m.tools.bpftool}
LIBBPF_A := {m.tools.libbpf_a}
VMLINUX_BTF := {m.vmlinux}
CLANG := {m.toolchain.clang}
CC := {m.toolchain.cc}
BPF_CFLAGS := -g -Wall -Werror -D__TARGET_ARCH_{m.arch} -mlittle-endian \\
\t-I$(OUT) -I{m.tools.libbpf_include} -I$(SRC) -I$(TREE)/tools/include/uapi \\
\t-Wno-compare-distinct-pointer-types {' '.join(m.sys_includes)} \\
\t-O2 --target=bpf {FLAVOR_CFLAGS[m.flavor]}
CFLAGS := -g -O0 -rdynamic -Wall -Werror -fno-omit-frame-pointer \\
\t-I$(OUT) -I$(SRC) -I{m.tools.libbpf_include} -I$(TREE)/tools/lib \\
\t-I$(TREE)/tools/include -I$(TREE)/tools/arch/{m.arch}/include -I$(TREE)/tools/include/uapi
LDLIBS := -lelf -lz -lrt -lpthread

.DELETE_ON_ERROR:
"""


def render_makefile(m: MakeInputs, plan: Plan) -> str:
    """The whole generated Makefile for the plan (pure: tested without building)."""
    skels = " ".join(f"$(OUT)/{s.header}" for s in plan.skeletons)
    test_objs = " ".join(f"$(OUT)/{t.stem}.test.o" for t in plan.tests)
    extra_objs = " ".join(f"$(OUT)/{Path(s).stem}.o" for s in plan.extra_sources)
    runtime = " ".join(f"$(OUT)/{o}" for o in plan.runtime_objects)
    parts = [
        _header(m),
        f"all: $(OUT)/test_progs {runtime}\n",
        "$(OUT)/vmlinux.h: $(VMLINUX_BTF) $(BPFTOOL)\n"
        "\t$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@\n",
    ]
    for obj in plan.bpf_objects:
        extra = plan.prog_cflags.get(obj, "")
        parts.append(
            f"$(OUT)/{obj}.bpf.o: $(SRC)/progs/{obj}.c $(OUT)/vmlinux.h\n"
            f"\t$(CLANG) $(BPF_CFLAGS) {extra} -MMD -MP -MF $@.d -c $< -o $@\n"
        )
    parts += [_skeleton_rule(s) for s in plan.skeletons]
    parts.append(
        f"$(OUT)/%.test.o: $(SRC)/prog_tests/%.c $(OUT)/prog_tests/tests.h {skels}\n"
        "\t$(CC) $(CFLAGS) -MMD -MP -MF $@.d -c $< -o $@\n"
        "$(OUT)/%.o: $(SRC)/%.c $(OUT)/prog_tests/tests.h\n"
        "\t$(CC) $(CFLAGS) -MMD -MP -MF $@.d -c $< -o $@\n"
        f"$(OUT)/test_progs: {test_objs} {extra_objs} $(LIBBPF_A)\n"
        "\t$(CC) $(CFLAGS) $^ $(LDLIBS) -o $@\n"
        "-include $(wildcard $(OUT)/*.d)\n"
    )
    return "\n".join(parts)


def build_objects(ctx: BuildContext, plan: Plan, tools: Tools, kernel: Kernel) -> list[Path]:
    """Only the plan's BPF objects (no test_progs), with the same rules and flags."""
    out = ctx.selftests_dir(kernel)
    makefile = out / "objects.mk"
    write_if_changed(makefile, render_makefile(_inputs(ctx, out, tools, kernel), plan))
    targets = [out / f"{o}.bpf.o" for o in plan.bpf_objects]
    _make(ctx, ["-k", "-f", str(makefile), *map(str, targets)], "build-objects.log")
    return targets


def _inputs(ctx: BuildContext, out: Path, tools: Tools, kernel: Kernel,
            flavor: str = "test_progs") -> MakeInputs:
    clang_v = proc.capture([ctx.toolchain.clang, "-v", "-E", "-"], with_stderr=True)
    return MakeInputs(tree=ctx.tree, out=out, tools=tools, vmlinux=kernel.vmlinux,
                      toolchain=ctx.toolchain, arch="x86",
                      sys_includes=tuple(sys_includes(clang_v)), flavor=flavor)


def build_selftests(ctx: BuildContext, plan: Plan, tools: Tools, kernel: Kernel,
                    flavor: str = "test_progs") -> Selftests:
    """Generate the targeted Makefile and run it."""
    out = ctx.selftests_dir(kernel, flavor)
    header = tests_header(plan)
    write_if_changed(out / "prog_tests/tests.h", header)
    makefile = out / "targeted.mk"
    text = render_makefile(_inputs(ctx, out, tools, kernel, flavor), plan)
    write_if_changed(makefile, text)
    built = Selftests(test_progs=out / "test_progs",
                      runtime_objects=tuple(out / o for o in plan.runtime_objects))
    key = ctx.key(inputs.SELFTESTS, extra=(str(ctx.tools_key), header, text))
    _keyed(ctx, "test_progs", out=out, key=key,
           outputs=(built.test_progs, *built.runtime_objects), log_name="build-test_progs.log",
           build=lambda: _make(ctx, ["-f", str(makefile), "all"], "build-test_progs.log"))
    return built


