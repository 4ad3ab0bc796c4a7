"""Integration: bisecting a real history of the 6.12 tree, every step a real build and a
real QEMU (TCG) boot of Debian's kernel.

The history (tests/bisect_history.py: 13 commits, a merge, documentation-only commits,
a span where bpftool does not build, the broken gen.c of patches/shadow-layout-broken)
is bisected by `harness bisect` and by `git bisect run harness run --bisect`: both must
name the gen.c commit, and the unbuildable commits probed are skipped, never good or bad.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bisect_history import History, tools_history

from harness import cli
from harness.host.cache import Cache
from harness.source import tree

pytestmark = [pytest.mark.vm, pytest.mark.build]
TESTS = ["--tests", "test_struct_ops_module"]


@pytest.fixture(scope="module")
def history(default_tree: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[History]:
    """The history, and afterwards nothing of it left: its clone, and what the cache
    holds for it (clones, bisect clone, builds: GBs a session otherwise)."""
    where = tmp_path_factory.mktemp("history")
    h = tools_history(default_tree, where / "linux", where)
    yield h
    tree.forget(Cache(cache), h.repo)
    shutil.rmtree(where / "linux", ignore_errors=True)


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _user_state(repo: Path) -> tuple[str, str, bool]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout
    return git("rev-parse", "HEAD"), git("status", "--porcelain"), (
        Path(git("rev-parse", "--git-dir").strip()) / "BISECT_LOG").exists()


@pytest.fixture(scope="module")
def bisected(history: History, tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[int, Path, tuple[str, str, bool]]:
    before = _user_state(history.repo)
    out = tmp_path_factory.mktemp("bisect") / "b"
    code = cli.main(["bisect", "--tree", str(history.repo), "--good", history.base,
                     "--bad", history.tip, *TESTS, "--out", str(out)])
    return code, out, before


def test_harness_bisect_names_the_gen_c_commit(history: History,
                                               bisected: tuple[int, Path, Any]) -> None:
    code, out, before = bisected
    data = _json(out / "bisect.json")
    assert code == cli.EXIT_PASS, data.get("refused")
    assert data["status"] == "found"
    assert data["first"]["commit"] == history.ids["culprit"]
    assert data["first"]["files"] == ["tools/bpf/bpftool/gen.c"]
    marks = {s["commit"]: s["mark"] for s in data["steps"]}
    assert marks[history.tip] == "new" and marks[history.base] == "old"
    # Unbuildable commits that were probed are skips, and at least one was probed (git
    # starts in the unbuildable span); nothing else was skipped.
    assert data["skipped"] and set(data["skipped"]) <= history.unbuildable
    for step in data["steps"]:
        if step["commit"] in history.unbuildable:
            assert step["mark"] == "skip"
            assert "build-bpftool failed: main.c" in step["reasons"][0]
    failing = _json(Path(data["failing_run"]) / "report.json")
    assert failing["verdict"] == "fail" and failing["tree"]["commit"] == history.ids["culprit"]
    assert "git bisect start" in (out / "bisect.log").read_text()
    # Builds are keyed by content: a documentation-only step after a built one reuses all.
    assert any(s["reused"] for s in data["steps"])
    assert _user_state(history.repo) == before  # the user's HEAD, checkout, bisect state


def test_git_bisect_run_ends_on_the_same_commit(history: History, cache: Path,
                                                tmp_path: Path,
                                                bisected: tuple[int, Path, Any]) -> None:
    """The README's line, in a clone of the user's tree (the test's own bisect state)."""
    mine = tmp_path / "mine"
    subprocess.run(["git", "clone", "-q", "--shared", str(history.repo), str(mine)],
                   check=True)
    env = {**os.environ, "HARNESS_ACCEL": "tcg"}
    harness = [sys.executable, "-m", "harness"]
    subprocess.run(["git", "-C", str(mine), "bisect", "start", history.tip, history.base],
                   check=True, capture_output=True)
    try:
        done = subprocess.run(["git", "-C", str(mine), "bisect", "run", *harness, "run",
                               "--bisect", "--tree", str(mine), *TESTS, "--out",
                               str(tmp_path / "run")], env=env, capture_output=True,
                              text=True, cwd=Path(__file__).resolve().parents[1], check=False)
    finally:  # the clone and what the cache holds for it
        tree.forget(Cache(cache), mine)
        shutil.rmtree(mine, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"{history.ids['culprit']} is the first bad commit" in done.stdout
    data = _json(bisected[1] / "bisect.json")
    assert data["first"]["commit"] == history.ids["culprit"]


def test_bisect_in_the_container_probes_and_marks_as_on_the_host(
        history: History, tmp_path: Path, bisected: tuple[int, Path, Any]) -> None:
    """`bisect --in-container`: the user's tree (a `clone --shared`: its objects in another
    repository, mounted beside it) read-only, every step in the hermetic image, the log
    written back; the same steps, marks and first bad commit as the host's bisection."""
    before = _user_state(history.repo)
    out = tmp_path / "b"
    code = cli.main(["bisect", "--in-container", "--tree", str(history.repo), "--good",
                     history.base, "--bad", history.tip, *TESTS, "--out", str(out)])
    inside, host = _json(out / "bisect.json"), _json(bisected[1] / "bisect.json")
    assert code == cli.EXIT_PASS, inside.get("refused")
    assert inside["first"]["commit"] == history.ids["culprit"]
    assert [(s["commit"], s["mark"]) for s in inside["steps"]] == [
        (s["commit"], s["mark"]) for s in host["steps"]]
    failing = _json(Path(inside["failing_run"]) / "report.json")  # a host path, written back
    assert failing["image"]["tag"].startswith("harness-env:") and failing["verdict"] == "fail"
    assert _user_state(history.repo) == before


def test_run_bisect_exit_codes_for_git(history: History, tmp_path: Path) -> None:
    unbuildable = history.ids["unbuildable"]
    code = cli.main(["run", "--bisect", "--tree", str(history.repo), "--rev", unbuildable,
                     *TESTS, "--out", str(tmp_path / "skip")])
    assert code == 125
    assert _json(tmp_path / "skip/report.json")["exit_code"] == cli.EXIT_BUILD
    assert cli.main(["run", "--bisect", "--dry-run", "--out", str(tmp_path / "d")]) == 128
    assert cli.main(["run", "--bisect", "--no-such-option"]) == 128


def test_endpoints_that_do_not_behave_are_refused(history: History, tmp_path: Path) -> None:
    out = tmp_path / "b"
    code = cli.main(["bisect", "--tree", str(history.repo), "--good", history.ids["culprit"],
                     "--bad", history.tip, *TESTS, "--repeat", "2", "--out", str(out)])
    data = _json(out / "bisect.json")
    assert code == cli.EXIT_BISECT_REFUSED
    assert data["status"] == "refused" and "good endpoint" in data["refused"]
    assert [s["counts"] for s in data["steps"]] == [{"fail": 2}, {"fail": 2}]
    # Unknown and reversed revisions: usage errors before anything runs.
    for good, bad in (("nosuchrev", history.tip), (history.tip, history.base)):
        assert cli.main(["bisect", "--tree", str(history.repo), "--good", good, "--bad", bad,
                         *TESTS, "--out", str(tmp_path / "u")]) == cli.EXIT_USAGE
        assert not (tmp_path / "u/steps").exists()


def test_resume_from_an_interrupted_log(history: History, tmp_path: Path,
                                        bisected: tuple[int, Path, Any]) -> None:
    """A bisection cut after its endpoints and two steps goes on from its bisect.json and
    ends on the same commit, without running the logged steps again."""
    data = _json(bisected[1] / "bisect.json")
    out = tmp_path / "resumed"
    out.mkdir()
    cut = {**data, "status": "interrupted", "steps": data["steps"][:4]}
    for key in ("first", "failing_run", "seconds"):
        cut.pop(key, None)
    cut["argv"] = [a if a != str(bisected[1]) else str(out) for a in data["argv"]]
    (out / "bisect.json").write_text(json.dumps(cut))
    code = cli.main(["bisect", "--resume", str(out)])
    resumed = _json(out / "bisect.json")
    assert code == cli.EXIT_PASS
    assert resumed["first"]["commit"] == history.ids["culprit"]
    assert [s["commit"] for s in resumed["steps"]] == [s["commit"] for s in data["steps"]]
    # Run again: the steps after the cut, and the skipped steps before it (what could not
    # be judged then is tried again); judged steps are replayed, not run.
    again = [s["commit"] for s in data["steps"][:4] if s["mark"] == "skip"]
    run_now = sorted(p.name for p in (out / "steps").iterdir())
    assert len(run_now) == len(data["steps"]) - 4 + len(again)
    assert all(int(name[:2]) > 4 for name in run_now)
    judged = {s["commit"][:12] for s in data["steps"][:4] if s["mark"] != "skip"}
    assert not judged & {name[3:] for name in run_now}
    shutil.rmtree(out / "steps")
