"""The benchmark installs what its upstream build runs (rsync first) before timing anything.

Pure: a fake "installed" predicate and a fake bootstrap.ensure_packages; apt never runs.
"""

from __future__ import annotations

import os
from types import ModuleType

import pytest
from conftest import load_bench

from harness import bootstrap
from harness.errors import HarnessError
from harness.host import proc


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_bench("bench_build")


def test_prerequisites_include_rsync(bench: ModuleType) -> None:
    by_command = {p.command: p.package for p in bench.PREREQUISITES}
    assert by_command["rsync"] == "rsync"
    packages = set(by_command.values())
    assert not packages & set(bootstrap.PACKAGES), "already installed by harness.bootstrap"


def test_missing_packages_uses_the_predicate(bench: ModuleType) -> None:
    prereqs = bench.PREREQUISITES
    everything = {p.command for p in prereqs}
    assert bench.missing_packages(prereqs, lambda c: c in everything - {"rsync"}) == ["rsync"]
    assert bench.missing_packages(prereqs, lambda c: c in everything) == []
    assert bench.missing_packages(prereqs, lambda c: False) == list(
        dict.fromkeys(p.package for p in prereqs))


def test_two_commands_of_one_package_install_it_once(bench: ModuleType) -> None:
    prereqs = [bench.Prerequisite("diff", "diffutils", "x"),
               bench.Prerequisite("cmp", "diffutils", "y")]
    assert bench.missing_packages(prereqs, lambda c: False) == ["diffutils"]


def test_ensure_installs_only_the_missing(bench: ModuleType,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[list[str]] = []
    present = {"pkg-config", "awk"}

    def fake_install(packages: list[str]) -> list[str]:
        asked.append(list(packages))
        present.add("rsync")
        return list(packages)

    monkeypatch.setattr(bootstrap, "ensure_packages", fake_install)
    bench.ensure_prerequisites(installed=lambda c: c in present)
    assert asked == [["rsync"]]
    bench.ensure_prerequisites(installed=lambda c: c in present)
    assert asked == [["rsync"]], "nothing missing: apt is not asked again"


def test_ensure_fails_clearly(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(packages: list[str]) -> list[str]:
        raise HarnessError(f"missing Debian packages {' '.join(packages)}: run as root")

    monkeypatch.setattr(bootstrap, "ensure_packages", refuse)
    with pytest.raises(bench.BenchError, match=r"cannot install rsync: .*run as root"):
        bench.ensure_prerequisites(installed=lambda c: c != "rsync")


def test_bootstrap_ensure_packages_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(argv: list[str], **_: object) -> str:
        return "deinstall ok config-files"

    def no_apt(*_: object, **__: object) -> None:
        raise AssertionError("apt must not run")

    monkeypatch.setattr(proc, "capture", not_installed)
    monkeypatch.setattr(proc, "run", no_apt)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(HarnessError, match="apt-get install rsync"):
        bootstrap.ensure_packages(["rsync"])


def test_bootstrap_ensure_packages_skips_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    def installed(argv: list[str], **_: object) -> str:
        return "install ok installed"

    def no_apt(*_: object, **__: object) -> None:
        raise AssertionError("apt must not run")

    monkeypatch.setattr(proc, "capture", installed)
    monkeypatch.setattr(proc, "run", no_apt)
    assert bootstrap.ensure_packages(["rsync", "make"]) == []


def test_bootstrap_takes_the_unsigned_image_while_the_signed_one_is_missing() -> None:
    image = "linux-image-6.12.118+deb12-cloud-amd64"
    only_unsigned = {f"{image}-unsigned"}
    both = {image, f"{image}-unsigned"}
    assert bootstrap.image_choice(image, only_unsigned.__contains__) == f"{image}-unsigned"
    assert bootstrap.image_choice(image, both.__contains__) == image
    # neither: apt's own error names the signed package
    assert bootstrap.image_choice(image, set().__contains__) == image


def test_bootstrap_reads_apt_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = {"a": "a:\n  Installed: (none)\n  Candidate: 1.0\n",
              "b": "b:\n  Installed: (none)\n  Candidate: (none)\n"}
    monkeypatch.setattr(proc, "capture", lambda argv, **_: policy[argv[-1]])
    assert bootstrap.has_candidate("a") and not bootstrap.has_candidate("b")
