"""Integration: the real gate on the embedded default, and on a deliberately broken tree.

Real builds from Debian's linux-source, a real QEMU (TCG) boot of Debian's kernel, the real
test_struct_ops_module.  A VM that cannot boot fails these tests; nothing is skipped.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import git
import pytest
from junit_schema import validate

from harness import cli
from harness.host.cache import Cache
from harness.source import tree

pytestmark = [pytest.mark.vm, pytest.mark.build]

GEN_C = "tools/bpf/bpftool/gen.c"
UNSUPPORTED_LINE = 'printf("\\t\\t\\tchar __unsupported_%d[%d];\\n", i, size);'
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _report(run: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    return report


def _junit_cases(run: Path) -> dict[str, bool]:
    """testcase "class/name" → failed?"""
    root = ET.parse(run / "junit.xml").getroot()
    return {f"{c.get('classname')}/{c.get('name')}": c.find("failure") is not None
            for c in root.iter("testcase")}


def test_gate_passes_on_embedded_default(default_tree: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert cli.main(["run", "--out", str(run)]) == cli.EXIT_PASS
    report = _report(run)
    assert report["verdict"] == "pass" and report["exit_code"] == 0
    assert report["accelerator"]["name"] == "tcg"
    assert report["tree"]["path"] == str(default_tree)
    assert report["kernel"]["release"].startswith(report["tree"]["version"])
    names = [s["name"] for s in report["subtests"]]
    assert len(names) == 7 and "struct_ops_module/struct_ops_load" in names
    assert {s["status"] for s in report["subtests"]} == {"pass"}
    assert _junit_cases(run) == dict.fromkeys(names, False)
    validate(run / "junit.xml")
    stages = {s["name"]: s["status"] for s in report["stages"]}
    assert stages["build-test_progs"] == "ok" and stages["boot+run"] == "ok"
    for log in ("console.log", "dmesg.log", "test_progs.log", "build-bpftool.log",
                "build-testmod.log", "build-test_progs.log", "commands.log"):
        assert (run / log).stat().st_size > 0, log
    assert "bpf_testmod" in (run / "dmesg.log").read_text()


def _broken_tree(default_tree: Path, dest: Path) -> git.Repo:
    """A scratch clone whose bpftool shrinks every unsupported member by 4 bytes."""
    repo = git.Repo.clone_from(str(default_tree), str(dest), shared=True)
    gen = dest / GEN_C
    text = gen.read_text()
    assert UNSUPPORTED_LINE in text, "gen.c changed: update the breakage"
    gen.write_text(text.replace(UNSUPPORTED_LINE, UNSUPPORTED_LINE.replace(", size);",
                                                                         ", size - 4);")))
    repo.git.commit("-qam", "bpftool: break the shadow layout", env=IDENTITY)
    return repo


@pytest.fixture
def scratch(cache: Path, tmp_path: Path) -> Iterator[Path]:
    """A path for a scratch tree; what the harness caches for it is deleted afterwards."""
    yield tmp_path / "linux"
    tree.forget(Cache(cache), tmp_path / "linux")


def test_broken_shadow_layout_fails_the_gate(default_tree: Path, tmp_path: Path,
                                             scratch: Path) -> None:
    repo = _broken_tree(default_tree, scratch)
    head = repo.head.commit.hexsha
    run = tmp_path / "run"
    assert cli.main(["run", "--tree", str(scratch), "--out", str(run)]) == (
        cli.EXIT_TEST_FAILURE)
    report = _report(run)
    assert report["verdict"] == "fail" and report["tree"]["commit"] == head
    failed = [s["name"] for s in report["subtests"] if s["status"] == "fail"]
    assert failed == ["struct_ops_module/struct_ops_load"]
    assert "test_2_result" in report["subtests"][0]["log"]
    cases = _junit_cases(run)
    assert [name for name, bad in cases.items() if bad] == ["struct_ops_module/struct_ops_load"]
    validate(run / "junit.xml")
    # The user's tree is exactly as it was.
    assert repo.head.commit.hexsha == head and repo.git.status("--porcelain") == ""
