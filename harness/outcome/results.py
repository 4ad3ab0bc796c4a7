"""Pure parser for test_progs output.

test_progs prints one result line per subtest (`#N/M test/sub:OK`) and per test
(`#N test:OK`, `OK (SKIP: k/n)`, `SKIP`, `FAIL`), then, when something failed, repeats
the failing tests' logs and result lines after "All error logs:", then `Summary: ...`.
Results are counted once: lines after the repeat marker only add error text.

With `--retries`, the guest reruns what failed in the same boot, each rerun after a
"HARNESS: retry K of N" line (vm/run.sh): `parse_retried` parses the first run and marks
what failed there and passed in a rerun `flaky`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

RESULT_RE = re.compile(
    r"^#(?P<num>\d+)(?:/(?P<sub>\d+))?\s+(?P<name>.+?):(?P<res>OK|FAIL|SKIP)"
    r"(?: \(SKIP: \d+/\d+\))?\s*$"
)
SUMMARY_RE = re.compile(
    r"^Summary: (?P<passed>\d+)/(?P<sub_passed>\d+) PASSED, (?P<skipped>\d+) SKIPPED, "
    r"(?P<failed>\d+) FAILED\s*$"
)
REPEAT_MARKER = "All error logs:"
# test_progs loads the selftests' modules itself at start and goes on without them.
MODULE_FAILED_RE = re.compile(r"^Failed to load (?P<module>\S+\.ko) into the kernel: "
                              r"(?P<err>-?\d+)")
INCOMPLETE = "test_progs/incomplete"  # the synthetic entry of a run that did not finish
RETRY_MARKER = "HARNESS: retry "
# Newer test_progs (not 6.12's) name a test that runs long, and end it at their -w limit.
WATCHDOG_RE = re.compile(r"^WATCHDOG: test case (?P<name>.+) executes for (?P<secs>\d+) "
                         r"seconds(?P<killed>, terminating with SIGSEGV)?")


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    INFRA = "infra"  # could not run: the guest lacked what the harness provides (infra.py)
    FLAKY = "flaky"  # failed, then passed on a retry (--retries)
    DENIED = "denied"  # taken away by a deny list: never run, never a pass


_STATUS = {"OK": Status.PASS, "FAIL": Status.FAIL, "SKIP": Status.SKIP}


@dataclass
class Result:
    """One test ("struct_ops_module") or subtest ("struct_ops_module/struct_ops_load")."""

    name: str
    number: str
    status: Status
    log: list[str] = field(default_factory=list)
    seconds: float | None = None  # wall time, as observed on the host
    reruns: list[Result] = field(default_factory=list)  # its results in later retries

    @property
    def is_subtest(self) -> bool:
        return "/" in self.number


@dataclass(frozen=True)
class Summary:
    passed: int
    subtests_passed: int
    skipped: int
    failed: int


@dataclass
class Parsed:
    tests: list[Result]
    subtests: list[Result]
    summary: Summary | None
    modules_not_loaded: list[str] = field(default_factory=list)  # "bpf_testmod.ko (-22)"
    last_line: str = ""  # the last non-empty line (what a test_progs that gave up said)
    watchdog: str | None = None  # the last test/subtest test_progs's watchdog named
    watchdog_killed: bool = False  # ... and ended (SIGSEGV) for running too long

    @property
    def complete(self) -> bool:
        """True when test_progs reached its Summary line (it did not crash or hang)."""
        return self.summary is not None

    def failed(self) -> list[Result]:
        return [r for r in self.tests + self.subtests if r.status is Status.FAIL]


def _clean(line: str) -> str:
    return line.rstrip("\r\n").replace("\r", "")


def parse(lines: Iterable[str]) -> Parsed:
    """Parse test_progs stdout into tests, subtests and the summary."""
    results: dict[str, Result] = {}
    pending: list[str] = []
    repeating = False
    summary: Summary | None = None
    modules: list[str] = []
    last = ""
    watched: tuple[str | None, bool] = (None, False)
    for raw in lines:
        line = _clean(raw)
        last = line.strip() or last
        if m := MODULE_FAILED_RE.match(line):
            modules.append(f"{m['module']} ({m['err']})")
        if m := WATCHDOG_RE.match(line):
            watched = (f"{m['name']} (test_progs's watchdog: {m['secs']} s)", bool(m["killed"]))
        if line.strip() == REPEAT_MARKER:
            repeating = True
            pending = []
            continue
        if m := SUMMARY_RE.match(line):
            summary = Summary(*(int(m[k]) for k in ("passed", "sub_passed", "skipped", "failed")))
            continue
        m = RESULT_RE.match(line)
        if m is None:
            pending.append(line)
            continue
        number = m["num"] + (f"/{m['sub']}" if m["sub"] else "")
        _record(results, number, name=m["name"], status=_STATUS[m["res"]], log=pending,
                repeating=repeating)
        pending = []
    tests = [r for r in results.values() if not r.is_subtest]
    subtests = [r for r in results.values() if r.is_subtest]
    return Parsed(tests=tests, subtests=subtests, summary=summary, modules_not_loaded=modules,
                  last_line=last, watchdog=watched[0], watchdog_killed=watched[1])


def parse_retried(lines: Iterable[str]) -> Parsed:
    """The first run, with each failed test or subtest's reruns attached: one that passed
    in any rerun is `flaky`, one that failed in all of them stays `fail`."""
    runs: list[list[str]] = [[]]
    for line in lines:
        if _clean(line).startswith(RETRY_MARKER):
            runs.append([])
        else:
            runs[-1].append(line)
    first, *later = (parse(run) for run in runs)
    for r in first.failed():
        r.reruns = [x for p in later for x in p.tests + p.subtests if x.name == r.name]
        if any(x.status is Status.PASS for x in r.reruns):
            r.status = Status.FLAKY
    return first


def _record(
    results: dict[str, Result], number: str, *, name: str, status: Status,
    log: list[str], repeating: bool,
) -> None:
    known = results.get(number)
    if known is None:
        if not repeating:
            results[number] = Result(name=name, number=number, status=status, log=list(log))
        return
    # The repeat after "All error logs:" carries the failing test's log again.
    if not known.log:
        known.log = [x for x in log if x.strip()]


def durations(stamped: Iterable[tuple[float, str]], start: float = 0.0) -> dict[str, float]:
    """Seconds per result number, from test_progs lines stamped with the host's clock.

    Each result line is charged the time since the previous result line (or `start`):
    a subtest's own run, observed to within the stamping interval.
    """
    found: dict[str, float] = {}
    previous = start
    for at, raw in stamped:
        m = RESULT_RE.match(_clean(raw))
        if m is None:
            continue
        number = m["num"] + (f"/{m['sub']}" if m["sub"] else "")
        found.setdefault(number, round(max(at - previous, 0.0), 3))
        previous = at
    return found
