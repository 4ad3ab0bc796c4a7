"""The series gate: comparison rules (pure), then real base and base+series runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from junit_schema import validate

from harness import cli
from harness.outcome.compare import Change, classify, compare
from harness.outcome.results import Result, Status

PATCHES = Path(__file__).resolve().parents[1] / "patches"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "series"
P, F, S = Status.PASS, Status.FAIL, Status.SKIP


def test_classify() -> None:
    assert classify(P, P) is Change.PASS
    assert classify(F, F) is Change.PRE_EXISTING
    assert classify(P, F) is Change.REGRESSION and Change.REGRESSION.gates
    assert classify(S, F) is Change.REGRESSION
    assert classify(F, P) is Change.FIXED and not Change.FIXED.gates
    assert classify(None, P) is Change.NEW
    assert classify(None, F) is Change.NEW_FAILING and Change.NEW_FAILING.gates
    assert classify(P, None) is Change.REMOVED
    assert classify(P, S) is Change.SKIP
    assert not Change.PRE_EXISTING.gates
    # A subtest the series side could not run, or a list denied, is never a pass.
    assert classify(P, Status.INFRA) is Change.NOT_RUN
    assert classify(F, Status.DENIED) is Change.NOT_RUN and not Change.NOT_RUN.gates


def test_compare_order_and_removed() -> None:
    base = [Result("t/a", "1/1", P), Result("t/b", "1/2", F), Result("t/gone", "1/3", P)]
    new = [Result("t/a", "1/1", F), Result("t/b", "1/2", F), Result("t/new", "1/3", P)]
    assert [(c.name, c.change) for c in compare(base, new)] == [
        ("t/a", Change.REGRESSION), ("t/b", Change.PRE_EXISTING), ("t/new", Change.NEW),
        ("t/gone", Change.REMOVED)]


def _run(tmp_path: Path, src: Path | str, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "run"
    code = cli.main(["run", "--series", str(src), "--out", str(out), *extra])
    return code, json.loads((out / "report.json").read_text())


@pytest.mark.slow
@pytest.mark.vm
@pytest.mark.build
def test_project_series_passes(default_tree: Path, tmp_path: Path) -> None:
    # Its 1/4 touches libbpf, which resolve_btfids links: `auto` would build both kernels.
    # This test is about the gate's comparison, so it overrides the rule (with a warning).
    code, rep = _run(tmp_path, PATCHES / "shadow-layout", "--kernel", "prebuilt")
    assert code == cli.EXIT_PASS and rep["verdict"] == "pass"
    base, series = rep["base"]["kernel"]["choice"], rep["series_run"]["kernel"]["choice"]
    assert base == {"how": "prebuilt", "reason": "--kernel prebuilt", "warning": None}
    assert series["how"] == "prebuilt" and series["warning"] == (
        "--kernel prebuilt overrides the rule: series patch 1/4 touches "
        "tools/lib/bpf/libbpf.c (read by the build of tools/bpf/resolve_btfids, which the "
        "kernel build runs)")
    assert [p["outcome"] for p in rep["patches"]] == ["applied"] * 4
    changes = {s["name"]: s["change"] for s in rep["subtests"]}
    assert changes["struct_ops_module/struct_ops_shadow_layout"] == "new"
    assert set(changes.values()) == {"pass", "new"} and len(changes) == 8
    assert rep["base"]["verdict"] == "pass" and rep["series_run"]["verdict"] == "pass"
    suites = [s.get("name") for s in ET.parse(tmp_path / "run/junit.xml").getroot()]
    assert suites == ["gate"]
    assert (tmp_path / "run/base/junit.xml").is_file()
    assert (tmp_path / "run/series/junit.xml").is_file()
    validate(tmp_path / "run/junit.xml")


def assert_broken_layout_verdict(code: int, rep: dict[str, Any]) -> None:
    """The gate's verdict on patches/shadow-layout-broken.mbox, in any build mode."""
    assert code == cli.EXIT_TEST_FAILURE and rep["verdict"] == "fail", rep["reason"]
    gating = {s["name"]: s["change"] for s in rep["subtests"]
              if s["change"] in ("regression", "new-failing")}
    assert gating == {"struct_ops_module/struct_ops_load": "regression",
                      "struct_ops_module/struct_ops_shadow_layout": "new-failing"}
    assert "regression: struct_ops_module/struct_ops_load" in rep["reason"]


@pytest.mark.slow
@pytest.mark.vm
@pytest.mark.build
def test_broken_patch_is_a_named_regression(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path, PATCHES / "shadow-layout-broken.mbox", "--kernel", "prebuilt")
    assert_broken_layout_verdict(code, rep)
    gate = ET.parse(tmp_path / "run/junit.xml").getroot().find("testsuite")
    assert gate is not None and gate.get("failures") == "2"
    validate(tmp_path / "run/junit.xml")


@pytest.mark.vm
@pytest.mark.build
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the real mails) is not present")
def test_already_merged_series_stops_at_apply(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path, SHARED / "v6.mbox")
    assert code == cli.EXIT_APPLY and rep["verdict"] == "error"
    assert [p["outcome"] for p in rep["patches"]] == ["conflict"] * 5
    assert all(p["looks_present"] for p in rep["patches"])
    assert "already applied?" in rep["reason"]
    assert rep["base"] is None  # the apply check comes first: nothing was built


def test_bad_series_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.mbox"
    empty.write_text("")
    code, rep = _run(tmp_path, empty)
    assert code == cli.EXIT_BAD_SERIES and "empty file" in rep["reason"]
    assert cli.main(["series", "show", str(tmp_path / "absent")]) == cli.EXIT_BAD_SERIES
    assert "not a git range or message-id" in capsys.readouterr().err


@pytest.mark.build
def test_patch_for_missing_file(default_tree: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    mbox = tmp_path / "p.mbox"
    mbox.write_text(
        "From harness Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\n"
        "Subject: [PATCH 1/1] touch a file that is not there\n\nmsg\n---\n"
        "diff --git a/no/such/file.c b/no/such/file.c\n--- a/no/such/file.c\n"
        "+++ b/no/such/file.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n")
    code = cli.main(["series", "apply", str(mbox), "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_APPLY
    out = capsys.readouterr().out
    assert "[1/1] conflict" in out and "no/such/file.c: No such file or directory" in out
