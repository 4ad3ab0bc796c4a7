"""Verdict, report.json, junit.xml and the human summary, from a parsed run."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.results import Parsed, Result, Status

SCHEMA = 1


@dataclass
class Stage:
    name: str
    status: str  # "ok", "failed", "skipped"
    seconds: float
    log: str | None = None
    detail: str | None = None


@dataclass
class Verdict:
    verdict: str  # "pass", "fail", "error"
    reason: str


def _synthetic(name: str, message: str) -> Result:
    return Result(name=name, number="-", status=Status.FAIL, log=[message])


def judge(parsed: Parsed, exit_status: int) -> tuple[Verdict, list[Result]]:
    """The verdict and the subtests to report, from test_progs output and exit status.

    A crash mid-run (no Summary line) or a non-zero exit without a FAIL line adds a
    synthetic failing entry, so a failure is never reported as a pass.
    """
    subtests = list(parsed.subtests)
    # Tests without subtests are reported as their own single entry.
    with_subs = {s.name.split("/", 1)[0] for s in subtests}
    subtests += [t for t in parsed.tests if t.name not in with_subs]
    failed = parsed.failed()
    if not parsed.complete:
        last = subtests[-1].name if subtests else "start"
        subtests.append(_synthetic("test_progs/incomplete",
                                   f"test_progs stopped without a Summary (after {last}), "
                                   f"exit status {exit_status}"))
        return Verdict("fail", f"test_progs did not finish (exit status {exit_status})"), subtests
    if exit_status == 2 or not subtests:
        return Verdict("error", "test_progs ran no test (exit status 2: nothing matched)"), subtests
    if failed:
        names = ", ".join(r.name for r in failed if r.is_subtest) or failed[0].name
        return Verdict("fail", f"failed: {names}"), subtests
    if exit_status != 0:
        subtests.append(_synthetic("test_progs/exit", f"exit status {exit_status} without FAIL"))
        return Verdict("fail", f"test_progs exited {exit_status}"), subtests
    return Verdict("pass", f"{len(subtests)} subtests passed"), subtests


@dataclass
class Report:
    verdict: str
    reason: str
    exit_code: int
    run_dir: Path
    stages: list[Stage] = field(default_factory=list)
    subtests: list[Result] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {s.value: sum(1 for r in self.subtests if r.status is s) for s in Status}

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict,
            "reason": self.reason,
            "exit_code": self.exit_code,
            **self.context,
            "counts": self.counts(),
            "stages": [vars(s) for s in self.stages],
            "subtests": [_subtest_dict(r) for r in self.subtests],
        }


def _subtest_dict(r: Result) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": r.name, "status": r.status.value, "number": r.number}
    if r.status is Status.FAIL and r.log:
        entry["log"] = "\n".join(r.log)
    return entry


def testcase(suite: ET.Element, name: str, failure: str | None = None,
             skipped: str | None = None) -> ET.Element:
    """Append one testcase ("test/subtest" → classname test, name subtest)."""
    test, _, sub = name.partition("/")
    case = ET.SubElement(suite, "testcase", {"classname": test, "name": sub or test})
    if failure is not None:
        ET.SubElement(case, "failure", {"message": f"{name} failed"}).text = failure
    elif skipped is not None:
        ET.SubElement(case, "skipped", {"message": skipped})
    return case


def finish_suite(suite: ET.Element, error: str | None = None) -> ET.Element:
    """Set the counts from the testcases; add an error testcase when the run broke."""
    if error is not None:
        case = ET.SubElement(suite, "testcase", {"classname": "harness", "name": "run"})
        ET.SubElement(case, "error", {"message": error})
    cases = list(suite.iter("testcase"))
    for attr, tag in (("failures", "failure"), ("skipped", "skipped"), ("errors", "error")):
        suite.set(attr, str(sum(1 for c in cases if c.find(tag) is not None)))
    suite.set("tests", str(len(cases)))
    return suite


def suite(name: str, report: Report) -> ET.Element:
    element = ET.Element("testsuite", {
        "name": name, "time": f"{sum(s.seconds for s in report.stages):.3f}"})
    for r in report.subtests:
        testcase(element, r.name,
                 failure="\n".join(r.log) if r.status is Status.FAIL else None,
                 skipped="skipped" if r.status is Status.SKIP else None)
    broken = report.verdict == "error" or (report.verdict == "fail" and not report.subtests)
    return finish_suite(element, report.reason if broken else None)


def write_files(run_dir: Path, data: dict[str, Any], root: ET.Element) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(run_dir / "junit.xml", encoding="utf-8", xml_declaration=True)


def write(report: Report) -> None:
    write_files(report.run_dir, report.as_dict(), suite("harness", report))


def summary(report: Report) -> str:
    c = report.counts()
    lines = [f"{report.verdict.upper()}: {report.reason}"]
    if report.subtests:
        lines.append(f"  subtests: {c['pass']} passed, {c['fail']} failed, {c['skip']} skipped")
    lines += [f"  FAIL {r.name}" for r in report.subtests if r.status is Status.FAIL]
    lines.append(f"  report: {report.run_dir / 'report.json'}")
    return "\n".join(lines)
