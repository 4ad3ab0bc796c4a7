"""Outcomes a review of the first version found wrong, one test each."""

from __future__ import annotations

import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import git
import pytest
from fakes import fake_kernel_repo
from junit_schema import validate

from harness import cli
from harness.errors import ToolchainError
from harness.host import proc
from harness.host.cache import Cache
from harness.outcome import report
from harness.outcome.compare import Change, compare
from harness.outcome.results import INCOMPLETE, Result, Status
from harness.source import tree

P, F = Status.PASS, Status.FAIL


def test_unwritable_out_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--out", "/proc/no/run", "--dry-run"]) == cli.EXIT_USAGE
    assert "--out /proc/no/run: cannot use it" in capsys.readouterr().err


def test_reused_out_loses_the_previous_status(tmp_path: Path) -> None:
    (tmp_path / "status").write_text("HARNESS-EXIT 0\n")
    (tmp_path / "base").mkdir()
    (tmp_path / "mine.txt").write_text("kept")
    cli.prepare_run_dir(tmp_path)
    assert not (tmp_path / "status").exists() and not (tmp_path / "base").exists()
    assert (tmp_path / "mine.txt").read_text() == "kept"


def test_series_side_crashing_early_gates() -> None:
    base = [Result("t/a", "1/1", P), Result("t/b", "1/2", P)]
    crashed = [Result("t/a", "1/1", P), Result(INCOMPLETE, "-", F)]
    changes = {c.name: c.change for c in compare(base, crashed)}
    assert changes["t/b"] is Change.NOT_REACHED and Change.NOT_REACHED.gates
    finished = {c.name: c.change for c in compare(base, base[:1])}
    assert finished["t/b"] is Change.REMOVED and not Change.REMOVED.gates
    removed = next(c for c in compare(base, base[:1]) if c.name == "t/b")
    assert removed.as_dict()["status"] is None


def test_exported_git_dir_never_reaches_the_users_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "linux"
    user.mkdir()
    repo = fake_kernel_repo(user)
    branch = repo.active_branch.name
    index = (user / ".git/index").read_bytes()
    monkeypatch.setenv("GIT_DIR", str(user / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(user))
    t = tree.select(user, "HEAD", Cache(tmp_path / "cache"), tmp_path / "logs")
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert git.Repo(user).active_branch.name == branch
    assert (user / ".git/index").read_bytes() == index
    assert t.path != user and (t.path / "Makefile").is_file()


def test_missing_program_is_a_toolchain_error(tmp_path: Path) -> None:
    with pytest.raises(ToolchainError, match="no-such-program-x: cannot run it"):
        proc.run(["no-such-program-x"], log=tmp_path / "x.log", timeout=5)
    assert cli.code_for(ToolchainError("x")) == cli.EXIT_MISSING_TOOL


def test_junit_survives_control_characters(tmp_path: Path) -> None:
    rep = report.RunReport(run_dir=tmp_path, verdict=report.Verdict.FAIL, reason="failed")
    rep.subtests = [Result("t/a", "1/1", F, log=["\x1b[31mred\x1b[0m", "nul\x00byte",
                                                 "t:FAIL:x \x07bell"])]
    cli.write_files(rep)
    validate(tmp_path / "junit.xml")
    failure = ET.parse(tmp_path / "junit.xml").getroot().find("testcase/failure")
    assert failure is not None and "?[31mred" in (failure.text or "")


def test_waiting_for_a_lock_says_so(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    (tmp_path / "locks").mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / 'locks/k.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(1)\n"],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    heard: list[str] = []
    asked = time.monotonic()
    with cache.lock("k", heard.append), cache.lock("k", heard.append):  # re-entrant
        assert time.monotonic() - asked > 0.5  # acquired only once the holder let go
    assert len(heard) == 1 and "another harness run holds k" in heard[0]
    holder.wait()


def test_rev_without_tree_is_a_usage_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "run")
    assert cli.main(["run", "--rev", "HEAD~1", "--dry-run", "--out", out]) == cli.EXIT_USAGE
    assert "--rev HEAD~1 needs --tree" in capsys.readouterr().err
