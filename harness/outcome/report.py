"""The result model: one verdict enum, the run's report and the series gate's report.

Stages return typed values; the pipeline puts them on a report; cli.finish writes
report.json and junit.xml from it and chooses the exit code.  Nothing here runs anything.
"""

from __future__ import annotations

import os
import platform
import re
import signal
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from harness.boot.choice import Choice
from harness.boot.kernel import Kernel
from harness.boot.rootfs import Rootfs
from harness.boot.vm import Accel
from harness.boot.vm import Outcome as VmOutcome
from harness.build.discover import Plan
from harness.container import recipe
from harness.errors import GuestError, HarnessError, InfraError, SelectionError, tail
from harness.outcome import infra
from harness.outcome.compare import Change, Compared
from harness.outcome.results import INCOMPLETE, Parsed, Result, Status
from harness.outcome.splats import Splat
from harness.source.apply import Applied
from harness.source.series import Series
from harness.source.tree import Tree

SCHEMA = 2
SIGNALLED = 128  # exit statuses from here up: killed by a signal (a crash)
SETUP_FAILED = 3  # test_progs's EXIT_ERR_SETUP_INFRA
LOG_TAIL_LINES = 200


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"  # a test failed (with --series: a gating change)
    ERROR = "error"  # nothing to judge: the run broke before or outside the tests
    DRY_RUN = "dry-run"  # resolved and checked out, but nothing built, applied or booted
    ABORTED = "aborted"  # Ctrl-C or SIGTERM


@dataclass
class Stage:
    name: str
    status: str  # "ok", "failed", "aborted"
    seconds: float
    log: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    reason: str
    subtests: list[Result]
    error: HarnessError | None = None


def _synthetic(name: str, message: str) -> Result:
    return Result(name=name, number="-", status=Status.FAIL, log=[message])


def judge(parsed: Parsed, exit_status: int, flaky_fails: bool = False) -> Judged:
    """The verdict and the subtests to report, from test_progs output and exit status.

    A crash mid-run (no Summary line, killed by a signal) or a non-zero exit without a
    FAIL line adds a synthetic failing entry, so a failure is never reported as a pass.
    No result at all without a crash (exit 3: setup failed, 126/127: not executable)
    is the guest's problem, not a test failure: a GuestError, as is a test module that
    did not load (test_progs then runs on without it).  A run that tested nothing is an
    error (SelectionError), never a pass or a test failure.
    """
    subtests = reported(parsed)
    guest = _guest_error(parsed, bool(subtests), exit_status)
    if guest is not None:
        return Judged(Verdict.ERROR, guest.line(), subtests, guest)
    missing = _mark_infra(subtests)
    if not parsed.complete:
        last = subtests[-1].name if subtests else "start"
        subtests.append(_synthetic(INCOMPLETE,
                                   f"test_progs stopped without a Summary (after {last}), "
                                   f"exit status {exit_status}"))
        if parsed.watchdog_killed:  # a hang test_progs itself ended
            return Judged(Verdict.FAIL, f"hung: {parsed.watchdog}, ended with SIGSEGV",
                          subtests)
        return Judged(Verdict.FAIL, f"{_stopped(exit_status)} (after {last})", subtests)
    return _judge_complete(parsed, subtests, exit_status, missing, flaky_fails)


def reported(parsed: Parsed) -> list[Result]:
    """The entries a report lists: every subtest, and the tests that have none."""
    subtests = list(parsed.subtests)
    with_subs = {s.name.split("/", 1)[0] for s in subtests}
    return subtests + [t for t in parsed.tests if t.name not in with_subs]


def _stopped(exit_status: int) -> str:
    """How test_progs ended without its Summary line."""
    if exit_status > SIGNALLED:
        number = exit_status - SIGNALLED
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "an unknown signal"
        return f"test_progs crashed: killed by signal {number} ({name})"
    return f"test_progs did not finish (exit status {exit_status})"


def _judge_complete(parsed: Parsed, subtests: list[Result], exit_status: int,
                    missing: list[infra.Missing], flaky_fails: bool) -> Judged:
    """judge() for a run that reached its Summary line.  A flaky subtest (failed, then
    passed on a retry) passes unless `flaky_fails` (--flaky fail)."""
    if exit_status == 2 or not subtests:
        error = SelectionError(f"test_progs ran no test (exit status {exit_status})")
        return Judged(Verdict.ERROR, error.line(), subtests, error)
    failed = _failed(parsed, subtests)
    flaky = [r for r in subtests if r.status is Status.FLAKY]
    if failed:
        names = ", ".join(r.name for r in failed if r.is_subtest) or failed[0].name
        return Judged(Verdict.FAIL, f"failed: {names}", subtests)
    if flaky and flaky_fails:
        return Judged(Verdict.FAIL, f"flaky (failed, then passed on a retry; --flaky fail): "
                                    f"{_names(flaky)}", subtests)
    if missing:
        count = sum(1 for r in subtests if r.status is Status.INFRA)
        infra_error = InfraError(f"{count} subtest(s) could not run for want of test "
                                 f"infrastructure: "
                                 f"{'; '.join(m.text() for m in _once(missing))}")
        return Judged(Verdict.ERROR, infra_error.line(), subtests, infra_error)
    if exit_status != 0:
        subtests.append(_synthetic("test_progs/exit", f"exit status {exit_status} without FAIL"))
        return Judged(Verdict.FAIL, f"test_progs exited {exit_status}", subtests)
    note = f", {len(flaky)} of them flaky (passed on a retry): {_names(flaky)}" if flaky else ""
    return Judged(Verdict.PASS, f"{len(subtests)} subtests passed{note}", subtests)


def _names(results: list[Result]) -> str:
    return ", ".join(r.name for r in results)


def _mark_infra(subtests: list[Result]) -> list[infra.Missing]:
    """Failed subtests whose log shows missing infrastructure become `infra`."""
    missing: list[infra.Missing] = []
    for r in subtests:
        found = infra.scan(r.log) if r.status is Status.FAIL else []
        if found:
            r.status = Status.INFRA
            missing += found
    return missing


def _once(missing: list[infra.Missing]) -> list[infra.Missing]:
    return list({m.text(): m for m in missing}.values())


def _failed(parsed: Parsed, subtests: list[Result]) -> list[Result]:
    """Genuine failures: failed subtests, and failed tests none of whose subtests failed
    (the test body itself) unless their own log shows missing infrastructure."""
    infra_tests = {r.name.split("/", 1)[0] for r in subtests if r.status is Status.INFRA}
    own = [t for t in parsed.tests if t.status is Status.FAIL and t not in subtests
           and t.name not in infra_tests and not infra.scan(t.log)
           and not any(s.status is Status.FAIL and s.name.startswith(f"{t.name}/")
                       for s in subtests)]
    return [r for r in subtests if r.status is Status.FAIL] + own


def _guest_error(parsed: Parsed, results: bool, exit_status: int,
                 ) -> HarnessError | None:
    """What kept the tests from running as meant, on the guest's side (None: nothing)."""
    if parsed.modules_not_loaded:  # the tests ran without their module: no verdict on them
        return InfraError(f"missing module: test module {', '.join(parsed.modules_not_loaded)}"
                          f" did not load in the guest, so the tests ran without it "
                          f"(see dmesg.log)")
    if exit_status == SETUP_FAILED:
        why = parsed.last_line or "no output"
        return GuestError(f"test_progs exited 3: its own setup failed (EXIT_ERR_SETUP_INFRA): "
                          f"{why} (see test_progs.log)")
    if not parsed.complete and not results and exit_status < SIGNALLED:
        return GuestError(f"test_progs printed no result and exited {exit_status} "
                          f"without a crash: it could not run (see test_progs.log)")
    return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


@dataclass
class Common:
    """What every command's report carries: the verdict and how the command ended."""

    run_dir: Path
    verdict: Verdict = Verdict.ERROR
    reason: str = ""
    error: HarnessError | None = None
    exit_code: int | None = None  # set by cli.finish
    started: str = field(default_factory=_now)
    host: str = field(default_factory=platform.node)
    # the hermetic image the command ran in (--in-container): tag, id, package versions
    image: dict[str, object] | None = field(
        default_factory=lambda: recipe.current(dict(os.environ)))

    def broke(self, error: HarnessError, reason: str | None = None) -> None:
        self.verdict, self.error = Verdict.ERROR, error
        self.reason = reason or error.line()

    def aborted(self, what: str) -> None:
        self.verdict, self.reason, self.error = Verdict.ABORTED, f"aborted by {what}", None

    def head(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "verdict": self.verdict.value, "reason": self.reason,
                "exit_code": self.exit_code, "error": type(self.error).__name__
                if self.error else None, "started": self.started, "host": self.host,
                "image": self.image}


@dataclass
class RunReport(Common):
    requested_tests: tuple[str, ...] = ()
    stages: list[Stage] = field(default_factory=list)
    tree: Tree | None = None
    kernel: Kernel | None = None
    kernel_choice: Choice | None = None
    kernel_build: dict[str, object] | None = None  # kbuild.Built.as_dict()
    builds: dict[str, str] = field(default_factory=dict)  # bpftool, test_progs, ...: built/reused
    accel: Accel | None = None
    versions: dict[str, str] = field(default_factory=dict)
    plan: Plan | None = None
    rootfs: Rootfs | None = None
    qemu: list[str] | None = None
    initramfs_bytes: int | None = None
    vm: VmOutcome | None = None
    subtests: list[Result] = field(default_factory=list)
    splats: list[Splat] = field(default_factory=list)  # the kernel's reports during the run
    notes: list[str] = field(default_factory=list)  # what the run noticed on its way
    modules: dict[str, Path] = field(default_factory=dict)  # test module → its built .ko
    # where the builds ran: {"mode": "host"} or the guest's share, disk, output
    # directories and each step's seconds inside the guest
    build_in: dict[str, Any] = field(default_factory=lambda: {"mode": "host"})

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for r in self.subtests if r.status is s) for s in Status}

    def plan_dict(self) -> dict[str, Any] | None:
        if self.plan is None:
            return None
        return plan_dict(self.plan)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.head(),
            "run_dir": str(self.run_dir),
            "requested_tests": list(self.requested_tests),
            "tree": self.tree.as_dict() if self.tree else None,
            "kernel": self.kernel_dict(),
            "accelerator": {"name": self.accel.name, "why": self.accel.note}
            if self.accel else None,
            "versions": self.versions,
            "builds": self.builds,
            "build_in": self.build_in,
            "notes": self.notes,
            "tests": self.plan_dict(),
            "qemu": " ".join(self.qemu) if self.qemu else None,
            "initramfs_bytes": self.initramfs_bytes,
            "rootfs": self.rootfs.as_dict() if self.rootfs else None,
            "vm": self.vm.as_dict() if self.vm else None,
            "counts": self.counts(),
            "stages": [vars(s) for s in self.stages],
            "subtests": [_subtest_dict(r) for r in self.subtests],
            "splats": [sp.as_dict() for sp in self.splats],
        }

    def kernel_dict(self) -> dict[str, Any] | None:
        if self.kernel is None and self.kernel_choice is None:
            return None
        return {**(self.kernel.as_dict() if self.kernel else {}),
                "choice": self.kernel_choice.as_dict() if self.kernel_choice else None,
                "build": self.kernel_build}

    def kernel_lines(self) -> list[str]:
        out = []
        if self.kernel_choice:
            what = self.kernel.release if self.kernel else "kernel"
            out.append(f"  kernel: {what}, {self.kernel_choice.how.value}: "
                       f"{self.kernel_choice.reason}")
            if self.kernel_choice.warning:
                out.append(f"  warning: {self.kernel_choice.warning}")
        elif self.kernel:
            out.append(f"  kernel: {self.kernel.image} ({self.kernel.release})")
        return out

    def log_tail(self) -> str | None:
        """The end of the run's output, for a run that failed or broke."""
        if self.verdict is Verdict.PASS:
            return None
        for name in ("test_progs.log", "console.log"):
            path = self.run_dir / name
            if path.is_file() and path.stat().st_size:
                text = path.read_text(errors="replace")
                return f"--- {name} (last lines) ---\n{tail(text, LOG_TAIL_LINES)}"
        return None

    def junit(self) -> ET.Element:
        return xml_safe(run_suite("harness", self))

    def reused(self) -> bool:
        """Every build of the run was reused: the run only booted."""
        kernel = self.kernel_build is None or bool(self.kernel_build.get("reused"))
        return bool(self.builds) and kernel and all(v == "reused" for v in self.builds.values())

    def parts(self) -> list[RunReport]:
        return []

    def summary(self) -> str:
        lines = [f"{self.verdict.upper()}: {self.reason}"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.verdict is Verdict.DRY_RUN:
            lines += self.plan_lines()
        else:
            lines += self.kernel_lines()
        if self.subtests:
            c = self.counts()
            lines.append(f"  subtests: {c['pass']} passed, {c['flaky']} flaky, "
                         f"{c['fail']} failed, {c['skip']} skipped, {c['infra']} without "
                         f"infrastructure, {c['denied']} denied")
        lines += [f"  {r.status.value.upper()} {r.name}" for r in self.subtests
                  if r.status in (Status.FAIL, Status.INFRA, Status.FLAKY)]
        lines += [f"  SPLAT {sp.family}{' (allowed)' if sp.allowed_by else ''}: {sp.title}"
                  for sp in self.splats]
        lines.append(f"  report: {self.run_dir / 'report.json'}")
        return "\n".join(lines)

    def plan_lines(self) -> list[str]:
        out = []
        if self.tree:
            out.append(f"  tree: {self.tree.origin} at {self.tree.commit[:12]} "
                       f"(Linux {self.tree.version})")
        out += self.kernel_lines()
        if self.plan:
            out.append(f"  tests: {', '.join(self.plan.selected)}")
        if self.qemu:
            out.append(f"  qemu: {' '.join(self.qemu)}")
        return out


def plan_dict(plan: Plan) -> dict[str, Any]:
    """What a selection resolved to (report.json's `tests`, and `run --list --json`)."""
    sel = plan.selection
    return {"selected": list(plan.selected), "files": [t.stem for t in plan.tests],
            "functions": list(plan.functions),
            "skeletons": [s.header for s in plan.skeletons],
            "bpf_objects": list(plan.bpf_objects), "runtime_objects": list(plan.runtime_objects),
            "unbuilt_objects": list(plan.unbuilt), "modules": list(plan.modules),
            "helpers": [e.name for e in plan.extras if e.kind != "module"],
            "allow": sel.allow_lines() if sel else [], "deny": sel.deny_lines() if sel else [],
            "denied": list(sel.denied) if sel else []}


def plan_text(plan: Plan) -> str:
    """`run --list`: the selection, one heading per kind."""
    d = plan_dict(plan)
    rows = [("tests", d["selected"]), ("files", d["files"]), ("skeletons", d["skeletons"]),
            ("objects", d["bpf_objects"]), ("modules", d["modules"]),
            ("helpers", d["helpers"]), ("denied", d["denied"]),
            ("not built (no progs/ source)", d["unbuilt_objects"])]
    return "\n".join(f"{name} ({len(items)}): {' '.join(items)}" for name, items in rows)


def _subtest_dict(r: Result) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": r.name, "status": r.status.value, "number": r.number,
                             "seconds": r.seconds}
    if r.status in (Status.FAIL, Status.INFRA, Status.DENIED) and r.log:
        entry["log"] = "\n".join(r.log)
    return entry


@dataclass
class GateReport(Common):
    """The series gate: both sides' reports, the patches, and the comparison."""

    source: str = ""
    series: Series | None = None
    applied: Applied | None = None
    base: RunReport | None = None
    series_run: RunReport | None = None
    compared: list[Compared] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.head(),
            "mode": "series",
            "run_dir": str(self.run_dir),
            "source": self.source,
            "series": self.series.as_dict() if self.series else None,
            "patches": [r.as_dict() for r in self.applied.results] if self.applied else [],
            "base": self.base.as_dict() if self.base else None,
            "series_run": self.series_run.as_dict() if self.series_run else None,
            "subtests": [c.as_dict() for c in self.compared],
        }

    def junit(self) -> ET.Element:
        """The gate suite alone, so a CI that counts failures counts what gates; each
        side's raw suite is in its own run directory (base/junit.xml, series/junit.xml)."""
        root = ET.Element("testsuites", {"name": "harness series gate"})
        root.append(gate_suite(self))
        _count_suites(root)
        return xml_safe(root)

    def parts(self) -> list[RunReport]:
        """The sides' own reports (they get their own exit codes)."""
        return [s for s in (self.base, self.series_run) if s is not None]

    def summary(self) -> str:
        lines = [f"{self.verdict.upper()}: {self.reason}"]
        if self.applied:
            lines += [f"  [{r.label}] {r.outcome.value}: {r.subject}"
                      for r in self.applied.results]
        if self.verdict is Verdict.DRY_RUN and self.base:
            lines.append("  base side:")
            lines += ["  " + ln for ln in self.base.plan_lines()]
            lines.append("  series side: the base tree with the patches above applied, "
                         "the same kind of kernel, the same tests")
        for name, side in (("base", self.base), ("series", self.series_run)):
            if side is not None and self.verdict is not Verdict.DRY_RUN:
                lines += [f"  {name} {ln.strip()}" for ln in side.kernel_lines()]
        lines.append(f"  report: {self.run_dir / 'report.json'}")
        return "\n".join(lines)


# --- junit.xml (harness/outcome/junit.xsd describes what is written here) -------------------


def testcase(suite: ET.Element, name: str, seconds: float | None = None) -> ET.Element:
    """Append one testcase ("test/subtest" → classname test, name subtest)."""
    test, _, sub = name.partition("/")
    return ET.SubElement(suite, "testcase", {"classname": test, "name": sub or test,
                                             "time": f"{seconds or 0.0:.3f}"})


def fail_case(case: ET.Element, lines: list[str], message: str) -> None:
    """A <failure>: the subtest's own test_progs lines, the first FAIL line as message."""
    first = first_fail(lines, message)
    ET.SubElement(case, "failure", {"message": first[:500], "type": "test failure"}).text = (
        "\n".join(lines) or message)


def first_fail(lines: list[str], default: str) -> str:
    """A failure's message: its first `:FAIL:` line (else `default`)."""
    return next((ln.strip() for ln in lines if ":FAIL:" in ln), default)


def _retried(case: ET.Element, logs: list[list[str]], tag: str) -> None:
    """Maven Surefire's elements for reruns: one per failed run of a retried subtest
    (rerunFailure beside a failure; flakyFailure on a subtest that passed in the end)."""
    for log in logs:
        first = first_fail(log, "failed")
        el = ET.SubElement(case, tag, {"message": first[:500], "type": "test failure"})
        ET.SubElement(el, "stackTrace").text = "\n".join(log) or first


def _failed_logs(runs: list[Result]) -> list[list[str]]:
    return [r.log for r in runs if r.status is Status.FAIL]


def splat_case(suite: ET.Element, sp: Splat) -> None:
    """A kernel report: a failure of testcase kernel/<family>, or skipped when allowed."""
    case = testcase(suite, f"kernel/{sp.family}")
    if sp.allowed_by is not None:
        ET.SubElement(case, "skipped", {"message": f"allowed by --allow-splat "
                                                   f"{sp.allowed_by}: {sp.title}"[:500]})
        return
    ET.SubElement(case, "failure", {"message": sp.title[:500], "type": "kernel splat"}
                  ).text = sp.text()


def _suite(name: str, started: str, host: str, seconds: float) -> ET.Element:
    return ET.Element("testsuite", {"name": name, "tests": "0", "failures": "0",
                                    "errors": "0", "skipped": "0", "time": f"{seconds:.3f}",
                                    "timestamp": started, "hostname": host})


def _finish_suite(suite: ET.Element, error: str | None, system_out: str | None) -> None:
    """Counts from the testcases; an error testcase when the run broke; the log tail."""
    if error is not None:
        case = ET.SubElement(suite, "testcase", {"classname": "harness", "name": "run",
                                                 "time": "0.000"})
        ET.SubElement(case, "error", {"message": error[:500], "type": "harness"}).text = error
    cases = list(suite.iter("testcase"))
    for attr, tag in (("failures", "failure"), ("skipped", "skipped"), ("errors", "error")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    suite.set("tests", str(len(cases)))
    if system_out:
        ET.SubElement(suite, "system-out").text = system_out


def run_suite(name: str, report: RunReport) -> ET.Element:
    seconds = sum(s.seconds for s in report.stages)
    suite = _suite(name, report.started, report.host, seconds)
    for r in report.subtests:
        case = testcase(suite, r.name, r.seconds)
        if r.status is Status.FAIL:
            fail_case(case, r.log, f"{r.name} failed")
            _retried(case, _failed_logs(r.reruns), "rerunFailure")
        elif r.status is Status.FLAKY:
            _retried(case, [r.log, *_failed_logs(r.reruns)], "flakyFailure")
        elif r.status is Status.SKIP:
            ET.SubElement(case, "skipped", {"message": "skipped by test_progs"})
        elif r.status is Status.DENIED:
            ET.SubElement(case, "skipped", {"message": f"denied ({r.log[0] if r.log else ''})"})
        elif r.status is Status.INFRA:
            found = infra.scan(r.log)
            what = "; ".join(m.text() for m in found) or "missing test infrastructure"
            ET.SubElement(case, "error", {"message": what[:500], "type": "infrastructure"}
                          ).text = "\n".join(r.log)
    for sp in report.splats:
        splat_case(suite, sp)
    if report.verdict is Verdict.DRY_RUN:
        case = testcase(suite, "harness/run")
        ET.SubElement(case, "skipped", {"message": "dry run: nothing built or booted"})
    broken = report.verdict in (Verdict.ERROR, Verdict.ABORTED) or (
        report.verdict is Verdict.FAIL and not report.subtests)
    _finish_suite(suite, report.reason if broken else None, report.log_tail())
    return suite


def gate_suite(report: GateReport) -> ET.Element:
    sides = [s for s in (report.base, report.series_run) if s is not None]
    seconds = sum(st.seconds for s in sides for st in s.stages)
    suite = _suite("gate", report.started, report.host, seconds)
    for c in report.compared:
        case = testcase(suite, c.name, c.result.seconds if c.result else None)
        change = (f"{c.change.value}: {c.base.value if c.base else 'absent'} -> "
                  f"{c.series.value if c.series else 'absent'}")
        if c.change.gates:
            fail_case(case, c.result.log if c.result else [], change)
        elif c.series is None:
            ET.SubElement(case, "skipped", {"message": "removed by the series"})
        elif c.change is Change.PRE_EXISTING:
            ET.SubElement(case, "skipped", {"message": f"pre-existing, not gating ({change})"})
        elif c.change is Change.NOT_RUN:
            ET.SubElement(case, "skipped", {"message": f"not run on the series side ({change})"})
        elif c.series is Status.SKIP:
            ET.SubElement(case, "skipped", {"message": f"skipped by test_progs ({change})"})
    if report.verdict is Verdict.DRY_RUN:
        case = testcase(suite, "harness/gate")
        ET.SubElement(case, "skipped", {"message": "dry run: nothing applied, built or booted"})
    broken = report.verdict in (Verdict.ERROR, Verdict.ABORTED)
    tails = [t for s in sides if (t := s.log_tail())] if report.verdict is Verdict.FAIL else []
    _finish_suite(suite, report.reason if broken else None, "\n".join(tails) or None)
    return suite


XML_ILLEGAL = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(root: ET.Element) -> ET.Element:
    """Replace what XML 1.0 cannot hold (escape sequences, NULs from a console) by '?'."""
    for el in root.iter():
        if el.text:
            el.text = XML_ILLEGAL.sub("?", el.text)
        for key, value in el.attrib.items():
            el.set(key, XML_ILLEGAL.sub("?", value))
    return root


def _count_suites(root: ET.Element) -> None:
    suites = root.findall("testsuite")
    for attr in ("tests", "failures", "errors"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))
    root.set("time", f"{sum(float(s.get('time', '0')) for s in suites):.3f}")
