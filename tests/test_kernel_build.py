"""Kernels built from the tree: `--kernel build`, kernel-side series gated like for like,
incremental rebuilds, and what goes wrong (config, compile, boot).

Real builds of Debian's 6.12 tree with the `minimal` profile, in the shared cache: the
first test pays for the one cold build (about 13 minutes on 2 cores), every later one is an
incremental build of the same workspace.  The tests run in file order, which keeps the
workspace switching between few states.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness import cli
from harness.host.cache import Cache
from harness.source import tree

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "patches"
DATA = Path(__file__).resolve().parent / "data"
COMPILED_RE = re.compile(r"^\s+(?:CC|AS)\s+(\S+\.o)\s*$", re.M)

pytestmark = [pytest.mark.slow, pytest.mark.build]


def _run(out: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["run", "--out", str(out), *argv])
    return code, json.loads((out / "report.json").read_text())


def compiled(log: Path) -> list[str]:
    """The objects a kernel build log says were compiled."""
    return COMPILED_RE.findall(log.read_text(errors="replace"))


@pytest.mark.vm
def test_run_on_a_kernel_built_from_the_tree(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path / "run", "--kernel", "build")
    assert code == cli.EXIT_PASS, rep["reason"]
    assert rep["counts"]["pass"] == 7 and rep["counts"]["fail"] == 0
    kernel = rep["kernel"]
    assert kernel["choice"] == {"how": "build", "reason": "--kernel build", "warning": None}
    assert kernel["image"] == str(tmp_path / "run/bzImage")
    assert "deb12" not in kernel["release"]  # not the installed kernel
    assert kernel["build"]["commit"] == rep["tree"]["commit"]
    assert (tmp_path / "run/kernel.config").is_file()
    assert "HARNESS: booted " + kernel["release"] in (tmp_path / "run/console.log").read_text()


@pytest.mark.vm
def test_guest_builds_against_the_kernel_built_from_the_tree(default_tree: Path,
                                                              tmp_path: Path) -> None:
    """--build-in guest with a built kernel: bpf_testmod is built in the guest against the
    kernel's workspace (shared read-only), the host compiles only the kernel."""
    code, rep = _run(tmp_path / "run", "--kernel", "build", "--build-in", "guest")
    assert code == cli.EXIT_PASS, rep["reason"]
    assert rep["counts"]["pass"] == 7 and rep["counts"]["fail"] == 0
    workspace = rep["kernel"]["build"]["workspace"]
    assert rep["build_in"]["mode"] == "guest"
    assert set(rep["builds"].values()) == {"built in the guest"}
    assert f"make: Entering directory '{workspace}'" in (
        tmp_path / "run/build-testmod.log").read_text()
    commands = (tmp_path / "run/commands.log").read_text().splitlines()
    programs = {line.split()[1] for line in commands}
    assert programs - {"git", "mksquashfs", "mkfs.ext4", "qemu-system-x86_64"} <= {"make"}
    makes = {Path(line.split(" -C ", 1)[1].split()[0]) for line in commands
             if line.split()[1] == "make"}
    assert {m.parent for m in makes} <= {Path(workspace).parent}  # the kernel's build only


@pytest.mark.vm
def test_damaged_cached_image_is_linked_again(default_tree: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """The workspace's bzImage truncated after a build: linked again from the objects make
    keeps, never booted as it is."""
    code, rep = _run(tmp_path / "first", "--kernel", "build")
    assert code == cli.EXIT_PASS, rep["reason"]
    workspace = Path(rep["kernel"]["build"]["workspace"])
    image = workspace / "arch/x86/boot/bzImage"
    stamp = json.loads((workspace / "harness-stamp.json").read_text())
    size = image.stat().st_size
    with image.open("r+b") as f:
        f.truncate(size // 2)
    code, rep = _run(tmp_path / "run", "--kernel", "build")
    assert code == cli.EXIT_PASS, rep["reason"]
    assert "the cached arch/x86/boot/bzImage changed since it was built" in capsys.readouterr().err
    assert rep["kernel"]["build"]["reused"] is False
    assert image.stat().st_size == size
    assert json.loads((workspace / "harness-stamp.json").read_text())["image_sha256"] == stamp[
        "image_sha256"]  # reproducible: the same image again


@pytest.mark.vm
def test_kernel_series_gates_like_for_like(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path / "run", "--series", str(PATCHES / "struct-ops-update"))
    assert code == cli.EXIT_PASS, rep["reason"]
    base, series = rep["base"]["kernel"], rep["series_run"]["kernel"]
    why = ("series patch 1/1 touches kernel/bpf/bpf_struct_ops.c (kernel source: the "
           "kernel build reads everything outside tools/)")
    assert series["choice"]["how"] == "build" and series["choice"]["reason"] == why
    assert base["choice"]["how"] == "build"
    assert base["choice"]["reason"] == f"like for like with the series side: {why}"
    assert base["build"]["config_sha256"] == series["build"]["config_sha256"]
    assert base["build"]["commit"] != series["build"]["commit"]
    assert rep["series_run"]["counts"]["pass"] == 7
    # The series side is an incremental build of the base: the one changed file.
    objects = compiled(tmp_path / "run/series/build-kernel.log")
    assert "kernel/bpf/bpf_struct_ops.o" in objects and len(objects) <= 20, objects
    assert series["build"]["objects_compiled"] == len(objects)


@pytest.mark.vm
def test_broken_kernel_series_names_the_regressions(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path / "run", "--series", str(PATCHES / "struct-ops-update-broken.mbox"))
    assert code == cli.EXIT_TEST_FAILURE and rep["verdict"] == "fail"
    # The base kernel is rebuilt from the series' state: its module must match it.
    assert rep["base"]["verdict"] == "pass", rep["base"]["reason"]
    regressions = {s["name"] for s in rep["subtests"] if s["change"] == "regression"}
    assert "struct_ops_module/struct_ops_load" in regressions
    assert "regression: struct_ops_module/struct_ops_load" in rep["reason"]
    assert rep["series_run"]["kernel"]["choice"]["how"] == "build"


def test_kernel_that_does_not_compile(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path / "run", "--series", str(DATA / "kernel-does-not-compile.mbox"))
    assert code == cli.EXIT_BUILD and rep["verdict"] == "error"
    assert re.search(r"kernel build failed: kernel/bpf/bpf_struct_ops\.c:\d+:\d+: error: ",
                     rep["reason"]), rep["reason"]
    log = tmp_path / "run/series/build-kernel.log"
    assert 1 <= len(compiled(log)) <= 20  # a source edit: an incremental build


@pytest.mark.vm
def test_kernel_that_does_not_boot(default_tree: Path, tmp_path: Path) -> None:
    code, rep = _run(tmp_path / "run", "--series", str(DATA / "kernel-panics-at-boot.mbox"))
    assert code == cli.EXIT_PANIC and rep["verdict"] == "error"
    assert "kernel panic" in rep["reason"].lower()
    console = (tmp_path / "run/series/console.log").read_text()
    assert "harness: this kernel is built not to boot" in console


@pytest.mark.parametrize("option,words", [
    ("CONFIG_HARNESS_NO_SUCH_OPTION=y", "CONFIG_HARNESS_NO_SUCH_OPTION (from {frag}) is not an "
     "option of this tree's Kconfig"),
    ("CONFIG_BPF_LSM=y", "CONFIG_BPF_LSM=y became n after olddefconfig (from {frag}): it "
     "depends on SECURITY (SECURITY=n)"),
])
def test_config_fragment_that_cannot_hold(default_tree: Path, tmp_path: Path, option: str,
                                          words: str) -> None:
    """An unknown option, and one olddefconfig drops (a dependency is missing)."""
    frag = tmp_path / "extra.config"
    frag.write_text(option + "\n")
    code, rep = _run(tmp_path / "run", "--kernel", "build", "--kconfig", "minimal",
                     "--kconfig", str(frag))
    assert code == cli.EXIT_CONFIG, rep["reason"]
    assert words.format(frag=frag) in rep["reason"]
    unmet = (tmp_path / "run/kernel-config-unmet.txt").read_text()
    assert option.split("=", maxsplit=1)[0] in unmet
    assert not (tmp_path / "run/build-kernel.log").exists()  # stopped before compiling


@pytest.mark.vm
def test_bisect_a_kernel_regression(default_tree: Path, cache: Path, tmp_path: Path) -> None:
    """A culprit in kernel/bpf/: every step boots a kernel built from its commit, all in one
    kbuild workspace (the first a build of a new lineage, ccache-warm from the tests above;
    then incremental; documentation-only steps reuse the image)."""
    from bisect_history import kernel_history  # noqa: PLC0415

    h = kernel_history(default_tree, tmp_path / "linux", tmp_path)
    out = tmp_path / "bisect"
    try:
        code = cli.main(["bisect", "--tree", str(h.repo), "--good", h.base, "--bad", h.tip,
                         "--kernel", "build", "--out", str(out)])
    finally:  # its clones and its kbuild workspace (GBs) go; the run directories stay
        tree.forget(Cache(cache), h.repo)
    data = json.loads((out / "bisect.json").read_text())
    assert code == cli.EXIT_PASS, data.get("refused")
    assert data["first"]["commit"] == h.ids["culprit"]
    assert data["first"]["files"] == ["kernel/bpf/bpf_struct_ops.c"]
    for step in data["steps"]:
        rep = json.loads((Path(step["run_dirs"][0]) / "report.json").read_text())
        built = rep["kernel"]["build"]
        assert rep["kernel"]["choice"]["how"] == "build" and built["commit"] == step["commit"]
        if step["n"] > 1 and not built["reused"]:  # incremental after the first
            assert built["objects_compiled"] <= 20, (step["commit"], built)
    print(f"kernel bisection: {data['seconds']} s, {len(data['steps'])} probes")
