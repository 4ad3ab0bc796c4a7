"""Soak: the gate run N times back to back, to see what fails that should not.

A standalone script, not a pytest test (it takes many minutes).  From the project root:

    HARNESS_ACCEL=tcg .venv/bin/python tests/bench/soak.py [-n 20] [--out DIR] [-- RUN ARGS]

Each run is `python -m harness run RUN ARGS --out DIR/run-K` (default: the gate on the
embedded default, test_struct_ops_module).  It prints one line per run (exit code,
verdict, error kind, seconds, reason), then the counts of pass, test failure and
infrastructure outcome (every other exit code: a lost VM, a panic, a timeout, a build or
boot failure, ...), and the timing spread (min, median, mean, max, standard deviation).

Exit status: 0 when every run passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASS, TEST_FAILURE = 0, 1


@dataclass(frozen=True)
class Soaked:
    code: int
    seconds: float
    verdict: str
    error: str
    reason: str

    @property
    def kind(self) -> str:
        return {PASS: "pass", TEST_FAILURE: "fail"}.get(self.code, "infrastructure")


def one(out: Path, args: list[str]) -> Soaked:
    argv = [sys.executable, "-m", "harness", "run", *args, "--out", str(out)]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    seconds = time.monotonic() - start
    try:
        rep = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        rep = {"verdict": "no report", "reason": f"no report.json in {out}"}
    return Soaked(done.returncode, seconds, str(rep.get("verdict")), str(rep.get("error")),
                  str(rep.get("reason"))[:160])


def spread(seconds: list[float]) -> str:
    sd = statistics.stdev(seconds) if len(seconds) > 1 else 0.0
    return (f"min {min(seconds):.1f} s, median {statistics.median(seconds):.1f} s, "
            f"mean {statistics.fmean(seconds):.1f} s, max {max(seconds):.1f} s, "
            f"stdev {sd:.1f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--runs", type=int, default=20)
    p.add_argument("--out", type=Path, help="where the runs go (default: a new temp dir)")
    p.add_argument("run_args", nargs="*", help="arguments of `harness run` (after --)")
    args = p.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="harness-soak-"))
    results: list[Soaked] = []
    for k in range(1, args.runs + 1):
        r = one(out / f"run-{k:02d}", args.run_args)
        results.append(r)
        print(f"run {k:2d}: exit {r.code:3d} {r.verdict:8s} {r.error:14s} {r.seconds:6.1f} s "
              f" {r.reason}", flush=True)
    counts = {kind: sum(1 for r in results if r.kind == kind)
              for kind in ("pass", "fail", "infrastructure")}
    print(f"\n{len(results)} runs in {out}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    print(f"time per run: {spread([r.seconds for r in results])}")
    return 0 if counts["pass"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
