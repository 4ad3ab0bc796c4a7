"""The cache's layout and its locks: the one owner of shared state on disk.

    <root>/trees/<key>          harness-owned git trees (Debian import, clones of user trees)
    <root>/worktrees/<key>      series worktrees (key: "<base key>-series")
    <root>/build/<key>/<part>   build outputs, one directory per set of inputs
    <root>/kbuild/<lineage>/    kernel build workspaces (harness/build/kbuild.py): src,
                                config-<key>, out-<key>; locked as "kbuild-<lineage>"
    <root>/ccache               ccache's store for kernel builds
    <root>/rootfs/<recipe key>  the guest's Debian root filesystems (harness/boot/rootfs.py),
                                locked as "rootfs-<recipe key>" while built
    <root>/locks/<key>.lock     one lock per tree key, held from checkout through build
    <root>/logs/<time>-<pid>    logs of commands that have no run directory

Locks are flock(2) locks, so they end with the process.  Within one process they are
re-entrant (per thread): a series gate holds its worktree's lock while its series side runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.host import proc

_held: dict[tuple[str, str, int], int] = {}
_guard = threading.Lock()


def digest(inputs: Mapping[str, str]) -> str:
    """A short stable hash of named inputs."""
    text = json.dumps(dict(inputs), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Entry:
    kind: str  # one of LAYOUT's kinds
    path: Path
    locks: tuple[str, ...]  # the locks to hold while deleting it (none: ccache, logs)


Locks = Callable[[Path], tuple[str, ...]]
# kind, glob under the root, the locks that cover it.  A tree's repository is shared by
# its series worktree and its kernel source worktree: all three locks.
LAYOUT: tuple[tuple[str, str, Locks], ...] = (
    ("tree", "trees/*", lambda p: (p.name, f"{p.name}-series", f"kbuild-{p.name}")),
    ("series worktree", "worktrees/*", lambda p: (p.name,)),
    ("build", "build/*/*", lambda p: (p.parent.name,)),
    ("kernel source", "kbuild/*/src", lambda p: (f"kbuild-{p.parent.name}",)),
    ("kernel config", "kbuild/*/config-*", lambda p: (f"kbuild-{p.parent.name}",)),
    ("kernel build", "kbuild/*/out-*", lambda p: (f"kbuild-{p.parent.name}",)),
    ("rootfs", "rootfs/*", lambda p: (f"rootfs-{p.name}",)),
    ("guest build disk", "guest/*", lambda p: (f"guest-{p.name}",)),  # --build-in guest
    ("image work", "image/*", lambda p: (f"image-{p.name}",)),  # the hermetic image's build
    ("ccache", "ccache", lambda p: ()),  # ccache copes with its store going away
    ("logs", "logs", lambda p: ()),
)
KINDS = tuple(kind for kind, _, _ in LAYOUT)


@dataclass(frozen=True)
class Cache:
    root: Path

    def tree(self, key: str) -> Path:
        return self.root / "trees" / key

    def worktree(self, key: str) -> Path:
        return self.root / "worktrees" / key

    def build(self, key: str, part: str, inputs: Mapping[str, str] | None = None) -> Path:
        """The build directory of one part of one tree, named by a hash of its inputs.

        The inputs are written beside the outputs (`inputs.json`) for whoever wonders
        which kernel, compiler or headers a directory was built for.
        """
        name = f"{part}-{digest(inputs)}" if inputs else part
        path = self.root / "build" / key / name
        if inputs:
            path.mkdir(parents=True, exist_ok=True)
            record = path / "inputs.json"
            text = json.dumps(dict(inputs), indent=2, sort_keys=True) + "\n"
            if not record.is_file() or record.read_text() != text:
                record.write_text(text)
        return path

    def logs(self) -> Path:
        """A fresh log directory for a command that has no run directory."""
        path = self.root / "logs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def lock(self, key: str, waiting: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the exclusive lock of one tree key (re-entrant within this thread).

        `waiting` hears once when another process holds it and this one has to wait.
        """
        token = (str(self.root.resolve()), key, threading.get_ident())
        with _guard:
            nested = token in _held
            if nested:
                _held[token] += 1
        fd = None if nested else self._acquire(key, waiting)
        if fd is not None:
            with _guard:
                _held[token] = 1
        try:
            yield
        finally:
            with _guard:
                _held[token] -= 1
                if _held[token] == 0:
                    del _held[token]
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def _acquire(self, key: str, waiting: Callable[[str], None] | None) -> int:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        path = locks / f"{key}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting(f"waiting for {path}: another harness run holds {key}")
            fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @contextlib.contextmanager
    def try_lock(self, key: str) -> Iterator[bool]:
        """The lock of `key` if nobody holds it (True), else nothing (False)."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def entries(self) -> list[Entry]:
        """What the cache holds, one entry per tree, worktree, build and workspace part."""
        found: list[Entry] = []
        for kind, pattern, locks in LAYOUT:
            for path in sorted(self.root.glob(pattern)):
                if path.is_dir():
                    found.append(Entry(kind, path, locks(path)))
        return found

    def forget(self, key: str) -> None:
        """Delete a tree's clone, series worktree, builds and kernel build workspace."""
        for place in (self.tree(key), self.worktree(f"{key}-series"),
                      self.root / "build" / key, self.root / "build" / f"{key}-series",
                      self.root / "kbuild" / key, self.root / "guest" / key):
            shutil.rmtree(place, ignore_errors=True)


def size_kib(path: Path) -> int:
    """Disk use of a directory, in KiB (du)."""
    # du exits 1 when files vanish under a running build, and still prints the total.
    out = proc.capture(["du", "-sk", str(path)], timeout=600, check=False).split()
    return int(out[0]) if out and out[0].isdigit() else 0


@dataclass(frozen=True)
class Pruned:
    entry: Entry
    kib: int
    removed: bool  # False: in use by a running harness (or not deletable), kept


def prune(cache: Cache, kinds: Sequence[str]) -> list[Pruned]:
    """Delete the entries of the given kinds that no running harness holds."""
    done: list[Pruned] = []
    for entry in cache.entries():
        if entry.kind not in kinds:
            continue
        kib = size_kib(entry.path)
        with contextlib.ExitStack() as stack:
            free = all([stack.enter_context(cache.try_lock(k)) for k in entry.locks])
            if free:
                shutil.rmtree(entry.path, ignore_errors=True)
        done.append(Pruned(entry, kib, free and not entry.path.exists()))
    return done
