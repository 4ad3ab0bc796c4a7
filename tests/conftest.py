"""Shared fixtures: captured logs, and the real default tree for integration tests."""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

DATA = Path(__file__).parent / "data"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tiers: unmarked tests are unit tests (no qemu, clang or kernel tree); a test that
    builds or boots is an integration test unless it is marked slow."""
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        if marks & {"build", "vm"} and "slow" not in marks:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _every_junit_validates(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every junit.xml a test leaves in its tmp_path must match harness/outcome/junit.xsd."""
    from junit_schema import validate  # noqa: PLC0415

    # test_junit_schema writes invalid documents on purpose.
    used = "tmp_path" in request.fixturenames and request.module.__name__ != "test_junit_schema"
    tmp: Path | None = request.getfixturevalue("tmp_path") if used else None  # set up first
    yield
    for path in tmp.rglob("junit.xml") if tmp is not None else ():
        validate(path)


@pytest.fixture(autouse=True)
def _tcg_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test start QEMU with KVM on these machines."""
    monkeypatch.setenv("HARNESS_ACCEL", "tcg")


def data(name: str) -> str:
    return (DATA / name).read_text()


@pytest.fixture(scope="session")
def cache() -> Path:
    """The harness cache the integration tests share (trees and builds are reused)."""
    from harness.config import default_cache  # noqa: PLC0415

    os.environ.setdefault("HARNESS_ACCEL", "tcg")
    return default_cache()


@pytest.fixture(scope="session")
def default_tree(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian's linux-source as the harness's cached git repository (imported if needed)."""
    from harness.host.cache import Cache  # noqa: PLC0415
    from harness.source import tree  # noqa: PLC0415

    return tree.default_tree(Cache(cache), tmp_path_factory.mktemp("import-logs")).path


def load_bench(name: str) -> ModuleType:
    """A script of tests/bench/ as a module (they are scripts, not a package)."""
    script = Path(__file__).resolve().parent / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


# Programs a test may start (directly or through harness) that must not outlive it.
WATCHED = ("qemu-system", "make", "cc1", "gcc", "clang", "ld", "test_progs", "pahole",
           "debootstrap", "mksquashfs", "harness")
LINGER = 5.0  # seconds a process gets to finish after its test
PR_SET_CHILD_SUBREAPER = 36


@pytest.fixture(scope="session", autouse=True)
def _adopt_orphans() -> None:
    """Make this pytest the subreaper of what its tests start: a process whose parent
    died is re-parented here, not to init, so it still counts as a test's leftover."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0, os.strerror(ctypes.get_errno())


def _processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process."""
    found: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found[int(entry.name)] = (parent, " ".join(a.decode(errors="replace") for a in argv))
    return found


def _watched() -> dict[int, str]:
    """pid → command line of this pytest's descendants whose program is watched (other
    work on the machine is none of a test's business)."""
    procs = _processes()
    ours: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, (parent, _) in procs.items() if parent in frontier} - ours
        ours |= frontier
    found = {}
    for pid in ours:
        argv = procs[pid][1].split(" ")
        name = os.path.basename(argv[0])
        if name.startswith(WATCHED) or (name.startswith("python") and "harness" in argv[1:3]):
            found[pid] = procs[pid][1][:200]
    return found


def _mounts() -> set[str]:
    return set(Path("/proc/self/mounts").read_text().splitlines())


@pytest.fixture(autouse=True)
def _nothing_outlives_a_test() -> Iterator[None]:
    """No QEMU, compiler, make, test_progs or harness process and no mount a test started
    may outlive it (the fault matrix's promise: nothing left behind)."""
    before, mounts = set(_watched()), _mounts()
    yield
    deadline = time.monotonic() + LINGER
    while (left := {p: c for p, c in _watched().items() if p not in before}) and (
            time.monotonic() < deadline):
        time.sleep(0.2)
    for pid in left:  # do not let them poison the next test
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    new_mounts = _mounts() - mounts
    assert not left, f"processes outlived the test: {sorted(left.values())}"
    assert not new_mounts, f"mounts outlived the test: {sorted(new_mounts)}"
