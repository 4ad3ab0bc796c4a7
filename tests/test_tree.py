"""Kernel tree identification, and the promise never to write to the user's tree."""

from __future__ import annotations

from pathlib import Path

import git
import pytest
from fakes import fake_kernel_repo

from harness.errors import TreeError
from harness.host.cache import Cache
from harness.source import tree

MAKEFILE = "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\nNAME = Baby\n"


def test_parse_version() -> None:
    assert tree.parse_version(MAKEFILE) == "6.12.117"
    assert tree.parse_version(MAKEFILE.replace("EXTRAVERSION =", "EXTRAVERSION = -rc5")) == (
        "6.12.117-rc5")
    with pytest.raises(ValueError):
        tree.parse_version("all:\n")


def test_not_a_kernel_tree(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("hello")
    with pytest.raises(TreeError, match=r"not a Linux kernel tree .*missing Makefile"):
        tree.check_kernel_tree(tmp_path)
    with pytest.raises(TreeError, match="no such directory"):
        tree.check_kernel_tree(tmp_path / "absent")


def _user_tree(path: Path, rev: str, tmp: Path) -> tree.Tree:
    return tree.select(path, rev, Cache(tmp / "cache"), tmp / "logs")


def test_user_tree_is_cloned_and_never_written(tmp_path: Path) -> None:
    user = tmp_path / "linux"
    user.mkdir()
    repo = fake_kernel_repo(user, MAKEFILE)
    (user / "Makefile").write_text(MAKEFILE + "# local edit\n")
    before = (repo.head.commit.hexsha, repo.git.status("--porcelain"), sorted(
        p.name for p in (user / ".git").iterdir()))
    t = _user_tree(user, "HEAD", tmp_path)
    assert t.path != user and t.path.is_relative_to(tmp_path / "cache")
    assert t.commit == repo.head.commit.hexsha and t.version == "6.12.117"
    assert t.warning is not None and "uncommitted" in t.warning
    # The owned checkout has the commit, not the user's uncommitted edit.
    assert "# local edit" not in (t.path / "Makefile").read_text()
    after = (repo.head.commit.hexsha, repo.git.status("--porcelain"), sorted(
        p.name for p in (user / ".git").iterdir()))
    assert after == before


def test_user_tree_bad_rev_and_not_git(tmp_path: Path) -> None:
    user = tmp_path / "linux"
    user.mkdir()
    fake_kernel_repo(user, MAKEFILE)
    with pytest.raises(TreeError, match="--rev nope"):
        _user_tree(user, "nope", tmp_path)
    plain = tmp_path / "plain"
    (plain / "kernel/bpf").mkdir(parents=True)
    (plain / "tools/testing/selftests/bpf/prog_tests").mkdir(parents=True)
    (plain / "Makefile").write_text(MAKEFILE)
    with pytest.raises(TreeError, match="not a git repository"):
        _user_tree(plain, "HEAD", tmp_path)


@pytest.mark.build
def test_default_tree_is_one_labelled_commit(default_tree: Path) -> None:
    repo = git.Repo(default_tree)
    commits = list(repo.iter_commits())
    assert len(commits) == 1
    assert str(commits[0].message).startswith("Debian linux-source-6.12 ")
    assert tree.check_kernel_tree(default_tree).startswith("6.12.")
    assert repo.git.status("--porcelain") == ""
