"""The newc writer, checked by the real cpio tool, and the ldd parser."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from conftest import DATA

from harness.boot import initramfs

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd4a1e5000)
\tlibelf.so.1 => /lib/x86_64-linux-gnu/libelf.so.1 (0x00007f6ab2246000)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f6ab2227000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f6ab2332000)
"""


def test_parse_ldd() -> None:
    assert initramfs.parse_ldd(LDD) == [
        "/lib/x86_64-linux-gnu/libelf.so.1", "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/ld-linux-x86-64.so.2"]


def test_parents() -> None:
    entries = initramfs.with_parents(["a/b/c", "a/d"])
    assert [e.path for e in entries] == ["a", "a/b"]


def test_newc_roundtrip_with_cpio(tmp_path: Path) -> None:
    entries = [
        initramfs.directory("bin"),
        initramfs.regular("bin/hello", b"#!/bin/sh\necho hi\n", executable=True),
        initramfs.regular("odd", b"x" * 5),
        initramfs.Entry("bin/sh", stat.S_IFLNK | 0o777, b"hello"),
    ]
    archive = tmp_path / "a.cpio"
    archive.write_bytes(initramfs.newc(entries))
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "-F", str(archive)], cwd=out, check=True)
    assert (out / "bin/hello").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (out / "bin/hello").stat().st_mode & 0o111
    assert (out / "odd").read_bytes() == b"xxxxx"
    assert (out / "bin/sh").is_symlink() and str((out / "bin/sh").readlink()) == "hello"


def test_run_template_filled_with_the_selection_lists(tmp_path: Path) -> None:
    template = (initramfs.VM_DIR / "run.sh").read_text()
    payload = initramfs.Payload(busybox=tmp_path, test_progs=tmp_path, files=(),
                                allow=("*struct_ops*",), deny=("get_stack_raw_tp",), retries=2)
    script = initramfs.render_run(payload, template)
    assert 'args="-a @harness-allow.list -d @harness-deny.list"' in script
    assert 'args="-a @harness-retry.list -d @harness-deny.list"' in script
    assert "retries=2\n" in script
    assert "@" + "ARGS@" not in script and "@RETR" not in script
    assert "HARNESS-EXIT" in script and "/dev/ttyS3" in script
    assert initramfs.test_progs_args((), ()) == []


@pytest.mark.parametrize(("log", "entries"), [
    ("test_progs-subtest-fail.log", ["struct_ops_module/struct_ops_load"]),
    ("test_progs-pass.log", []),
])
def test_guest_lists_what_failed_for_a_retry(log: str, entries: list[str]) -> None:
    """vm/failed.awk, run by the busybox the guest runs it with."""
    done = subprocess.run(["busybox", "awk", "-f", str(initramfs.VM_DIR / "failed.awk"),
                           str(DATA / log)], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == entries


def test_guest_retry_list_keeps_names_whole_and_tests_without_failed_subtests() -> None:
    out = "\n".join(["#1/1 a/x:FAIL", "#1/2 a/y:OK", "#1 a:FAIL", "#2 b:FAIL",
                     "#3/1 c/with space: and colon:FAIL", "#3 c:FAIL", "All error logs:",
                     "#1/1 a/x:FAIL", "#1 a:FAIL", "#2 b:FAIL", ""])
    done = subprocess.run(["busybox", "awk", "-f", str(initramfs.VM_DIR / "failed.awk")],
                          input=out, capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["a/x", "c/with space: and colon", "b"]


def test_payload_with_a_root_filesystem(tmp_path: Path) -> None:
    for name in ("busybox", "test_progs", "x.bpf.o", "config", "libelf.so.1"):
        (tmp_path / name).write_bytes(name.encode())
    payload = initramfs.Payload(
        busybox=tmp_path / "busybox", test_progs=tmp_path / "test_progs",
        files=(("x.bpf.o", tmp_path / "x.bpf.o"),), allow=("*a*",),
        kernel_config=tmp_path / "config", rootfs="runtime-abc",
        boot_modules=(("squashfs.ko", b"ELF"),))
    found = {e.path: e.data for e in initramfs.entries(payload, [str(tmp_path / "libelf.so.1")])
             if e.data or stat.S_ISREG(e.mode)}
    assert found["root/test/harness-allow.list"] == b"*a*\n"
    assert "root/test/harness-deny.list" not in found
    assert found["harness/rootfs"] == b"runtime-abc\n"
    assert found["harness/modules.order"] == b"squashfs.ko\n"
    assert found["harness/kernel.config"] == b"config"
    assert "harness/lib/libelf.so.1" in found
    assert not any(p.endswith("libelf.so.1") and not p.startswith("harness/") for p in found)
