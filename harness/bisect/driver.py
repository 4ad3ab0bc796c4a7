"""The bisection loop, pure: probe the endpoints, then probe what the oracle names next,
mark it, and repeat until the oracle names the first commit (or the candidates).

Nothing here runs git or a VM.  The probe (run the selected tests at a commit) and the
oracle (git bisect, choosing the next commit and deciding the end) are injected, so the
loop is tested on synthetic histories; harness/bisect/gitbisect.py and command.py wire in
the real ones.

Terms follow `git bisect --term-old/--term-new`: a regression hunt's old commits pass
and new ones fail (good/bad); a fix hunt's old commits fail and new ones pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from harness.errors import (
    BisectAmbiguous,
    BisectRefused,
    DiskFull,
    HarnessError,
    HarnessTimeout,
    InternalError,
    KernelPanic,
    KernelSplat,
    ParseError,
    RunTimeout,
    UsageError,
)
from harness.outcome.report import Verdict


class Outcome(StrEnum):
    """What one run at a commit says about it."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # cannot be judged: build failure, no boot, infrastructure
    ABORT = "abort"  # stop the bisection: usage or internal error, dry run, Ctrl-C


class Find(StrEnum):
    REGRESSION = "regression"  # the first commit whose tests fail (git's good/bad)
    FIX = "fix"  # the first commit whose tests pass again (for backporting a fix)

    @property
    def terms(self) -> tuple[str, str]:
        """git bisect's (old, new) terms."""
        return ("good", "bad") if self is Find.REGRESSION else ("broken", "fixed")

    @property
    def new_outcome(self) -> Outcome:
        return Outcome.FAIL if self is Find.REGRESSION else Outcome.PASS


class Mark(StrEnum):
    OLD = "old"
    NEW = "new"
    SKIP = "skip"


PANIC_POLICIES = ("bad", "skip")
# Errors that end the bisection: no commit can be judged by a run that cannot start.
ABORTING: tuple[type[HarnessError], ...] = (UsageError, InternalError, ParseError, DiskFull)


def classify(verdict: Verdict, error: BaseException | None, panic: str = "bad") -> Outcome:
    """One run's outcome for bisecting.

    A pass and a test failure are what they say.  A kernel panic, a kernel splat or a
    hang while the tests ran is the failure a kernel bisect hunts (`panic="bad"`, the default) or a
    commit that cannot be judged (`panic="skip"`).  A commit that does not build or boot,
    or whose run lacked infrastructure or ran out of time elsewhere, cannot be judged
    (skip).  A dry run, an abort, a usage or internal error stops the bisection.
    """
    if verdict is Verdict.PASS:
        return Outcome.PASS
    if verdict is Verdict.FAIL:
        return Outcome.FAIL
    if verdict is not Verdict.ERROR or error is None or isinstance(error, ABORTING):
        return Outcome.ABORT
    hung = isinstance(error, RunTimeout)
    panicked = isinstance(error, KernelPanic) and error.in_tests
    if hung or panicked or isinstance(error, KernelSplat):
        return Outcome.FAIL if panic == "bad" else Outcome.SKIP
    if isinstance(error, HarnessError | HarnessTimeout):
        return Outcome.SKIP
    return Outcome.ABORT


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """N runs of one commit (`--repeat N`): any failing run makes the commit fail (a flaky
    failure is a failure: bisecting hunts it); else any run that could not be judged
    makes it a skip; all passing is a pass.  An abort wins over everything."""
    for o in (Outcome.ABORT, Outcome.FAIL, Outcome.SKIP):
        if o in outcomes:
            return o
    return Outcome.PASS if outcomes else Outcome.SKIP


def mark_of(outcome: Outcome, find: Find) -> Mark:
    if outcome is Outcome.SKIP:
        return Mark.SKIP
    return Mark.NEW if outcome is find.new_outcome else Mark.OLD


@dataclass(frozen=True)
class Probed:
    """The runs at one commit.  A probe raises the error of a run that aborts (usage,
    internal, Ctrl-C) instead of returning it: no outcome here is ABORT."""

    commit: str
    outcomes: tuple[Outcome, ...]
    reasons: tuple[str, ...] = ()  # one line per run: its verdict and error
    run_dirs: tuple[str, ...] = ()
    reused: bool = False  # every build of every run was reused (only booted)
    seconds: float = 0.0

    @property
    def outcome(self) -> Outcome:
        return combine(self.outcomes)

    def counts(self) -> dict[str, int]:
        return {o.value: self.outcomes.count(o) for o in Outcome if o in self.outcomes}


@dataclass(frozen=True)
class Next:
    commit: str
    note: str = ""  # e.g. "a merge base must be tested"


@dataclass(frozen=True)
class Done:
    first: str


@dataclass(frozen=True)
class Ambiguous:
    candidates: tuple[str, ...]


State = Next | Done | Ambiguous


class Oracle(Protocol):
    """Chooses the next commit and decides the end (git bisect in the real adapter)."""

    def start(self, old: Sequence[str], new: str) -> State: ...

    def mark(self, commit: str, mark: Mark) -> State: ...


Probe = Callable[[str, str], Probed]  # (commit, role: "old"/"new"/"step") → runs


@dataclass
class Step:
    role: str  # "old", "new" (the endpoint checks) or "step"
    probed: Probed
    mark: Mark
    note: str = ""


@dataclass
class Bisection:
    find: Find
    steps: list[Step] = field(default_factory=list)
    first: str | None = None
    candidates: tuple[str, ...] = ()

    def step_for(self, commit: str) -> Step | None:
        return next((s for s in reversed(self.steps) if s.probed.commit == commit), None)

    @property
    def skipped(self) -> list[str]:
        return [s.probed.commit for s in self.steps if s.mark is Mark.SKIP]


def _endpoint(probe: Probe, commit: str, role: str, find: Find,
              prior: dict[tuple[str, str], Step]) -> Step:
    known = prior.get((role, commit))
    wanted = Mark.NEW if role == "new" else Mark.OLD
    if known is not None and known.mark is wanted:  # a refusal is tried again
        return known
    probed = probe(commit, role)
    return Step(role=role, probed=probed, mark=mark_of(probed.outcome, find))


def expected(mark: Mark, find: Find) -> Outcome:
    """The outcome an endpoint marked `mark` must have."""
    if mark is Mark.NEW:
        return find.new_outcome
    return Outcome.PASS if find is Find.REGRESSION else Outcome.FAIL


def _check(step: Step, wanted: Mark, find: Find) -> None:
    if step.mark is wanted:
        return
    term = find.terms[0] if wanted is Mark.OLD else find.terms[1]
    why = "; ".join(r for r in step.probed.reasons if r) or step.probed.outcome.value
    raise BisectRefused(f"the {term} endpoint {step.probed.commit[:12]} must "
                        f"{expected(wanted, find).value} the selected tests, but it gave "
                        f"{step.probed.outcome.value} ({why})")


def bisect(oracle: Oracle, probe: Probe, old: Sequence[str], new: str, *, find: Find,
           prior: Sequence[Step] = (), record: Callable[[Bisection], None] | None = None,
           ) -> Bisection:
    """Check the endpoints, then bisect; `prior` steps (a resumed bisection's log) are
    replayed into the oracle instead of being probed again, but for skipped steps and
    refused endpoints: what could not be judged then is tried again.  `record` is called after
    every step (the caller writes the log there, so an interruption loses nothing).

    Raises BisectRefused when an endpoint does not behave, BisectAmbiguous when only
    skipped commits are left between the last old and the first new commit.
    """
    result = Bisection(find=find)
    save = record or (lambda _b: None)
    by_role = {(s.role, s.probed.commit): s for s in prior if s.role != "step"}
    for commit, role, wanted in [(new, "new", Mark.NEW), *((c, "old", Mark.OLD) for c in old)]:
        step = _endpoint(probe, commit, role, find, by_role)
        result.steps.append(step)
        save(result)
        _check(step, wanted, find)
    state = oracle.start(old, new)
    logged = {s.probed.commit: s for s in prior if s.role == "step"}
    while isinstance(state, Next):
        known = logged.get(state.commit)
        if known is not None and known.mark is not Mark.SKIP:  # a skip is tried again
            step = known
        else:
            probed = probe(state.commit, "step")
            step = Step(role="step", probed=probed, mark=mark_of(probed.outcome, find),
                        note=state.note)
        result.steps.append(step)
        save(result)
        state = oracle.mark(state.commit, step.mark)
    if isinstance(state, Ambiguous):
        result.candidates = state.candidates
        save(result)
        raise BisectAmbiguous(f"skipped commits leave {len(state.candidates)} candidates for "
                              f"the first {find.terms[1]} commit", state.candidates)
    result.first = state.first
    save(result)
    return result
