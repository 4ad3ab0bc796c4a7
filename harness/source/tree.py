"""The kernel tree a run builds from, always in a directory the harness owns.

Default: Debian's linux-source tarball, unpacked once into a cached git repository with a
single commit labelled with the package version.  `--tree PATH`: a git repository of the
user's, cloned (sharing its objects, read-only) into the cache and checked out at the
requested revision; the user's checkout and repository are never written.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ToolchainError, TreeError
from harness.host import proc, vcs
from harness.host.cache import Cache

SOURCE_PACKAGE = "linux-source-6.12"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
MARKERS = ("Makefile", "kernel/bpf", "tools/testing/selftests/bpf/prog_tests")


@dataclass(frozen=True)
class Tree:
    path: Path  # the directory builds read from (owned by the harness)
    origin: str  # what the user asked for: a package version or a path
    commit: str
    version: str  # "6.12.117"
    key: str  # names this tree's build cache
    warning: str | None = None
    base_key: str | None = None  # a series worktree: the key of the tree it was applied to

    @property
    def lineage(self) -> str:
        """Names the kernel build workspace: a series side builds incrementally on its base."""
        return self.base_key or self.key

    def as_dict(self) -> dict[str, str | None]:
        return {"path": str(self.path), "origin": self.origin, "commit": self.commit,
                "version": self.version, "warning": self.warning}


def parse_version(makefile: str) -> str:
    """'6.12.117' (plus EXTRAVERSION) from the top-level Makefile's text."""
    fields = {}
    for name in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{name}\s*=\s*(\S*)\s*$", makefile, re.M)
        fields[name] = m[1] if m else ""
    if not fields["VERSION"] or not fields["PATCHLEVEL"]:
        raise ValueError("no VERSION/PATCHLEVEL in Makefile")
    sub = fields["SUBLEVEL"] or "0"
    return f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{sub}{fields['EXTRAVERSION']}"


def check_kernel_tree(path: Path) -> str:
    """Return the tree's version, or raise naming what is missing."""
    if not path.is_dir():
        raise TreeError(f"--tree {path}: " + ("not a directory" if path.exists()
                                               else "no such directory"))
    missing = [m for m in MARKERS if not (path / m).exists()]
    if missing:
        raise TreeError(
            f"--tree {path}: not a Linux kernel tree with BPF selftests "
            f"(missing {', '.join(missing)}); pass the top of a kernel checkout"
        )
    try:
        return parse_version((path / "Makefile").read_text(errors="replace"))
    except ValueError as exc:
        raise TreeError(f"--tree {path}: top-level Makefile has no kernel version") from exc


def debian_source_version() -> str:
    """Version of the installed linux-source package, e.g. '6.12.117-1~deb12u1'."""
    try:
        out = proc.capture(["dpkg-query", "-W", "-f=${Version}", SOURCE_PACKAGE])
    except (proc.ProcError, ToolchainError) as exc:
        raise TreeError(
            f"Debian package {SOURCE_PACKAGE} is not installed: run the README's setup "
            f"command, or pass --tree PATH"
        ) from exc
    return out.strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


@dataclass(frozen=True)
class Source:
    """What a run will check out, resolved (and validated) before anything is locked."""

    key: str  # names the owned tree, its lock and its builds
    origin: str
    commit: str | None = None  # None: the Debian import (its one commit)
    repo: Path | None = None  # the user's repository (read, never written)
    version: str | None = None  # Debian source package version
    warning: str | None = None


def default_source() -> Source:
    version = debian_source_version()
    return Source(key=f"debian-{_safe(version)}", origin=f"Debian {SOURCE_PACKAGE} {version}",
                  version=version)


def _import_tarball(path: Path, version: str, log_dir: Path) -> None:
    if not SOURCE_TARBALL.is_file():
        raise TreeError(f"{SOURCE_TARBALL} is missing: reinstall {SOURCE_PACKAGE}")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=path.parent))
    try:
        proc.run(["tar", "-xf", str(SOURCE_TARBALL), "-C", str(scratch),
                  "--strip-components=1"], log=log_dir / "tree-unpack.log", timeout=900)
        git = vcs.Git(scratch, log_dir, timeout=1800)
        git.run("init", "-q")
        git.run("add", "-f", "-A")
        dated = {"GIT_AUTHOR_DATE": vcs.FIXED_DATE, "GIT_COMMITTER_DATE": vcs.FIXED_DATE}
        git.run("commit", "-q", "-m", f"Debian {SOURCE_PACKAGE} {version}",
                "-m", f"Imported by harness from {SOURCE_TARBALL}.", env=dated)
        scratch.rename(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def user_key(path: Path) -> str:
    """Names the owned clone and the builds of a user's tree (by its resolved path)."""
    return "user-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def user_source(path: Path, rev: str, log_dir: Path) -> Source:
    """Check a user's tree and resolve `rev` in it (read-only), before any lock."""
    path = path.resolve()
    check_kernel_tree(path)
    git = vcs.Git(path, log_dir)
    problem = git.toplevel_problem()
    if problem is not None and "not a git repository" in problem:
        raise TreeError(
            f"--tree {path}: not a git repository; commit the tree to git "
            f"(git init && git add -A && git commit) and pass it again")
    if problem is not None:
        raise TreeError(f"--tree {path}: git cannot use it as a repository ({problem})")
    commit = git.commit_of(rev)
    if commit is None:
        raise TreeError(f"--rev {rev}: not a commit in {path}; pass a commit, tag or branch")
    warning = None
    if rev == "HEAD" and git.dirty():
        warning = f"{path} has uncommitted changes; they are not tested (commit them first)"
    return Source(key=user_key(path), origin=str(path), commit=commit, repo=path,
                  warning=warning)


def resolve(path: Path | None, rev: str, log_dir: Path) -> Source:
    """The default tree, or the user's tree at `rev`."""
    return default_source() if path is None else user_source(path, rev, log_dir)


def repository(src: Source, cache: Cache, log_dir: Path) -> str:
    """The owned repository (imported or cloned on first use); returns the commit to test.

    Enough for a worktree of the commit (the series gate); `checkout` also lays the tree
    out.  Hold cache.lock(src.key).
    """
    path = cache.tree(src.key)
    if src.repo is None:
        assert src.version is not None
        if not (path / ".git").is_dir():
            _import_tarball(path, src.version, log_dir)
        return vcs.Git(path, log_dir).head()
    assert src.commit is not None
    _owned_clone(src.repo, path, log_dir)
    return src.commit


def checkout(src: Source, cache: Cache, log_dir: Path) -> Tree:
    """The tree on disk, in a directory the harness owns.  Hold cache.lock(src.key)."""
    path = cache.tree(src.key)
    commit = repository(src, cache, log_dir)
    if src.repo is not None:  # a clone of the user's tree: lay out the requested commit
        git = vcs.Git(path, log_dir)
        git.drop_stale_lock()
        git.run("checkout", "-q", "-f", "--detach", commit)
        git.run("clean", "-q", "-fdx")
    return Tree(path=path, origin=src.origin, commit=commit, version=check_kernel_tree(path),
                key=src.key, warning=src.warning)


def select(path: Path | None, rev: str, cache: Cache, log_dir: Path) -> Tree:
    """Resolve, lock and check out (for commands that only read the tree afterwards)."""
    src = resolve(path, rev, log_dir)
    with cache.lock(src.key):
        return checkout(src, cache, log_dir)


def default_tree(cache: Cache, log_dir: Path) -> Tree:
    return select(None, "HEAD", cache, log_dir)


def forget(cache: Cache, path: Path) -> None:
    """Delete what the cache holds for a user's tree: its clones, worktree and builds."""
    cache.forget(user_key(path))
    cache.forget(f"{user_key(path)}-bisect")


def _owned_clone(source: Path, dest: Path, log_dir: Path) -> None:
    """A clone that borrows the source's objects (alternates) and never writes to it.

    Cloned beside `dest` and renamed, so a clone cut short never looks finished.
    """
    if (dest / ".git").is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".clone-", dir=dest.parent))
    try:
        vcs.Git(dest.parent, log_dir).run("clone", "-q", "--shared", "--no-checkout",
                                          str(source), str(scratch / "repo"))
        shutil.rmtree(dest, ignore_errors=True)
        (scratch / "repo").rename(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
