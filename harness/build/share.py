"""What a build inside the guest reads from the host, as one read-only image.

A guest build (issue 13, `--build-in guest`) compiles bpftool, libbpf, the test modules
and test_progs inside the VM, from the tree and against the kernel's build directory, at
the same absolute paths as on the host: object dependency files and the kbuild
directory's own Makefile name them.  Neither 9p (a module of Debian's generic kernel,
absent from the cloud kernel) nor virtio-fs (no virtiofsd in bookworm main) can share
them, so the harness gathers them into a staging directory of hard links laid out by
absolute path and squashes that into an image the guest stacks under its root.

What is shared:
- from the tree: what the tools and selftests builds read (inputs.TOOLS, inputs.SELFTESTS)
  and what an external module build reads from a kernel source tree (its Makefiles,
  scripts/, include/, arch/x86/);
- the kernel's build directory without objects, and what it reaches outside itself:
  the directories its Makefile includes (Debian's -common headers, a kbuild output
  directory's source tree, of which only TREE_PATHS) and the targets of its symlinks
  (Debian's linux-kbuild scripts and tools).

mksquashfs 4.5.1's `-cpiostyle` (a file list on stdin) would avoid the staging
directory, but it hangs on bookworm (seen here: no output, at 0%, with one or two
processors), hence the hard links.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError
from harness.host import proc

# What a guest build reads from the tree, beside inputs.TOOLS and inputs.SELFTESTS
# (tools/ holds both): the kbuild parts of a kernel source tree an external module
# build includes when the kernel was built from this tree.
TREE_PATHS = ("Makefile", "Kbuild", "scripts", "include", "arch/x86", "tools",
              "kernel/bpf")
# Build products a kbuild output directory holds that no external build reads.
SKIPPED_SUFFIXES = (".o", ".a", ".cmd", ".ko", ".mod", ".mod.c", ".order", ".tmp",
                    ".xz", ".gz", ".zst")
SKIPPED_NAMES = frozenset({"vmlinux.o", "vmlinux.a", "bzImage", ".git"})
INCLUDE_RE = re.compile(r"^\s*-?include\s+(/\S+)\s*$", re.M)


def skipped(name: str) -> bool:
    """True for a build product no guest build reads (objects, archives, images)."""
    return name in SKIPPED_NAMES or name.endswith(SKIPPED_SUFFIXES)


def included_dirs(makefile_text: str) -> list[Path]:
    """The directories of the absolute paths a Makefile includes (Debian's headers
    Makefile includes the -common one; a kbuild output directory's, its source tree's)."""
    return [Path(m).parent for m in INCLUDE_RE.findall(makefile_text)]


def _within(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def kernel_roots(headers: Path) -> list[Path]:
    """The kernel's build directory and every directory it reaches outside itself, by
    Makefile includes and symlinks, each once, resolved; of a full source tree (a kbuild
    output directory's), only what an external module build reads from it."""
    roots: list[Path] = []
    seen: list[Path] = []
    pending = [headers.resolve()]
    while pending:
        root = pending.pop(0)
        if _within(root, seen) or not root.is_dir():
            continue
        seen.append(root)
        if is_source_tree(root):
            roots += tree_roots(root)
            continue
        roots.append(root)
        makefile = root / "Makefile"
        if makefile.is_file():
            pending += included_dirs(makefile.read_text(errors="replace"))
        pending += [t for t in _link_targets(root) if not _within(t, seen)]
    return roots


def is_source_tree(root: Path) -> bool:
    """A whole kernel source tree (not a headers package, which has no kernel/)."""
    return (root / "Kbuild").is_file() and (root / "kernel").is_dir()


def _link_targets(root: Path) -> Iterator[Path]:
    """Where the directory symlinks under `root` point (resolved)."""
    for top, dirs, _files in os.walk(root):
        dirs[:] = [d for d in dirs if not skipped(d)]
        for name in list(dirs):
            path = Path(top) / name
            if path.is_symlink():
                yield path.resolve()


def tree_roots(tree: Path) -> list[Path]:
    """The parts of the tree a guest build reads (those the tree has)."""
    return [tree / p for p in TREE_PATHS if (tree / p).exists()]


@dataclass(frozen=True)
class Staged:
    root: Path  # the staging directory: absolute host paths under it
    files: int
    bytes: int


def stage(roots: Iterable[Path], dest: Path) -> Staged:
    """Lay out `roots` under `dest` by absolute path: files hard-linked (copied across
    file systems), symlinks recreated as they are, build products left out."""
    files = size = 0
    for root in roots:
        for src in _walk(root):
            target = dest / str(src).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                continue
            if src.is_symlink():
                target.symlink_to(os.readlink(src))
                continue
            _link_or_copy(src, target)
            files += 1
            size += src.stat().st_size
    return Staged(dest, files, size)


def _walk(root: Path) -> Iterator[Path]:
    if root.is_file() or root.is_symlink():
        yield root
        return
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not skipped(d))
        here = Path(top)
        yield from (here / d for d in dirs if (here / d).is_symlink())
        yield from (here / n for n in sorted(names) if not skipped(n))


def _link_or_copy(src: Path, target: Path) -> None:
    try:
        os.link(src, target)
    except OSError:  # another file system, or hard links not allowed: a copy
        shutil.copy2(src, target)


def squash_argv(staged: Path, image: Path) -> list[str]:
    """mksquashfs for the share image (pure): zlib, which every kernel the harness
    boots reads (the minimal profile has no other squashfs compressor)."""
    return ["mksquashfs", str(staged), str(image), "-noappend", "-quiet", "-no-xattrs",
            "-comp", "gzip"]


def make_image(roots: Iterable[Path], image: Path, log: Path) -> Staged:
    """The share image of `roots` at `image`; the staging directory is removed after."""
    roots = list(roots)
    work = image.with_name(image.name + ".stage")
    shutil.rmtree(work, ignore_errors=True)
    try:
        staged = stage(roots, work)
        if staged.files == 0:
            raise BuildError(f"nothing to share with the guest under "
                             f"{', '.join(map(str, roots))}", log)
        proc.run(squash_argv(work, image), log=log, timeout=1800)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return staged
