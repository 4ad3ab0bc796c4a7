"""Benchmark: a 16-commit tools-only bisection, warm, against one warm gate run.

A standalone script, not a pytest test.  Run it from the project root (under TCG):

    HARNESS_ACCEL=tcg .venv/bin/python tests/bench/bench_bisect.py [--work DIR] [--keep]

It writes a history on a scratch clone of the cached Debian tree (tests/bisect_history.py:
16 commits, all Documentation/ but the 11th, the broken gen.c of
patches/shadow-layout-broken), warms it (one `harness run` at the base: the tree cloned
and the base's builds made), times one more run at the base (everything reused: the
cost of a probe that only boots), then times `harness bisect` over the history.  It
prints the bisection's wall time, its probes and how many builds each reused or did, and
the ratio of the bisection to one warm run.  Target: the bisection under 3 minutes.

Exit status: 0 when the bisection named the culprit, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from bisect_history import docs_history  # noqa: E402

from harness import cli  # noqa: E402
from harness.config import default_cache  # noqa: E402
from harness.host.cache import Cache  # noqa: E402
from harness.source import tree  # noqa: E402

TESTS = ["--tests", "test_struct_ops_module"]
TARGET = 180.0


def timed(argv: list[str]) -> tuple[int, float]:
    start = time.monotonic()
    code = cli.main(argv)
    return code, time.monotonic() - start


def builds(out: Path) -> dict[str, int]:
    """Builds reused and done over every run of the bisection (report.json's ledger)."""
    counts = {"reused": 0, "built": 0}
    for report in sorted(out.glob("steps/*/run-*/report.json")):
        for state in json.loads(report.read_text()).get("builds", {}).values():
            counts[state] = counts.get(state, 0) + 1
    return counts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, help="scratch space (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch files at the end")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-bisect-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        source = tree.default_tree(Cache(default_cache()), work).path
        h = docs_history(source, work / "linux", work)
        repo = str(h.repo)
        code, cold = timed(["run", "--tree", repo, "--rev", h.base, *TESTS,
                            "--out", str(work / "warm-up")])
        code2, warm = timed(["run", "--tree", repo, "--rev", h.base, *TESTS,
                             "--out", str(work / "warm")])
        if code or code2:
            print(f"the base does not pass (exit {code}, {code2}): see {work}")
            return 1
        out = work / "bisect"
        code, wall = timed(["bisect", "--tree", repo, "--good", h.base, "--bad", h.tip,
                            *TESTS, "--out", str(out)])
        data = json.loads((out / "bisect.json").read_text())
        found = data.get("first", {}).get("commit") == h.ids["culprit"]
        probes = len(data["steps"])
        reused_steps = sum(1 for s in data["steps"] if s["reused"])
        counted = builds(out)
        print(f"history: {len(h.ids)} commits after the base, culprit {h.ids['culprit'][:12]}")
        print(f"warm-up run at the base (clone, cold builds): {cold:7.1f} s")
        print(f"warm run at the base (every build reused):    {warm:7.1f} s")
        print(f"bisection: {wall:7.1f} s, {probes} probes ({reused_steps} reused every "
              f"build), builds reused {counted['reused']}, done {counted['built']}; "
              f"{'found the culprit' if found else 'WRONG ANSWER'} (exit {code})")
        print(f"ratio bisection / one warm run: {wall / warm:5.2f} "
              f"({wall / probes:5.1f} s per probe)")
        print(f"target under {TARGET:.0f} s: {'met' if wall < TARGET else 'MISSED'}")
        return 0 if found and code == 0 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
