"""The series gate: the selected tests on the base tree and on base + series, compared.

Per subtest: pass→pass, fail→fail (pre-existing), pass→fail (regression), fail→pass
(fixed), new and removed subtests.  Only regressions and failing new subtests gate.
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from harness import apply, report, run, series, tree
from harness.config import RunConfig
from harness.errors import ApplyError, HarnessError
from harness.results import Result, Status


class Change(StrEnum):
    PASS = "pass"  # passes on both
    PRE_EXISTING = "pre-existing"  # fails on both
    REGRESSION = "regression"  # passes (or skips) on base, fails with the series
    FIXED = "fixed"
    NEW = "new"  # only with the series, and it passes (or skips)
    NEW_FAILING = "new-failing"
    REMOVED = "removed"
    SKIP = "skip"  # skipped with the series, not failing on either side

    @property
    def gates(self) -> bool:
        return self in (Change.REGRESSION, Change.NEW_FAILING)


@dataclass(frozen=True)
class Compared:
    name: str
    base: Status | None
    series: Status | None
    change: Change


def classify(base: Status | None, new: Status | None) -> Change:
    fail = Status.FAIL
    if base is None:
        return Change.NEW_FAILING if new is fail else Change.NEW
    if new is None:
        return Change.REMOVED
    if new is fail:
        return Change.PRE_EXISTING if base is fail else Change.REGRESSION
    if base is fail:
        return Change.FIXED
    return Change.SKIP if new is Status.SKIP else Change.PASS


def compare(base: list[Result], new: list[Result]) -> list[Compared]:
    """Every subtest of either side, in the series side's order, then removed ones."""
    before = {r.name: r.status for r in base}
    after = {r.name: r.status for r in new}
    names = list(after) + [n for n in before if n not in after]
    return [Compared(n, before.get(n), after.get(n), classify(before.get(n), after.get(n)))
            for n in names]


def _side(cfg: RunConfig, name: str, progress: run.Progress, source: run.TreeSource,
          ) -> run.Outcome:
    def tagged(message: str) -> None:
        progress(f"{name}: {message}")
    return run.execute(dataclasses.replace(cfg, out=cfg.out / name), tagged, source)


def apply_onto(cfg: RunConfig, base: tree.Tree, patches: series.Series) -> apply.Applied:
    key = f"{base.key}-series"
    worktree = cfg.cache / "worktrees" / key
    with tree.locked(cfg.cache, f"{key}-apply"):
        apply.prepare(base.path, base.commit, worktree)
        return apply.apply_series(patches, worktree, base.commit, cfg.out)


def _series_tree(base: tree.Tree, applied: apply.Applied, source: str) -> tree.Tree:
    return tree.Tree(path=applied.worktree, origin=f"{base.origin} + series {source}",
                     commit=applied.head, version=tree.check_kernel_tree(applied.worktree),
                     key=f"{base.key}-series")


@dataclass
class GateOutcome:
    verdict: str
    reason: str
    data: dict[str, Any]
    root: ET.Element
    error: HarnessError | None = None


def _conflict_error(applied: apply.Applied) -> ApplyError:
    first = applied.conflicts[0]
    files = ", ".join(f.path for f in first.files if f.rejected_hunks or f.errors)
    hint = " (most of its lines are already in the tree: already applied?)" if (
        first.looks_present) else ""
    return ApplyError(f"patch {first.label} {first.subject!r} does not apply: {files}{hint}")


def execute(cfg: RunConfig, source: str, progress: run.Progress) -> GateOutcome:
    """Base run, application, series run, comparison.  Never raises HarnessError."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"mode": "series"}
    try:
        patches = series.load(source, cfg.tree)
        series.require_complete(patches)
        data["series"] = patches.as_dict()
        old = tree.select(cfg.tree, cfg.rev, cfg.cache, cfg.out)
        base = _side(cfg, "base", progress, lambda: old)
        data["base"] = base.report.as_dict()
        if base.error:
            return _broken(data, f"base run failed: {base.error.line()}", base.error)
        progress("applying the series")
        applied = apply_onto(cfg, old, patches)
        data["patches"] = [r.as_dict() for r in applied.results]
        if applied.conflicts:
            err = _conflict_error(applied)
            return _broken(data, err.line(), err)
        new_tree = _series_tree(old, applied, source)
        new = _side(cfg, "series", progress, lambda: new_tree)
        data["series_run"] = new.report.as_dict()
        if new.error:
            return _broken(data, f"series run failed: {new.error.line()}", new.error)
    except HarnessError as exc:
        return _broken(data, exc.line(), exc)
    return _judge(data, base.report, new.report)


def _broken(data: dict[str, Any], reason: str, error: HarnessError) -> GateOutcome:
    data.update(verdict="error", reason=reason, subtests=[])
    root = report.finish_suite(ET.Element("testsuite", {"name": "gate"}), reason)
    return GateOutcome("error", reason, data, root, error)


def _judge(data: dict[str, Any], base: report.Report, new: report.Report) -> GateOutcome:
    compared = compare(base.subtests, new.subtests)
    gating = [c for c in compared if c.change.gates]
    if gating:
        verdict = "fail"
        reason = "; ".join(f"{c.change.value}: {c.name}" for c in gating)
    else:
        verdict, reason = "pass", f"no regression in {len(compared)} subtests"
    data.update(verdict=verdict, reason=reason, subtests=[
        {"name": c.name, "status": (c.series or Status.SKIP).value,
         "base": c.base.value if c.base else None, "change": c.change.value}
        for c in compared])
    return GateOutcome(verdict, reason, data, _junit(compared, base, new))


def _junit(compared: list[Compared], base: report.Report, new: report.Report) -> ET.Element:
    root = ET.Element("testsuites")
    gate = ET.SubElement(root, "testsuite", {"name": "gate"})
    for c in compared:
        change = f"{c.base.value if c.base else 'absent'} -> " + (
            c.series.value if c.series else "absent")
        report.testcase(gate, c.name, failure=f"{c.change.value}: {change}" if c.change.gates
                        else None, skipped=None if c.series else "removed by the series")
    report.finish_suite(gate)
    root.append(report.suite("base", base))
    root.append(report.suite("series", new))
    return root
