"""Bisecting: the pure loop on synthetic histories (a model oracle), the classification of
run outcomes, git's words parsed from captured output, and git bisect itself as the
oracle on small real repositories (the same answers as the model)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import git
import pytest
from fakes import IDENTITY, fake_kernel_repo

from harness.bisect import driver, gitbisect
from harness.bisect.driver import (
    Ambiguous,
    Done,
    Find,
    Mark,
    Next,
    Outcome,
    Probed,
    State,
    Step,
)
from harness.container import recipe
from harness.errors import (
    BisectAmbiguous,
    BisectRefused,
    BootError,
    BuildError,
    GuestError,
    InfraError,
    InternalError,
    KernelPanic,
    KernelSplat,
    RunTimeout,
    SelectionError,
    UsageError,
    VmLost,
)
from harness.outcome.report import Verdict

DATA = Path(__file__).parent / "data"

# --- a model of git bisect over a synthetic history ------------------------------------


def linear(n: int) -> dict[str, tuple[str, ...]]:
    """c0 <- c1 <- ... <- c(n-1)."""
    return {f"c{i}": (f"c{i - 1}",) if i else () for i in range(n)}


def ancestors(parents: dict[str, tuple[str, ...]], c: str) -> set[str]:
    seen, todo = set(), [c]
    while todo:
        x = todo.pop()
        if x not in seen:
            seen.add(x)
            todo += parents[x]
    return seen


@dataclass
class ModelOracle:
    """What git bisect does, simply: candidates are the bad commit's ancestors that no good
    commit reaches; test the one that splits them best; skipped ones are never chosen."""

    parents: dict[str, tuple[str, ...]]
    good: set[str] = field(default_factory=set)
    bad: str = ""
    skipped: set[str] = field(default_factory=set)

    def start(self, old: Sequence[str], new: str) -> State:
        self.good, self.bad = set(old), new
        return self._next()

    def mark(self, commit: str, mark: Mark) -> State:
        if mark is Mark.OLD:
            self.good.add(commit)
        elif mark is Mark.NEW:
            self.bad = commit
        else:
            self.skipped.add(commit)
        return self._next()

    def _next(self) -> State:
        reached = set().union(*(ancestors(self.parents, g) for g in self.good))
        cands = ancestors(self.parents, self.bad) - reached
        testable = cands - {self.bad} - self.skipped
        if not testable:
            rest = cands - {self.bad}
            return Done(self.bad) if not rest else Ambiguous(tuple(sorted(cands)))
        half = len(cands) / 2
        return Next(min(sorted(testable),
                        key=lambda c: abs(len(ancestors(self.parents, c) & cands) - half)))


@dataclass
class History:
    """The probe: which commits fail (the culprit and its descendants), which cannot be
    built, and scripted outcomes for flaky ones."""

    parents: dict[str, tuple[str, ...]]
    culprit: str
    unbuildable: set[str] = field(default_factory=set)
    flaky: dict[str, list[Outcome]] = field(default_factory=dict)
    probed: list[str] = field(default_factory=list)
    repeat: int = 1
    fixed: bool = False

    def outcome(self, c: str) -> Outcome:
        if c in self.unbuildable:
            return Outcome.SKIP
        if c in self.flaky:
            return self.flaky[c].pop(0)
        broken = self.culprit in ancestors(self.parents, c)
        if self.fixed:
            return Outcome.PASS if broken else Outcome.FAIL
        return Outcome.FAIL if broken else Outcome.PASS

    def __call__(self, commit: str, role: str) -> Probed:
        self.probed.append(commit)
        return Probed(commit, tuple(self.outcome(commit) for _ in range(self.repeat)))


def run(h: History, old: Sequence[str], new: str, *, find: Find = Find.REGRESSION,
        prior: Sequence[Step] = (), record: Callable[[driver.Bisection], None] | None = None,
        ) -> driver.Bisection:
    return driver.bisect(ModelOracle(h.parents), h, old, new, find=find, prior=prior,
                         record=record)


@pytest.mark.parametrize("culprit", ["c1", "c7", "c15"])
def test_finds_the_culprit_first_middle_or_last(culprit: str) -> None:
    h = History(linear(16), culprit)
    b = run(h, ["c0"], "c15")
    assert b.first == culprit
    assert len(h.probed) <= 2 + 5  # the endpoints, then about log2(15) steps
    assert [s.role for s in b.steps[:2]] == ["new", "old"]


def test_skipped_commits_are_reported_and_stepped_around() -> None:
    h = History(linear(16), "c11", unbuildable={"c7", "c8"})
    b = run(h, ["c0"], "c15")
    assert b.first == "c11"
    assert set(b.skipped) <= {"c7", "c8"} and b.skipped
    assert all(s.mark is Mark.SKIP for s in b.steps if s.probed.commit in {"c7", "c8"})


def test_skips_next_to_the_culprit_leave_candidates_not_a_guess() -> None:
    h = History(linear(12), "c6", unbuildable={"c5"})
    seen: list[driver.Bisection] = []
    with pytest.raises(BisectAmbiguous) as info:
        run(h, ["c0"], "c11", record=seen.append)
    assert set(info.value.candidates) == {"c5", "c6"}
    assert seen[-1].candidates == tuple(sorted({"c5", "c6"}))


def test_merges_in_the_range() -> None:
    # c0 - c1 - c2 ------- m5 - c6
    #        \- s3 - s4 -/        the culprit is on the side branch
    parents = {"c0": (), "c1": ("c0",), "c2": ("c1",), "s3": ("c1",), "s4": ("s3",),
               "m5": ("c2", "s4"), "c6": ("m5",)}
    for culprit in ("s3", "c2", "m5", "s4"):
        b = run(History(parents, culprit), ["c0"], "c6")
        assert b.first == culprit


def test_flaky_failure_counts_as_bad_with_repeat() -> None:
    h = History(linear(8), "c5", repeat=3,
                flaky={"c3": [Outcome.PASS, Outcome.FAIL, Outcome.PASS] * 3})
    b = run(h, ["c0"], "c7")
    step = b.step_for("c3")
    if step is not None:  # when the flaky commit was probed, it was bad, with its counts
        assert step.mark is Mark.NEW and step.probed.counts() == {"pass": 2, "fail": 1}
        assert b.first == "c3"
    else:
        assert b.first == "c5"


def test_combine_rule() -> None:
    P, F, S, A = Outcome.PASS, Outcome.FAIL, Outcome.SKIP, Outcome.ABORT
    assert driver.combine([P, P]) is P
    assert driver.combine([P, F, P]) is F
    assert driver.combine([P, S]) is S
    assert driver.combine([S, F]) is F
    assert driver.combine([F, A]) is A
    assert driver.combine([]) is S


def test_fix_direction_finds_the_first_passing_commit() -> None:
    h = History(linear(10), "c4", fixed=True)
    b = run(h, ["c0"], "c9", find=Find.FIX)
    assert b.first == "c4"
    assert b.steps[0].mark is Mark.NEW and b.steps[0].probed.outcome is Outcome.PASS


@pytest.mark.parametrize(("broken", "unbuildable", "words"), [
    ("c0", set(), "good endpoint c0 must pass"),  # the good one fails
    ("c99", set(), "bad endpoint c9 must fail"),  # the bad one passes (culprit beyond it)
    ("c3", {"c9"}, "bad endpoint c9 must fail the selected tests, but it gave skip"),
])
def test_endpoints_that_do_not_behave_are_refused(broken: str, unbuildable: set[str],
                                                  words: str) -> None:
    parents = {**linear(10), "c99": ("c9",)}
    h = History(parents, broken, unbuildable=unbuildable)
    with pytest.raises(BisectRefused, match=words):
        run(h, ["c0"], "c9")
    assert len(h.probed) <= 2


def test_resume_replays_the_log_instead_of_probing_again() -> None:
    seen: list[driver.Bisection] = []

    class Interrupted(Exception):
        pass

    h = History(linear(32), "c20")
    full = run(History(linear(32), "c20"), ["c0"], "c31")

    def stop_after_four(commit: str, role: str) -> Probed:
        if len(h.probed) == 4:
            raise Interrupted
        return h(commit, role)

    with pytest.raises(Interrupted):
        driver.bisect(ModelOracle(h.parents), stop_after_four, ["c0"], "c31",
                      find=Find.REGRESSION, record=lambda b: seen.append(
                          driver.Bisection(b.find, list(b.steps))))
    done = seen[-1].steps
    again = History(linear(32), "c20")
    b = run(again, ["c0"], "c31", prior=done)
    assert b.first == full.first == "c20"
    assert not set(again.probed) & {s.probed.commit for s in done}
    assert [s.probed.commit for s in b.steps] == [s.probed.commit for s in full.steps]


# --- one run's outcome, for bisecting ---------------------------------------------------


@pytest.mark.parametrize(("verdict", "error", "panic", "outcome"), [
    (Verdict.PASS, None, "bad", Outcome.PASS),
    (Verdict.FAIL, None, "bad", Outcome.FAIL),
    (Verdict.ERROR, BuildError("bpftool failed"), "bad", Outcome.SKIP),
    (Verdict.ERROR, BootError("guest did not boot"), "bad", Outcome.SKIP),
    (Verdict.ERROR, KernelPanic("kernel panic", in_tests=False), "bad", Outcome.SKIP),
    (Verdict.ERROR, KernelPanic("kernel panic", in_tests=True), "bad", Outcome.FAIL),
    (Verdict.ERROR, KernelPanic("kernel panic", in_tests=True), "skip", Outcome.SKIP),
    (Verdict.ERROR, RunTimeout("test run did not finish"), "bad", Outcome.FAIL),
    (Verdict.ERROR, RunTimeout("test run did not finish"), "skip", Outcome.SKIP),
    (Verdict.ERROR, KernelSplat("1 kernel splat(s) (warning)"), "bad", Outcome.FAIL),
    (Verdict.ERROR, KernelSplat("1 kernel splat(s) (warning)"), "skip", Outcome.SKIP),
    (Verdict.ERROR, VmLost("VM lost after boot"), "bad", Outcome.SKIP),
    (Verdict.ERROR, GuestError("test_progs exited 3"), "bad", Outcome.SKIP),
    (Verdict.ERROR, InfraError("no ip"), "bad", Outcome.SKIP),
    (Verdict.ERROR, SelectionError("no such test here"), "bad", Outcome.SKIP),
    (Verdict.ERROR, UsageError("bad option"), "bad", Outcome.ABORT),
    (Verdict.ERROR, InternalError("bug"), "bad", Outcome.ABORT),
    (Verdict.ERROR, None, "bad", Outcome.ABORT),
    (Verdict.DRY_RUN, None, "bad", Outcome.ABORT),
    (Verdict.ABORTED, None, "bad", Outcome.ABORT),
])
def test_classify(verdict: Verdict, error: Exception | None, panic: str,
                  outcome: Outcome) -> None:
    assert driver.classify(verdict, error, panic) is outcome


# --- git's words -------------------------------------------------------------------------


def _data(name: str) -> str:
    return (DATA / f"git-bisect-{name}.txt").read_text()


def test_parse_git_bisect_output() -> None:
    head = "3f3445ead1f03477763d47acf7794e3115f839d7"
    assert gitbisect.parse(_data("start"), head) == Next(head)
    assert gitbisect.parse(_data("next"), "455b" * 10) == Next("455b" * 10)
    assert gitbisect.parse(_data("first"), None) == Done(
        "455badd60269dcbf7420a5f59889942c44ab8b47")
    assert gitbisect.parse(_data("ambiguous"), None) == Ambiguous((
        "455badd60269dcbf7420a5f59889942c44ab8b47", head))
    merge = gitbisect.parse(_data("merge-base"), head)
    assert isinstance(merge, Next) and "merge base" in merge.note
    with pytest.raises(BisectRefused, match="merge base 3f3445ead1f0 of the endpoints is "
                                            "already bad"):
        gitbisect.parse(_data("merge-base-bad"), head)
    with pytest.raises(BisectRefused, match="named no commit"):
        gitbisect.parse("fatal: something\n", None)


# --- git bisect itself as the oracle, on real repositories -------------------------------


def _commit(repo: git.Repo, name: str, parents: Sequence[str] = ()) -> str:
    if len(parents) > 1:  # a merge of the current branch with the others
        repo.git.merge("--no-ff", "--no-commit", *parents[1:], env=IDENTITY)
    (Path(repo.working_dir) / name).write_text(name + "\n")
    repo.git.add("-A")
    repo.git.commit("-qm", name, env=IDENTITY)
    return repo.head.commit.hexsha


def real_history(path: Path) -> tuple[git.Repo, dict[str, str]]:
    """The merge history of test_merges_in_the_range as real commits."""
    repo = git.Repo.init(path, initial_branch="main")
    ids = {"c0": _commit(repo, "c0"), "c1": _commit(repo, "c1")}
    repo.git.checkout("-qb", "side")
    ids["s3"] = _commit(repo, "s3")
    ids["s4"] = _commit(repo, "s4")
    repo.git.checkout("-q", "main")
    ids["c2"] = _commit(repo, "c2")
    ids["m5"] = _commit(repo, "m5", ["main", ids["s4"]])
    ids["c6"] = _commit(repo, "c6")
    return repo, ids


@pytest.mark.parametrize("culprit", ["s3", "c2", "m5", "c6"])
def test_git_bisect_oracle_agrees_with_the_model(tmp_path: Path, culprit: str) -> None:
    repo, ids = real_history(tmp_path / "user")
    names = {v: k for k, v in ids.items()}
    parents = {"c0": (), "c1": ("c0",), "c2": ("c1",), "s3": ("c1",), "s4": ("s3",),
               "m5": ("c2", "s4"), "c6": ("m5",)}
    before = repo.git.status("--porcelain"), repo.head.commit.hexsha
    bare = gitbisect.owned_clone(tmp_path / "user", tmp_path / "owned.git", tmp_path)
    h = History({ids[k]: tuple(ids[p] for p in v) for k, v in parents.items()}, ids[culprit])
    b = driver.bisect(gitbisect.GitBisect(bare, tmp_path), h, [ids["c0"]], ids["c6"],
                      find=Find.REGRESSION)
    assert names[b.first or ""] == culprit
    assert "git bisect start" in gitbisect.GitBisect(bare, tmp_path).log()
    assert (repo.git.status("--porcelain"), repo.head.commit.hexsha) == before
    assert not (Path(repo.git_dir) / "BISECT_LOG").exists()  # the user's bisect state


def test_git_bisect_oracle_lists_candidates_around_skips(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "user", initial_branch="main")
    ids = [_commit(repo, f"c{i}") for i in range(8)]
    bare = gitbisect.owned_clone(tmp_path / "user", tmp_path / "owned.git", tmp_path)
    h = History({c: (ids[i - 1],) if i else () for i, c in enumerate(ids)}, ids[4],
                unbuildable={ids[3]})
    with pytest.raises(BisectAmbiguous) as info:
        driver.bisect(gitbisect.GitBisect(bare, tmp_path), h, [ids[0]], ids[7],
                      find=Find.REGRESSION)
    assert set(info.value.candidates) == {ids[3], ids[4]}


def test_git_bisect_oracle_fix_terms_and_order_checks(tmp_path: Path) -> None:
    repo = git.Repo.init(tmp_path / "user", initial_branch="main")
    ids = [_commit(repo, f"c{i}") for i in range(6)]
    bare = gitbisect.owned_clone(tmp_path / "user", tmp_path / "owned.git", tmp_path)
    h = History({c: (ids[i - 1],) if i else () for i, c in enumerate(ids)}, ids[2], fixed=True)
    oracle = gitbisect.GitBisect(bare, tmp_path, Find.FIX.terms)
    b = driver.bisect(oracle, h, [ids[0]], ids[5], find=Find.FIX)
    assert b.first == ids[2]
    assert "git bisect fixed" in oracle.log() or "git bisect broken" in oracle.log()
    g = oracle.git
    with pytest.raises(UsageError, match="reversed"):
        gitbisect.check_order(g, [ids[5]], ids[0], ("good", "bad"))
    with pytest.raises(UsageError, match="same commit"):
        gitbisect.check_order(g, [ids[1]], ids[1], ("good", "bad"))
    with pytest.raises(UsageError, match="--bad/--new nosuchrev: not a commit"):
        gitbisect.resolve(g, "nosuchrev", "--bad/--new")
    culprit = gitbisect.describe(g, ids[2])
    assert culprit["subject"] == "c2" and culprit["files"] == ["c2"]


# --- the command line --------------------------------------------------------------------


def test_bisect_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness import cli  # noqa: PLC0415

    repo = tmp_path / "linux"
    repo.mkdir()
    fake_kernel_repo(repo)
    out = ["--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]
    assert cli.main(["bisect", "--tree", str(repo), "--good", "HEAD", *out]) == cli.EXIT_USAGE
    assert "needs --good REV and --bad REV" in capsys.readouterr().err
    assert cli.main(["bisect", "--good", "a", "--bad", "b", *out]) == cli.EXIT_USAGE
    assert "bisect needs --tree" in capsys.readouterr().err
    assert cli.main(["bisect", "--resume", str(tmp_path / "nothing"), *out]) == cli.EXIT_USAGE
    assert "no readable bisect.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["bisect", "--repeat", "0", *out])
    assert info.value.code == cli.EXIT_USAGE
    assert "a whole number of 1 or more" in capsys.readouterr().err
    # The same commit twice; an unknown one: usage errors before anything is run.
    assert cli.main(["bisect", "--tree", str(repo), "--good", "HEAD", "--bad", "HEAD",
                     *out]) == cli.EXIT_USAGE
    assert "same commit" in capsys.readouterr().err
    assert not (tmp_path / "o/steps").exists()


def test_run_bisect_maps_usage_errors_to_abort(tmp_path: Path) -> None:
    from harness import cli  # noqa: PLC0415

    assert cli.main(["run", "--bisect", "--no-such-option"]) == 128
    assert cli.main(["run", "--bisect", "--dry-run", "--out", str(tmp_path / "o")]) == 128
    assert cli.main(["run", "--bisect", "--series", "x", "--out", str(tmp_path / "o")]) == 128


def test_git_bisect_tests_the_merge_base_of_a_good_that_is_not_an_ancestor(
        tmp_path: Path) -> None:
    """good on a side branch never merged: git tests the merge base first, and the step
    says so; the culprit on the main line is still found."""
    repo = git.Repo.init(tmp_path / "user", initial_branch="main")
    c0, c1 = _commit(repo, "c0"), _commit(repo, "c1")
    repo.git.checkout("-qb", "side")
    s2 = _commit(repo, "s2")
    repo.git.checkout("-q", "main")
    c2, c3, c4 = _commit(repo, "c2"), _commit(repo, "c3"), _commit(repo, "c4")
    parents = {c0: (), c1: (c0,), s2: (c1,), c2: (c1,), c3: (c2,), c4: (c3,)}
    bare = gitbisect.owned_clone(tmp_path / "user", tmp_path / "owned.git", tmp_path)
    h = History(parents, c3)
    b = driver.bisect(gitbisect.GitBisect(bare, tmp_path), h, [s2], c4, find=Find.REGRESSION)
    assert b.first == c3
    first_step = b.steps[2]
    assert first_step.probed.commit == c1 and "merge base" in first_step.note


def test_resume_tries_again_what_could_not_be_judged() -> None:
    """A skipped step and a refused endpoint of the log are probed again."""
    first = History(linear(16), "c11", unbuildable={"c7"})
    logged: list[driver.Bisection] = []
    run(first, ["c0"], "c15", record=lambda b: logged.append(
        driver.Bisection(b.find, list(b.steps))))
    steps = logged[-1].steps
    assert any(s.mark is Mark.SKIP for s in steps)
    again = History(linear(16), "c11")  # c7 builds now
    b = run(again, ["c0"], "c15", prior=steps)
    assert b.first == "c11"
    judged = {s.probed.commit for s in steps if s.mark is not Mark.SKIP}
    assert "c7" in again.probed and not judged & set(again.probed)
    refused = [Step("new", Probed("c15", (Outcome.SKIP,)), Mark.SKIP)]
    again = History(linear(16), "c11")
    assert run(again, ["c0"], "c15", prior=refused).first == "c11"
    assert again.probed[0] == "c15"  # the refused endpoint, probed again


def test_bisect_keeps_absolute_paths_for_resume(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import cli  # noqa: PLC0415

    (tmp_path / "linux").mkdir()
    (tmp_path / "allow.txt").write_text("x\n")
    monkeypatch.chdir(tmp_path)
    given = ["--tree", "linux", "--good", "v1", "--allow", "@allow.txt", "--tests", "linux",
             "--cache", "linux", "--out", "not-yet"]
    args = cli.parser().parse_args(["bisect", *given])
    args.argv = given  # as main() sets it
    kept = ["--tree", str(tmp_path / "linux"), "--good", "v1", "--allow",
            f"@{tmp_path / 'allow.txt'}", "--tests", "linux"]
    assert cli.bisect_argv(args, tmp_path, {}) == [
        *kept, "--cache", str(tmp_path / "linux"), "--out", str(tmp_path / "not-yet")]
    # in the hermetic image: the volume's cache is not kept for a resume on the host
    assert cli.bisect_argv(args, tmp_path, {recipe.IMAGE_ENV: "harness-env:x sha256:1"}) == [
        *kept, "--out", str(tmp_path / "not-yet")]
