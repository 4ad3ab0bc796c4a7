"""Benchmark: a cold kernel build vs an incremental one after a one-file change, side by side.

A standalone script, not a pytest test.  Run it from the project root:

    python3 tests/bench/bench_kernel.py                      # the selftests profile (~1 h)
    python3 tests/bench/bench_kernel.py --kconfig minimal    # the profile CI uses (~12 min)
    python3 tests/bench/bench_kernel.py --work /var/tmp/kb --keep

It builds with the harness's own kernel build stage (harness/build/kbuild.py) in a scratch
cache, so nothing of the real cache is reused or written: a scratch `git clone --shared` of
the cached Debian tree, an empty kbuild workspace and an empty ccache.  Then it commits
`patches/struct-ops-update` (one file of kernel/bpf/) in the scratch clone and builds
again in the same workspace, then builds that commit once more (the stamp says nothing
changed: no make at all).  It prints seconds and objects compiled for each, and the ratio.

Exit status: 0 when every build succeeded, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.boot import kconfig
from harness.build import kbuild
from harness.config import Timeouts, Toolchain, default_cache
from harness.errors import HarnessError
from harness.host import proc, toolchain, vcs
from harness.host.cache import Cache
from harness.source import tree

ROOT = Path(__file__).resolve().parents[2]
CHANGE = ROOT / "patches" / "struct-ops-update"


@dataclass(frozen=True)
class Options:
    work: Path | None
    keep: bool
    kconfig: tuple[str, ...]
    jobs: int
    cache: Path


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="scratch space (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch files at the end")
    p.add_argument("--kconfig", action="append", help="profile or fragment (repeatable; "
                   "default selftests)")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="harness cache holding the Debian tree (read only)")
    a = p.parse_args(argv)
    return Options(a.work, a.keep, tuple(a.kconfig or ("selftests",)), a.jobs,
                   a.cache.resolve())


def say(message: str) -> None:
    print(message, flush=True)


def scratch_clone(opts: Options, work: Path) -> tuple[Path, str]:
    """A clone of the cached Debian tree that the benchmark may commit to."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    debian = tree.default_tree(Cache(opts.cache), logs)
    clone = work / "linux"
    vcs.Git(work, logs).run("clone", "-q", "--shared", str(debian.path), str(clone))
    return clone, debian.commit


def commit_change(clone: Path, logs: Path) -> str:
    git = vcs.Git(clone, logs)
    patches = sorted(str(p) for p in CHANGE.glob("0*.patch") if not p.name.startswith("0000"))
    git.run("am", "-q", *patches)
    return git.head()


def build(ctx: kbuild.KbuildContext, clone: Path, commit: str, label: str,
          frags: list[kconfig.Fragment]) -> kbuild.Built:
    say(f"--- {label}: {commit[:12]}")
    run_dir = ctx.log_dir / label.replace(" ", "-")
    run_dir.mkdir(parents=True, exist_ok=True)
    step = kbuild.KbuildContext(**{**vars(ctx), "log_dir": run_dir})
    start = time.monotonic()
    built = kbuild.build(step, clone, commit, "bench", frags)
    say(f"    {time.monotonic() - start:.1f} s, {built.compiled} objects compiled, "
        f"reused={built.reused}")
    return built


def measure(opts: Options, work: Path) -> list[tuple[str, kbuild.Built]]:
    clone, base = scratch_clone(opts, work)
    cache = Cache(work / "cache")
    tc = Toolchain()
    ctx = kbuild.KbuildContext(cache=cache, log_dir=work / "runs", toolchain=tc,
                               jobs=opts.jobs, timeout=Timeouts().kernel_build,
                               versions=toolchain.versions(tc), progress=say,
                               ccache=toolchain.has_ccache())
    frags = kconfig.fragments(opts.kconfig, clone, building=True)
    rows = [("cold", build(ctx, clone, base, "cold", frags))]
    changed = commit_change(clone, work / "logs")
    rows.append(("one-file change", build(ctx, clone, changed, "incremental", frags)))
    rows.append(("no change", build(ctx, clone, changed, "unchanged", frags)))
    return rows


def report(rows: list[tuple[str, kbuild.Built]], opts: Options) -> None:
    cold = rows[0][1].seconds
    say(f"\nkernel build, profile {'+'.join(opts.kconfig)}, -j{opts.jobs}, "
        f"ccache={toolchain.has_ccache()}")
    say(f"{'build':18} {'seconds':>9} {'objects':>8} {'cold/this':>10}")
    for label, b in rows:
        ratio = f"{cold / b.seconds:.1f}x" if b.seconds > 0 else "n/a"
        say(f"{label:18} {b.seconds:9.1f} {b.compiled:8} {ratio:>10}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    work = opts.work or Path(tempfile.mkdtemp(prefix="bench-kernel-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report(measure(opts, work), opts)
        return 0
    except (HarnessError, proc.ProcError) as exc:
        say(f"bench: {exc}")
        return 1
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
