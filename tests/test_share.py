"""What a guest build reads from the host: the roots, the staging, the real image."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import share
from harness.errors import BuildError


def test_included_dirs_are_the_absolute_includes() -> None:
    text = ("include /usr/src/linux-headers-6.12-common/Makefile\n"
            "-include /src/tree/scripts/Kbuild.include\n"
            "include $(srctree)/Makefile\ninclude relative.mk\n")
    assert share.included_dirs(text) == [Path("/usr/src/linux-headers-6.12-common"),
                                         Path("/src/tree/scripts")]


@pytest.mark.parametrize(("name", "left_out"), [
    ("disasm.o", True), ("libbpf.a", True), (".bpf_testmod.o.cmd", True),
    ("bpf_testmod.ko", True), ("vmlinux.o", True), ("bzImage", True), (".git", True),
    ("vmlinux", False), ("Makefile", False), ("Module.symvers", False), ("gen.c", False),
    (".config", False),
])
def test_build_products_are_left_out(name: str, left_out: bool) -> None:
    assert share.skipped(name) is left_out


def _debian_like(tmp_path: Path) -> Path:
    """A headers layout as Debian ships it: the flavour's directory includes the -common
    one's Makefile and links scripts/ to linux-kbuild."""
    common = tmp_path / "usr/src/headers-common"
    kbuild = tmp_path / "usr/lib/kbuild/scripts"
    flavour = tmp_path / "usr/src/headers-cloud"
    for d in (common / "include/linux", kbuild / "mod", flavour):
        d.mkdir(parents=True)
    (common / "Makefile").write_text("# the kernel's Makefile\n")
    (common / "include/linux/types.h").write_text("/* types */\n")
    (kbuild / "mod/modpost").write_text("ELF\n")
    (flavour / "Makefile").write_text(f"include {common}/Makefile\n")
    (flavour / "vmlinux").write_text("BTF\n")
    (flavour / "stale.o").write_text("object\n")
    (flavour / "scripts").symlink_to(os.path.relpath(kbuild, flavour))
    return flavour


def test_kernel_roots_follow_includes_and_symlinks(tmp_path: Path) -> None:
    flavour = _debian_like(tmp_path)
    roots = share.kernel_roots(flavour)
    assert roots == [flavour, tmp_path / "usr/src/headers-common",
                     tmp_path / "usr/lib/kbuild/scripts"]


def test_a_kbuild_output_directory_shares_part_of_its_source_tree(tmp_path: Path) -> None:
    """A kernel built from a tree: its output directory's Makefile includes the source
    tree's, of which only what an external module build reads is shared."""
    src, out = tmp_path / "src", tmp_path / "out"
    for d in (src / "kernel/bpf", src / "drivers/net", src / "scripts", out):
        d.mkdir(parents=True)
    for f in ("Makefile", "Kbuild"):
        (src / f).write_text("# kbuild\n")
    (out / "Makefile").write_text(f"include {src}/Makefile\n")
    (out / "source").symlink_to(src)
    assert share.kernel_roots(out) == [out, src / "Makefile", src / "Kbuild", src / "scripts",
                                       src / "kernel/bpf"]


def test_stage_lays_out_by_absolute_path_with_links_and_no_objects(tmp_path: Path) -> None:
    flavour = _debian_like(tmp_path / "host")
    staged = share.stage(share.kernel_roots(flavour), tmp_path / "stage")
    inside = tmp_path / "stage" / str(flavour).lstrip("/")
    assert (inside / "vmlinux").read_text() == "BTF\n"
    assert not (inside / "stale.o").exists()
    assert (inside / "scripts").is_symlink()
    assert (inside / "scripts/mod/modpost").read_text() == "ELF\n"  # through the link
    assert os.stat(inside / "vmlinux").st_ino == os.stat(flavour / "vmlinux").st_ino
    assert staged.files == 5  # 2 Makefiles, types.h, modpost, vmlinux


def test_an_empty_share_is_an_error_and_leaves_no_staging(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    image = tmp_path / "share.sqfs"
    with pytest.raises(BuildError, match="nothing to share"):
        share.make_image([tmp_path / "empty"], image, tmp_path / "log")
    assert not image.exists() and not (tmp_path / "share.sqfs.stage").exists()


def _debian_headers() -> Path:
    found = sorted(glob.glob("/usr/src/linux-headers-*-cloud-amd64"))
    if not found:
        pytest.fail("no Debian cloud headers installed: run the README's first command")
    return Path(found[-1])


@pytest.mark.integration
def test_real_share_image_holds_what_the_guest_builds_read(default_tree: Path,
                                                           tmp_path: Path) -> None:
    """The default tree and Debian's headers, squashed for real and listed back."""
    headers = _debian_headers()
    before = subprocess.run(["git", "-C", str(default_tree), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout
    image = tmp_path / "share.sqfs"
    roots = [*share.tree_roots(default_tree), *share.kernel_roots(headers)]
    staged = share.make_image(roots, image, tmp_path / "share.log")
    listing = subprocess.run(["unsquashfs", "-l", "-d", "", str(image)],
                             capture_output=True, text=True, check=True).stdout.splitlines()
    names = set(listing)
    for wanted in (default_tree / "tools/bpf/bpftool/Makefile",
                   default_tree / "tools/testing/selftests/bpf/bpf_testmod/bpf_testmod.c",
                   default_tree / "kernel/bpf/disasm.c", headers / "Module.symvers",
                   headers / "vmlinux", headers.resolve() / "scripts"):
        assert str(wanted) in names, wanted
    assert any(n.endswith("/scripts/mod/modpost") and "kbuild" in n for n in names)
    assert not any(n.endswith(".o") for n in names)
    assert staged.files > 10000 and image.stat().st_size < staged.bytes
    assert not (tmp_path / "share.sqfs.stage").exists()
    after = subprocess.run(["git", "-C", str(default_tree), "status", "--porcelain"],
                           capture_output=True, text=True, check=True).stdout
    assert after == before  # hard links leave the tree as it was
    shutil.rmtree(tmp_path, ignore_errors=True)
