"""Builds inside the guest, for real: a series gate with --build-in guest, and what goes
wrong in the guest's build (a full build disk, a hang, out of memory, no tools sources).

The guest builds bpftool, libbpf, bpf_testmod and the targeted test_progs under TCG on
the Debian toolchain root filesystem, from the share image, onto the build disk; the
host compiles nothing (its commands.log names no compiler or make).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bisect_history import History, clone
from test_gate_series import PATCHES, assert_broken_layout_verdict

from harness import cli
from harness.host.cache import Cache
from harness.source import tree

BPFTOOL_MAKEFILE = "tools/bpf/bpftool/Makefile"

COMPILERS = ("make", "gcc", "cc", "clang-19", "clang", "ld")


STRUCT_OPS_MODULE = sorted(f"struct_ops_module/{n}" for n in (
    "struct_ops_load", "struct_ops_not_zeroed", "struct_ops_incompatible",
    "struct_ops_null_out_cb", "struct_ops_forgotten_cb", "test_detach_link",
    "unsupported_ops"))


@pytest.mark.slow
@pytest.mark.vm
@pytest.mark.build
def test_guest_builds_gate_the_broken_series_as_the_host_does(tmp_path: Path,
                                                               cache: Path) -> None:
    """One series gate with --build-in guest: the base passes struct_ops_module 7/7, the
    broken series gets the host mode's verdict (test_gate_series), each side built in its
    own guest; no host build directory is written and the host runs no compiler."""
    host_builds = _tree_of(cache / "build")
    out = tmp_path / "run"
    code = cli.main(["run", "--series", str(PATCHES / "shadow-layout-broken.mbox"),
                     "--kernel", "prebuilt", "--build-in", "guest", "--out", str(out)])
    rep = json.loads((out / "report.json").read_text())
    assert_broken_layout_verdict(code, rep)
    base = rep["base"]
    assert (base["verdict"], _passed(base)) == ("pass", STRUCT_OPS_MODULE), base["reason"]
    for key, side in (("base", "base"), ("series_run", "series")):
        _assert_built_in_the_guest(rep[key], out / side)
    assert _tree_of(cache / "build") == host_builds
    shutil.rmtree(tmp_path, ignore_errors=True)


def _passed(rep: dict[str, Any]) -> list[str]:
    return sorted(s["name"] for s in rep["subtests"] if s["status"] == "pass")


def _tree_of(root: Path) -> dict[str, int]:
    """Every path under root with its modification time: what a host build would change."""
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")} if root.is_dir() else {}


def _assert_built_in_the_guest(rep: dict[str, Any], run_dir: Path) -> None:
    built = rep["build_in"]
    assert built["mode"] == "guest"
    assert all(p.startswith("/build/") for p in built["outputs"].values())
    assert set(built["seconds"]) == {"bpftool", "testmod", "test_progs", "helpers"}
    assert set(rep["builds"].values()) == {"built in the guest"}
    # the host ran no compiler and no make: only git, mksquashfs, mkfs.ext4 and QEMU
    programs = {line.split()[1] for line in (run_dir / "commands.log").read_text().splitlines()}
    assert not programs & set(COMPILERS), programs
    assert "qemu-system-x86_64" in programs
    # the guest's logs came back under the host build's names
    assert "tools/bpf/bpftool'" in (run_dir / "build-bpftool.log").read_text()
    assert "Entering directory '/usr/src/linux-headers-" in (
        run_dir / "build-testmod.log").read_text()
    assert not (run_dir / "share.sqfs").exists()  # the share image is not kept per run


@pytest.mark.integration
def test_a_full_guest_build_disk_names_the_option(tmp_path: Path, cache: Path) -> None:
    """A build disk too small for bpftool's objects: exit 22 naming --guest-disk, the
    step's log kept, no test result; the disk of this size is deleted afterwards."""
    out = tmp_path / "full"
    code = cli.main(["run", "--build-in", "guest", "--guest-disk", "4M", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert (code, report["verdict"], report["error"]) == (22, "error", "DiskFull"), report["reason"]
    assert "build disk (4M) is full: raise it with --guest-disk" in report["reason"]
    failed = report["reason"].split("guest build ", 1)[1].split()[0]
    log = (out / f"build-{failed}.log").read_text()
    assert "No space left on device" in log
    assert report["subtests"] == []
    for disk in (cache / "guest").glob("*/build-*-4M.ext4"):
        disk.unlink()
    shutil.rmtree(tmp_path, ignore_errors=True)


HANG = "$(info harness: bpftool's Makefile hangs here)\n$(shell sleep 3600)\n"


@pytest.fixture(scope="module")
def broken_tools(default_tree: Path, cache: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    """A user tree whose bpftool Makefile never ends ("hang"), then without libbpf's
    sources ("no-libbpf"); the builds it leaves in the cache are deleted afterwards."""
    dest = tmp_path_factory.mktemp("guest-faults") / "linux"
    w = clone(default_tree, dest, dest.parent)
    w.edit("hang", BPFTOOL_MAKEFILE, "include ../../scripts/Makefile.include\n",
           "include ../../scripts/Makefile.include\n" + HANG, "bpftool: a Makefile that hangs")
    w.git.run("rm", "-r", "-q", "--", "tools/lib/bpf")
    w.commit("no-libbpf", "libbpf: its sources removed")
    assert w.history is not None
    yield w.history
    tree.forget(Cache(cache), dest)


@pytest.mark.integration
def test_a_hung_guest_build_is_a_timeout_with_its_partial_log(broken_tools: History,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "hang"
    code = cli.main(["run", "--tree", str(broken_tools.repo), "--rev",
                     broken_tools.ids["hang"], "--kernel", "prebuilt", "--build-in", "guest",
                     "--build-timeout", "60", "--out", str(out)])
    rep = json.loads((out / "report.json").read_text())
    assert (code, rep["verdict"], rep["error"]) == (cli.EXIT_TIMEOUT, "error",
                                                    "HarnessTimeout"), rep["reason"]
    assert rep["reason"].startswith("guest build hung: step bpftool did not end before the "
                                    "build deadline (raise it with --build-timeout; a guest "
                                    "short of memory (2G) stalls too: --memory)")
    # what the step printed before it hung is kept under the host build's name
    assert "harness: bpftool's Makefile hangs here" in (out / "build-bpftool.log").read_text()
    assert "HARNESS-BUILD: begin bpftool" in (out / "guest-build.log").read_text()
    assert rep["subtests"] == [] and "bpftool" not in rep["build_in"]["seconds"]


@pytest.mark.integration
def test_a_tree_without_libbpf_sources_is_a_tree_error(broken_tools: History,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "no-libbpf"
    code = cli.main(["run", "--tree", str(broken_tools.repo), "--rev",
                     broken_tools.ids["no-libbpf"], "--kernel", "prebuilt", "--build-in",
                     "guest", "--out", str(out)])
    rep = json.loads((out / "report.json").read_text())
    assert (code, rep["error"]) == (cli.EXIT_BAD_TREE, "TreeError"), rep["reason"]
    assert "has no tools/lib/bpf/Makefile: a build inside the guest needs the tree's " \
           "tools/ sources" in rep["reason"]
    assert not (out / "console.log").exists()  # found before any boot
