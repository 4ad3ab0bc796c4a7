"""test_progs' selection language on the host: globs, -t names, merged entries, lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.build import select
from harness.errors import SelectionError, UsageError

# prog_tests stems → the tests they define (a slice of 6.12's struct_ops family).
FILES = {
    "test_struct_ops_module": ("struct_ops_module",),
    "test_struct_ops_no_cfi": ("struct_ops_no_cfi",),
    "struct_ops_autocreate": ("struct_ops_autocreate",),
    "bad_struct_ops": ("bad_struct_ops",),
    "bpf_tcp_ca": ("bpf_tcp_ca",),
    "dummy_st_ops": ("dummy_st_ops",),
    "two_tests": ("alpha", "beta"),
}


def _resolve(*, tests: tuple[str, ...] = (), allow: tuple[str, ...] = (),
             deny: tuple[str, ...] = (), lists: tuple[tuple[str, str], ...] = (),
             tree_denylist: bool = True) -> select.Resolved:
    req = select.Request(tests=tests, allow=allow, deny=deny, tree_denylist=tree_denylist)
    return select.resolve(req, FILES, lists)


@pytest.mark.parametrize(("name", "pattern", "expected"), [
    ("struct_ops_module", "*struct_ops*", True),
    ("bad_struct_ops", "*struct_ops*", True),
    ("struct_ops_module", "struct_ops*", True),
    ("bad_struct_ops", "struct_ops*", False),
    ("abc", "a*c", True),
    ("abxc", "a*c", True),
    ("abcd", "a*c", False),
    ("abc", "abc", True),
    ("abc", "ab", False),
    ("", "*", True),
    ("a", "**a**", True),
])
def test_glob_match_as_test_progs(name: str, pattern: str, expected: bool) -> None:
    assert select.glob_match(name, pattern) is expected


def test_t_names_are_substrings() -> None:
    r = _resolve(tests=("struct_ops",))
    assert r.tests == ("bad_struct_ops", "struct_ops_autocreate", "struct_ops_module",
                       "struct_ops_no_cfi")
    assert r.allow_lines() == ["*struct_ops*"]


def test_allow_globs_and_subtests() -> None:
    r = _resolve(allow=("struct_ops*",))
    assert "bad_struct_ops" not in r.tests and "struct_ops_module" in r.tests
    r = _resolve(tests=("bpf_tcp_ca/dctcp",))
    assert r.tests == ("bpf_tcp_ca",) and r.allow_lines() == ["*bpf_tcp_ca*/*dctcp*"]
    r = _resolve(allow=("struct_ops_module/struct_ops_load",))
    assert r.allow_lines() == ["struct_ops_module/struct_ops_load"]


def test_file_stems_select_the_tests_they_define() -> None:
    r = _resolve(tests=("test_struct_ops_module",))
    assert r.tests == ("struct_ops_module",) and r.stems == ("test_struct_ops_module",)
    assert r.allow_lines() == ["struct_ops_module"]
    r = _resolve(tests=("two_tests.c",))
    assert r.tests == ("alpha", "beta") and r.stems == ("two_tests",)


def test_entries_merge_as_test_progs_merges_them() -> None:
    # `-a foo -a foo/bar` is one entry with one subtest: only foo/bar runs.
    r = _resolve(allow=("dummy_st_ops", "dummy_st_ops/init"))
    assert r.allow_lines() == ["dummy_st_ops/init"]


def test_deny_whole_tests_and_subtests() -> None:
    r = _resolve(tests=("struct_ops",), deny=("bad_struct_ops", "struct_ops_module/load*"))
    assert "bad_struct_ops" not in r.tests
    assert "struct_ops_module" in r.tests  # a subtest entry never denies the test
    assert r.denied == ("bad_struct_ops", "struct_ops_module/load*")
    assert r.deny_lines() == ["bad_struct_ops", "struct_ops_module/load*"]


def test_tree_denylist_honoured_unless_disabled() -> None:
    lists = (("DENYLIST", "# TEMPORARY\ndummy_st_ops   # flaky\n"),)
    r = _resolve(tests=("dummy_st_ops", "bpf_tcp_ca"), lists=lists)
    assert r.tests == ("bpf_tcp_ca",) and r.denied == ("dummy_st_ops",)
    assert r.deny.origins["dummy_st_ops"] == "DENYLIST:2"
    r = _resolve(tests=("dummy_st_ops",), lists=lists, tree_denylist=False)
    assert r.tests == ("dummy_st_ops",) and r.denied == ()


def test_everything_denied_is_a_selection_error() -> None:
    with pytest.raises(SelectionError, match="every selected test is denied"):
        _resolve(tests=("dummy_st_ops",), deny=("dummy*",))


def test_no_match_names_close_matches_once() -> None:
    with pytest.raises(SelectionError) as caught:
        _resolve(allow=("struct_ops_modul",))
    message = caught.value.message
    assert "--allow 'struct_ops_modul' matches no test" in message
    close = message.split("close: ", 1)[1].split(", ")
    assert close[0] == "struct_ops_module" and len(close) == len(set(close))
    with pytest.raises(SelectionError, match="--tests '\\*nonexistent\\*' matches no test"):
        _resolve(tests=("nonexistent",))


def test_list_files(tmp_path: Path) -> None:
    good = tmp_path / "allow.txt"
    good.write_text("# BPF CI style\n  struct_ops_module   # the default\n\nbpf_tcp_ca/dctcp\n")
    r = _resolve(allow=(f"@{good}",))
    assert r.tests == ("bpf_tcp_ca", "struct_ops_module")
    assert r.allow.origins["struct_ops_module"] == f"{good}:2"


@pytest.mark.parametrize(("text", "problem"), [
    ("struct_ops_module\nfoo bar\n", "whitespace inside an entry"),
    ("a,b\n", "a comma"),
    ("/sub\n", "an empty test or subtest name"),
    ("test/\n", "an empty test or subtest name"),
])
def test_malformed_list_line_names_file_and_line(tmp_path: Path, text: str,
                                                 problem: str) -> None:
    bad = tmp_path / "deny.txt"
    bad.write_text(text)
    with pytest.raises(UsageError) as caught:
        _resolve(tests=("struct_ops",), deny=(f"@{bad}",))
    line = text.count("\n", 0, text.rindex(text.strip().splitlines()[-1])) + 1
    assert caught.value.message.startswith(f"{bad}:{line}: {problem}")


def test_missing_list_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--deny @.*nope: no such file"):
        _resolve(deny=(f"@{tmp_path / 'nope'}",))
    with pytest.raises(UsageError, match="is a directory"):
        _resolve(allow=(f"@{tmp_path}",))


def test_tree_list_names_per_version() -> None:
    assert select.tree_list_names("x86_64", "6.12.117") == [
        "DENYLIST", "DENYLIST.x86_64", "DENYLIST-6.12", "DENYLIST-6.12.x86_64"]
