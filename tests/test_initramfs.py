"""The newc writer, checked by the real cpio tool, and the ldd parser."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

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


def test_init_template_filled() -> None:
    template = (initramfs.VM_DIR / "init.sh").read_text()
    init = initramfs.render_init(("a", "b"), template)
    assert "./test_progs -t a,b " in init and "@TESTS@" not in init
    assert "HARNESS-EXIT" in init and "/dev/ttyS3" in init
