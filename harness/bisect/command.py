"""`harness bisect`: the driver wired to git bisect (the oracle) and to the gate (the probe).

    <out>/bisect.json        the request, every step (commit, verdict, per-run counts,
                             reused or built, seconds, run directories) and the result;
                             rewritten after every step, so an interrupted bisection
                             resumes from it (`harness bisect --resume <out>`)
    <out>/bisect.log         `git bisect log` of the owned clone: `git bisect replay` it
    <out>/steps/NN-<commit>/run-K/   each run's own directory (report.json, junit.xml, logs)

Each step is an ordinary `harness run` at that commit, in the run's own tree clone, so
the builds are the run's (content-keyed: a step whose inputs did not change only boots).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import run
from harness.bisect import driver, gitbisect
from harness.bisect.driver import Bisection, Find, Mark, Outcome, Probed, Step
from harness.config import RunConfig
from harness.errors import Aborted, BisectAmbiguous, BisectRefused, UsageError
from harness.host import vcs
from harness.host.cache import Cache
from harness.outcome.report import RunReport
from harness.source import tree

SCHEMA = 1
Finisher = Callable[[RunReport], int]  # writes a run's report.json and junit.xml


@dataclass(frozen=True)
class BisectConfig:
    run: RunConfig  # tree (required), tests and selection, kernel, VM; out: the bisection's
    old: tuple[str, ...]
    new: str
    find: Find = Find.REGRESSION
    repeat: int = 1
    panic: str = "bad"
    argv: tuple[str, ...] = ()  # the command line, kept for --resume
    resolved: dict[str, Any] = dataclasses.field(default_factory=dict)  # old, new: commits


@dataclass
class Summary:
    bisection: Bisection
    culprit: dict[str, Any] | None
    failing_run: str | None
    seconds: float
    subjects: dict[str, str]


def _reason(rep: RunReport) -> str:
    if rep.error is not None:
        return f"{rep.verdict}: {rep.error.line()}"
    return f"{rep.verdict}: {rep.reason}"


@dataclass
class Prober:
    """Runs the gate at a commit (`repeat` times) and turns the reports into a Probed."""

    cfg: BisectConfig
    finish: Finisher
    progress: Callable[[str], None]
    count: int = 0

    def __call__(self, commit: str, role: str) -> Probed:
        self.count += 1
        step_dir = self.cfg.run.out / "steps" / f"{self.count:02d}-{commit[:12]}"
        shutil.rmtree(step_dir, ignore_errors=True)  # an interrupted attempt's leftovers
        start = time.monotonic()
        runs = [self._once(commit, step_dir / f"run-{k}", f"[{role} {self.count}.{k}] ")
                for k in range(1, self.cfg.repeat + 1)]
        reports = [rep for rep, _ in runs]
        return Probed(commit=commit, outcomes=tuple(outcome for _, outcome in runs),
                      reasons=tuple(_reason(r) for r in reports),
                      run_dirs=tuple(str(r.run_dir) for r in reports),
                      reused=all(r.reused() for r in reports),
                      seconds=round(time.monotonic() - start, 1))

    def _once(self, commit: str, out: Path, prefix: str) -> tuple[RunReport, Outcome]:
        cfg = dataclasses.replace(self.cfg.run, rev=commit, out=out)
        rep = run.execute(cfg, lambda line: self.progress(prefix + line))
        self.finish(rep)
        outcome = driver.classify(rep.verdict, rep.error, self.cfg.panic)
        if outcome is Outcome.ABORT:
            raise rep.error if rep.error is not None else Aborted()
        return rep, outcome


def _step_dict(n: int, s: Step, subjects: dict[str, str]) -> dict[str, Any]:
    p = s.probed
    return {"n": n, "role": s.role, "commit": p.commit, "subject": subjects.get(p.commit, ""),
            "mark": s.mark.value, "outcome": p.outcome.value, "counts": p.counts(),
            "outcomes": [o.value for o in p.outcomes], "reasons": list(p.reasons),
            "run_dirs": list(p.run_dirs), "reused": p.reused, "seconds": p.seconds,
            "note": s.note}


def step_from(d: dict[str, Any]) -> Step:
    probed = Probed(commit=d["commit"], outcomes=tuple(Outcome(o) for o in d["outcomes"]),
                    reasons=tuple(d["reasons"]), run_dirs=tuple(d["run_dirs"]),
                    reused=bool(d["reused"]), seconds=float(d["seconds"]))
    return Step(role=d["role"], probed=probed, mark=Mark(d["mark"]), note=d.get("note", ""))


@dataclass(frozen=True)
class Logged:
    """What --resume reads back: the command line, the endpoints as resolved then (a
    branch may have moved since), the steps."""

    argv: list[str]
    old: tuple[str, ...]
    new: str | None
    steps: list[Step]


def load_steps(out: Path) -> Logged:
    """A bisection's command line, endpoints and steps, from its bisect.json."""
    path = out / "bisect.json"
    try:
        data = json.loads(path.read_text())
        resolved = data.get("resolved") or {}
        return Logged(list(data["argv"]), tuple(resolved.get("old", ())), resolved.get("new"),
                      [step_from(d) for d in data["steps"]])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"--resume {out}: no readable bisect.json there ({exc}); pass the "
                         f"--out directory of an earlier `harness bisect`") from exc


@dataclass
class Journal:
    """bisect.json and bisect.log, rewritten after every step."""

    cfg: BisectConfig
    git: vcs.Git
    oracle: gitbisect.GitBisect
    subjects: dict[str, str] = dataclasses.field(default_factory=dict)
    status: str = "running"
    result: dict[str, Any] = dataclasses.field(default_factory=dict)
    last: Bisection | None = None

    def end(self, status: str, **result: Any) -> None:
        """Write the final state (the steps so far, and how it ended)."""
        self.status, self.result = status, result
        self(self.last or Bisection(find=self.cfg.find))

    def subject(self, commit: str) -> str:
        if commit not in self.subjects:
            self.subjects[commit] = gitbisect.subject(self.git, commit)
        return self.subjects[commit]

    def __call__(self, b: Bisection) -> None:
        self.last = b
        for s in b.steps:
            self.subject(s.probed.commit)
        c = self.cfg
        data = {"schema": SCHEMA, "argv": list(c.argv), "tree": str(c.run.tree),
                "find": c.find.value, "terms": list(c.find.terms), "old": list(c.old),
                "new": c.new, "tests": list(c.run.tests), "repeat": c.repeat,
                "panic": c.panic, "resolved": c.resolved, "status": self.status,
                "steps": [_step_dict(n, s, self.subjects) for n, s in enumerate(b.steps, 1)],
                "skipped": b.skipped, **self.result}
        out = c.run.out
        (out / "bisect.json").write_text(json.dumps(data, indent=2) + "\n")
        (out / "bisect.log").write_text(self.oracle.log())


def _bisect_repo(cfg: RunConfig) -> tuple[Path, str]:
    if cfg.tree is None:
        raise UsageError("bisect needs --tree: a kernel git tree with the history to search")
    source = cfg.tree.resolve()
    return source, f"{tree.user_key(source)}-bisect"


def execute(cfg: BisectConfig, progress: Callable[[str], None], finish: Finisher,
            prior: Sequence[Step] = ()) -> Summary:
    """Bisect; raises BisectRefused (endpoints) or BisectAmbiguous (skips) after writing
    bisect.json, UsageError for unknown or reversed revisions."""
    start = time.monotonic()
    run.check_inputs(cfg.run)
    cfg.run.out.mkdir(parents=True, exist_ok=True)
    source, key = _bisect_repo(cfg.run)
    cache = Cache(cfg.run.cache)
    with cache.lock(key, progress):
        # Revisions are the user's (branches move; the owned clone's refs do not): resolved
        # read-only in the user's repository, then given to the clone as hashes.
        user = vcs.Git(source, cfg.run.out)
        old = tuple(gitbisect.resolve(user, o, "--good/--old") for o in cfg.old)
        new = gitbisect.resolve(user, cfg.new, "--bad/--new")
        gitbisect.check_order(user, old, new, cfg.find.terms)
        cfg.resolved.update(old=list(old), new=new)
        repo = gitbisect.owned_clone(source, cache.tree(key), cfg.run.out)
        git = vcs.Git(repo, cfg.run.out)
        oracle = gitbisect.GitBisect(repo, cfg.run.out, cfg.find.terms)
        oracle.reset()  # no state (nor log) of an earlier bisection
        journal = Journal(cfg, git, oracle)
        prober = Prober(cfg, finish, progress, count=len(prior))
        try:
            b = driver.bisect(oracle, prober, old, new, find=cfg.find, prior=prior,
                              record=journal)
        except BisectAmbiguous as exc:
            journal.end("ambiguous", candidates=exc.candidates)
            raise BisectAmbiguous(f"{exc.message}: {_listing(journal, exc.candidates)}",
                                  exc.candidates, cfg.run.out / "bisect.json") from exc
        except BisectRefused as exc:
            journal.end("refused", refused=exc.message)
            raise BisectRefused(exc.message, cfg.run.out / "bisect.json") from exc
        except BaseException:
            journal.end("interrupted")
            raise
        assert b.first is not None
        culprit = gitbisect.describe(git, b.first)
        failing = _failing_run(b, b.first)
        journal.end("found", first=culprit, failing_run=failing,
                    seconds=round(time.monotonic() - start, 1))
    return Summary(b, culprit, failing, time.monotonic() - start, journal.subjects)


def _failing_run(b: Bisection, commit: str) -> str | None:
    """The culprit's run that showed the change (the first run with the new outcome)."""
    step = b.step_for(commit)
    if step is None:
        return None
    wanted = b.find.new_outcome
    runs = [d for o, d in zip(step.probed.outcomes, step.probed.run_dirs, strict=False)
            if o is wanted]
    return next(iter(runs or step.probed.run_dirs), None)


def _listing(journal: Journal, commits: Sequence[str]) -> str:
    return ", ".join(f"{c[:12]} ({journal.subject(c)})" for c in commits)


def table(b: Bisection, subjects: dict[str, str] | None = None) -> str:
    """The step table: commit, verdict, counts, reused/built, seconds."""
    rows = [f"{'#':>3}  {'role':4}  {'commit':12}  {'mark':5}  {'runs':18}  {'builds':6}  "
            f"{'seconds':>7}  subject"]
    for n, s in enumerate(b.steps, 1):
        p = s.probed
        counts = " ".join(f"{k}={v}" for k, v in p.counts().items())
        rows.append(f"{n:>3}  {s.role:4}  {p.commit[:12]}  {_term(s.mark, b.find):5}  "
                    f"{counts:18}  {'reused' if p.reused else 'built':6}  {p.seconds:7.1f}  "
                    f"{(subjects or {}).get(p.commit, '')}"
                    f"{f'  [{s.note}]' if s.note else ''}")
    return "\n".join(rows)


def _term(mark: Mark, find: Find) -> str:
    return {Mark.OLD: find.terms[0], Mark.NEW: find.terms[1], Mark.SKIP: "skip"}[mark]


def report(s: Summary) -> str:
    b = s.bisection
    c = s.culprit or {}
    lines = [table(b, s.subjects), "",
             f"first {b.find.terms[1]} commit: {c.get('commit')}",
             f"  subject: {c.get('subject')}", f"  author:  {c.get('author')}",
             f"  files:   {', '.join(c.get('files', [])) or '-'}",
             f"  failing run: {s.failing_run}"]
    if b.skipped:
        lines.append(f"  skipped: {', '.join(x[:12] for x in b.skipped)}")
    probed = len(b.steps)
    reused = sum(1 for st in b.steps if st.probed.reused)
    lines.append(f"{probed} commits probed ({reused} reused every build, {probed - reused} "
                 f"built), {s.seconds:.0f} s")
    return "\n".join(lines)
