"""Shared fixtures: captured logs, and the real default tree for integration tests."""

from __future__ import annotations

import os
from pathlib import Path

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
    from harness import tree  # noqa: PLC0415
    from harness.cache import Cache  # noqa: PLC0415

    return tree.default_tree(Cache(cache), tmp_path_factory.mktemp("import-logs")).path
