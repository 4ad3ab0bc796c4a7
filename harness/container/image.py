"""Building the hermetic image from its recipe (recipe.py), on the host (issue 14).

The image's root filesystem is assembled on the host, never pulled:

1. the guest build's root filesystem (`runtime` and `toolchain`), by the guest root
   filesystem's own builder (rootfs.ensure: debootstrap, cached under
   cache/rootfs/<key> and shared with builds inside the guest), copied to a work tree;
2. the recipe's `image` layer and the kernel layer (Debian's linux-source-6.12 with the
   cloud image and headers of the same version), installed by apt inside the work tree
   with the host's apt sources (the kernel comes from bookworm-security, which one
   debootstrap suite cannot reach); a package apt cannot find is a BuildError naming it;
3. the harness: its sources under /opt/harness/src, a venv with its dependencies
   installed from wheels downloaded on the host (`pip install --no-index` in the tree),
   and /usr/local/bin/harness;
4. the guest's runtime root filesystem, as the cache holds it, under /opt/harness/rootfs
   (a run in the container boots it without building anything);
5. the exact package versions (/opt/harness/packages.txt), then a tarball imported through
   the engine (engine.import_tar) under the recipe's tag.

Steps 2 and 3 run commands inside the work tree (chroot) with /proc, /sys and /dev
mounted; they are unmounted however the step ends.  The host's network is used while
building; a container never has one.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import bootstrap
from harness.boot import rootfs
from harness.container import engine, recipe
from harness.errors import BuildError, ProcError, ToolchainError
from harness.host import proc
from harness.host.cache import Cache

if TYPE_CHECKING:
    from docker import DockerClient

SRC = "/opt/harness/src"
VENV = "/opt/harness/venv"
ROOTFS_STORE = "/opt/harness/rootfs"
PACKAGES = "/opt/harness/packages.txt"
WHEELS = "/tmp/harness-wheels"
PSEUDO = ("proc", "sys", "dev")
APT_ENV = "DEBIAN_FRONTEND=noninteractive"
STEP_TIMEOUT = 3600.0
APT_DIRS = ("apt/sources.list.d", "apt/keyrings", "apt/trusted.gpg.d")
RunArgv = Callable[[list[str]], None]  # runs one argv (proc.run with the build log)
LAUNCHER = f"""#!{VENV}/bin/python
import sys
sys.path.insert(0, "{SRC}")
from harness.cli import main_entry
main_entry()
"""


def chroot(tree: Path, *argv: str) -> list[str]:
    return ["chroot", str(tree), "/usr/bin/env", APT_ENV, *argv]


def apt_argv(tree: Path, rec: recipe.ImageRecipe) -> list[list[str]]:
    """apt inside the tree: the image layer and the pinned kernel packages, then its
    downloads and lists dropped."""
    return [chroot(tree, "apt-get", "update", "-q"),
            chroot(tree, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                   *rec.packages, *rec.kernel),
            chroot(tree, "apt-get", "clean"),
            ["find", f"{tree}/var/lib/apt/lists", "-type", "f", "-delete"]]


# apt-get's words for a package, or a pinned version of one, it has not got.
UNKNOWN_PACKAGE_RES = (re.compile(r"^E: Unable to locate package (\S+)", re.M),
                       re.compile(r"^E: Version '([^']+)' for '([^']+)' was not found", re.M))


def unknown_packages(output: str) -> list[str]:
    """The packages (or "package=version") apt-get said it cannot find, in its order."""
    missing = [m[1] for m in UNKNOWN_PACKAGE_RES[0].finditer(output)]
    return missing + [f"{m[2]}={m[1]}" for m in UNKNOWN_PACKAGE_RES[1].finditer(output)]


def apt_install(tree: Path, rec: recipe.ImageRecipe, run: RunArgv) -> None:
    """apt_argv's steps; a package Debian has not got is a BuildError that names it."""
    for argv in apt_argv(tree, rec):
        try:
            run(argv)
        except ProcError as exc:
            missing = unknown_packages(exc.output)
            if not missing:
                raise
            raise BuildError(f"the image's recipe names packages Debian "
                             f"{rec.base.suite} does not have: {' '.join(missing)}; fix the "
                             f"`image` layer in harness/boot/rootfs.py (or the kernel "
                             f"layer's versions)", exc.log) from exc


def python_argv(tree: Path, rec: recipe.ImageRecipe, pip: Path) -> list[list[str]]:
    """Wheels downloaded on the host into the tree, then installed there offline."""
    return [[str(pip), "download", "-q", "--only-binary", ":all:", "--no-deps",
             "--dest", f"{tree}{WHEELS}", *rec.python],
            chroot(tree, "python3", "-m", "venv", VENV),
            chroot(tree, f"{VENV}/bin/pip", "install", "-q", "--no-index", "--find-links",
                   WHEELS, *rec.python)]


def image_changes(rec: recipe.ImageRecipe) -> list[str]:
    """What `docker import` sets on the image (Dockerfile syntax)."""
    return ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            f"ENV HARNESS_ROOTFS_STORE={ROOTFS_STORE}",
            f'LABEL org.harness.recipe="{rec.key()}"',
            'CMD ["harness", "--help"]']


def copy_project(root: Path, tree: Path) -> None:
    """The project's files the recipe hashed, under SRC in the tree."""
    dest = tree / SRC.lstrip("/")
    for rel in recipe.project_files(root):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, dest / rel)
    launcher = tree / "usr/local/bin/harness"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(LAUNCHER)
    launcher.chmod(0o755)


@dataclass(frozen=True)
class Pseudo:
    """The pseudo file systems a chroot needs, as mount and umount argv."""

    tree: Path

    def mounts(self) -> list[list[str]]:
        return [["mount", "--bind", f"/{p}", str(self.tree / p)] for p in PSEUDO]

    def umounts(self) -> list[list[str]]:
        return [["umount", "-l", str(self.tree / p)] for p in reversed(PSEUDO)]


@contextlib.contextmanager
def mounted(pseudo: Pseudo, run: RunArgv) -> Iterator[None]:
    """/proc, /sys and /dev inside the tree for the block; every one that was mounted is
    unmounted however the block ends, each tried even when another's unmount fails."""
    done: list[list[str]] = []
    try:
        for argv, undo in zip(pseudo.mounts(), reversed(pseudo.umounts()), strict=True):
            run(argv)
            done.append(undo)
        yield
    finally:
        failed: list[BaseException] = []
        for undo in reversed(done):
            try:
                run(undo)
            except Exception as exc:  # the others are still unmounted
                failed.append(exc)
        if failed:
            raise failed[0]


def remove_tree(tree: Path) -> None:
    """Delete a work tree, never through a pseudo file system still mounted in it (the
    host's /dev, /sys, /proc): then it is left, and the error says so."""
    live = [str(tree / p) for p in PSEUDO if os.path.ismount(tree / p)]
    if live:
        raise BuildError(f"{', '.join(live)} still mounted: the image's work tree {tree} "
                         f"is left as it is; umount them, then delete it")
    shutil.rmtree(tree, ignore_errors=True)


DEPENDENCIES = ("pyelftools", "unidiff", "kconfiglib")  # pyproject's, for the image's venv


def resolve(root: Path) -> recipe.ImageRecipe:
    """The recipe as this host resolves it today: apt's mirror, the newest
    linux-source-6.12 apt offers with its image and headers, the host venv's versions of
    the harness's dependencies, the project's files."""
    version = candidate(bootstrap.SOURCE)
    image, headers = bootstrap.kernel_packages(version)
    image = bootstrap.image_choice(image, bootstrap.has_candidate)
    python = [f"{d}=={importlib.metadata.version(d)}" for d in DEPENDENCIES]
    return recipe.make(rootfs.host_mirror(), recipe.kernel_layer(version, image, headers),
                       python, recipe.project_digest(root))


def candidate(package: str) -> str:
    """The version apt would install of `package` (ToolchainError when none)."""
    found = bootstrap.candidate(package)
    if found is None:
        raise ToolchainError(f"apt has no {package} to install: the image's kernel layer is "
                             f"Debian's {package}; run apt-get update")
    return found


def assemble(rec: recipe.ImageRecipe, *, root: Path, base: Path, store: list[Path],
             work: Path, pip: Path, run: RunArgv) -> Path:
    """The image's root filesystem in work/tree, from the base layers' tree (`base`, as
    rootfs.ensure left it, never written), the image and kernel layers, the harness and
    the guest root filesystems in `store`; its package list written in it.  `run` runs
    each argv."""
    tree = work / "tree"
    remove_tree(tree)
    run(["cp", "-a", "--reflink=auto", str(base), str(tree)])
    host_apt(tree)
    with mounted(Pseudo(tree), run):
        apt_install(tree, rec, run)
        for argv in python_argv(tree, rec, pip):
            run(argv)
    shutil.rmtree(tree / WHEELS.lstrip("/"), ignore_errors=True)
    copy_project(root, tree)
    (tree / ROOTFS_STORE.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for entry in store:
        run(["cp", "-a", "--reflink=auto", str(entry),
             str(tree / ROOTFS_STORE.lstrip("/") / entry.name)])
    versions = proc.capture(["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W",
                             "-f", "${Package}\t${Version}\n"])
    (tree / PACKAGES.lstrip("/")).write_text(versions)
    return tree


def host_apt(tree: Path, etc: Path = Path("/etc")) -> None:
    """The host's apt sources (the kernel layer is in bookworm-security, beside the
    mirror debootstrap used) with the keys they name, and name resolution, for apt
    inside the tree."""
    listed = [etc / "apt/sources.list", *(p for d in APT_DIRS
                                          for p in sorted((etc / d).glob("*")))]
    for rel in (str(p.relative_to(etc)) for p in listed):
        if (etc / rel).is_file():
            (tree / "etc" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(etc / rel, tree / "etc" / rel)
    resolv = tree / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)  # a link to systemd-resolved's would point nowhere
    shutil.copyfile(etc / "resolv.conf", resolv)


def tarball(tree: Path, dest: Path, run: RunArgv) -> Path:
    """The tree as one uncompressed tarball (numeric owners, as root had them)."""
    run(["tar", "--numeric-owner", "--xattrs", "-C", str(tree), "-cf", str(dest), "."])
    return dest


@dataclass(frozen=True)
class Built:
    tag: str
    id: str
    reused: bool
    seconds: float


def ensure(client: DockerClient, rec: recipe.ImageRecipe, *, cache: Cache, root: Path,
           log_dir: Path, progress: Callable[[str], None] | None = None) -> Built:
    """The recipe's image: the engine's when it has the tag, else built (under the
    recipe's lock; the work tree and tarball are deleted however the build ends)."""
    start = time.monotonic()
    found = engine.image_id(client, rec.tag)
    if found is not None:
        return Built(rec.tag, found, reused=True, seconds=0.0)
    with cache.lock(f"image-{rec.key()}", progress):
        found = engine.image_id(client, rec.tag)
        if found is not None:  # another harness built it while this one waited
            return Built(rec.tag, found, reused=True, seconds=0.0)
        found = _build(client, rec, cache=cache, root=root, log_dir=log_dir,
                       progress=progress)
    return Built(rec.tag, found, reused=False, seconds=round(time.monotonic() - start, 1))


def _build(client: DockerClient, rec: recipe.ImageRecipe, *, cache: Cache, root: Path,
           log_dir: Path, progress: Callable[[str], None] | None) -> str:
    base = rootfs.ensure(rec.base, cache, log_dir, progress)
    guest = rootfs.ensure(rootfs.recipe(("runtime",), rec.base.mirror), cache, log_dir,
                          progress)
    work = cache.root / "image" / rec.key()
    work.mkdir(parents=True, exist_ok=True)
    steps = iter(range(1, 1000))

    def run(argv: list[str]) -> None:
        proc.run(argv, log=log_dir / f"build-image-{next(steps):02d}.log", timeout=STEP_TIMEOUT)

    try:
        tree = assemble(rec, root=root, base=base.tree, store=[guest.root], work=work,
                        pip=Path(sys.executable).with_name("pip"), run=run)
        shutil.copyfile(tree / PACKAGES.lstrip("/"), work / "packages.txt")
        tar = tarball(tree, work / "rootfs.tar", run)
        return engine.import_tar(client, tar, rec.tag, image_changes(rec))
    finally:
        (work / "rootfs.tar").unlink(missing_ok=True)
        remove_tree(work / "tree")


def packages_in(client: DockerClient, tag: str) -> dict[str, str]:
    """The exact package versions inside the image, read from it."""
    return rootfs.parse_packages(engine.output(client, tag, ["cat", PACKAGES]))
