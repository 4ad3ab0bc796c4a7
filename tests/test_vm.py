"""QEMU argv construction, accelerator choice, and reading the guest's channels."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

import pytest
from conftest import data

from harness.boot.vm import (
    Accel,
    Console,
    GuestBuild,
    choose_accel,
    qemu_argv,
    read_status,
)
from harness.config import VmSpec
from harness.errors import UsageError


class Paths(TypedDict):
    kernel: Path
    initrd: Path
    run_dir: Path


PATHS = Paths(kernel=Path("/boot/vmlinuz-x"), initrd=Path("/r/initramfs.cpio.gz"),
              run_dir=Path("/r"))


def test_tcg_argv() -> None:
    argv = qemu_argv("qemu-system-x86_64", VmSpec(), Accel("tcg", "default"), **PATHS)
    assert argv == [
        "qemu-system-x86_64", "-accel", "tcg,thread=single", "-m", "2G", "-smp", "2",
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", "/boot/vmlinuz-x", "-initrd", "/r/initramfs.cpio.gz",
        "-append", "console=ttyS0 panic=-1 oops=panic quiet rdinit=/init",
        "-serial", "stdio",
        "-serial", "file:/r/test_progs.log", "-serial", "file:/r/dmesg.log",
        "-serial", "file:/r/status",
    ]


def test_kvm_argv_and_extra_kernel_args() -> None:
    spec = VmSpec(memory="4G", cpus=4, kernel_args=("harness.kill_test_progs=1",))
    argv = qemu_argv("qemu", spec, Accel("kvm", "requested"), **PATHS)
    assert argv[1:5] == ["-accel", "kvm", "-cpu", "host"]
    assert argv[argv.index("-m") + 1] == "4G" and argv[argv.index("-smp") + 1] == "4"
    assert argv[argv.index("-append") + 1].endswith("rdinit=/init harness.kill_test_progs=1")


def test_env_tcg_overrides_kvm_request() -> None:
    accel = choose_accel("kvm", {"HARNESS_ACCEL": "tcg"}, kvm_present=True)
    assert accel.name == "tcg" and "overrides --accel kvm" in accel.note


def test_default_is_tcg_even_with_kvm_present() -> None:
    assert choose_accel(None, {}, kvm_present=True).name == "tcg"


def test_kvm_only_when_asked_and_present() -> None:
    assert choose_accel("kvm", {}, kvm_present=True).name == "kvm"
    with pytest.raises(UsageError, match="/dev/kvm"):
        choose_accel("kvm", {}, kvm_present=False)


def test_bad_env_accel() -> None:
    with pytest.raises(UsageError, match="HARNESS_ACCEL=xen"):
        choose_accel(None, {"HARNESS_ACCEL": "xen"}, kvm_present=False)


def test_status_channel() -> None:
    assert read_status(data("status-pass")) == 0
    assert read_status("HARNESS-EXIT 139\n") == 139
    assert read_status("") is None


def test_console_boot_marker_and_panic() -> None:
    ok = Console()
    for line in data("console-pass.log").splitlines():
        ok.feed(line)
    assert ok.booted_at is not None and ok.panic is None
    bad = Console()
    for line in data("console-panic-no-init.log").splitlines():
        bad.feed(line)
    assert bad.booted_at is None
    assert bad.panic is not None and "Unable to mount root fs" in bad.panic


def test_guest_build_adds_the_share_the_build_disk_and_the_stream_port() -> None:
    build = GuestBuild(share=Path("/c/share.sqfs"), disk=Path("/c/build.ext4"),
                       stream=Path("/r/guest-build.log"))
    argv = qemu_argv("qemu", VmSpec(), Accel("tcg", "default"), **PATHS,
                     disk=Path("/c/rootfs.squashfs"), build=build)
    drives = [argv[i + 1] for i, a in enumerate(argv) if a == "-drive"]
    assert drives == ["file=/c/rootfs.squashfs,if=virtio,format=raw,readonly=on",
                      "file=/c/share.sqfs,if=virtio,format=raw,readonly=on",
                      "file=/c/build.ext4,if=virtio,format=raw"]  # vda, vdb, vdc
    assert "file,id=harness-build,path=/r/guest-build.log" in argv
    assert "virtserialport,chardev=harness-build,name=harness.build" in argv
    with pytest.raises(UsageError, match="--rootfs initramfs"):
        qemu_argv("qemu", VmSpec(), Accel("tcg", "default"), **PATHS, build=build)
