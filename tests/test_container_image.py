"""How the hermetic image is assembled: the commands, and the chroot's mounts undone
(pure: argv recorded, nothing run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.container import image, recipe
from harness.errors import BuildError, ProcError

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests/data"
REC = recipe.make("http://deb.debian.org/debian",
                  recipe.kernel_layer("6.12.118-1~deb12u1", "linux-image-X", "linux-headers-X"),
                  ("unidiff==0.7.5",), "p1")


def test_image_and_kernel_layers_are_installed_by_apt_in_the_tree(tmp_path: Path) -> None:
    update, install, clean, lists = image.apt_argv(tmp_path, REC)
    assert update[:2] == ["chroot", str(tmp_path)] and update[-3:] == ["apt-get", "update", "-q"]
    assert install[-3:] == ["linux-source-6.12=6.12.118-1~deb12u1",
                            "linux-image-X=6.12.118-1~deb12u1",
                            "linux-headers-X=6.12.118-1~deb12u1"]
    assert {"qemu-system-x86", "busybox-static", "git"} <= set(install)  # the image layer
    assert "--no-install-recommends" in install and "DEBIAN_FRONTEND=noninteractive" in install
    assert clean[-2:] == ["apt-get", "clean"] and lists[0] == "find"


def test_packages_apt_has_not_got_are_named() -> None:
    said = (DATA / "apt-get-unknown-packages.txt").read_text()
    assert image.unknown_packages(said) == ["harness-no-such-package",
                                            "linux-source-6.12=6.12.0-0"]
    assert image.unknown_packages("E: Sub-process /usr/bin/dpkg returned an error") == []


def test_a_package_apt_has_not_got_is_a_build_error_naming_it(tmp_path: Path) -> None:
    said = (DATA / "apt-get-unknown-packages.txt").read_text()

    def run(argv: list[str]) -> None:
        if "install" in argv:
            raise ProcError(argv, 100, said, tmp_path / "build-image-02.log")

    with pytest.raises(BuildError, match=re.escape(
            "names packages Debian bookworm does not have: harness-no-such-package "
            "linux-source-6.12=6.12.0-0; fix")) as exc:
        image.apt_install(tmp_path, REC, run)
    assert exc.value.log == tmp_path / "build-image-02.log"
    with pytest.raises(ProcError):  # any other failure is apt's own
        image.apt_install(tmp_path, REC, _failing)


def _failing(argv: list[str]) -> None:
    raise ProcError(argv, 100, "E: Could not get lock /var/lib/dpkg/lock-frontend", None)


def test_python_dependencies_come_from_wheels_installed_offline(tmp_path: Path) -> None:
    download, venv, install = image.python_argv(tmp_path, REC, Path("/host/pip"))
    assert download[:2] == ["/host/pip", "download"] and download[-1] == "unidiff==0.7.5"
    assert f"{tmp_path}{image.WHEELS}" in download  # on the host, into the tree
    assert venv[-3:] == ["-m", "venv", image.VENV]
    assert install[:2] == ["chroot", str(tmp_path)] and "--no-index" in install


def _recorder(fail_on: str | None = None) -> tuple[list[list[str]], image.RunArgv]:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> None:
        ran.append(argv)
        if fail_on is not None and argv[-1].endswith(fail_on) and argv[0] == "mount":
            raise RuntimeError(f"mount {fail_on} failed")

    return ran, run


def test_pseudo_file_systems_are_unmounted_when_the_step_fails(tmp_path: Path) -> None:
    ran, run = _recorder()
    with pytest.raises(RuntimeError, match="apt failed"), image.mounted(image.Pseudo(tmp_path),
                                                                       run):
        raise RuntimeError("apt failed")
    assert [a[0] for a in ran] == ["mount"] * 3 + ["umount"] * 3
    assert [a[-1] for a in ran[3:]] == [str(tmp_path / p) for p in ("dev", "sys", "proc")]


def test_a_failed_mount_undoes_only_what_was_mounted(tmp_path: Path) -> None:
    ran, run = _recorder(fail_on="sys")
    with pytest.raises(RuntimeError, match="mount sys"), image.mounted(image.Pseudo(tmp_path),
                                                                      run):
        pass
    assert ran[-1] == ["umount", "-l", str(tmp_path / "proc")] and len(ran) == 3


def test_project_and_launcher_in_the_tree(tmp_path: Path) -> None:
    image.copy_project(ROOT, tmp_path)
    src = tmp_path / image.SRC.lstrip("/")
    assert (src / "harness/cli.py").read_bytes() == (ROOT / "harness/cli.py").read_bytes()
    assert (src / "vm/init.sh").is_file() and not (src / "tests").exists()
    launcher = tmp_path / "usr/local/bin/harness"
    assert launcher.stat().st_mode & 0o111
    assert launcher.read_text().startswith(f"#!{image.VENV}/bin/python\n")


def test_image_settings_name_the_recipe_and_the_rootfs_store() -> None:
    changes = image.image_changes(REC)
    assert f'LABEL org.harness.recipe="{REC.key()}"' in changes
    assert f"ENV HARNESS_ROOTFS_STORE={image.ROOTFS_STORE}" in changes


def test_the_hosts_apt_sources_reach_the_tree(tmp_path: Path) -> None:
    etc, tree = tmp_path / "etc", tmp_path / "tree"
    (etc / "apt/sources.list.d").mkdir(parents=True)
    (etc / "apt/sources.list.d/debian.sources").write_text("Suites: bookworm-security\n")
    (etc / "apt/keyrings").mkdir()
    (etc / "apt/keyrings/extra.gpg").write_bytes(b"key")
    (etc / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/resolv.conf").symlink_to("/run/systemd/resolve/stub-resolv.conf")
    image.host_apt(tree, etc)
    assert (tree / "etc/apt/sources.list.d/debian.sources").read_text() == (
        "Suites: bookworm-security\n")
    assert (tree / "etc/apt/keyrings/extra.gpg").read_bytes() == b"key"
    assert not (tree / "etc/resolv.conf").is_symlink()
    assert (tree / "etc/resolv.conf").read_text() == "nameserver 10.0.0.1\n"


def test_every_unmount_is_tried_and_a_mounted_tree_is_never_deleted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def run(argv: list[str]) -> None:
        ran.append(argv)
        if argv[0] == "umount" and argv[-1].endswith("dev"):
            raise RuntimeError("umount: target is busy")

    with pytest.raises(RuntimeError, match="busy"), image.mounted(image.Pseudo(tmp_path), run):
        pass
    assert [a[-1] for a in ran if a[0] == "umount"] == [
        str(tmp_path / p) for p in ("dev", "sys", "proc")]  # sys and proc still tried
    (tmp_path / "dev").mkdir()
    monkeypatch.setattr("os.path.ismount", lambda p: str(p).endswith("dev"))
    with pytest.raises(BuildError, match=r"dev still mounted: the image's work tree"):
        image.remove_tree(tmp_path)
    assert (tmp_path / "dev").is_dir()  # left as it is
