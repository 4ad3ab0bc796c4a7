"""Comparing the subtests of two runs (the base and the base + series): pure rules.

Per subtest: pass→pass, fail→fail (pre-existing), pass→fail (regression), fail→pass
(fixed), new and removed subtests.  Only regressions and failing new subtests gate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from harness.outcome.results import INCOMPLETE, Result, Status


class Change(StrEnum):
    PASS = "pass"  # passes on both
    PRE_EXISTING = "pre-existing"  # fails on both
    REGRESSION = "regression"  # passes (or skips) on base, fails with the series
    FIXED = "fixed"
    NEW = "new"  # only with the series, and it passes (or skips)
    NEW_FAILING = "new-failing"
    REMOVED = "removed"  # the series side finished without it
    NOT_REACHED = "not-reached"  # the series side crashed before reaching it
    SKIP = "skip"  # skipped with the series, not failing on either side
    NOT_RUN = "not-run"  # the series side could not run it (infra) or a list denied it

    @property
    def gates(self) -> bool:
        return self in (Change.REGRESSION, Change.NEW_FAILING, Change.NOT_REACHED)


@dataclass(frozen=True)
class Compared:
    name: str
    base: Status | None
    series: Status | None
    change: Change
    result: Result | None = None  # the series side's result (its log and time)

    def as_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "status": self.series.value if self.series else None,
                "base": self.base.value if self.base else None, "change": self.change.value}


def classify(base: Status | None, new: Status | None, new_finished: bool = True) -> Change:
    fail = Status.FAIL
    if base is None:
        return Change.NEW_FAILING if new is fail else Change.NEW
    if new is None:
        return Change.REMOVED if new_finished else Change.NOT_REACHED
    if new in (Status.INFRA, Status.DENIED):  # no verdict on it: never a pass
        return Change.NOT_RUN
    if new is fail:
        return Change.PRE_EXISTING if base is fail else Change.REGRESSION
    if base is fail:
        return Change.FIXED
    return Change.SKIP if new is Status.SKIP else Change.PASS


def compare(base: list[Result], new: list[Result], flaky_fails: bool = False,
            ) -> list[Compared]:
    """Every subtest of either side, in the series side's order, then the missing ones.

    A subtest the base ran and the series side never reached because test_progs
    crashed first gates (not-reached); one the series side finished without is removed.
    A flaky subtest (passed on a retry) counts as passing, or with `flaky_fails` as
    failing.
    """
    def status_of(r: Result) -> Status:
        return Status.FAIL if flaky_fails and r.status is Status.FLAKY else r.status

    before = {r.name: status_of(r) for r in base}
    after = {r.name: r for r in new}
    finished = INCOMPLETE not in after
    names = list(after) + [n for n in before if n not in after]
    out = []
    for n in names:
        result = after.get(n)
        status = status_of(result) if result else None
        change = classify(before.get(n), status, finished)
        out.append(Compared(n, before.get(n), status, change, result))
    return out
