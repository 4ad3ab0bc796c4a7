"""Slow: the targeted test_progs against upstream's own build, as the oracle.

The tree's own selftests Makefile builds test_progs (vmtest.sh's way: `make test_progs`
with the prebuilt kernel's BTF and kbuild directory) once per session, in a scratch clone
from which 6.12.117's unbuildable backport (prog_tests/bpf_attr_size.c, whose program is
not in the tree) is removed, as tests/bench/bench_build.py does.  Both test_progs then
run the same selection in the same guest environment (the Debian root filesystem, the
cloud kernel, its modules and config): the struct_ops family and 40 other prog_tests
drawn with a seeded random choice (the seed is printed; HARNESS_DIFF_SEED changes it).
Every subtest must get the same status from both, except the differences listed in
KNOWN with their reason.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import load_bench

from harness import cli, run
from harness.boot import initramfs, kernel, rootfs, vm
from harness.build import discover, select
from harness.config import VmSpec
from harness.host.cache import Cache
from harness.outcome import results
from harness.outcome.report import judge
from harness.source import tree

pytestmark = [pytest.mark.slow, pytest.mark.vm, pytest.mark.build]
bench = load_bench("bench_build")

FAMILY = "struct_ops,dummy_st_ops,pro_epilogue"
DRAWN = 40
SEED = int(os.environ.get("HARNESS_DIFF_SEED", "7"))
# Subtests whose status differs between the two builds, with the reason (none so far).
KNOWN: dict[str, str] = {}
# prog_tests of the seed-7 draw that fail in both, and why: the kernel, not the harness.
# Debian's cloud kernel is not built with the selftests' config; a kernel built with
# `--kconfig selftests` has these options.
FAIL_IN_BOTH = {
    "cgrp_local_storage": "sleepable fentry on __x64_sys_getpgid: 'is not sleepable' "
                          "(CONFIG_FUNCTION_ERROR_INJECTION is off in the cloud kernel)",
    "iters": "sleepable iterator programs rejected likewise (no error injection list)",
    "preempt_lock": "preempt_sleepable_helper: the same sleepable-attach check",
    "tunnel": "kfunc bpf_skb_get_fou_encap not in any BTF: CONFIG_NET_FOU is a module "
              "nothing loads (the selftests config builds it in)",
}


@pytest.fixture(scope="session")
def oracle(default_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Upstream's `make test_progs` output directory (built once per session, or taken
    from HARNESS_ORACLE_DIR: a previous session's, when iterating on the test)."""
    given = os.environ.get("HARNESS_ORACLE_DIR")
    if given and (Path(given) / "test_progs").is_file():
        return Path(given)
    bench.ensure_prerequisites()
    work = tmp_path_factory.mktemp("oracle")
    scratch = work / "tree"
    bench.scratch_clone(default_tree, scratch, work / "clone.log")
    bench.remove_broken_tests(scratch)
    k = kernel.find_prebuilt(discover_version(default_tree))
    out = work / "out"
    out.mkdir()
    opts = bench.Options(work=work, keep=True, skip_full=False, skip_gate=True,
                         jobs=os.cpu_count() or 1, clang="clang-19", cache=Path())
    bench.timed_run(bench.full_build_argv(scratch, k, opts, out), work / "full-build.log")
    assert (out / "test_progs").is_file()
    return out


def discover_version(tree_path: Path) -> str:
    return tree.check_kernel_tree(tree_path)


def drawn_tests(tree_path: Path) -> list[str]:
    """DRAWN test names outside the struct_ops family, neither broken nor denied."""
    root = tree_path / discover.SELFTESTS
    family = select.resolve(select.Request(tests=(FAMILY,)), _files(root), []).tests
    resolved = select.resolve(select.Request(), _files(root),
                              discover.tree_lists(root, "x86_64", "6.12"))
    pool = sorted(set(resolved.tests) - set(family))
    chosen = sorted(random.Random(SEED).sample(pool, DRAWN))
    print(f"seed {SEED}: {', '.join(chosen)}")
    return chosen


def _files(root: Path) -> dict[str, tuple[str, ...]]:
    deps = discover.linked_deps((root / "Makefile").read_text())
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((root / "prog_tests").glob("*.c")):
        source = path.read_text(errors="replace")
        if bench.broken_skeleton(root, source, deps) is None:
            found[path.stem] = discover.test_functions(source)
    return found


def oracle_files(out: Path, selftests: Path) -> tuple[tuple[str, Path], ...]:
    """What upstream's test_progs finds beside it: the BPF objects, the test modules, the
    helpers the Makefile copied there, and the btf_dump test cases under progs/."""
    shipped = [(p.name, p) for p in sorted(out.iterdir()) if p.is_file()
               and (p.name.endswith((".bpf.o", ".ko", ".so", ".sh"))
                    or p.name in {"urandom_read", "uprobe_multi", "sign-file", "xdp_synproxy",
                                  "bpftool"})]
    cases = [(f"progs/{p.name}", p) for p in sorted(selftests.glob("progs/btf_dump_test_case_*.c"))]
    return (*shipped, *cases)


def run_oracle(out: Path, tree_path: Path, lists: tuple[list[str], list[str]], *,
               run_dir: Path, cache: Path) -> dict[str, str]:
    """Upstream's test_progs in the harness's guest, with the same (allow, deny) lists."""
    allow, deny = lists
    run_dir.mkdir(parents=True)
    k = kernel.find_prebuilt(discover_version(tree_path))
    root = rootfs.ensure(run.runtime_recipe(), Cache(cache), run_dir)
    payload = initramfs.Payload(
        busybox=Path("/bin/busybox"), test_progs=out / "test_progs",
        files=oracle_files(out, tree_path / discover.SELFTESTS), allow=tuple(allow),
        deny=tuple(deny), kernel_config=run.config_file(k), rootfs=root.recipe_key,
        boot_modules=run.boot_modules(k), kernel_modules=k.modules_dir)
    initrd = run_dir / "initramfs.cpio.gz"
    initramfs.assemble(payload, initrd, root.has)
    argv = vm.qemu_argv("qemu-system-x86_64", VmSpec(), vm.Accel("tcg", "test"),
                        kernel=k.image, initrd=initrd, run_dir=run_dir, disk=root.image)
    outcome = vm.boot(argv, run_dir, 120.0, 1800.0)
    text = (run_dir / "test_progs.log").read_text(errors="replace")
    judged = judge(results.parse(text.splitlines()), outcome.exit_status)
    return {r.name: r.status.value for r in judged.subtests}


def _report(run_dir: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return report


def test_targeted_and_upstream_test_progs_agree(default_tree: Path, oracle: Path,
                                                cache: Path, tmp_path: Path) -> None:
    chosen = drawn_tests(default_tree)
    ours = tmp_path / "targeted"
    cli.main(["run", "--tests", FAMILY, "--allow", ",".join(chosen), "--out", str(ours)])
    report = _report(ours)
    assert report["tests"] is not None, report["reason"]
    mine = {s["name"]: s["status"] for s in report["subtests"] if s["status"] != "denied"}
    assert mine, report["reason"]
    theirs = run_oracle(oracle, default_tree,
                        (report["tests"]["allow"], report["tests"]["deny"]),
                        run_dir=tmp_path / "upstream", cache=cache)
    differ = {n: (mine.get(n), theirs.get(n)) for n in sorted(set(mine) | set(theirs))
              if mine.get(n) != theirs.get(n)}
    tests = sorted({n.split("/", 1)[0] for n in set(mine) | set(theirs)})
    agree = [t for t in tests if not any(n.split("/", 1)[0] == t for n in differ)]
    passing = [t for t in agree if all(s == "pass" for n, s in mine.items()
                                       if n.split("/", 1)[0] == t)]
    figure = (f"seed {SEED}: {len(agree)} of {len(tests)} prog_tests agree "
              f"({len(mine)} subtests), {len(passing)} pass in both")
    print(figure)
    (tmp_path / "figure.txt").write_text(figure + "\n" + json.dumps(differ, indent=1))
    unexplained = {n: d for n, d in differ.items() if n not in KNOWN}
    assert not unexplained, f"{figure}; differences (targeted, upstream): {unexplained}"
    both = sorted({n.split("/", 1)[0] for n, st in mine.items()
                   if st not in ("pass", "skip") and theirs.get(n) == st})
    if SEED == 7:  # the documented draw: a new failure in both must be explained too
        assert set(both) <= set(FAIL_IN_BOTH), f"{figure}; fail in both: {both}"
