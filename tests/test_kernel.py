"""Matching a tree's version to an installed kernel, and the config check."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.boot import kconfig, kernel
from harness.errors import TreeError


def test_matching_prefers_cloud_flavour() -> None:
    names = ["vmlinuz-6.12.117+deb12-amd64", "vmlinuz-6.12.117+deb12-cloud-amd64",
             "vmlinuz-6.12.1170+deb12-amd64", "vmlinuz-6.1.0-30-amd64"]
    assert kernel.matching_releases("6.12.117", names) == [
        "6.12.117+deb12-cloud-amd64", "6.12.117+deb12-amd64"]


def test_no_match_names_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz-6.1.0-30-amd64").touch()
    with pytest.raises(TreeError, match=r"Linux 6\.13\.0 .*installed: 6\.1\.0-30-amd64.*--kernel"):
        kernel.find_prebuilt("6.13.0", boot=tmp_path, src=tmp_path)


def test_headers_must_exist(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz-6.12.117+deb12-cloud-amd64").touch()
    with pytest.raises(TreeError):
        kernel.find_prebuilt("6.12.117", boot=tmp_path, src=tmp_path)
    headers = tmp_path / "linux-headers-6.12.117+deb12-cloud-amd64"
    headers.mkdir()
    (headers / "vmlinux").touch()
    (headers / "Makefile").touch()
    found = kernel.find_prebuilt("6.12.117", boot=tmp_path, src=tmp_path)
    assert found.release == "6.12.117+deb12-cloud-amd64" and found.vmlinux.is_file()


def test_config_check() -> None:
    wanted, notes = kconfig.merge(kconfig.fragments(["struct_ops"], None))
    assert notes == []
    assert wanted["CONFIG_DEBUG_INFO_BTF_MODULES"].value == "y"
    assert wanted["CONFIG_MODULE_SIG_FORCE"].value == "n"
    have = {n: w.value for n, w in wanted.items()} | {
        "CONFIG_DEBUG_INFO_BTF_MODULES": "n", "CONFIG_MODULE_SIG_FORCE": "y"}
    assert [u.line() for u in kconfig.check(wanted, have)] == [
        "CONFIG_DEBUG_INFO_BTF_MODULES=y (kernel has n; from kernel_configs/struct_ops.config)",
        "CONFIG_MODULE_SIG_FORCE=n (kernel has y; from kernel_configs/struct_ops.config)",
    ]
    assert kconfig.parse("CONFIG_A=y\n# CONFIG_B is not set\n") == {
        "CONFIG_A": "y", "CONFIG_B": "n"}
