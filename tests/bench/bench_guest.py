"""Benchmark: the build on the host vs inside the guest (--build-in guest), side by side.

A standalone script, not a pytest test.  Run it from the project root after the README's
first command (about 10 minutes on a 2-core machine under TCG):

    export HARNESS_ACCEL=tcg
    python3 tests/bench/bench_guest.py                  # default tree, struct_ops_module
    python3 tests/bench/bench_guest.py --work /var/tmp/bg --keep

Four gate runs of the default tree in one scratch cache, in this order: host cold, guest
cold, host warm, guest warm.  The scratch cache borrows the harness cache's imported tree
and root filesystems (symbolic links: neither is rebuilt nor written), so "cold" means that
every build output (bpftool, libbpf, bpf_testmod, test_progs, the guest's build disk) is
made from nothing, and "warm" the same run again.  Printed per mode and temperature:
each build step's seconds (the host's from the report's stages, the guest's from the
guest's own step times), the run's wall time, and the guest's boot-to-tests overhead
(QEMU start to the booted marker, plus the build inside the guest), with the
guest/host ratios.

Exit status: 0 when all four runs passed, 1 otherwise (the failed run's directory named).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import default_cache

STEPS = ("bpftool", "testmod", "test_progs", "helpers")
SHARED = ("trees", "rootfs")  # borrowed from the harness cache, never rebuilt
RUNS = (("host", "cold"), ("guest", "cold"), ("host", "warm"), ("guest", "warm"))
RUN_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Measured:
    """One gate run: its wall time and what its report says of the build and the boot."""

    mode: str
    temperature: str
    wall: float
    steps: dict[str, float]
    boot: float  # QEMU start to the guest's booted marker
    vm: float  # QEMU start to power off

    @property
    def build(self) -> float:
        return sum(self.steps.values())

    @property
    def boot_to_tests(self) -> float:
        """Until test_progs starts: the boot, and in the guest mode its build too."""
        return self.boot + (self.build if self.mode == "guest" else 0.0)


def step_seconds(report: dict[str, Any], mode: str) -> dict[str, float]:
    """Each build step's seconds: the guest's own times, or the host's build-* stages."""
    if mode == "guest":
        return {s: float(report["build_in"]["seconds"].get(s, 0.0)) for s in STEPS}
    stages = {s["name"]: float(s["seconds"]) for s in report["stages"]}
    return {s: stages.get(f"build-{s}", 0.0) for s in STEPS}


def measured(report: dict[str, Any], mode: str, temperature: str, wall: float) -> Measured:
    vm = report["vm"]
    return Measured(mode=mode, temperature=temperature, wall=wall,
                    steps=step_seconds(report, mode), boot=float(vm["boot_seconds"]),
                    vm=float(vm["seconds"]))


def ratio(guest: float, host: float) -> str:
    return f"{guest / host:.1f}x" if host > 0 else "n/a"


def table(runs: Sequence[Measured]) -> list[str]:
    """Rows: each step, the build, boot to tests and the wall time; for each temperature
    the host's and the guest's seconds and their ratio."""
    by = {(m.mode, m.temperature): m for m in runs}
    rows: list[tuple[str, Any]] = [*[(s, lambda m, s=s: m.steps[s]) for s in STEPS],
                                   ("build (sum)", lambda m: m.build),
                                   ("boot to tests", lambda m: m.boot_to_tests),
                                   ("VM (boot to power off)", lambda m: m.vm),
                                   ("whole run (wall)", lambda m: m.wall)]
    head = f"{'':24}" + "".join(f"{t + ' host':>12}{t + ' guest':>12}{'ratio':>8}"
                                for t in ("cold", "warm"))
    lines = [head]
    for label, value in rows:
        cells = ""
        for t in ("cold", "warm"):
            host, guest = value(by["host", t]), value(by["guest", t])
            cells += f"{host:>11.1f}s{guest:>11.1f}s{ratio(guest, host):>8}"
        lines.append(f"{label:24}{cells}")
    return lines


def scratch_cache(work: Path, cache: Path) -> Path:
    """A new cache that borrows the imported tree and the root filesystems."""
    scratch = work / "cache"
    scratch.mkdir(parents=True)
    for name in SHARED:
        if (cache / name).is_dir():
            (scratch / name).symlink_to(cache / name)
    return scratch


def gate(work: Path, cache: Path, mode: str, temperature: str, jobs: int) -> Measured:
    out = work / f"{mode}-{temperature}"
    argv = [sys.executable, "-m", "harness", "run", "--build-in", mode, "--cache", str(cache),
            "-j", str(jobs), "--out", str(out)]
    print(f"$ {' '.join(argv)}", flush=True)
    start = time.monotonic()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          timeout=RUN_TIMEOUT, check=False)
    wall = time.monotonic() - start
    report = json.loads((out / "report.json").read_text())
    if done.returncode != 0:
        raise SystemExit(f"{mode} {temperature} run: exit {done.returncode}, "
                         f"{report['reason']} (see {out})")
    m = measured(report, mode, temperature, wall)
    print(f"  {wall:.1f}s wall, build {m.build:.1f}s, boot to tests {m.boot_to_tests:.1f}s",
          flush=True)
    return m


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="scratch space (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch space at the end")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="the harness cache whose tree and root filesystems are borrowed")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-guest-"))
    try:
        cache = scratch_cache(work, a.cache.resolve())
        runs = [gate(work, cache, mode, t, a.jobs) for mode, t in RUNS]
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(["", "host build vs build inside the guest (TCG), seconds:",
                     *table(runs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
