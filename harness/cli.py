"""Command line: subcommands → handlers.  The only place exit codes are chosen."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness import apply, build, errors, gate, report, results, run, series, tree
from harness.btf import verify
from harness.btf.shadow import Rules
from harness.btf.types import BtfError
from harness.config import ACCELS, DEFAULT_TESTS, RunConfig, Toolchain, VmSpec, default_cache

EXIT_PASS = 0
EXIT_TEST_FAILURE = 1
EXIT_USAGE = 2
EXIT_BAD_TREE = 3
EXIT_MISSING_TOOL = 4
EXIT_NO_TESTS = 5
EXIT_BUILD = 6
EXIT_BOOT = 7
EXIT_TIMEOUT = 8
EXIT_BAD_SERIES = 9
EXIT_APPLY = 10
EXIT_BAD_OBJECT = 11
EXIT_INTERNAL = 70

# Most specific first: HarnessTimeout is checked before its siblings.
ERROR_CODES: tuple[tuple[type[errors.HarnessError], int], ...] = (
    (errors.HarnessTimeout, EXIT_TIMEOUT),
    (errors.UsageError, EXIT_USAGE),
    (errors.ParseError, EXIT_USAGE),
    (errors.TreeError, EXIT_BAD_TREE),
    (errors.ToolchainError, EXIT_MISSING_TOOL),
    (errors.SelectionError, EXIT_NO_TESTS),
    (errors.BuildError, EXIT_BUILD),
    (errors.BootError, EXIT_BOOT),
    (errors.SeriesError, EXIT_BAD_SERIES),
    (errors.ApplyError, EXIT_APPLY),
    (BtfError, EXIT_BAD_OBJECT),
    (errors.InternalError, EXIT_INTERNAL),
)

EXIT_CODES_HELP = f"""exit codes:
  {EXIT_PASS}   all selected tests passed
  {EXIT_TEST_FAILURE}   a test or subtest failed (or test_progs crashed mid-run); with
      --series: a regression (pass→fail) or a failing new subtest; shadow --verify: a
      difference from bpftool or a layout mismatch
  {EXIT_USAGE}   usage error (bad option, unreadable input file)
  {EXIT_BAD_TREE}   not a kernel tree, bad --rev, or no kernel matching the tree
  {EXIT_MISSING_TOOL}   a required program or package is missing
  {EXIT_NO_TESTS}   --tests matched no prog_test in the tree
  {EXIT_BUILD}   build failure (bpftool, libbpf, bpf_testmod, test_progs)
  {EXIT_BOOT}   the VM did not boot, the kernel panicked, or the VM was lost
  {EXIT_TIMEOUT}   a build, the boot or the test run exceeded its time limit
  {EXIT_BAD_SERIES}   the series cannot be read (empty, not mail, corrupt diff, offline msg-id)
  {EXIT_APPLY}  a patch of the series does not apply to the tree
  {EXIT_BAD_OBJECT}  a BPF object cannot be read (not ELF, no .BTF, corrupt BTF)
  {EXIT_INTERNAL}  internal error (a bug in harness; traceback in the run directory)
"""


def code_for(error: errors.HarnessError) -> int:
    for kind, code in ERROR_CODES:
        if isinstance(error, kind):
            return code
    return EXIT_INTERNAL


def _default_out() -> Path:
    return Path("harness-runs") / time.strftime("run-%Y%m%d-%H%M%S")


def _tests(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("--tests needs at least one name")
    return names


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "run", help="build, boot and run the selected BPF selftests; print a verdict",
        description="Build bpftool, libbpf, bpf_testmod and a targeted test_progs from a "
                    "kernel tree, boot a QEMU VM and run the selected prog_tests.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, help="a kernel git tree (default: Debian's "
                   "linux-source-6.12, unpacked into the cache)")
    p.add_argument("--rev", default="HEAD", help="commit of --tree to test (default HEAD)")
    p.add_argument("--series", metavar="SRC",
                   help="gate a series: run on the base and on base+series and compare "
                        "(SRC: mbox, format-patch dir, BASE..TIP in --tree, or msg-id)")
    p.add_argument("--tests", type=_tests, default=DEFAULT_TESTS,
                   help="comma-separated prog_tests (file stems or test names); "
                        f"default {','.join(DEFAULT_TESTS)}")
    p.add_argument("--out", type=Path, help="run directory (default harness-runs/run-<time>)")
    p.add_argument("--cache", type=Path, default=None,
                   help="cache for trees and builds (default $HARNESS_CACHE or ~/.cache/harness)")
    p.add_argument("--kernel", type=Path, help="kernel image to boot (with --headers)")
    p.add_argument("--headers", type=Path, help="kbuild headers dir with a BTF vmlinux")
    p.add_argument("--accel", choices=ACCELS, help="QEMU accelerator (default tcg; "
                   "HARNESS_ACCEL=tcg forces TCG)")
    p.add_argument("--clang", default="clang-19", help="clang for BPF programs")
    p.add_argument("--memory", default="2G")
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--append", action="append", default=[], metavar="ARG",
                   help="extra guest kernel command-line argument (repeatable)")
    p.add_argument("-j", "--jobs", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print report.json to stdout")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve tree, kernel and tests; print the plan and QEMU command; "
                        "build and boot nothing")


def _add_series(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("series", help="read or apply a patch series",
                       epilog=EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", required=True)
    show = actions.add_parser("show", help="list what a series contains, with warnings")
    check = actions.add_parser("apply", help="apply a series onto the tree in a "
                               "harness-owned worktree and report each patch")
    for a in (show, check):
        a.add_argument("src", help="mbox, format-patch dir, BASE..TIP (in --tree) or msg-id")
        a.add_argument("--tree", type=Path)
        a.add_argument("--json", action="store_true")
    show.add_argument("--manifest", type=Path, help="compare with a patches/manifests file")
    check.add_argument("--rev", default="HEAD")
    check.add_argument("--out", type=Path)
    check.add_argument("--cache", type=Path)


def _add_shadow(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "shadow", help="emulate bpftool's struct_ops shadow types from BPF objects",
        description="Print the skeleton's `struct_ops` block for each object, computed from "
                    "its BTF alone; --verify compares with the real bpftool built from the "
                    "tree and compiles a size/offset check.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("objects", nargs="+", type=Path, metavar="OBJ")
    p.add_argument("--rules", choices=[r.value for r in Rules], default=Rules.MAINLINE.value)
    p.add_argument("--skeleton-name", help="the skeleton name (default: from the file name)")
    p.add_argument("--verify", action="store_true")
    p.add_argument("--bpftool", type=Path, help="bpftool to compare with (default: built "
                   "from --tree or the default tree)")
    p.add_argument("--tree", type=Path)
    p.add_argument("--rev", default="HEAD")
    p.add_argument("--cache", type=Path)
    p.add_argument("--out", type=Path, help="where --verify keeps its logs")
    p.add_argument("--clang", default="clang-19")


def _add_parse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("parse", help="parse a saved test_progs log and print the verdict",
                       epilog=EXIT_CODES_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path)
    p.add_argument("--exit-status", type=int, default=0,
                   help="test_progs's exit status, when known (default 0)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__, epilog=EXIT_CODES_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_series(sub)
    _add_shadow(sub)
    _add_parse(sub)
    return p


def _config(args: argparse.Namespace) -> RunConfig:
    jobs = args.jobs or os.cpu_count() or 1
    return RunConfig(
        out=(args.out or _default_out()).resolve(),
        cache=(args.cache or default_cache()).resolve(),
        tree=args.tree, rev=args.rev, tests=args.tests,
        kernel=args.kernel, headers=args.headers, jobs=jobs,
        vm=VmSpec(accel=args.accel, memory=args.memory, cpus=args.cpus,
                  kernel_args=tuple(args.append)),
        toolchain=Toolchain(clang=args.clang), dry_run=args.dry_run,
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


DRY_RUN_KEYS = ("tree", "kernel", "accelerator", "tests", "qemu")


def cmd_series_run(cfg: RunConfig, src: str) -> int:
    outcome = gate.execute(cfg, src, _progress)
    if outcome.error is not None:
        code = code_for(outcome.error)
    else:
        code = EXIT_PASS if outcome.verdict == "pass" else EXIT_TEST_FAILURE
    outcome.data["exit_code"] = code
    report.write_files(cfg.out, outcome.data, outcome.root)
    print(f"{outcome.verdict.upper()}: {outcome.reason}", file=sys.stderr)
    for entry in outcome.data.get("patches", []):
        print(f"  [{entry['patch']}] {entry['outcome']}: {entry['subject']}", file=sys.stderr)
    print(f"  report: {cfg.out / 'report.json'}", file=sys.stderr)
    return code


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.series:
        return cmd_series_run(cfg, args.series)
    outcome = run.execute(cfg, _progress)
    rep = outcome.report
    if cfg.dry_run and outcome.error is None:
        print(json.dumps({k: rep.context.get(k) for k in DRY_RUN_KEYS}, indent=2))
        return EXIT_PASS
    if outcome.error is not None:
        rep.exit_code = code_for(outcome.error)
    else:
        rep.exit_code = EXIT_PASS if rep.verdict == "pass" else EXIT_TEST_FAILURE
    report.write(rep)
    if args.json:
        print(json.dumps(rep.as_dict(), indent=2))
    print(report.summary(rep), file=sys.stderr)
    return rep.exit_code


def cmd_parse(args: argparse.Namespace) -> int:
    try:
        text = args.log.read_text(errors="replace")
    except OSError as exc:
        raise errors.ParseError(f"{args.log}: cannot read ({exc.strerror})") from exc
    verdict, subtests = report.judge(results.parse(text.splitlines()), args.exit_status)
    for r in subtests:
        print(f"{r.status.value:4} {r.name}")
    print(f"{verdict.verdict}: {verdict.reason}")
    return EXIT_PASS if verdict.verdict == "pass" else EXIT_TEST_FAILURE


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
    loaded = series.load(args.src, args.tree)
    if args.action == "show":
        if args.manifest:
            loaded.warnings += [f"manifest: {p}" for p in series.check_manifest(
                loaded, series.load_manifest(args.manifest))]
        print(json.dumps(loaded.as_dict(), indent=2) if args.json else series.show(loaded))
        return EXIT_PASS
    series.require_complete(loaded)
    cfg = RunConfig(out=(args.out or _default_out()).resolve(),
                    cache=(args.cache or default_cache()).resolve(), tree=args.tree, rev=args.rev)
    base = tree.select(cfg.tree, cfg.rev, cfg.cache, cfg.out)
    applied = gate.apply_onto(cfg, base, loaded)
    if args.json:
        print(json.dumps([r.as_dict() for r in applied.results], indent=2))
    else:
        print(_show_apply(applied))
    return EXIT_APPLY if applied.conflicts else EXIT_PASS


def _bpftool_from_tree(cfg: RunConfig) -> Path:
    t = tree.select(cfg.tree, cfg.rev, cfg.cache, cfg.out)
    ctx = build.BuildContext(tree=t.path, build_dir=cfg.cache / "build" / t.key,
                             log_dir=cfg.out, toolchain=cfg.toolchain, jobs=cfg.jobs,
                             timeout=cfg.timeouts.build)
    with tree.locked(cfg.cache, t.key):
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
    cfg = RunConfig(out=(args.out or _default_out()).resolve(),
                    cache=(args.cache or default_cache()).resolve(), tree=args.tree,
                    rev=args.rev, toolchain=Toolchain(clang=args.clang))
    bpftool = args.bpftool or _bpftool_from_tree(cfg)
    failed = 0
    for obj in args.objects:
        v = verify.verify(bpftool, obj, rules, clang=args.clang, log_dir=cfg.out / "shadow",
                          name=args.skeleton_name)
        state = "identical" if v.identical else "DIFFERS from bpftool"
        layout = "layout ok" if v.layout_ok else f"LAYOUT MISMATCH (log: {v.layout_log})"
        print(f"{obj}: {state}, {layout}")
        if v.diff:
            print(v.diff, end="")
        failed += not v.ok
    print(f"{len(args.objects) - failed} passed, {failed} failed")
    return EXIT_TEST_FAILURE if failed else EXIT_PASS


HANDLERS = {"run": cmd_run, "series": cmd_series, "shadow": cmd_shadow, "parse": cmd_parse}


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return HANDLERS[args.command](args)
    except errors.HarnessError as exc:
        print(f"harness: error: {exc.line()}", file=sys.stderr)
        return code_for(exc)


def main_entry() -> None:
    sys.exit(main())
