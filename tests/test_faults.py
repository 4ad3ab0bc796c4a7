"""The fault matrix, run for real: a bpf_testmod that panics, hangs, warns; a test_progs
that crashes or refuses to start; a QEMU killed from outside (tests/fault_tree.py builds
the tree).  Each row ends with its own verdict and exit code, a one-line reason, every log
in the run directory, the user's tree untouched, and (conftest's autouse fixture) no
process or mount left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bisect_history import History
from fault_tree import fault_tree

from harness import cli
from harness.boot import rootfs
from harness.host import vcs
from harness.host.cache import Cache
from harness.source import tree

pytestmark = [pytest.mark.vm, pytest.mark.build]
LOGS = ("report.json", "junit.xml", "commands.log", "console.log", "build-bpftool.log",
        "build-testmod.log", "build-test_progs.log")


@pytest.fixture(scope="module")
def faults(default_tree: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[History]:
    root = tmp_path_factory.mktemp("faults")
    history = fault_tree(default_tree, root / "linux", root / "logs")
    git = vcs.Git(history.repo, root / "logs")
    head = git.head()
    yield history
    try:
        assert git.head() == head, "the user's tree moved"
        assert git.run("status", "--porcelain").output == "", "the user's tree was written"
    finally:
        tree.forget(Cache(cache), history.repo)
        shutil.rmtree(history.repo, ignore_errors=True)  # a 1.7 GB checkout


def _run(faults: History, out: Path, rev: str, *args: str) -> tuple[int, dict[str, object]]:
    code = cli.main(["run", "--tree", str(faults.repo), "--rev", faults.ids[rev],
                     "--out", str(out), *args])
    report: dict[str, object] = json.loads((out / "report.json").read_text())
    assert report["exit_code"] == code
    for name in LOGS:
        assert (out / name).is_file(), f"{name} not kept"
    return code, report


def _splats(report: dict[str, object]) -> list[str]:
    found = report["splats"]
    assert isinstance(found, list)
    return [str(s["family"]) for s in found]


def test_panic_on_load(faults: History, tmp_path: Path) -> None:
    code, rep = _run(faults, tmp_path, "panic-on-load", "--tests", "harness_basic")
    assert code == cli.EXIT_PANIC and rep["verdict"] == "error"
    assert rep["error"] == "KernelPanic"
    assert "Kernel panic - not syncing: harness fault: bpf_testmod panics on load" in str(
        rep["reason"])
    assert _splats(rep) == ["panic"]
    assert "bpf_testmod" in "\n".join(rep["splats"][0]["lines"])  # type: ignore[index]
    sources = rep["splats"][0]["sources"]  # type: ignore[index]
    assert any(f.startswith("harness_fault_init+") for f in sources), sources  # faddr2line


def test_splats_fail_passing_tests(faults: History, tmp_path: Path) -> None:
    tests = "harness_basic,harness_fault/warn,harness_fault/refcount"
    code, rep = _run(faults, tmp_path / "gate", "faults", "--tests", tests)
    assert code == cli.EXIT_SPLAT and rep["error"] == "KernelSplat"
    assert rep["counts"] == {"pass": 3, "fail": 0, "skip": 0, "infra": 0, "denied": 0,
                             "flaky": 0}
    assert _splats(rep) == ["warning", "refcount"]
    sources = rep["splats"][0]["sources"]  # type: ignore[index]
    assert re.fullmatch(r"\S+/bpf_testmod\.c:\d+",  # faddr2line on the module built
                        sources["harness_fault_store+0x30/0x1a0 [bpf_testmod]"])
    assert str(rep["reason"]).startswith("2 kernel splat(s) (refcount, warning): first: "
                                         "WARNING: CPU: ")
    junit = (tmp_path / "gate/junit.xml").read_text()
    assert 'classname="kernel" name="refcount"' in junit and "harness fault: warn" in junit
    code, rep = _run(faults, tmp_path / "allowed", "faults", "--tests", tests,
                     "--allow-splat", "harness_fault_store", "--allow-splat", "^refcount_t:")
    assert code == cli.EXIT_PASS and len(_splats(rep)) == 2


def test_hang_is_a_run_timeout_naming_the_running_test(faults: History, tmp_path: Path,
                                                       ) -> None:
    started = time.monotonic()
    code, rep = _run(faults, tmp_path, "faults", "--tests",
                     "harness_basic,harness_fault/hang", "--run-timeout", "40")
    assert code == cli.EXIT_TIMEOUT and rep["error"] == "RunTimeout"
    assert time.monotonic() - started < 240
    assert "running: harness_fault (its subtests print when it ends); 1 test(s) had " \
           "finished" in str(rep["reason"])
    assert [(s["name"], s["status"]) for s in rep["subtests"]] == [  # type: ignore[attr-defined]
        ("harness_basic", "pass")]
    assert "harness_basic:OK" in (tmp_path / "test_progs.log").read_text()


def test_test_progs_crash(faults: History, tmp_path: Path) -> None:
    # hung-task sleeps 8 s in the kernel: the SIGSEGV sent at 3 s lands as it returns
    code, rep = _run(faults, tmp_path, "faults", "--tests", "harness_fault/hung-task",
                     "--append", "harness.kill_test_progs=3")
    assert code == cli.EXIT_TEST_FAILURE and rep["verdict"] == "fail"
    assert "test_progs crashed: killed by signal 11 (SIGSEGV)" in str(rep["reason"])
    assert "Caught signal #11!" in (tmp_path / "test_progs.log").read_text()
    assert "hung-task" in _splats(rep)


def test_test_progs_setup_failure_exit_3(faults: History, tmp_path: Path) -> None:
    code, rep = _run(faults, tmp_path, "exit3", "--tests", "harness_basic")
    assert code == cli.EXIT_GUEST and rep["error"] == "GuestError"
    assert "test_progs exited 3: its own setup failed" in str(rep["reason"])
    assert "must have either test_harness_basic() or serial_test_harness_basic" in str(
        rep["reason"])


def _qemu_of(run_dir: Path) -> int | None:
    """The QEMU process writing into run_dir (its serial files name it)."""
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if argv.startswith("qemu-system") and str(run_dir / "status") in argv:
            return int(entry.name)
    return None


def test_qemu_killed_from_outside(faults: History, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "harness", "run", "--tree", str(faults.repo), "--rev",
            faults.ids["faults"], "--tests", "harness_fault/hang", "--out", str(tmp_path)]
    with subprocess.Popen(argv, stderr=subprocess.DEVNULL) as harness:
        deadline = time.monotonic() + 600
        pid = None
        while pid is None or "HARNESS: booted" not in _text(tmp_path / "console.log"):
            assert harness.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
            pid = _qemu_of(tmp_path)
        os.kill(pid, signal.SIGKILL)
        code = harness.wait(timeout=120)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert code == cli.EXIT_VM_LOST and rep["error"] == "VmLost"
    assert "qemu was killed by SIGKILL before the guest wrote its exit status" in rep["reason"]
    for name in (*LOGS, "test_progs.log"):
        assert (tmp_path / name).is_file(), name


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def test_flaky_subtest_retried_in_the_same_boot(faults: History, tmp_path: Path) -> None:
    code, rep = _run(faults, tmp_path / "once", "faults", "--tests", "harness_flaky")
    assert code == cli.EXIT_TEST_FAILURE  # no retries: the first run's failure stands
    code, rep = _run(faults, tmp_path / "retried", "faults", "--tests", "harness_flaky",
                     "--retries", "2")
    assert code == cli.EXIT_PASS, rep["reason"]
    assert "1 of them flaky (passed on a retry): harness_flaky/first_run_fails" in str(
        rep["reason"])
    log = (tmp_path / "retried/test_progs.log").read_text()
    assert log.count("HARNESS: retry ") == 1  # it passed on the first retry: no second
    junit = (tmp_path / "retried/junit.xml").read_text()
    assert "<flakyFailure" in junit and "<failure" not in junit
    code, rep = _run(faults, tmp_path / "strict", "faults", "--tests", "harness_flaky",
                     "--retries", "1", "--flaky", "fail")
    assert code == cli.EXIT_TEST_FAILURE and str(rep["reason"]).startswith("flaky")


def test_two_runs_at_once_on_one_cache(faults: History, default_tree: Path,
                                       tmp_path: Path) -> None:
    """Two runs of the fault tree at one commit, and one of the default tree, at once."""
    base = [sys.executable, "-m", "harness", "run"]
    argvs = {
        "same-a": [*base, "--tree", str(faults.repo), "--rev", faults.ids["faults"],
                   "--tests", "harness_basic"],
        "same-b": [*base, "--tree", str(faults.repo), "--rev", faults.ids["faults"],
                   "--tests", "harness_basic"],
        "default": [*base, "--tests", "struct_ops_module/struct_ops_load"],
    }
    runs = {name: subprocess.Popen([*argv, "--out", str(tmp_path / name)],
                                   stderr=subprocess.DEVNULL) for name, argv in argvs.items()}
    codes = {name: p.wait(timeout=900) for name, p in runs.items()}
    assert codes == dict.fromkeys(argvs, cli.EXIT_PASS)
    for name, count in (("same-a", 1), ("same-b", 1), ("default", 1)):
        rep = json.loads((tmp_path / name / "report.json").read_text())
        assert rep["verdict"] == "pass" and rep["counts"]["pass"] == count, name


def test_damaged_cache_is_rebuilt_not_trusted(faults: History, cache: Path,
                                              tmp_path: Path) -> None:
    code, _ = _run(faults, tmp_path / "first", "faults", "--tests", "harness_basic")
    assert code == cli.EXIT_PASS
    build = cache / "build" / tree.user_key(faults.repo)
    bpftool = next(build.glob("tools-*/bpftool/bpftool"))
    test_progs = next(build.glob("selftests-*/test_progs"))
    image = next(cache.glob("rootfs/*/rootfs.squashfs"))
    intact = {p: p.stat().st_size for p in (bpftool, test_progs, image)}
    for damaged in intact:
        with damaged.open("r+b") as f:
            f.truncate(damaged.stat().st_size // 2)
    code, rep = _run(faults, tmp_path / "second", "faults", "--tests", "harness_basic")
    assert code == cli.EXIT_PASS, rep["reason"]
    notes = "\n".join(rep["notes"])  # type: ignore[arg-type]
    for damaged, size in intact.items():  # noted, then made again (or restored from a
        assert str(damaged) in notes  # kept copy whose digest was checked)
        assert damaged.stat().st_size == size, damaged
    recorded = (image.parent / rootfs.DIGEST).read_text().strip()
    assert recorded == hashlib.sha256(image.read_bytes()).hexdigest()


def test_full_disk_while_building(faults: History, cache: Path, tmp_path: Path) -> None:
    """The tree's build directory on a 2 MB tmpfs (mounted over it for the test)."""
    build = cache / "build" / tree.user_key(faults.repo)
    build.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "harness-full", str(build)],
                   check=True)
    try:
        code = cli.main(["run", "--tree", str(faults.repo), "--rev", faults.ids["faults"],
                         "--tests", "harness_basic", "--out", str(tmp_path)])
    finally:
        subprocess.run(["umount", str(build)], check=True)
    rep = json.loads((tmp_path / "report.json").read_text())
    assert code == cli.EXIT_DISK_FULL and rep["error"] == "DiskFull"
    assert f"no space left on device under {cache}" in rep["reason"]
    assert "MB free" in rep["reason"] and (tmp_path / "build-bpftool.log").is_file()
