"""The series gate: apply first, then the selected tests on the base and on base + series.

Order: read the series, apply it in the harness-owned worktree (seconds; a conflict stops
the gate before anything is built), run the base side, run the series side, compare
(harness/outcome/compare.py).  The worktree's lock is held for the whole gate, so two gates on
one tree never build from each other's worktree.  A dry run applies nothing.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from harness import run
from harness.boot import choice, kconfig
from harness.build import kernel_reads
from harness.config import RunConfig
from harness.errors import (
    ApplyError,
    HarnessError,
    SelectionError,
    internal_error,
    os_error,
)
from harness.host import toolchain
from harness.host.cache import Cache
from harness.outcome.compare import compare
from harness.outcome.report import GateReport, RunReport, Verdict
from harness.source import apply, series, tree


class FixedSource(run.TreeSource):
    """A side whose tree was resolved (and, for the series side, prepared) by the gate."""

    def __init__(self, src: tree.Source, prepared: tree.Tree | None = None,
                 decided: choice.Choice | None = None,
                 fragments: list[kconfig.Fragment] | None = None) -> None:
        self.src = src
        self.prepared = prepared
        self.decided = decided
        self.fragments = fragments

    def resolve(self, cfg: RunConfig) -> tree.Source:
        return self.src

    def checkout(self, src: tree.Source, cache: Cache, log_dir: Path) -> tree.Tree:
        if self.prepared is not None:
            return self.prepared
        return tree.checkout(src, cache, log_dir)

    def kernel_choice(self, cfg: RunConfig, t: tree.Tree) -> choice.Choice:
        return self.decided or super().kernel_choice(cfg, t)

    def kernel_fragments(self, cfg: RunConfig, t: tree.Tree) -> list[kconfig.Fragment]:
        return self.fragments or super().kernel_fragments(cfg, t)


def _side(cfg: RunConfig, name: str, progress: run.Progress, source: run.TreeSource,
          ) -> RunReport:
    def tagged(message: str) -> None:
        progress(f"{name}: {message}")
    return run.execute(dataclasses.replace(cfg, out=cfg.out / name), tagged, source)


def _conflict_error(applied: apply.Applied) -> ApplyError:
    first = applied.conflicts[0]
    files = ", ".join(f.path for f in first.files if f.rejected_hunks or f.errors)
    hint = " (most of its lines are already in the tree: already applied?)" if (
        first.looks_present) else ""
    return ApplyError(f"patch {first.label} {first.subject!r} does not apply: {files}{hint}")


def apply_onto(cfg: RunConfig, base: tree.Source, patches: series.Series,
               progress: run.Progress) -> apply.Applied:
    """Apply the series in a worktree of the base's repository (a dry run: plan it).

    The caller holds the worktree's lock; the base's lock is taken here while the
    worktree is created from the base's repository (the base is not checked out: its
    own run does that).
    """
    cache = Cache(cfg.cache)
    worktree = cache.worktree(f"{base.key}-series")
    with cache.lock(base.key, progress):
        commit = tree.repository(base, cache, cfg.out)
        if cfg.dry_run:
            return apply.planned(patches, worktree, commit)
        progress("applying the series")
        apply.prepare(cache.tree(base.key), commit, worktree, cfg.out / "patches")
    return apply.apply_series(patches, worktree, commit, cfg.out)


def _series_tree(base: tree.Source, applied: apply.Applied, source: str) -> tree.Tree:
    return tree.Tree(path=applied.worktree, origin=f"{base.origin} + series {source}",
                     commit=applied.head, version=tree.check_kernel_tree(applied.worktree),
                     key=f"{base.key}-series", base_key=base.key)


@dataclass(frozen=True)
class KernelPlan:
    """The gate's one kernel decision and config for both sides (None: each side decides)."""

    choices: choice.GateChoice | None = None
    fragments: list[kconfig.Fragment] | None = None


# The selftests profile reads these as kernel config: a series changing them changes it.
SELFTESTS_CONFIGS = {"tools/testing/selftests/bpf/config%":
                     "kernel config: the selftests profile merges it"}


def kernel_plan(cfg: RunConfig, base: tree.Source, applied: apply.Applied,
                patches: series.Series) -> KernelPlan:
    """Like for like: one choice and one config for both sides, read from the series
    tree (the base's in a dry run, which applies nothing)."""
    if cfg.kernel_mode == "image" or (cfg.dry_run and base.repo is not None):
        return KernelPlan()  # no files to read in a dry run of a user's tree
    cache = Cache(cfg.cache)
    files = cache.tree(base.key) if cfg.dry_run else applied.worktree
    version = tree.check_kernel_tree(files)
    rule = kernel_reads.derive(files)
    if "selftests" in cfg.kconfig:
        rule = rule.with_read(SELFTESTS_CONFIGS)
    diff = choice.Difference("--kernel build") if cfg.kernel_mode == "build" else (
        choice.difference(cache.tree(base.key), applied.base, version=version, rule=rule,
                          cache=cache, log_dir=cfg.out, release=run.prebuilt_release(version),
                          may_import=not cfg.dry_run))  # build: no comparison to make
    touched = [choice.PatchFiles(p.label, tuple(f.path for f in p.files))
               for p in patches.patches]
    decided = choice.decide_gate(cfg.kernel_mode, diff, touched, rule)
    lacking = run.unless_lacking(decided.base, cfg, files, version)
    if lacking is not decided.base:
        decided = choice.GateChoice(lacking, choice.Choice(
            choice.How.BUILD, f"like for like with the base: {lacking.reason}"))
    return KernelPlan(decided, kconfig.fragments(cfg.kconfig, files, building=True))


def _sides(cfg: RunConfig, rep: GateReport, progress: run.Progress,
           base_src: tree.Source) -> None:
    assert rep.applied is not None and rep.series is not None
    plan = kernel_plan(cfg, base_src, rep.applied, rep.series)
    rep.base = _side(cfg, "base", progress, FixedSource(
        base_src, decided=plan.choices.base if plan.choices else None,
        fragments=plan.fragments))
    if _lacks_tests(rep.base):
        progress(f"base: {rep.base.reason}; every subtest of the series side counts as new")
    elif _stopped(rep, rep.base, "base"):
        return
    if cfg.dry_run:  # the series side is the same plan on the worktree: nothing to add
        rep.verdict = Verdict.DRY_RUN
        rep.reason = (f"nothing applied, built or booted (--dry-run); "
                      f"{len(rep.applied.results)} patches would be applied")
        return
    new_tree = _series_tree(base_src, rep.applied, rep.source)
    series_src = tree.Source(key=new_tree.key, origin=new_tree.origin, commit=new_tree.commit)
    rep.series_run = _side(cfg, "series", progress, FixedSource(
        series_src, new_tree, plan.choices.series if plan.choices else None, plan.fragments))
    if _stopped(rep, rep.series_run, "series"):
        return
    _judge(rep, rep.base, rep.series_run, cfg.flaky == "fail")


def _lacks_tests(base: RunReport) -> bool:
    """The base does not have the selected tests (a series that adds them): no error."""
    return base.verdict is Verdict.ERROR and isinstance(base.error, SelectionError)


def _stopped(rep: GateReport, side: RunReport, name: str) -> bool:
    """Carry a side's abort or error to the gate; True when the gate must stop."""
    if side.verdict is Verdict.ABORTED:
        rep.verdict, rep.reason = Verdict.ABORTED, f"{name} run {side.reason}"
        return True
    if side.verdict is Verdict.ERROR:
        assert side.error is not None
        rep.broke(side.error, f"{name} run failed: {side.reason}")
        return True
    return False


def _gate(cfg: RunConfig, rep: GateReport, progress: run.Progress) -> None:
    run.check_inputs(cfg)
    patches = series.load(rep.source, cfg.tree, cfg.out)
    series.require_complete(patches)
    rep.series = patches
    toolchain.check(cfg.toolchain)  # before anything is checked out or applied
    base_src = tree.resolve(cfg.tree, cfg.rev, cfg.out)
    cache = Cache(cfg.cache)
    with cache.lock(f"{base_src.key}-series", progress):
        rep.applied = apply_onto(cfg, base_src, patches, progress)
        if rep.applied.conflicts:
            raise _conflict_error(rep.applied)
        _sides(cfg, rep, progress, base_src)


def execute(cfg: RunConfig, source: str, progress: run.Progress) -> GateReport:
    """The whole gate; its outcome (errors, aborts, bugs included) is on the report."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    rep = GateReport(run_dir=cfg.out, source=source)
    try:
        _gate(cfg, rep, progress)
    except HarnessError as exc:
        rep.broke(exc)
    except OSError as exc:  # a full disk (DiskFull), else a bug
        rep.broke(os_error(exc, cfg.out))
    except KeyboardInterrupt as exc:
        rep.aborted(run.signal_name(exc))
    except Exception as exc:  # a bug: keep the traceback with the run
        rep.broke(internal_error(exc, cfg.out))
    return rep


def _judge(rep: GateReport, base: RunReport, new: RunReport, flaky_fails: bool) -> None:
    rep.compared = compare(base.subtests, new.subtests, flaky_fails)
    gating = [c for c in rep.compared if c.change.gates]
    if gating:
        rep.verdict = Verdict.FAIL
        rep.reason = "; ".join(f"{c.change.value}: {c.name}" for c in gating)
    else:
        rep.verdict = Verdict.PASS
        rep.reason = f"no regression in {len(rep.compared)} subtests"
