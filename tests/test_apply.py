"""Patch application: git's reject output parsed, and the real mails on the 6.12 tree."""

from __future__ import annotations

from pathlib import Path

import git
import pytest
from conftest import data

from harness.host import vcs
from harness.source import apply, series

SHARED = Path(__file__).resolve().parents[2] / "shared" / "series"
PATCHES = Path(__file__).resolve().parents[1] / "patches"


def test_parse_reject_captured() -> None:
    files = apply.parse_reject(data("git-apply-reject-v6-5.txt"))
    rejected = {f.path.rsplit("/", 1)[1]: f.rejected_hunks for f in files}
    assert rejected == {"bpf_testmod.c": [1, 2], "bpf_testmod.h": [1],
                        "test_struct_ops_module.c": [1, 2], "struct_ops_module.c": [1]}
    assert apply.describe_failure(files[0]) == "hunks #1 (line 539), #2 (line 559) failed"
    missing = apply.parse_reject(data("git-apply-reject-missing-file.txt"))
    assert missing[0].path == "no/such/file.c"
    assert missing[0].errors == ["no/such/file.c: No such file or directory"]


def test_present_share(tmp_path: Path) -> None:
    (tmp_path / "f.c").write_text("int already_here;\nint other;\n")
    diff = ("diff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1 +1,4 @@\n"
            " int other;\n+int already_here;\n+int brand_new;\n+}\n")
    assert apply.present_share(diff, tmp_path) == 0.5


@pytest.mark.build
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the real mails) is not present")
@pytest.mark.parametrize("version,low_share", [("v6", False), ("v4", True)])
def test_real_series_on_6_12(default_tree: Path, tmp_path: Path, version: str,
                             low_share: bool) -> None:
    """6.12 already has the merged v6 (and later fixes): every patch conflicts."""
    repo = git.Repo(default_tree)
    base = repo.head.commit.hexsha
    s = series.load(str(SHARED / f"{version}.mbox"))
    worktree = tmp_path / "wt"
    apply.prepare(default_tree, base, worktree, tmp_path / "prep")
    applied = apply.apply_series(s, worktree, base, tmp_path / "logs")
    assert [r.outcome for r in applied.results] == [apply.Outcome.CONFLICT] * len(s.patches)
    for r in applied.results:
        assert any(f.rejected_hunks or f.errors for f in r.files), r.label
        assert r.present_share is not None
    shares = [r.present_share or 0.0 for r in applied.results]
    if low_share:  # v4 differs from what was merged: its libbpf patches do not look applied
        assert min(shares) < 0.5
    else:  # v6 was merged: nearly all added lines are already there
        assert all(r.looks_present for r in applied.results)
    # Nothing half-applied, and the harness's own tree is untouched.
    assert git.Repo(worktree).head.commit.hexsha == base
    assert git.Repo(worktree).git.status("--porcelain") == ""
    assert repo.git.status("--porcelain") == "" and repo.head.commit.hexsha == base


@pytest.mark.build
def test_three_way_and_already_present(default_tree: Path, tmp_path: Path) -> None:
    """Context moved under a patch: plain apply fails, git am --3way merges it.  Applying
    the same series again: every patch is already present."""
    repo = git.Repo(default_tree)
    base = repo.head.commit.hexsha
    worktree = tmp_path / "wt"
    apply.prepare(default_tree, base, worktree, tmp_path / "prep")
    wt = git.Repo(worktree)
    gen = worktree / "tools/bpf/bpftool/gen.c"
    # A context line of 2/4's second hunk changes, two lines away from its change.
    anchor = "\t\tswitch (btf_kind(member_type)) {\n\t\tcase BTF_KIND_INT:\n"
    text = gen.read_text()
    assert text.count(anchor) == 1
    gen.write_text(text.replace(anchor, anchor.replace("INT:", "INT: /* ints */")))
    wt.git.commit("-qam", "context change", env=dict(vcs.IDENTITY))
    patches = series.load(str(PATCHES / "shadow-layout"))
    first = apply.apply_series(patches, worktree, base, tmp_path / "logs")
    assert [r.outcome for r in first.results] == [
        apply.Outcome.APPLIED, apply.Outcome.APPLIED_3WAY, apply.Outcome.APPLIED,
        apply.Outcome.APPLIED]
    again = apply.apply_series(patches, worktree, base, tmp_path / "logs2")
    assert [r.outcome for r in again.results] == [apply.Outcome.ALREADY_PRESENT] * 4
    assert again.head == first.head


LINES = [f"line {i}\n" for i in range(1, 13)]


def _edit(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text
    path.write_text("".join(lines))


def _small_repo(tmp_path: Path) -> tuple[git.Repo, Path]:
    """A repository with a two-patch topic (a.txt line 6, b.txt line 2) as an mbox."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_text("".join(LINES))
    (root / "b.txt").write_text("".join(LINES))
    repo = git.Repo.init(root)
    env = dict(vcs.IDENTITY)
    repo.git.add("-A")
    repo.git.commit("-qm", "base", env=env)
    repo.git.checkout("-qb", "topic")
    _edit(root / "a.txt", 6, "line six\n")
    repo.git.commit("-qam", "a: six", env=env)
    _edit(root / "b.txt", 2, "line two\n")
    repo.git.commit("-qam", "b: two", env=env)
    mbox = tmp_path / "topic.mbox"
    mbox.write_bytes(repo.git.format_patch("--stdout", "master..topic",
                                           stdout_as_string=False))
    repo.git.checkout("-q", "master")
    return repo, mbox


def _outcomes(repo: git.Repo, mbox: Path, base: str, tmp_path: Path) -> list[str]:
    worktree = tmp_path / f"wt-{base[:8]}"
    apply.prepare(Path(repo.working_dir), base, worktree, tmp_path / "logs")
    applied = apply.apply_series(series.load(str(mbox)), worktree, base, tmp_path / "logs")
    return [r.outcome.value for r in applied.results]


def _commit_edit(repo: git.Repo, number: int, text: str) -> str:
    repo.git.checkout("-q", "master")
    repo.git.checkout("-qb", f"edit-{number}")
    _edit(Path(repo.working_dir) / "a.txt", number, text)
    repo.git.commit("-qam", f"edit {number}", env=dict(vcs.IDENTITY))
    return str(repo.head.commit.hexsha)


def test_apply_state_machine(tmp_path: Path) -> None:
    """Each outcome from real git on a small repository."""
    repo, mbox = _small_repo(tmp_path)
    master = repo.commit("master").hexsha
    assert _outcomes(repo, mbox, master, tmp_path) == ["applied", "applied"]
    topic = repo.commit("topic").hexsha
    assert _outcomes(repo, mbox, topic, tmp_path) == ["already-present", "already-present"]
    moved = _commit_edit(repo, 4, "line four, moved context\n")
    assert _outcomes(repo, mbox, moved, tmp_path) == ["applied-3way", "applied"]
    clash = _commit_edit(repo, 6, "line 6 changed elsewhere\n")
    assert _outcomes(repo, mbox, clash, tmp_path) == ["conflict", "would-apply"]
