"""Benchmark: targeted vs full selftests build, and cold vs warm gate runs, side by side.

A standalone script, not a pytest test.  Run it from the project root (about 10 minutes
on a 2-core machine; the full upstream build dominates):

    export HARNESS_ACCEL=tcg
    python3 tests/bench/bench_build.py                 # both parts
    python3 tests/bench/bench_build.py --skip-gate     # builds only
    python3 tests/bench/bench_build.py --skip-full     # gate runs only
    python3 tests/bench/bench_build.py --work /var/tmp/bench --keep   # keep scratch files

Part 1 compares, on a scratch `git clone --shared` of the harness's cached Debian tree (the
cache is never written), a cold targeted build made by the harness's own build functions
(bpftool + libbpf + bpf_testmod + targeted test_progs) with the upstream
`make -C tools/testing/selftests/bpf test_progs`.  Both use the same clang and -j.  Test
files that include a skeleton whose BPF program is missing from the tree (a stable backport
such as prog_tests/bpf_attr_size.c on 6.12.117) are deleted from the scratch clone first, so
that the upstream build can succeed; the script prints which and why.

Part 2 times `harness run` twice with a fresh empty cache: cold (including the import of the
Debian source tarball into the cache) and warm (same cache again).

Before anything is timed, the programs the upstream build runs and `harness.bootstrap` does
not install (rsync, ...; see PREREQUISITES) are checked, and the missing Debian packages
installed through apt (as root).

Exit status: 0 when every measured step succeeded, 1 when a build or gate run failed or a
prerequisite could not be installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import bootstrap
from harness.boot import kernel
from harness.build import discover, select
from harness.build import targeted as build
from harness.config import Toolchain, default_cache
from harness.errors import BuildError, HarnessError
from harness.host import proc
from harness.host.cache import Cache
from harness.source import tree

TESTS = ("test_struct_ops_module",)
BUILD_TIMEOUT = 4 * 3600.0
GATE_TIMEOUT = 3600.0
TARGET_RATIO = 10.0
WARM_LIMIT = 30.0
TAIL_LINES = 40
LOAD_WARNING = 0.5
CLEANUP_TRIES = 24
ERROR_RE = re.compile(r"\berror:|\*\*\*")


class BenchError(Exception):
    """A measured step failed; the message says which and shows the failing output."""


@dataclass(frozen=True)
class Prerequisite:
    """A program the upstream build runs, and the Debian 12 package that provides it."""

    command: str
    package: str
    why: str


# What `make -C tools/testing/selftests/bpf test_progs` (Linux 6.12) runs beyond
# harness.bootstrap.PACKAGES.  Its other tools come from Essential packages (coreutils, sed,
# grep, diffutils' diff and cmp) or from PACKAGES (make, gcc, clang, pahole, libssl-dev...).
# llvm-config is left out on purpose: without it (or without LLVM's static libraries) the
# JIT disassembler is simply not built, and adding it would change what is measured.
PREREQUISITES = (
    Prerequisite("rsync", "rsync", "copies TRUNNER_EXTRA_FILES next to test_progs "
                 "(`rsync -aq`; without it: make error 127)"),
    Prerequisite("pkg-config", "pkgconf", "libelf, libcrypto and libpcap flags "
                 "(falls back to -lelf/-lcrypto, but is what the Makefile asks first)"),
    Prerequisite("awk", "mawk", "system include paths for the BPF programs "
                 "(get_sys_includes)"),
)


@dataclass(frozen=True)
class Options:
    work: Path | None
    keep: bool
    skip_full: bool
    skip_gate: bool
    jobs: int
    clang: str
    cache: Path


@dataclass
class Figures:
    """Rows of the final table: (label, value), in the order they were measured."""

    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.rows.append((label, value))
        say(f"  {label}: {value}")


@dataclass(frozen=True)
class Removed:
    path: Path
    reason: str


def say(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="scratch space (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch files at the end")
    p.add_argument("--skip-full", action="store_true", help="skip part 1 (the two builds)")
    p.add_argument("--skip-gate", action="store_true", help="skip part 2 (the gate runs)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel jobs for every build (default: number of CPUs)")
    p.add_argument("--clang", default="clang-19", help="clang for every build")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="harness cache holding the Debian tree (default: harness's own)")
    a = p.parse_args(argv)
    return Options(work=a.work, keep=a.keep, skip_full=a.skip_full, skip_gate=a.skip_gate,
                   jobs=a.jobs, clang=a.clang, cache=a.cache.resolve())


def ratio(slow: float, fast: float) -> str:
    return f"{slow / fast:.1f}x" if fast > 0 else "n/a"


def failure_excerpt(log: Path) -> str:
    """The first error lines and the tail of a failed step's log."""
    lines = log.read_text(errors="replace").splitlines()
    errors = [x for x in lines if ERROR_RE.search(x)][:10]
    head = ["first error lines:", *errors, "---- tail:"] if errors else []
    return "\n".join([*head, *lines[-TAIL_LINES:]])


def timed_run(argv: list[str], log: Path, env: dict[str, str] | None = None) -> float:
    """Run argv with its output in `log`; seconds taken, or BenchError with the failure."""
    say(f"$ {' '.join(argv)}  > {log}")
    start = time.monotonic()
    try:
        proc.run(argv, log=log, timeout=BUILD_TIMEOUT, env=env)
    except proc.ProcError as exc:
        raise BenchError(f"{argv[0]} exited with status {exc.returncode} "
                         f"(log {log})\n{failure_excerpt(log)}") from exc
    return time.monotonic() - start


# ---------------------------------------------------------------------- prerequisites


def command_found(command: str) -> bool:
    return shutil.which(command) is not None


def missing_packages(prerequisites: Sequence[Prerequisite],
                     installed: Callable[[str], bool] = command_found) -> list[str]:
    """The packages to install: those providing a command `installed` does not find."""
    packages = [p.package for p in prerequisites if not installed(p.command)]
    return list(dict.fromkeys(packages))


def ensure_prerequisites(prerequisites: Sequence[Prerequisite] = PREREQUISITES,
                         installed: Callable[[str], bool] = command_found) -> None:
    """Install what the upstream build needs (apt, as root), or BenchError naming it."""
    packages = missing_packages(prerequisites, installed)
    if not packages:
        return
    for p in prerequisites:
        if not installed(p.command):
            say(f"missing {p.command} (package {p.package}): {p.why}")
    try:
        bootstrap.ensure_packages(packages)
    except (HarnessError, OSError) as exc:
        detail = exc.line() if isinstance(exc, HarnessError) else str(exc)
        raise BenchError(f"cannot install {' '.join(packages)}: {detail}") from exc
    still = [p.command for p in prerequisites if not installed(p.command)]
    if still:
        raise BenchError(f"still not on PATH after installing {' '.join(packages)}: "
                         f"{' '.join(still)}")


# ---------------------------------------------------------------------- part 1: builds


def scratch_clone(source: Path, dest: Path, log: Path) -> None:
    """A working copy that borrows the cached tree's objects and never writes to it."""
    timed_run(["git", "clone", "-q", "--shared", str(source), str(dest)], log)


def broken_skeleton(root: Path, source: str, deps: dict[str, tuple[str, ...]]) -> str | None:
    """Why a prog_test cannot build: a skeleton whose BPF source is not in the tree."""
    for skel in discover.skeletons(source, deps):
        missing = [o for o in skel.objects if not (root / "progs" / f"{o}.c").is_file()]
        if missing:
            linked = " (linked skeleton)" if skel.name in deps else ""
            return (f"includes {skel.header}{linked} but "
                    f"{', '.join(f'progs/{o}.c' for o in missing)} is not in the tree")
    return None


def remove_broken_tests(tree_path: Path) -> list[Removed]:
    """Delete every prog_tests/*.c that includes a skeleton with no BPF program behind it."""
    root = tree_path / discover.SELFTESTS
    deps = discover.linked_deps((root / "Makefile").read_text())
    removed: list[Removed] = []
    for path in sorted((root / "prog_tests").glob("*.c")):
        reason = broken_skeleton(root, path.read_text(errors="replace"), deps)
        if reason is not None:
            path.unlink()
            removed.append(Removed(path.relative_to(tree_path), reason))
    return removed


def targeted_build(tree_path: Path, k: kernel.Kernel, opts: Options, work: Path) -> float:
    """Cold harness build (fresh build dir): bpftool, libbpf, bpf_testmod, test_progs."""
    build_dir = work / "targeted-build"
    ctx = build.BuildContext(tree=tree_path, tree_key="bench", cache=Cache(build_dir),
                             log_dir=work / "targeted-logs",
                             toolchain=Toolchain(clang=opts.clang), jobs=opts.jobs,
                             timeout=BUILD_TIMEOUT)
    say(f"targeted build of {', '.join(TESTS)} into {build_dir} (-j{opts.jobs})")
    start = time.monotonic()
    try:
        plan = discover.load_plan(tree_path, select.Request(tests=TESTS))
        tools = build.build_tools(ctx)
        t_tools = time.monotonic()
        build.build_testmod(ctx, k)
        t_mod = time.monotonic()
        selftests = build.build_selftests(ctx, plan, tools, k)
    except BuildError as exc:
        raise BenchError(f"targeted build failed: {exc.line()}") from exc
    end = time.monotonic()
    seconds = end - start
    say(f"  bpftool+libbpf {t_tools - start:.1f} s, bpf_testmod {t_mod - t_tools:.1f} s, "
        f"test_progs {end - t_mod:.1f} s")
    if not selftests.test_progs.is_file():
        raise BenchError(f"targeted build produced no {selftests.test_progs}")
    return seconds


def full_build_argv(tree_path: Path, k: kernel.Kernel, opts: Options, out: Path) -> list[str]:
    suffix = Toolchain(clang=opts.clang).llvm_suffix
    return [
        "make", "-C", str(tree_path / discover.SELFTESTS), f"-j{opts.jobs}", "test_progs",
        f"CLANG={opts.clang}", f"LLC=llc{suffix}", f"LLVM_STRIP=llvm-strip{suffix}",
        f"VMLINUX_BTF=/usr/src/linux-headers-{k.release}/vmlinux",
        f"KDIR=/lib/modules/{k.release}/build", f"OUTPUT={out}",
    ]


def full_build(tree_path: Path, k: kernel.Kernel, opts: Options, work: Path) -> float:
    """The upstream selftests Makefile's test_progs, into a fresh OUTPUT directory."""
    out = work / "full-build"
    out.mkdir()
    seconds = timed_run(full_build_argv(tree_path, k, opts, out), work / "full-build.log")
    if not (out / "test_progs").is_file():
        raise BenchError(f"full build produced no {out / 'test_progs'}")
    return seconds


def prepare_tree(opts: Options, work: Path) -> tuple[Path, kernel.Kernel, list[Removed]]:
    """Scratch clone of the cached Debian tree, made buildable upstream; and its kernel."""
    logs = work / "prepare-logs"
    logs.mkdir()
    cached = tree.default_tree(Cache(opts.cache), logs)
    k = kernel.find_prebuilt(cached.version)
    say(f"tree {cached.path} (Linux {cached.version}, {cached.commit[:12]}); "
        f"kernel {k.release}")
    scratch = work / "tree"
    scratch_clone(cached.path, scratch, logs / "clone.log")
    removed = remove_broken_tests(scratch)
    say(f"removed {len(removed)} prog_tests file(s) from the scratch clone:")
    for r in removed:
        say(f"  {r.path}: {r.reason}")
    if not removed:
        say("  (none)")
    # Write the fresh checkout back now, so its writeback is not charged to the first build.
    timed_run(["sync"], logs / "sync.log")
    return scratch, k, removed


def bench_builds(opts: Options, work: Path, figures: Figures) -> None:
    say("== part 1: targeted vs full build (cold, same tree, "
        f"-j{opts.jobs}, {opts.clang})")
    scratch, k, removed = prepare_tree(opts, work)
    figures.add("files removed", ", ".join(r.path.name for r in removed) or "none")
    targeted = targeted_build(scratch, k, opts, work)
    figures.add("targeted build (cold)", f"{targeted:.1f} s")
    full = full_build(scratch, k, opts, work)
    figures.add("full upstream build", f"{full:.1f} s")
    verdict = "yes" if full / targeted >= TARGET_RATIO else "NO"
    figures.add("ratio full/targeted", f"{ratio(full, targeted)} (>= {TARGET_RATIO:.0f}x: "
                f"{verdict})")


# ---------------------------------------------------------------------- part 2: gate


def gate_argv(opts: Options, out: Path, cache: Path) -> list[str]:
    beside = Path(sys.executable).parent / "harness"  # the venv running this script
    harness = str(beside) if beside.is_file() else shutil.which("harness")
    if harness is None:
        raise BenchError("`harness` is not on PATH: run `pip install -e .` in the project")
    return [harness, "run", "--out", str(out), "--cache", str(cache), "-j", str(opts.jobs),
            "--clang", opts.clang]


def run_summary(out: Path) -> str:
    """Verdict, accelerator and stage times ('tree 31.2, ...') from the run's report.json."""
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return "no report.json"
    stages = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in report.get("stages", []))
    accel = report.get("accelerator", {}).get("name", "?")
    return f"{report.get('verdict')} ({report.get('reason')}), accel {accel}; stages (s): {stages}"


def gate_run(opts: Options, out: Path, cache: Path) -> float:
    env = {**os.environ, "HARNESS_ACCEL": "tcg"}
    seconds = timed_run(gate_argv(opts, out, cache), out.with_suffix(".log"), env)
    say(f"  {run_summary(out)}")
    return seconds


def bench_gate(opts: Options, work: Path, figures: Figures) -> None:
    say("== part 2: gate run, cold (fresh cache) then warm (same cache), HARNESS_ACCEL=tcg")
    cache = work / "gate-cache"
    cache.mkdir()
    cold = gate_run(opts, work / "gate-cold", cache)
    figures.add("gate cold", f"{cold:.1f} s")
    warm = gate_run(opts, work / "gate-warm", cache)
    figures.add("gate warm", f"{warm:.1f} s")
    figures.add("ratio cold/warm", ratio(cold, warm))
    figures.add(f"warm <= {WARM_LIMIT:.0f} s", "yes" if warm <= WARM_LIMIT else "NO")


# ---------------------------------------------------------------------- driver


def print_table(figures: Figures) -> None:
    if not figures.rows:
        return
    width = max(len(label) for label, _ in figures.rows)
    say("\n== summary")
    for label, value in figures.rows:
        say(f"{label:<{width}}  {value}")


def make_work(opts: Options) -> Path:
    """A fresh directory of our own (inside --work if given), so cleanup removes only it."""
    if opts.work is not None:
        opts.work.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="bench-build-", dir=opts.work)).resolve()


def remove(work: Path) -> None:
    """Delete the scratch space, waiting out writers that outlive the gate runs.

    git's detached auto-gc, started by the tree import's commit, can still be repacking the
    gate cache's repository after `harness run` has exited.
    """
    for _ in range(CLEANUP_TRIES):
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            return
        time.sleep(5)
    say(f"warning: could not remove all of {work}")


def run_parts(opts: Options, work: Path, figures: Figures) -> None:
    if not opts.skip_full:
        bench_builds(opts, work, figures)
    if not opts.skip_gate:
        bench_gate(opts, work, figures)


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if not opts.skip_full:
        try:
            ensure_prerequisites()
        except BenchError as exc:
            say(f"FAILED: {exc}")
            return 1
    work = make_work(opts)
    say(f"scratch space: {work}")
    load = os.getloadavg()[0]
    if load > LOAD_WARNING:
        say(f"warning: load average is {load:.1f} before starting; timings will be noisy")
    figures = Figures()
    status = 0
    try:
        run_parts(opts, work, figures)
    except (BenchError, HarnessError, OSError, subprocess.SubprocessError) as exc:
        say(f"\nFAILED: {exc}")
        status = 1
    finally:
        print_table(figures)
        if opts.keep:
            say(f"kept {work}")
        else:
            remove(work)
    return status


if __name__ == "__main__":
    sys.exit(main())
