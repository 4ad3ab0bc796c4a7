"""Builds inside the guest, for real: the default gate with --build-in guest.

The guest builds bpftool, libbpf, bpf_testmod and the targeted test_progs under TCG on
the Debian toolchain root filesystem, from the share image, onto the build disk; the
host compiles nothing (its commands.log names no compiler or make).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import cli

COMPILERS = ("make", "gcc", "cc", "clang-19", "clang", "ld")


@pytest.mark.integration
def test_guest_builds_everything_and_passes_struct_ops_module(tmp_path: Path) -> None:
    out = tmp_path / "guest"
    code = cli.main(["run", "--build-in", "guest", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert (code, report["verdict"]) == (0, "pass"), report.get("reason")
    assert sorted(s["name"] for s in report["subtests"] if s["status"] == "pass") == sorted(
        f"struct_ops_module/{n}" for n in (
            "struct_ops_load", "struct_ops_not_zeroed", "struct_ops_incompatible",
            "struct_ops_null_out_cb", "struct_ops_forgotten_cb", "test_detach_link",
            "unsupported_ops"))
    built = report["build_in"]
    assert built["mode"] == "guest"
    assert all(p.startswith("/build/") for p in built["outputs"].values())
    assert set(built["seconds"]) == {"bpftool", "testmod", "test_progs", "helpers"}
    assert set(report["builds"].values()) == {"built in the guest"}
    # the host ran no compiler and no make: only git, mksquashfs, mkfs.ext4 and QEMU
    programs = {line.split()[1] for line in (out / "commands.log").read_text().splitlines()}
    assert not programs & set(COMPILERS), programs
    assert "qemu-system-x86_64" in programs
    # the guest's logs came back under the host build's names
    assert "tools/bpf/bpftool'" in (out / "build-bpftool.log").read_text()
    assert "Entering directory '/usr/src/linux-headers-" in (
        out / "build-testmod.log").read_text()
    assert not (out / "share.sqfs").exists()  # the share image is not kept per run
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.integration
def test_a_full_guest_build_disk_names_the_option(tmp_path: Path, cache: Path) -> None:
    """A build disk too small for bpftool's objects: exit 22 naming --guest-disk, the
    step's log kept, no test result; the disk of this size is deleted afterwards."""
    out = tmp_path / "full"
    code = cli.main(["run", "--build-in", "guest", "--guest-disk", "8M", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert (code, report["verdict"], report["error"]) == (22, "error", "DiskFull"), report["reason"]
    assert "build disk (8M) is full: raise it with --guest-disk" in report["reason"]
    failed = report["reason"].split("guest build ", 1)[1].split()[0]
    log = (out / f"build-{failed}.log").read_text()
    assert "No space left on device" in log
    assert report["subtests"] == []
    for disk in (cache / "guest").glob("*/build-*-8M.ext4"):
        disk.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)
