"""The kernel tree a run builds from, always in a directory the harness owns.

Default: Debian's linux-source tarball, unpacked once into a cached git repository with a
single commit labelled with the package version.  `--tree PATH`: a git repository of the
user's, cloned (sharing its objects, read-only) into the cache and checked out at the
requested revision; the user's checkout and repository are never written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git

from harness import proc
from harness.errors import TreeError

SOURCE_PACKAGE = "linux-source-6.12"
SOURCE_TARBALL = Path("/usr/src/linux-source-6.12.tar.xz")
MARKERS = ("Makefile", "kernel/bpf", "tools/testing/selftests/bpf/prog_tests")
FIXED_DATE = "2000-01-01T00:00:00+0000"  # the import commit is reproducible across machines


@dataclass(frozen=True)
class Tree:
    path: Path  # the directory builds read from (owned by the harness)
    origin: str  # what the user asked for: a package version or a path
    commit: str
    version: str  # "6.12.117"
    key: str  # names this tree's build cache
    warning: str | None = None

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
        raise TreeError(f"--tree {path}: no such directory")
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


@contextlib.contextmanager
def locked(cache: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on one tree and its builds for the duration of a run."""
    locks = cache / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{key}.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def debian_source_version() -> str:
    """Version of the installed linux-source package, e.g. '6.12.117-1~deb12u1'."""
    try:
        out = proc.capture(["dpkg-query", "-W", "-f=${Version}", SOURCE_PACKAGE])
    except (proc.ProcError, FileNotFoundError) as exc:
        raise TreeError(
            f"Debian package {SOURCE_PACKAGE} is not installed: run the README's setup "
            f"command, or pass --tree PATH"
        ) from exc
    return out.strip()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def default_tree(cache: Path, log_dir: Path) -> Tree:
    """Debian's linux-source as a cached one-commit git repository."""
    version = debian_source_version()
    key = f"debian-{_safe(version)}"
    path = cache / "trees" / key
    if not (path / ".git").is_dir():
        _import_tarball(path, version, log_dir)
    repo = git.Repo(path)
    return Tree(path=path, origin=f"Debian {SOURCE_PACKAGE} {version}",
                commit=repo.head.commit.hexsha, version=check_kernel_tree(path), key=key)


def _import_tarball(path: Path, version: str, log_dir: Path) -> None:
    if not SOURCE_TARBALL.is_file():
        raise TreeError(f"{SOURCE_TARBALL} is missing: reinstall {SOURCE_PACKAGE}")
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".import-", dir=path.parent))
    try:
        proc.run(["tar", "-xf", str(SOURCE_TARBALL), "-C", str(scratch),
                  "--strip-components=1"], log=log_dir / "tree-unpack.log", timeout=900)
        repo = git.Repo.init(scratch)
        with repo.config_writer() as config:  # no background repack after the big commit
            config.set_value("gc", "auto", "0")
        repo.git.add("-f", "-A")
        env = {"GIT_AUTHOR_NAME": "harness", "GIT_AUTHOR_EMAIL": "harness@localhost",
               "GIT_COMMITTER_NAME": "harness", "GIT_COMMITTER_EMAIL": "harness@localhost",
               "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE}
        with repo.git.custom_environment(**env):
            repo.git.commit("-q", "-m", f"Debian {SOURCE_PACKAGE} {version}",
                            "-m", f"Imported by harness from {SOURCE_TARBALL}.")
        scratch.rename(path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def select(path: Path | None, rev: str, cache: Path, log_dir: Path) -> Tree:
    """The default tree, or the user's tree at `rev`."""
    if path is None:
        return default_tree(cache, log_dir)
    return user_tree(path, rev, cache)


def _open_user_repo(path: Path) -> git.Repo:
    try:
        return git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise TreeError(
            f"--tree {path}: not a git repository; commit the tree to git "
            f"(git init && git add -A && git commit) and pass it again"
        ) from exc


def user_key(path: Path) -> str:
    """Names the owned clone and the builds of a user's tree (by its resolved path)."""
    return "user-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]


def forget(cache: Path, path: Path) -> None:
    """Delete what the cache holds for a user's tree: its clone, worktree and builds."""
    key = user_key(path)
    for place in (cache / "trees" / key, cache / "build" / key,
                  cache / "worktrees" / f"{key}-series", cache / "build" / f"{key}-series"):
        shutil.rmtree(place, ignore_errors=True)


def user_tree(path: Path, rev: str, cache: Path) -> Tree:
    """A user's git tree, checked out at `rev` in a clone the harness owns."""
    path = path.resolve()
    check_kernel_tree(path)
    repo = _open_user_repo(path)
    try:
        commit = repo.commit(rev).hexsha
    except (git.BadName, ValueError) as exc:
        raise TreeError(f"--rev {rev}: not a commit in {path}") from exc
    warning = None
    if rev == "HEAD" and repo.is_dirty(untracked_files=False):
        warning = f"{path} has uncommitted changes; they are not tested (commit them first)"
    key = user_key(path)
    owned = _owned_clone(path, cache / "trees" / key)
    owned.git.checkout("-q", "-f", "--detach", commit)
    version = check_kernel_tree(Path(owned.working_dir))
    return Tree(path=Path(owned.working_dir), origin=str(path), commit=commit,
                version=version, key=key, warning=warning)


def _owned_clone(source: Path, dest: Path) -> git.Repo:
    """A clone that borrows the source's objects (alternates) and never writes to it."""
    if (dest / ".git").is_dir():
        return git.Repo(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return git.Repo.clone_from(str(source), str(dest), shared=True, no_checkout=True)
