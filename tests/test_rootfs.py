"""The guest's root filesystem recipe: layers, keys, the mirror, the modules stage 1 loads."""

from __future__ import annotations

import lzma
from pathlib import Path

import pytest
from fakes import FakeProcs

from harness.boot import rootfs
from harness.errors import BuildError, ConfigError
from harness.host import proc
from harness.host.cache import Cache

DEB822 = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
"""


def test_mirror_from_apt_sources() -> None:
    assert rootfs.mirror(DEB822) == "http://deb.debian.org/debian"
    one_line = "deb [arch=amd64] http://mirror.example/debian bookworm main\n"
    assert rootfs.mirror(one_line) == "http://mirror.example/debian"
    assert rootfs.mirror("deb http://x/debian trixie main\n") is None


def test_layers_extend_the_runtime_and_name_the_key() -> None:
    runtime = rootfs.recipe(("runtime",), "http://m")
    toolchain = rootfs.recipe(("toolchain",), "http://m")
    assert [x.name for x in toolchain.layers] == ["runtime", "toolchain"]
    assert set(runtime.packages) < set(toolchain.packages)
    assert "iproute2" in runtime.packages and "clang-19" in toolchain.packages
    assert runtime.key().startswith("runtime-") and toolchain.key().startswith(
        "runtime+toolchain-")
    assert runtime.key() == rootfs.recipe(("runtime",), "http://m").key()
    assert runtime.key() != rootfs.recipe(("runtime",), "http://other").key()


MODULES_DEP = """\
kernel/fs/squashfs/squashfs.ko.xz:
kernel/fs/overlayfs/overlay.ko.xz:
kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz
kernel/drivers/block/virtio_blk.ko.xz:
kernel/lib/libcrc32c.ko.xz:
"""


def test_load_order_puts_dependencies_first() -> None:
    deps = rootfs.parse_modules_dep(MODULES_DEP)
    assert rootfs.load_order(["erofs", "squashfs"], deps) == [
        "kernel/lib/libcrc32c.ko.xz", "kernel/fs/erofs/erofs.ko.xz",
        "kernel/fs/squashfs/squashfs.ko.xz"]


def test_boot_modules_from_an_installed_kernel(tmp_path: Path) -> None:
    (tmp_path / "modules.dep").write_text(MODULES_DEP)
    for path in ("kernel/fs/squashfs/squashfs.ko.xz", "kernel/fs/overlayfs/overlay.ko.xz",
                 "kernel/drivers/block/virtio_blk.ko.xz"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(lzma.compress(b"\x7fELF " + path.encode()))
    config = {"CONFIG_VIRTIO_BLK": "m", "CONFIG_SQUASHFS": "m", "CONFIG_OVERLAY_FS": "m"}
    found = rootfs.boot_modules(config, tmp_path)
    assert [name for name, _ in found] == ["virtio_blk.ko", "squashfs.ko", "overlay.ko"]
    assert all(data.startswith(b"\x7fELF") for _, data in found)
    built_in = dict.fromkeys(config, "y")
    assert rootfs.boot_modules(built_in, None) == ()


def test_boot_modules_missing_options_or_modules() -> None:
    with pytest.raises(ConfigError, match="lacks CONFIG_OVERLAY_FS"):
        rootfs.boot_modules({"CONFIG_VIRTIO_BLK": "y", "CONFIG_SQUASHFS": "y"}, None)
    with pytest.raises(ConfigError, match=r"no modules\.dep"):
        rootfs.boot_modules({"CONFIG_VIRTIO_BLK": "m", "CONFIG_SQUASHFS": "y",
                             "CONFIG_OVERLAY_FS": "y"}, None)
    # a build inside the guest also needs its ext4 build disk and its log port
    boots = dict.fromkeys(rootfs.BOOT.options, "y")
    assert rootfs.boot_modules(boots, None) == ()
    with pytest.raises(ConfigError, match=r"lacks CONFIG_EXT4_FS, CONFIG_VIRTIO_CONSOLE, "
                       r"which a build inside the guest needs; .* pass --build-in host"):
        rootfs.boot_modules(boots, None, rootfs.GUEST_BUILD)


def test_packages_file() -> None:
    assert rootfs.parse_packages("iproute2\t6.1.0-3\nkmod\t30+20221128-1\n") == {
        "iproute2": "6.1.0-3", "kmod": "30+20221128-1"}


def test_a_read_only_store_is_used_before_the_cache(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The hermetic image carries built root filesystems; the cache is not asked then."""
    rec = rootfs.recipe(("runtime",), "http://deb.debian.org/debian")
    cache = Cache(tmp_path / "cache")
    assert rootfs.at(cache, rec).root == tmp_path / "cache/rootfs" / rec.key()
    stored = tmp_path / "store" / rec.key()
    stored.mkdir(parents=True)
    monkeypatch.setenv(rootfs.STORE_ENV, str(tmp_path / "store"))
    assert rootfs.at(cache, rec).root.parent == tmp_path / "cache/rootfs"  # not complete
    (stored / "rootfs.squashfs").write_bytes(b"hsqs")
    (stored / "packages.txt").write_text("iproute2\t6.1.0-3\n")
    found = rootfs.ensure(rec, cache, tmp_path)
    assert found.root == stored and found.packages() == {"iproute2": "6.1.0-3"}
    assert not (tmp_path / "cache/rootfs").exists()  # nothing built


def test_a_package_debian_does_not_have_is_a_build_error_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """debootstrap's own words (captured from a real run on bookworm) become exit 6."""
    monkeypatch.setattr("shutil.which", lambda tool: f"/usr/sbin/{tool}")
    said = ("I: Checking component main on http://deb.debian.org/debian...\n"
            "E: Couldn't find these debs: harness-no-such-package\n")
    rec = rootfs.recipe(("runtime",), "http://deb.debian.org/debian")
    cache = Cache(tmp_path / "cache")
    with proc.using(FakeProcs().on("debootstrap", rc=1, output=said)), \
            pytest.raises(BuildError, match=r"\(runtime\) names packages Debian bookworm does "
                          r"not have: harness-no-such-package; fix the recipe") as caught:
        rootfs.ensure(rec, cache, tmp_path)
    assert caught.value.log == tmp_path / "build-rootfs.log"
    assert not (tmp_path / "cache/rootfs").exists() or not any(
        (tmp_path / "cache/rootfs").iterdir())  # no half-built entry left
