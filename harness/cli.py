"""Gate BPF patch series on the kernel's own BPF selftests, in a QEMU VM.

harness builds bpftool, libbpf, bpf_testmod and a test_progs that links only the selected
prog_tests from a Linux kernel tree, boots a VM on a matching kernel, runs the tests and
prints a verdict; report.json and junit.xml go to the run directory.  With --series it
compares the base tree with the base plus a patch series.  Exit codes are made for CI
and `git bisect run` (below).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeAlias

from harness import errors, gate, run
from harness.bisect import command as bisect_cmd
from harness.bisect import driver
from harness.boot import choice, kconfig, kernel
from harness.btf import verify
from harness.btf.shadow import Rules
from harness.build import targeted as build
from harness.config import (
    ACCELS,
    BUILD_PLACES,
    DEFAULTS,
    FLAKY_POLICIES,
    FLAVORS,
    ROOTS,
    RunConfig,
    Timeouts,
    Toolchain,
    VmSpec,
    default_cache,
)
from harness.container import command as image_cmd
from harness.container import inside, recipe, spec
from harness.host import cache as cache_mod
from harness.host import toolchain
from harness.host.cache import Cache
from harness.outcome import results
from harness.outcome.report import RunReport, Verdict, judge, plan_dict, plan_text
from harness.source import apply, series, tree


@dataclass(frozen=True)
class Exit:
    code: int
    meaning: str
    verdict: Verdict
    error: type[errors.HarnessError] | None = None


# The one table: verdict (and, for errors, the error's kind) → exit code.  An error takes
# the first row whose kind it is (ProcTimeout is a HarnessTimeout: 8).  README's table
# matches it (a test compares them).
EXITS: tuple[Exit, ...] = (
    Exit(0, "all selected tests passed", Verdict.PASS),
    Exit(1, "a test or subtest failed, or test_progs crashed mid-run; with `--series`, a "
            "regression or a failing new subtest; `shadow --verify`, a difference from "
            "bpftool", Verdict.FAIL),
    Exit(2, "usage error (bad option, options that do not go together, unreadable input "
            "file)", Verdict.ERROR, errors.UsageError),
    Exit(2, "", Verdict.ERROR, errors.ParseError),
    Exit(3, "not a kernel tree, bad `--rev`, or no kernel matching the tree", Verdict.ERROR,
         errors.TreeError),
    Exit(4, "a required program or package is missing, or older than the tree's kernel "
            "build needs (gcc, pahole: the message names it)", Verdict.ERROR,
         errors.ToolchainError),
    Exit(5, "`--tests` matched no prog_test in the tree, or test_progs ran no test",
         Verdict.ERROR, errors.SelectionError),
    Exit(6, "build failure (the kernel, bpftool, libbpf, bpf_testmod, test_progs: the "
            "message has the first compiler error)", Verdict.ERROR,
         errors.BuildError),
    Exit(18, "kernel panic (at boot or while the tests ran; the panic's report is in "
             "report.json's `splats`)", Verdict.ERROR, errors.KernelPanic),
    Exit(19, "VM lost: QEMU ended (killed from outside, or crashed) after the guest booted "
             "and before it wrote its exit status", Verdict.ERROR, errors.VmLost),
    Exit(21, "test_progs could not run in the guest (no result and no crash), or exited 3: "
             "its own setup failed", Verdict.ERROR, errors.GuestError),
    Exit(7, "the VM did not boot, or the guest could not mount its root filesystem",
         Verdict.ERROR, errors.BootError),
    Exit(8, "a build, the boot or the test run exceeded its time limit", Verdict.ERROR,
         errors.HarnessTimeout),
    Exit(9, "the series cannot be read (empty, not mail, corrupt diff, incomplete, msg-id "
            "offline)", Verdict.ERROR, errors.SeriesError),
    Exit(10, "a patch of the series does not apply to the tree", Verdict.ERROR,
         errors.ApplyError),
    Exit(11, "a BPF object cannot be read (not ELF, no `.BTF`, corrupt BTF: the message "
             "names the offset)", Verdict.ERROR, errors.BtfError),
    Exit(12, "dry run: nothing was built, applied or tested (never a pass)", Verdict.DRY_RUN),
    Exit(13, "a helper command (git, tar, dpkg-query, ...) failed; the message names it and "
             "its log", Verdict.ERROR, errors.ProcError),
    Exit(14, "kernel config: a requested option (`--kconfig`, kernel_configs/) is not in "
             "the tree's Kconfig, or olddefconfig dropped or changed it (the message names "
             "the unmet dependency)", Verdict.ERROR, errors.ConfigError),
    Exit(15, "missing test infrastructure: a test could not run because the guest lacked "
             "a BPF object, a command, a test module or the kernel config (the closed list "
             "in harness/outcome/infra.py), and no test failed otherwise", Verdict.ERROR,
         errors.InfraError),
    Exit(16, "bisect: an endpoint does not behave (the good one fails or the bad one passes "
             "the selected tests, or cannot be judged), or git refuses the range",
         Verdict.ERROR, errors.BisectRefused),
    Exit(17, "bisect: skipped commits leave several candidates for the first bad commit "
             "(listed)", Verdict.ERROR, errors.BisectAmbiguous),
    Exit(20, "kernel splat: every test passed, but the kernel reported a WARNING, BUG, "
             "oops, KASAN or UBSAN report, lockup, RCU stall, hung task or refcount_t error "
             "while they ran (`--allow-splat` waves known ones through)", Verdict.ERROR,
         errors.KernelSplat),
    Exit(22, "no space left on device (a build, a checkout, the run directory: the message "
             "names the directory and the space left)", Verdict.ERROR, errors.DiskFull),
    Exit(23, "no Docker engine is reachable (`--in-container`, `harness image`: the message "
             "says how to start one)", Verdict.ERROR, errors.EngineUnavailable),
    Exit(24, "the Docker engine failed what the harness asked (importing the image, a "
             "container that could not start): the message names it", Verdict.ERROR,
         errors.EngineError),
    Exit(70, "internal error (a bug in harness; `traceback.txt` in the run directory)",
         Verdict.ERROR, errors.InternalError),
    Exit(130, "aborted by Ctrl-C, SIGTERM or SIGHUP (children ended, report written with "
              "verdict `aborted`)", Verdict.ABORTED),
)
EXIT_PASS, EXIT_TEST_FAILURE, EXIT_USAGE, EXIT_BAD_TREE, EXIT_MISSING_TOOL = 0, 1, 2, 3, 4
EXIT_NO_TESTS, EXIT_BUILD, EXIT_BOOT, EXIT_TIMEOUT, EXIT_BAD_SERIES = 5, 6, 7, 8, 9
EXIT_APPLY, EXIT_BAD_OBJECT, EXIT_DRY_RUN, EXIT_COMMAND, EXIT_CONFIG = 10, 11, 12, 13, 14
EXIT_INFRA, EXIT_BISECT_REFUSED, EXIT_BISECT_AMBIGUOUS = 15, 16, 17
EXIT_PANIC, EXIT_VM_LOST, EXIT_SPLAT, EXIT_GUEST, EXIT_DISK_FULL = 18, 19, 20, 21, 22
EXIT_NO_ENGINE, EXIT_ENGINE = 23, 24
# `run --bisect`: what `git bisect run` understands (125 skip; 128 and up abort it).
GIT_BISECT = {driver.Outcome.PASS: (0, "good"), driver.Outcome.FAIL: (1, "bad"),
              driver.Outcome.SKIP: (125, "skip"), driver.Outcome.ABORT: (128, "abort")}
EXIT_GIT_ABORT = GIT_BISECT[driver.Outcome.ABORT][0]
EXIT_INTERNAL, EXIT_ABORTED = 70, 130


def exit_table() -> list[tuple[int, str]]:
    """(code, meaning) for the help text and README, one row per code."""
    return sorted((e.code, e.meaning) for e in EXITS if e.meaning)


EXIT_CODES_HELP = "exit codes:\n" + "\n".join(
    textwrap.fill(meaning.replace("`", ""), width=88, initial_indent=f"  {code:<5}",
                  subsequent_indent=" " * 7) for code, meaning in exit_table())


def code_for(error: BaseException) -> int:
    """The exit code of an error kind (the first matching row)."""
    for e in EXITS:
        if e.error is not None and isinstance(error, e.error):
            return e.code
    return EXIT_INTERNAL


def exit_code(verdict: Verdict, error: BaseException | None) -> int:
    if verdict is Verdict.ERROR:
        return code_for(error) if error is not None else EXIT_INTERNAL
    return next(e.code for e in EXITS if e.verdict is verdict and e.error is None)


# --- finishing a command: one place --------------------------------------------------


class Finishable(Protocol):
    verdict: Verdict
    error: errors.HarnessError | None
    exit_code: int | None
    run_dir: Path

    def as_dict(self) -> dict[str, Any]: ...

    def junit(self) -> ET.Element: ...

    def summary(self) -> str: ...

    def parts(self) -> Sequence[Finishable]: ...


def write_files(rep: Finishable) -> None:
    rep.run_dir.mkdir(parents=True, exist_ok=True)
    (rep.run_dir / "report.json").write_text(json.dumps(rep.as_dict(), indent=2) + "\n")
    doc = ET.ElementTree(rep.junit())
    ET.indent(doc)
    doc.write(rep.run_dir / "junit.xml", encoding="utf-8", xml_declaration=True)


def finish(rep: Finishable, as_json: bool) -> int:
    """Choose the exit code, write report.json and junit.xml, print; return the code."""
    rep.exit_code = exit_code(rep.verdict, rep.error)
    for part in rep.parts():  # the series gate's sides, each in its own directory
        part.exit_code = exit_code(part.verdict, part.error)
        write_files(part)
    write_files(rep)
    if as_json:
        print(json.dumps(rep.as_dict(), indent=2))
    print(rep.summary(), file=sys.stderr)  # its first line: the verdict and the error
    return rep.exit_code


# --- the parser ---------------------------------------------------------------------


def _default_out() -> Path:
    return Path("harness-runs") / f"{time.strftime('run-%Y%m%d-%H%M%S')}-{os.getpid()}"


# What a run writes into its directory: cleared when --out is reused, so nothing of an
# earlier run (its status channel above all) can be read as this run's.
RUN_FILES = ("report.json", "junit.xml", "traceback.txt", "console.log", "test_progs.log",
             "dmesg.log", "status", "commands.log", "initramfs.cpio.gz")
RUN_DIRS = ("base", "series", "patches")


def check_cache(cache: Path) -> None:
    """--cache (or HARNESS_CACHE) must be a directory, or not exist yet."""
    if cache.exists() and not cache.is_dir():
        raise errors.UsageError(f"--cache {cache}: not a directory; pass a directory for the "
                                f"harness cache (or unset HARNESS_CACHE)")


def prepare_run_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for name in RUN_DIRS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
    except OSError as exc:
        raise errors.UsageError(f"--out {out}: cannot use it as the run directory "
                                f"({exc.strerror}); pass a writable directory") from exc


def _tests(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("--tests needs at least one name")
    return names


Adder = Callable[..., argparse.Action]


def _common_tree(add: Adder, *, rev: bool = True, json: bool = True) -> None:
    """--tree, --rev, --cache, --out and --json, for the commands where they mean something."""
    add("--tree", type=Path, help="a kernel git tree (default: Debian's linux-source-6.12, "
        "unpacked once into the cache); never written to")
    if rev:
        add("--rev", help=f"commit of --tree to use (default {DEFAULTS.rev})")
    add("--cache", type=Path, help="where trees and builds are kept "
        "(default $HARNESS_CACHE or ~/.cache/harness)")
    add("--out", type=Path, help="run directory for logs and reports "
        "(default harness-runs/run-<time>)")
    if json:
        add("--json", action="store_true", help="print report.json (or the result) on stdout")


Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _command(sub: Subcommands, name: str, help_text: str,
             description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand whose help ends with the exit-code table."""
    return sub.add_parser(name, help=help_text, description=description or help_text,
                          epilog=EXIT_CODES_HELP, allow_abbrev=False,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _add_run(sub: Subcommands) -> None:
    p = _command(sub, "run", "build, boot and run the selected BPF selftests; print a verdict",
                 "Build bpftool, libbpf, bpf_testmod and a targeted test_progs from a kernel "
                 "tree, boot a QEMU VM and run the selected prog_tests.")
    add = p.add_argument
    _common_tree(add)
    add("--series", metavar="SRC", help="gate a series: apply it, run on the base and on "
        "base+series and compare (SRC: mbox, format-patch dir, BASE..TIP in --tree, msg-id)")
    _run_options(add)
    add("--list", action="store_true", help="print what the selection resolves to (tests, "
        "files, skeletons, objects, modules, helper files, denied) and exit; builds nothing")
    add("--dry-run", action="store_true", help="resolve the tree, kernel and tests (and the "
        "series' patches); print the plan and the QEMU command; build, apply and boot "
        f"nothing (exit {EXIT_DRY_RUN})")
    add("--bisect", action="store_true", help="exit codes for `git bisect run`: 0 good "
        "(pass), 1 bad (fail), 125 skip (the commit cannot be judged: build failure, no "
        "boot, infrastructure), 128 abort (usage or internal error); see README, Bisecting")
    _panic_option(add, "with --bisect: ")
    _container_option(add)


def _container_option(add: Adder) -> None:
    add("--in-container", action="store_true", help="run this command inside the hermetic "
        "image (built or reused first; see README, Hermetic image): its inputs read-only, "
        "the run directory written back, no network")


def in_container(args: argparse.Namespace) -> int:
    """The command, run inside the hermetic image instead of here.  A `run` that fails
    before its container does (no engine, the image's build, its inputs) still leaves
    its report in the run directory."""
    default_out = _default_out()
    try:
        return inside.execute([args.command, *args.argv], grammar(args),
                              default_out=default_out,
                              cache=Cache(Path(vars(args).get("cache") or default_cache())
                                          .resolve()),
                              accel=vars(args).get("accel"), progress=_progress)
    except errors.HarnessError as exc:
        if args.command != "run" or isinstance(exc, errors.UsageError):
            raise  # a bad --out among them: no report is written anywhere
        rep = RunReport(run_dir=Path(args.out or default_out).resolve())
        rep.broke(exc)
        prepare_run_dir(rep.run_dir)
        return finish(rep, args.json)


def grammar(args: argparse.Namespace, leading: int | None = None) -> spec.Grammar:
    """The parsed command's words (command, action) and the options that take a value;
    `leading` overrides how many words the command line starts with."""
    p: argparse.ArgumentParser = parser()
    words = [args.command] + ([args.action] if vars(args).get("action") else [])
    for word in words:
        p = next(a for a in p._actions
                 if isinstance(a, argparse._SubParsersAction)).choices[word]
    return spec.Grammar(leading=len(words) if leading is None else leading,
                        takes_value=frozenset(
        o for a in p._actions for o in a.option_strings if a.nargs != 0))


def _panic_option(add: Adder, when: str = "") -> None:
    add("--panic", choices=driver.PANIC_POLICIES, default="bad", help=f"{when}a kernel panic "
        "or hang while the tests run: bad (default: the regression a kernel bisect hunts) or "
        "skip")


def _run_options(add: Adder) -> None:
    """What a run tests and on what: the options `run` and `bisect` share."""
    add("--tests", type=_tests, help="what test_progs -t selects (substrings of test "
        "names, comma lists, test/subtest), or prog_tests file stems (the tests a file "
        f"defines); default {','.join(DEFAULTS.tests)}")
    add("--allow", action="append", metavar="GLOB|@FILE", help="test_progs -a: test or "
        "test/subtest globs, comma lists or a list file (one per line, # comments); "
        "repeatable")
    add("--deny", action="append", metavar="GLOB|@FILE", help="test_progs -d: the same, "
        "taken away (reported as denied); repeatable")
    add("--no-tree-denylist", action="store_true", help="do not honour the tree's "
        "selftests DENYLIST, DENYLIST.<arch> and DENYLIST-<major.minor>[.<arch>]")
    add("--flavor", choices=FLAVORS, help="the test runner, as the selftests Makefile "
        "builds it: BPF programs for -mcpu=v3 (test_progs, default), v2 (no_alu32) or v4 "
        "(cpuv4)")
    add("--rootfs", choices=ROOTS, help="the guest's root: a Debian root filesystem with "
        "what the selftests call (debian, default; built once and cached) or the bare "
        "busybox initramfs")
    add("--kernel", metavar="auto|prebuilt|build|IMAGE", help="the kernel to boot: auto "
        "(default: the installed Debian kernel when it is provably the tree's own, else "
        "built from the tree), prebuilt (the installed kernel, with a warning when that is "
        "not provably right), build (always from the tree), or an image file (with "
        "--headers)")
    add("--headers", type=Path, help="kbuild directory of --kernel IMAGE, with a BTF vmlinux")
    add("--kconfig", action="append", metavar="PROFILE|FILE", help="config of a kernel "
        f"built from the tree: a profile ({', '.join(kconfig.PROFILES)}) or a fragment "
        f"file; repeatable, merged in order (default {','.join(DEFAULTS.kconfig)})")
    add("--accel", choices=ACCELS, help="QEMU accelerator (default tcg; HARNESS_ACCEL=tcg "
        "forces TCG whatever is asked)")
    add("--clang", help=f"clang for BPF programs (default {DEFAULTS.toolchain.clang})")
    add("--memory", help=f"guest memory, in QEMU's -m syntax (default {DEFAULTS.vm.memory})")
    add("--cpus", type=int, help=f"guest CPUs (default {DEFAULTS.vm.cpus})")
    add("--append", action="append", default=[], metavar="ARG",
        help="extra guest kernel command-line argument (repeatable)")
    add("-j", "--jobs", type=int, help="parallel build jobs (default: the number of CPUs)")
    add("--boot-timeout", type=_seconds, metavar="SECONDS", help="the guest must reach its "
        f"/init within this (default {DEFAULTS.timeouts.boot:.0f})")
    add("--run-timeout", type=_seconds, metavar="SECONDS", help="the whole VM run, boot "
        f"included, must end within this (default {DEFAULTS.timeouts.run:.0f}): a hang")
    add("--retries", type=_count, metavar="N", help="rerun what failed up to N times in "
        "the same boot; a subtest that passes on a retry is `flaky` (default "
        f"{DEFAULTS.retries})")
    add("--flaky", choices=FLAKY_POLICIES, help="what a flaky subtest does to the verdict: "
        f"pass (default {DEFAULTS.flaky}: reported, not gating) or fail")
    add("--build-in", choices=BUILD_PLACES, help="where bpftool, libbpf, the test modules "
        "and test_progs are built: host (default) or guest (inside the VM, by the kernel "
        "under test, with the Debian toolchain root filesystem; see README, Builds inside "
        "the guest)")
    add("--build-timeout", type=_seconds, metavar="SECONDS", help="each build on the host, "
        f"or the whole build inside the guest, must end within this (default "
        f"{DEFAULTS.timeouts.build:.0f}): a hang")
    add("--guest-disk", type=_size, metavar="SIZE", help="the guest's build disk with "
        f"--build-in guest (sparse; K, M or G; default {DEFAULTS.guest_disk})")
    add("--allow-splat", action="append", type=_regex, metavar="REGEX", help="a kernel "
        "report whose title (the WARNING, BUG, ... line) matches is reported but does not "
        "fail the run "
        "(repeatable; see README, Kernel splats)")


def _size(value: str) -> str:
    if not re.fullmatch(r"[1-9][0-9]*[KMG]", value):
        raise argparse.ArgumentTypeError(f"{value!r}: a size such as 512M or 4G")
    return value


def _count(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of 0 or more")
    return int(value)


def _seconds(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        n = 0.0
    if not n > 0:
        raise argparse.ArgumentTypeError(f"{value!r}: a number of seconds above 0")
    return n


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: not a regular expression ({exc})"
                                         ) from None
    return value


def _add_bisect(sub: Subcommands) -> None:
    p = _command(sub, "bisect", "find the first commit where the selected tests fail (or "
                 "pass again)", "Bisect a tree's history with git bisect choosing the commits "
                 "and `harness run` judging each: good passes, bad fails, a commit that cannot "
                 "be judged is skipped.  Works in clones the harness owns.")
    add = p.add_argument
    _common_tree(add, rev=False, json=False)
    add("--good", "--old", dest="old", action="append", metavar="REV", help="a commit whose "
        "tests pass (with --find fix: still fail); repeatable")
    add("--bad", "--new", dest="new", metavar="REV", help="a commit whose tests fail (with "
        "--find fix: pass)")
    add("--find", choices=[f.value for f in driver.Find], default=driver.Find.REGRESSION.value,
        help="regression (default): the first failing commit; fix: the first commit that "
        "passes again (terms broken/fixed)")
    add("--repeat", type=_positive, default=1, metavar="N", help="run each commit N times; "
        "any failing run makes it fail (flakes count as failures)")
    _panic_option(add)
    add("--resume", type=Path, metavar="DIR", help="continue the interrupted bisection whose "
        "--out was DIR (its bisect.json); other options are taken from it")
    _run_options(add)
    _container_option(add)


def _positive(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: a whole number of 1 or more")
    return n


def _actions(p: argparse.ArgumentParser, *actions: tuple[str, str],
             ) -> list[argparse.ArgumentParser]:
    """A command's ACTION argument: one parser per (name, help)."""
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                           help=" or ".join(name for name, _ in actions))
    return [sub.add_parser(name, help=text) for name, text in actions]


def _add_series(sub: Subcommands) -> None:
    p = _command(sub, "series", "read or apply a patch series")
    show, check = _actions(p, ("show", "list what a series contains, with warnings"),
                           ("apply", "apply a series onto the tree in a harness-owned "
                            "worktree and report each patch"))
    for a in (show, check):
        a.add_argument("src", help="mbox, format-patch dir, BASE..TIP (in --tree) or msg-id")
        _common_tree(a.add_argument, rev=a is check)
        _container_option(a.add_argument)
    show.add_argument("--manifest", type=Path, help="compare with a patches/manifests file")


def _add_shadow(sub: Subcommands) -> None:
    p = _command(sub, "shadow", "emulate bpftool's struct_ops shadow types from BPF objects",
                 "Print the skeleton's `struct_ops` block for each object, computed from its "
                 "BTF alone; --verify compares with the real bpftool built from the tree and "
                 "compiles a size/offset check.")
    add = p.add_argument
    add("objects", nargs="+", type=Path, metavar="OBJ", help="BPF object files (.bpf.o)")
    add("--rules", choices=[r.value for r in Rules], default=Rules.MAINLINE.value,
        help="mainline (merged v6 and later) or v4 (the posted v4)")
    add("--skeleton-name", help="the skeleton name (default: from the file name)")
    add("--verify", action="store_true", help="compare with the real bpftool and compile a "
        "layout check")
    add("--bpftool", type=Path, help="bpftool to compare with (default: built from --tree "
        "or the default tree)")
    add("--clang", help=f"clang for the layout check (default {DEFAULTS.toolchain.clang})")
    _common_tree(add, json=False)
    _container_option(add)


def _add_parse(sub: Subcommands) -> None:
    p = _command(sub, "parse", "parse a saved test_progs log and print the verdict")
    p.add_argument("log", type=Path, help="a test_progs.log from a run directory")
    p.add_argument("--exit-status", type=int, default=0,
                   help="test_progs's exit status, when known (default 0)")


def _add_kconfig(sub: Subcommands) -> None:
    p = _command(sub, "kconfig", "check a kernel config against config profiles and fragments",
                 "Profiles: struct_ops (what `run` checks a prebuilt kernel against), minimal "
                 "(boots under the harness's QEMU, plus struct_ops), selftests (minimal plus "
                 "the tree's own selftests configs).")
    [check] = _actions(p, ("check", "print the options a kernel config lacks (exit 1 when "
                           "any is missing)"))
    add = check.add_argument
    add("--kernel-config", type=Path, help="the config to check (default: the .config of "
        "the prebuilt kernel `run` boots for the default tree)")
    add("--kconfig", action="append", metavar="PROFILE|FILE", help="a profile "
        f"({', '.join(kconfig.PROFILES)}) or a fragment file; repeatable, merged in order; "
        "default struct_ops")
    _common_tree(add)


def _add_cache(sub: Subcommands) -> None:
    p = _command(sub, "cache", "show or free what the cache holds (trees, builds, kernel "
                 "build workspaces of several GB each, ccache)")
    show, free = _actions(p, ("show", "list the cache's entries with their size"),
                          ("prune", "delete entries no running harness uses (default: "
                           "everything but the imported and cloned trees)"))
    for a in (show, free):
        a.add_argument("--cache", type=Path, help="the cache (default $HARNESS_CACHE or "
                       "~/.cache/harness)")
        a.add_argument("--json", action="store_true", help="print the entries as JSON")
    free.add_argument("--kind", action="append", choices=cache_mod.KINDS,
                      help="only entries of this kind (repeatable)")
    free.add_argument("--all", action="store_true", help="trees too (they are imported "
                      "or cloned again on next use)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__, epilog=EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(sub)
    _add_bisect(sub)
    _add_series(sub)
    _add_shadow(sub)
    _add_parse(sub)
    _add_kconfig(sub)
    _add_cache(sub)
    image_cmd.register(_command(sub, "image", "build, show, prune, save or load the hermetic "
                                "image (Docker engine, local only)", image_cmd.__doc__))
    return p


def _given(**values: Any) -> dict[str, Any]:
    """Only the options the user gave: everything else keeps config.py's default."""
    return {k: v for k, v in values.items() if v is not None}


def _kernel_options(value: str | None) -> dict[str, Any]:
    """--kernel auto|prebuilt|build, or an image path (mode "image")."""
    if value is None:
        return {}
    if value in choice.MODES:
        return {"kernel_mode": value}
    return {"kernel_mode": "image", "kernel": Path(value)}


def run_config(args: argparse.Namespace) -> RunConfig:
    """The frozen config from the command line; defaults live in config.py alone."""
    get = vars(args).get
    vm = VmSpec(**_given(accel=get("accel"), memory=get("memory"), cpus=get("cpus"),
                         kernel_args=tuple(get("append") or ()) or None))
    return RunConfig(
        out=(get("out") or _default_out()).resolve(),
        cache=(get("cache") or default_cache()).resolve(),
        vm=vm, toolchain=Toolchain(**_given(clang=get("clang"))),
        timeouts=Timeouts(**_given(boot=get("boot_timeout"), run=get("run_timeout"),
                                   build=get("build_timeout"))),
        **_kernel_options(get("kernel")),
        **_given(tree=get("tree"), rev=get("rev"), tests=get("tests"), headers=get("headers"),
                 kconfig=tuple(get("kconfig") or ()) or None, jobs=get("jobs"),
                 dry_run=get("dry_run"), allow=tuple(get("allow") or ()) or None,
                 deny=tuple(get("deny") or ()) or None, flavor=get("flavor"),
                 root=get("rootfs"), allow_splats=tuple(get("allow_splat") or ()) or None,
                 retries=get("retries"), flaky=get("flaky"), build_in=get("build_in"),
                 guest_disk=get("guest_disk"),
                 tree_denylist=False if get("no_tree_denylist") else None),
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the commands -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    cfg = run_config(args)
    prepare_run_dir(cfg.out)
    if args.bisect and (args.series or args.dry_run or args.list):
        raise errors.UsageError("--bisect judges one commit of one tree; it does not go with "
                                "--series, --dry-run or --list")
    if args.list:
        if args.series:
            raise errors.UsageError("--list resolves the selection on the tree alone; it does "
                                    "not apply --series (drop one of them)")
        plan = run.list_plan(cfg, _progress)
        print(json.dumps(plan_dict(plan), indent=2) if args.json else plan_text(plan))
        return EXIT_PASS
    if args.series:
        return finish(gate.execute(cfg, args.series, _progress), args.json)
    rep = run.execute(cfg, _progress)
    code = finish(rep, args.json)
    if not args.bisect:
        return code
    bisect_code, word = GIT_BISECT[driver.classify(rep.verdict, rep.error, args.panic)]
    if rep.verdict is Verdict.ABORTED:
        bisect_code = EXIT_ABORTED
    print(f"harness: for git bisect: {word} (exit {bisect_code})", file=sys.stderr)
    return bisect_code


def _write_run(rep: RunReport) -> int:
    """A bisection step's run: its report files, no printing; its exit code."""
    rep.exit_code = exit_code(rep.verdict, rep.error)
    write_files(rep)
    return rep.exit_code


def bisect_argv(args: argparse.Namespace, cwd: Path, env: Mapping[str, str]) -> list[str]:
    """The command line bisect.json keeps for --resume: its paths absolute, so that a
    bisection resumed from elsewhere reads the same files; in the hermetic image, without
    the volume's --cache (resumed on the host, it takes the host's)."""
    drop = frozenset({"--cache"}) if env.get(recipe.IMAGE_ENV) else frozenset()
    return spec.absolute(getattr(args, "argv", []), cwd, grammar(args, leading=0), drop=drop)


def cmd_bisect(args: argparse.Namespace) -> int:
    argv = bisect_argv(args, Path.cwd(), os.environ)
    prior: list[driver.Step] = []
    if args.resume is not None:
        logged = bisect_cmd.load_steps(args.resume)
        argv, prior = logged.argv, logged.steps
        # this invocation's --cache, if any, over the logged one (the volume's, in the image)
        cache = ["--cache", str(args.cache)] if args.cache else []
        args = parser().parse_args(["bisect", *argv, "--out", str(args.resume), *cache])
        args.old, args.new = list(logged.old) or args.old, logged.new or args.new
    if not args.old or not args.new:
        raise errors.UsageError("bisect needs --good REV and --bad REV (or --resume DIR)")
    cfg = run_config(args)
    if not prior:
        shutil.rmtree(cfg.out / "steps", ignore_errors=True)
    bc = bisect_cmd.BisectConfig(run=cfg, old=tuple(args.old), new=args.new,
                                 find=driver.Find(args.find), repeat=args.repeat,
                                 panic=args.panic, argv=tuple(argv))
    summary = bisect_cmd.execute(bc, _progress, _write_run, prior)
    print(bisect_cmd.report(summary))
    return EXIT_PASS


def cmd_parse(args: argparse.Namespace) -> int:
    if why := errors.unreadable(args.log):
        raise errors.ParseError(f"{args.log}: {why}; pass a test_progs.log")
    try:
        text = args.log.read_text(errors="replace")
    except OSError as exc:
        raise errors.ParseError(f"{args.log}: cannot read ({exc.strerror})") from exc
    judged = judge(results.parse_retried(text.splitlines()), args.exit_status)
    for r in judged.subtests:
        print(f"{r.status.value:4} {r.name}")
    print(f"{judged.verdict}: {judged.reason}")
    return exit_code(judged.verdict, judged.error)


def _show_apply(applied: apply.Applied) -> str:
    lines = []
    for r in applied.results:
        lines.append(f"[{r.label}] {r.outcome.value}: {r.subject}")
        for f in r.files:
            if f.rejected_hunks or f.errors:
                lines.append(f"    {f.path}: {apply.describe_failure(f)}")
        if r.present_share is not None:
            lines.append(f"    {r.present_share:.0%} of its added lines are already in the tree"
                         + (" (looks already applied)" if r.looks_present else ""))
    return "\n".join(lines)


def cmd_series(args: argparse.Namespace) -> int:
    cfg = run_config(args)
    loaded = series.load(args.src, args.tree, cfg.out)
    if args.action == "show":
        if args.manifest:
            loaded.warnings += [f"manifest: {p}" for p in series.check_manifest(
                loaded, series.load_manifest(args.manifest))]
        print(json.dumps(loaded.as_dict(), indent=2) if args.json else series.show(loaded))
        return EXIT_PASS
    series.require_complete(loaded)
    src = tree.resolve(cfg.tree, cfg.rev, cfg.out)
    with Cache(cfg.cache).lock(f"{src.key}-series"):
        applied = gate.apply_onto(cfg, src, loaded, _progress)
    if args.json:
        print(json.dumps([r.as_dict() for r in applied.results], indent=2))
    else:
        print(_show_apply(applied))
    return EXIT_APPLY if applied.conflicts else EXIT_PASS


def _bpftool_from_tree(cfg: RunConfig) -> Path:
    cache = Cache(cfg.cache)
    src = tree.resolve(cfg.tree, cfg.rev, cfg.out)
    versions = toolchain.versions(cfg.toolchain)
    with cache.lock(src.key, _progress):
        t = tree.checkout(src, cache, cfg.out)
        ctx = build.BuildContext(tree=t.path, tree_key=t.key, cache=cache, log_dir=cfg.out,
                                 toolchain=cfg.toolchain, jobs=cfg.jobs,
                                 timeout=cfg.timeouts.build, versions=versions)
        return build.build_tools(ctx).bpftool


def cmd_shadow(args: argparse.Namespace) -> int:
    rules = Rules(args.rules)
    if not args.verify:
        for obj in args.objects:
            em = verify.emulate(obj, rules, args.skeleton_name)
            if len(args.objects) > 1:
                print(f"/* {obj} */")
            print(em.block, end="")
        return EXIT_PASS
    cfg = run_config(args)
    bpftool = args.bpftool or _bpftool_from_tree(cfg)
    failed = 0
    for obj in args.objects:
        v = verify.verify(bpftool, obj, rules, clang=cfg.toolchain.clang,
                          log_dir=cfg.out / "shadow", name=args.skeleton_name)
        state = "identical" if v.identical else "DIFFERS from bpftool"
        layout = "layout ok" if v.layout_ok else f"LAYOUT MISMATCH (log: {v.layout_log})"
        print(f"{obj}: {state}, {layout}")
        if v.diff:
            print(v.diff, end="")
        failed += not v.ok
    print(f"{len(args.objects) - failed} passed, {failed} failed")
    return EXIT_TEST_FAILURE if failed else EXIT_PASS


def _prebuilt_config() -> Path:
    """The .config of the prebuilt kernel that matches Debian's linux-source."""
    upstream = tree.debian_source_version().split("-", 1)[0].split("+", 1)[0]
    return kernel.find_prebuilt(upstream).headers / ".config"


def cmd_kconfig(args: argparse.Namespace) -> int:
    specs = args.kconfig or ["struct_ops"]
    tree_path = None
    if "selftests" in specs:
        cache = Cache((args.cache or default_cache()).resolve())
        logs = args.out or cache.logs()
        tree_path = tree.select(args.tree, args.rev or DEFAULTS.rev, cache, logs).path
    config = args.kernel_config or _prebuilt_config()
    if why := errors.unreadable(config):
        raise errors.UsageError(f"--kernel-config {config}: {why}; pass a kernel .config")
    try:
        actual = kconfig.parse(config.read_text(errors="replace"))
    except OSError as exc:
        raise errors.UsageError(f"--kernel-config {config}: cannot read ({exc.strerror})"
                                ) from exc
    wanted, notes = kconfig.merge(kconfig.fragments(specs, tree_path))
    unmet = kconfig.check(wanted, actual)
    if args.json:
        print(json.dumps({"config": str(config), "profiles": specs, "wanted": len(wanted),
                          "overrides": notes, "unmet": [vars(u) for u in unmet]}, indent=2))
    else:
        print(f"{config}: {len(wanted) - len(unmet)} of {len(wanted)} options as "
              f"{' + '.join(specs)} asks")
        print("\n".join([f"  override: {n}" for n in notes] +
                        [f"  missing: {u.line()}" for u in unmet]) or "  nothing missing")
    return EXIT_TEST_FAILURE if unmet else EXIT_PASS


def _mib(kib: int) -> str:
    return f"{kib / 1024:9.1f} MiB"


def cmd_cache(args: argparse.Namespace) -> int:
    cache = Cache((args.cache or default_cache()).resolve())
    if args.action == "show":
        rows = [(e, cache_mod.size_kib(e.path)) for e in cache.entries()]
        if args.json:
            print(json.dumps([{"kind": e.kind, "path": str(e.path), "kib": k}
                              for e, k in rows], indent=2))
            return EXIT_PASS
        for e, kib in rows:
            print(f"{_mib(kib)}  {e.kind:16} {e.path}")
        print(f"{_mib(sum(k for _, k in rows))}  in all, under {cache.root}")
        return EXIT_PASS
    kinds = args.kind or [k for k in cache_mod.KINDS if args.all or k != "tree"]
    pruned = cache_mod.prune(cache, kinds)
    if args.json:
        print(json.dumps([{"kind": p.entry.kind, "path": str(p.entry.path), "kib": p.kib,
                           "removed": p.removed} for p in pruned], indent=2))
        return EXIT_PASS
    for p in pruned:
        print(f"{_mib(p.kib)}  {'freed' if p.removed else 'in use, kept':12} {p.entry.path}")
    print(f"{_mib(sum(p.kib for p in pruned if p.removed))}  freed")
    return EXIT_PASS


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "bisect": cmd_bisect, "series": cmd_series, "shadow": cmd_shadow,
    "parse": cmd_parse, "kconfig": cmd_kconfig, "cache": cmd_cache,
    "image": image_cmd.cmd_image}


def _raise_aborted(signum: int, _frame: FrameType | None) -> None:
    raise errors.Aborted(signum)


ABORT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_abort() -> Iterator[None]:
    """SIGTERM and SIGHUP end a command like Ctrl-C does: children ended, aborted report."""
    try:
        previous = {s: signal.signal(s, _raise_aborted) for s in ABORT_SIGNALS}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _where_to_dump(args: argparse.Namespace) -> Path:
    out = vars(args).get("out")
    if out is not None:
        return Path(out)
    try:
        return Cache(Path(vars(args).get("cache") or default_cache())).logs()
    except OSError:
        return Path(tempfile.gettempdir())


def _dispatch(args: argparse.Namespace) -> int:
    if vars(args).get("in_container"):
        return in_container(args)
    return HANDLERS[args.command](args)


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(given)
    except SystemExit as exc:  # argparse's usage error: for git bisect run, an abort
        if exc.code == EXIT_USAGE and "--bisect" in given:
            return EXIT_GIT_ABORT
        raise
    args.argv = given[1:]  # what followed the command (bisect keeps it for --resume)
    with _signals_abort():
        try:
            check_cache(Path(vars(args).get("cache") or default_cache()))
            return _dispatch(args)
        except errors.HarnessError as exc:
            print(f"harness: error: {exc.line()}", file=sys.stderr)
            if vars(args).get("bisect"):  # for git bisect run: abort, never "bad"
                return EXIT_GIT_ABORT
            return code_for(exc)
        except KeyboardInterrupt:
            print("harness: aborted", file=sys.stderr)
            return EXIT_ABORTED
        except Exception as exc:  # a bug: the traceback is kept, the exit code says so
            error = errors.internal_error(exc, _where_to_dump(args))
            print(f"harness: error: {error.line()}", file=sys.stderr)
            return EXIT_GIT_ABORT if vars(args).get("bisect") else EXIT_INTERNAL


def main_entry() -> None:
    sys.exit(main())
