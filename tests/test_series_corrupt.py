"""Corrupt diffs are a bad series (exit 9), never patches of "+0 -0" or apply conflicts.

The inputs are the project's own series, `patches/shadow-layout-broken.mbox`, with hunk
headers mangled here at test time (so nothing outside the repository is needed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness import cli
from harness.errors import SeriesError
from harness.source import series

MBOX = Path(__file__).resolve().parents[1] / "patches" / "shadow-layout-broken.mbox"
HUNK_RE = re.compile(r"(?m)^@@ -(?=\d)")
STAT_RE = re.compile(r"^ \d+ files? changed(?:, (\d+) insertions?\(\+\))?"
                     r"(?:, (\d+) deletions?\(-\))?$", re.M)
# Messages of the mbox: 1 is the cover letter, 2..5 are patches 1/4..4/4.
GEN_C = 3  # PATCH 2/4: tools/bpf/bpftool/gen.c, three hunks


def _mangle_all(text: str) -> str:
    """Every hunk header '@@ -1,3 +1,3 @@' becomes '@@ -x1,3 +1,3 @@'."""
    return HUNK_RE.sub("@@ -x", text)


def _message(number: int) -> series.Patch:
    raws = series.read_mbox(MBOX)
    return series.parse_message(raws[number - 1], f"m{number}")


def _hunk_lines(diff: str) -> list[int]:
    """1-based line numbers of the hunk headers of a diff."""
    return [i for i, line in enumerate(diff.split("\n"), start=1) if line.startswith("@@")]


def _replace_line(diff: str, number: int, new: str) -> str:
    lines = diff.split("\n")
    lines[number - 1] = new
    return "\n".join(lines)


@pytest.fixture
def corrupt(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.mbox"
    path.write_text(_mangle_all(MBOX.read_text()))
    return path


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("harness: error:"), err
    return lines[0]


def test_show_corrupt_series_is_a_bad_series(corrupt: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["series", "show", str(corrupt)]) == cli.EXIT_BAD_SERIES == 9
    line = _error_line(capsys.readouterr().err)
    assert f"{corrupt} message 2 (PATCH harness 1/4)" in line
    assert "line 5" in line and "'@@ -x1226,7 +1226,11 @@" in line
    assert "regenerate the patch" in line


def test_apply_corrupt_series_is_a_bad_series(corrupt: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The series is read before any tree is looked at: no kernel tree is needed."""
    argv = ["series", "apply", str(corrupt), "--out", str(tmp_path / "o")]
    assert cli.main(argv) == cli.EXIT_BAD_SERIES
    line = _error_line(capsys.readouterr().err)
    assert "message 2 (PATCH harness 1/4)" in line and "line 5" in line


def test_one_mangled_header_among_valid_ones() -> None:
    diff = _message(GEN_C).diff
    second = _hunk_lines(diff)[1]
    original = diff.split("\n")[second - 1]
    bad = _replace_line(diff, second, original.replace("@@ -", "@@ -x", 1))
    with pytest.raises(SeriesError) as info:
        series.diffstat(bad, "X message 3 (PATCH 2/4)")
    message = info.value.line()
    assert message.startswith("X message 3 (PATCH 2/4): corrupt diff")
    assert f"line {second}" in message and "'@@ -x984,7 +990,7 @@" in message
    assert "\n" not in message


def test_hunk_shorter_than_its_header() -> None:
    diff = _message(GEN_C).diff
    first = _hunk_lines(diff)[0]
    header = diff.split("\n")[first - 1]
    assert header.startswith("@@ -960,6 +960,12 @@")
    longer_promise = header.replace("-960,6 +960,12", "-960,7 +960,13", 1)
    with pytest.raises(SeriesError) as info:
        series.diffstat(_replace_line(diff, first, longer_promise), "X message 3 (PATCH 2/4)")
    message = info.value.line()
    assert f"line {first}" in message and "'@@ -960,7 +960,13 @@" in message
    assert "shorter" in message and "\n" not in message


def test_hunk_longer_than_its_header() -> None:
    """unidiff stops at the header's count and silently drops the rest of a last hunk."""
    diff = _message(2).diff  # PATCH 1/4: libbpf.c, one hunk, then the signature
    first = _hunk_lines(diff)[0]
    header = diff.split("\n")[first - 1]
    smaller_promise = header.replace("-1226,7 +1226,11", "-1226,6 +1226,10", 1)
    with pytest.raises(SeriesError, match=r"corrupt diff at line 17 .*hunk at line 5 is longer"):
        series.diffstat(_replace_line(diff, first, smaller_promise), "X")


def test_valid_original_is_unchanged() -> None:
    """Every patch's counts agree with the diffstat git wrote above its diff."""
    raws = series.read_mbox(MBOX)
    for number in range(2, len(raws) + 1):
        patch = _message(number)
        stat = STAT_RE.search(raws[number - 1].decode())
        assert stat is not None
        assert sum(f.added for f in patch.files) == int(stat[1] or 0)
        assert sum(f.removed for f in patch.files) == int(stat[2] or 0)
        assert all(f.hunks >= 1 for f in patch.files)
    gen = _message(GEN_C).files
    assert gen == (series.FileStat("tools/bpf/bpftool/gen.c", 8, 2, 3),)


@pytest.mark.parametrize("diff", [
    "diff --git a/x b/y\nsimilarity index 100%\nrename from x\nrename to y\n",
    "diff --git a/x b/x\nold mode 100644\nnew mode 100755\n",
    "diff --git a/e b/e\nnew file mode 100644\nindex 0000000..e69de29\n",
    "diff --git a/e b/e\ndeleted file mode 100644\nindex e69de29..0000000\n",
    "diff --git a/b.bin b/b.bin\nindex 1234567..89abcde 100644\n"
    "Binary files a/b.bin and b/b.bin differ\n",
    "diff --git a/b.bin b/b.bin\nnew file mode 100644\nindex 0000000..89abcde\n"
    "GIT binary patch\nliteral 3\nKcmZ?wc>n+k0RR91\n\nliteral 0\nHcmV?d00001\n\n",
], ids=["rename", "mode", "new-empty", "deleted-empty", "binary", "git-binary"])
def test_legitimate_diffs_without_hunks(diff: str) -> None:
    stats = series.diffstat(diff + "-- \n2.39.5\n\n", "X")
    assert len(stats) == 1
    assert (stats[0].added, stats[0].removed, stats[0].hunks) == (0, 0, 0)


def test_rename_with_content_change_and_signature() -> None:
    diff = ("diff --git a/x b/y\nsimilarity index 80%\nrename from x\nrename to y\n"
            "index 1234567..89abcde 100644\n--- a/x\n+++ b/y\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
            "\\ No newline at end of file\n\nbase-commit: 0123456789abcdef\n-- \n2.39.5\n\n")
    assert series.diffstat(diff, "X") == (series.FileStat("y", 1, 1, 1),)


@pytest.mark.parametrize("diff, reason", [
    ("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n-a\n+b\n", "outside"),
    ("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n", "no hunk"),
    ("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n b\n",
     "changes nothing"),
    ("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n+c\n",
     "longer"),
], ids=["no-header", "no-hunk", "context-only", "extra-added-line"])
def test_other_corruptions(diff: str, reason: str) -> None:
    with pytest.raises(SeriesError, match=rf"X: corrupt diff at line \d+ .*{reason}"):
        series.diffstat(diff, "X")
