"""Series intake: the real v4/v6 mails, the project's own series, and bad input."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness.errors import SeriesError
from harness.source import series

SHARED = Path(__file__).resolve().parents[2] / "shared" / "series"
PATCHES = Path(__file__).resolve().parents[1] / "patches"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(),
                                  reason=f"{SHARED} (the real v4/v6 mails) is not present")

# `diff --git` counts per message, from shared/series/README.md (cover first).
DIFF_COUNTS = {"v4": [2, 1, 1, 1, 1, 4], "v6": [1, 1, 1, 1, 4]}


def _manifest(name: str) -> dict[str, object]:
    with (PATCHES / "manifests" / f"{name}.toml").open("rb") as f:
        return tomllib.load(f)


@needs_shared
@pytest.mark.parametrize("version", ["v4", "v6"])
def test_real_mails(version: str) -> None:
    s = series.load(str(SHARED / f"{version}.mbox"))
    assert s.cover is not None
    assert s.cover.subject == "Create shadow types for struct_ops maps in skeletons"
    assert s.version == int(version[1:])
    assert [len(p.files) for p in s.patches] == DIFF_COUNTS[version]
    assert [p.number for p in s.patches] == list(range(1, len(DIFF_COUNTS[version]) + 1))
    assert s.warnings == []
    assert series.check_manifest(s, _manifest(f"shadow-types-{version}")) == []
    assert all(p.author == "Kui-Feng Lee <thinker.li@gmail.com>" for p in s.patches)
    assert ("Signed-off-by", "Kui-Feng Lee <thinker.li@gmail.com>") in s.patches[0].trailers


@needs_shared
def test_v4_reviewed_by_and_message_ids() -> None:
    s = series.load(str(SHARED / "v4.mbox"))
    assert s.cover is not None
    assert s.cover.message_id == "20240222222624.1163754-1-thinker.li@gmail.com"
    gen = s.patches[3]
    assert gen.subject == "bpftool: generated shadow variables for struct_ops maps."
    assert ("Reviewed-by", "Quentin Monnet <quentin@isovalent.com>") in gen.trailers
    assert gen.files[0].path == "tools/bpf/bpftool/gen.c" and gen.files[0].added == 234


def test_project_series_directory_and_mbox_agree() -> None:
    from_dir = series.load(str(PATCHES / "shadow-layout"))
    from_mbox = series.load(str(PATCHES / "shadow-layout-broken.mbox"))
    assert [p.subject for p in from_dir.patches] == [p.subject for p in from_mbox.patches]
    assert series.check_manifest(from_dir, _manifest("shadow-layout")) == []
    touched = {f.path for p in from_dir.patches for f in p.files}
    assert {"tools/bpf/bpftool/gen.c", "tools/lib/bpf/libbpf.c",
            "tools/testing/selftests/bpf/bpf_testmod/bpf_testmod.h",
            "tools/testing/selftests/bpf/prog_tests/test_struct_ops_module.c"} <= touched


def test_split_subject() -> None:
    assert series.split_subject("[PATCH bpf-next v4 3/6] bpftool: x") == (
        "bpftool: x", "PATCH bpf-next v4 3/6", 3, 6, 4)
    assert series.split_subject("Re: [PATCH 0/2]  cover\n title") == (
        "cover title", "PATCH 0/2", 0, 2, 1)
    assert series.split_subject("plain") == ("plain", "", None, None, 1)


def _mail(n: int, total: int, version: int = 1, body: str = "") -> str:
    diff = body or (f"diff --git a/f{n} b/f{n}\n--- a/f{n}\n+++ b/f{n}\n"
                    f"@@ -1 +1 @@\n-a\n+b{n}\n")
    return (f"From harness Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\n"
            f"Subject: [PATCH v{version} {n}/{total}] change {n}\n\nmsg\n---\n{diff}\n")


def _write(tmp_path: Path, text: str, name: str = "s.mbox") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_numbering_warnings(tmp_path: Path) -> None:
    text = _mail(2, 4) + _mail(1, 4) + _mail(2, 4, version=2)
    s = series.load(str(_write(tmp_path, text)))
    assert s.warnings == [
        "mixed versions: v1, v2", "patch 2 appears 2 times",
        "patches were out of order (sorted by number)", "missing patches: 3/4, 4/4",
        "numbering says 4 patches but 3 were found",
    ]
    assert [p.number for p in s.patches] == [1, 2, 2]
    with pytest.raises(SeriesError, match="missing patches: 3/4, 4/4"):
        series.require_complete(s)


def test_empty_file(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="empty file"):
        series.load(str(_write(tmp_path, "")))


def test_not_mail(tmp_path: Path) -> None:
    with pytest.raises(SeriesError, match="not a mail message"):
        series.load(str(_write(tmp_path, "just some notes\nno headers here\n", "notes.txt")))


def test_corrupt_diff(tmp_path: Path) -> None:
    bad = "diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n-a\n+b\n"
    with pytest.raises(SeriesError, match=r"message 1 \(PATCH v1 1/1\): corrupt diff"):
        series.load(str(_write(tmp_path, _mail(1, 1, body=bad))))


def test_message_id_offline() -> None:
    with pytest.raises(SeriesError, match=r"needs the network .*an mbox .*git range"):
        series.load("<20240222222624.1163754-1-thinker.li@gmail.com>")


def test_git_range(tmp_path: Path) -> None:
    import git  # noqa: PLC0415

    repo = git.Repo.init(tmp_path / "r")
    ident = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for i in range(3):
        (tmp_path / "r" / "f").write_text(f"{i}\n")
        repo.git.add("f")
        repo.git.commit("-qm", f"step {i}", env=ident)
    s = series.load("HEAD~2..HEAD", tmp_path / "r")
    assert [p.subject for p in s.patches] == ["step 1", "step 2"]
    assert [p.label for p in s.patches] == ["1/2", "2/2"]
    with pytest.raises(SeriesError, match="not a valid range"):
        series.load("nope..HEAD", tmp_path / "r")
