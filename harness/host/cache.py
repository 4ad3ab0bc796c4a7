"""The cache's layout and its locks: the one owner of shared state on disk.

    <root>/trees/<key>          harness-owned git trees (Debian import, clones of user trees)
    <root>/worktrees/<key>      series worktrees (key: "<base key>-series")
    <root>/build/<key>/<part>   build outputs, one directory per set of inputs
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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_held: dict[tuple[str, str, int], int] = {}
_guard = threading.Lock()


def digest(inputs: Mapping[str, str]) -> str:
    """A short stable hash of named inputs."""
    text = json.dumps(dict(inputs), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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

    def forget(self, key: str) -> None:
        """Delete a tree's clone, series worktree and builds."""
        for place in (self.tree(key), self.worktree(f"{key}-series"),
                      self.root / "build" / key, self.root / "build" / f"{key}-series"):
            shutil.rmtree(place, ignore_errors=True)
