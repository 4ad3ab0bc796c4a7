"""Integration: test_progs-style selection on the real 6.12 tree, in the guest environment
the selftests expect (the Debian root filesystem, the kernel's modules and config).

Real builds, a real QEMU (TCG) boot of Debian's kernel; nothing is skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import cli

pytestmark = [pytest.mark.vm, pytest.mark.build]

# What `test_progs -t struct_ops` selects on 6.12.117 (6 tests, 17 subtests).
STRUCT_OPS_T = ["bad_struct_ops", "struct_ops_autocreate", "struct_ops_maybe_null",
                "struct_ops_module", "struct_ops_multi_pages", "struct_ops_no_cfi"]


def _report(run: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads((run / "report.json").read_text())
    return report


def test_t_struct_ops_selects_as_test_progs_and_passes(default_tree: Path,
                                                       tmp_path: Path) -> None:
    run = tmp_path / "run"
    code = cli.main(["run", "--tests", "struct_ops,dummy_st_ops,pro_epilogue",
                     "--out", str(run)])
    report = _report(run)
    assert code == cli.EXIT_PASS, report["reason"]
    assert report["tests"]["selected"] == sorted([*STRUCT_OPS_T, "dummy_st_ops",
                                                  "pro_epilogue"])
    assert set(report["tests"]["modules"]) == {"bpf_testmod", "bpf_test_no_cfi"}
    statuses = {s["name"]: s["status"] for s in report["subtests"]}
    assert len(statuses) == 40 and set(statuses.values()) == {"pass"}
    struct_ops = [n for n in statuses if n.split("/")[0] in STRUCT_OPS_T]
    assert len(struct_ops) == 17  # what `test_progs -t struct_ops` runs
    assert any(n.startswith("struct_ops_no_cfi/") for n in statuses)
    assert report["rootfs"]["packages"] > 50
    assert (run / "initramfs.cpio.gz").is_file()


def test_missing_command_is_infrastructure_not_a_failure(default_tree: Path,
                                                         tmp_path: Path) -> None:
    run = tmp_path / "hidden"
    code = cli.main(["run", "--tests", "cgroup_ancestor", "--append", "harness.hide=ip",
                     "--out", str(run)])
    report = _report(run)
    assert code == cli.EXIT_INFRA, report["reason"]
    assert report["verdict"] == "error" and report["error"] == "InfraError"
    assert "missing command: ip" in report["reason"]
    assert [s["status"] for s in report["subtests"]] == ["infra"]
    # With the environment whole, the same test passes (ip, its netns and the qdisc
    # module the guest's modprobe loads).
    whole = tmp_path / "whole"
    assert cli.main(["run", "--tests", "cgroup_ancestor", "--out", str(whole)]) == 0


def test_list_resolves_without_building(default_tree: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "list"
    code = cli.main(["run", "--tests", "struct_ops", "--deny", "bad_struct_ops",
                     "--list", "--json", "--out", str(run)])
    assert code == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["selected"] == [t for t in STRUCT_OPS_T if t != "bad_struct_ops"]
    assert listed["denied"] == ["bad_struct_ops"]
    assert "bpf_test_no_cfi" in listed["modules"]
    assert "struct_ops_module.skel.h" in listed["skeletons"]
    assert not list(run.glob("build-*.log"))


def test_selection_errors(default_tree: Path, tmp_path: Path,
                          capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "e")
    assert cli.main(["run", "--allow", "struct_ops_modul", "--list", "--out", out]) == \
        cli.EXIT_NO_TESTS
    err = capsys.readouterr().err
    close = err.split("close: ", 1)[1].strip().split(", ")
    assert close[0] == "struct_ops_module" and len(close) == len(set(close))
    assert cli.main(["run", "--deny", f"@{tmp_path / 'none.txt'}", "--list",
                     "--out", out]) == cli.EXIT_USAGE
    assert "none.txt: no such file" in capsys.readouterr().err
    bad = tmp_path / "deny.txt"
    bad.write_text("# ok\nstruct_ops_module bad\n")
    assert cli.main(["run", "--deny", f"@{bad}", "--list", "--out", out]) == cli.EXIT_USAGE
    assert f"{bad}:2: whitespace inside an entry" in capsys.readouterr().err


def test_bare_initramfs_gives_the_same_struct_ops_results(default_tree: Path,
                                                          tmp_path: Path) -> None:
    """`--rootfs initramfs` is kept only where it gives what the Debian root gives: the
    default struct_ops_module tests."""
    run = tmp_path / "bare"
    assert cli.main(["run", "--rootfs", "initramfs", "--out", str(run)]) == cli.EXIT_PASS
    report = _report(run)
    assert report["rootfs"] is None and "-drive" not in report["qemu"]
    assert [s["status"] for s in report["subtests"]] == ["pass"] * 7
