"""The hermetic image's recipe and tag (pure)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.boot import rootfs
from harness.container import recipe

ROOT = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
KERNEL = recipe.kernel_layer("6.12.118-1~deb12u1", "linux-image-6.12.118+deb12-cloud-amd64",
                             "linux-headers-6.12.118+deb12-cloud-amd64")


def _make(mirror: str = MIRROR, kernel: tuple[str, ...] = KERNEL,
          python: tuple[str, ...] = ("unidiff==0.7.5", "pyelftools==0.32"),
          project: str = "p1") -> recipe.ImageRecipe:
    return recipe.make(mirror, kernel, python, project)


def test_the_image_extends_the_guests_recipe() -> None:
    r = _make()
    # one recipe: the image starts from the root filesystem a build in the guest runs on
    assert r.base == rootfs.recipe(("runtime", "toolchain"), MIRROR)
    assert {"clang-19", "iproute2"} <= set(r.base.packages)
    assert r.packages == rootfs.LAYERS["image"].packages
    assert {"qemu-system-x86", "busybox-static", "git"} <= set(r.packages)
    assert r.kernel == ("linux-source-6.12=6.12.118-1~deb12u1",
                        "linux-image-6.12.118+deb12-cloud-amd64=6.12.118-1~deb12u1",
                        "linux-headers-6.12.118+deb12-cloud-amd64=6.12.118-1~deb12u1")
    assert r.python == ("pyelftools==0.32", "unidiff==0.7.5")  # sorted


def test_the_tag_names_every_input() -> None:
    tag = _make().tag
    assert tag.startswith("harness-env:") and len(tag.split(":")[1]) == 12
    assert _make().tag == tag  # the same recipe: the same image
    changed = [_make(mirror="http://mirror.example/debian"), _make(project="p2"),
               _make(python=("unidiff==0.7.4", "pyelftools==0.32")),
               _make(kernel=KERNEL[:2]),
               dataclasses.replace(_make(), packages=("qemu-system-x86", "git"))]
    assert len({tag, *(r.tag for r in changed)}) == 6


def test_project_digest_follows_the_sources_only(tmp_path: Path) -> None:
    (tmp_path / "harness/__pycache__").mkdir(parents=True)
    (tmp_path / "harness/cli.py").write_text("x = 1\n")
    (tmp_path / "harness/__pycache__/cli.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_x.py").write_text("")
    assert recipe.project_files(tmp_path) == [Path("harness/cli.py"), Path("pyproject.toml")]
    before = recipe.project_digest(tmp_path)
    (tmp_path / "tests/test_x.py").write_text("changed\n")
    (tmp_path / "harness/__pycache__/cli.cpython-311.pyc").write_bytes(b"\1")
    assert recipe.project_digest(tmp_path) == before
    (tmp_path / "harness/cli.py").write_text("x = 2\n")
    assert recipe.project_digest(tmp_path) != before
    assert "vm/init.sh" in {str(p) for p in recipe.project_files(ROOT)}


def test_the_report_names_the_image_it_ran_in(tmp_path: Path) -> None:
    packages = tmp_path / "packages.txt"
    packages.write_text("clang-19\t1:19.1.7-3~deb12u1\nqemu-system-x86\t1:7.2+dfsg-7\n")
    assert recipe.current({}, packages) is None  # not in the image
    assert recipe.current({recipe.IMAGE_ENV: "harness-env:abc sha256:12"}, packages) == {
        "tag": "harness-env:abc", "id": "sha256:12",
        "packages": {"clang-19": "1:19.1.7-3~deb12u1", "qemu-system-x86": "1:7.2+dfsg-7"}}
