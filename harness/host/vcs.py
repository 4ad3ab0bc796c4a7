"""The one way harness runs git: `git -C DIR ...` through proc (argv, timeout, commands.log).

GitPython is not used by harness: every operation here is a single git command whose
output is either ignored or one short line, which the CLI gives as directly, and proc
adds what GitPython lacks (a deadline, the command log, killing on Ctrl-C).  The
identity for commits harness makes (`git am`, the tree import) is set here alone.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.host import proc

TIMEOUT = 600.0
IDENTITY: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": "harness", "GIT_AUTHOR_EMAIL": "harness@localhost",
    "GIT_COMMITTER_NAME": "harness", "GIT_COMMITTER_EMAIL": "harness@localhost",
}
FIXED_DATE = "2000-01-01T00:00:00+0000"  # reproducible import commits
# Variables that would point git at another repository than `-C DIR` (a git hook, or a
# user's shell inside one, exports them): never inherited.
REPO_VARIABLES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                  "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_COMMON_DIR", "GIT_NAMESPACE",
                  "GIT_PREFIX", "GIT_CEILING_DIRECTORIES")
# No background maintenance: it would detach from the process group and outlive the lock.
QUIET = ("-c", "gc.auto=0", "-c", "maintenance.auto=false")


def _log_name(args: tuple[str, ...]) -> str:
    verb = next((a for a in args if not a.startswith("-")), "git")
    return f"git-{re.sub(r'[^A-Za-z0-9]', '_', verb)}.log"


@dataclass(frozen=True)
class Git:
    """git on one repository (or worktree), logging into `log_dir`."""

    path: Path
    log_dir: Path
    timeout: float = TIMEOUT

    def run(self, *args: str, log: str | None = None, check: bool = True,
            env: Mapping[str, str] | None = None, stdout: Path | None = None,
            ) -> proc.Completed:
        """`git -C path ARGS`; output in log_dir/LOG (stdout alone in `stdout`, if given)."""
        argv = ["git", "-C", str(self.path), *QUIET, *args]
        variables: dict[str, str | None] = dict.fromkeys(REPO_VARIABLES)
        return proc.run(argv, log=self.log_dir / (log or _log_name(args)),
                        timeout=self.timeout, env={**variables, **IDENTITY, **(env or {})},
                        check=check, stdout=stdout)

    def commit_of(self, rev: str) -> str | None:
        """The commit `rev` names, or None."""
        done = self.run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False,
                        log="git-rev-parse.log")
        text = done.output.strip()
        return text if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", text) else None

    def toplevel_problem(self) -> str | None:
        """None when `path` is the top of a work tree; else why not, in git's words."""
        done = self.run("rev-parse", "--show-toplevel", check=False, log="git-rev-parse.log")
        lines = done.output.strip().splitlines()
        if done.returncode != 0:
            return lines[-1] if lines else f"git exited {done.returncode}"
        if not lines or Path(lines[-1]).resolve() != self.path.resolve():
            return f"it is inside the work tree {lines[-1] if lines else '?'}"
        return None

    def dirty(self) -> bool:
        """Tracked files with uncommitted changes."""
        done = self.run("--no-optional-locks", "status", "--porcelain", "--untracked-files=no",
                        log="git-status.log")
        return bool(done.output.strip())

    def drop_stale_lock(self) -> None:
        """Remove an index.lock a killed git left behind.  Only for harness-owned trees,
        and only while holding their cache lock (no other git of ours runs there)."""
        done = self.run("rev-parse", "--git-path", "index.lock", check=False,
                        log="git-rev-parse.log")
        lines = done.output.strip().splitlines()
        if done.returncode == 0 and lines:
            lock = Path(lines[-1])
            (lock if lock.is_absolute() else self.path / lock).unlink(missing_ok=True)

    def head(self) -> str:
        commit = self.commit_of("HEAD")
        if commit is None:
            raise proc.ProcError(["git", "rev-parse", "HEAD"], 1, "no HEAD commit", None)
        return commit


def worktree_at(repo_dir: Path, commit: str, dest: Path, log_dir: Path) -> Git:
    """A detached worktree of a harness-owned repository at `commit`, clean.

    Created on first use; afterwards checked out in place, so git rewrites only the files
    that differ (make's timestamps stay valid for the rest).  The caller holds the locks
    of the repository and of the worktree.
    """
    if (dest / ".git").exists() and Git(dest, log_dir).toplevel_problem() is not None:
        shutil.rmtree(dest)  # its repository was pruned from the cache: start again
    if not (dest / ".git").exists():
        repo = Git(repo_dir, log_dir)
        repo.run("worktree", "prune")
        dest.parent.mkdir(parents=True, exist_ok=True)
        repo.run("worktree", "add", "--force", "--detach", str(dest), commit)
    wt = Git(dest, log_dir)
    wt.drop_stale_lock()
    return wt


def clean_checkout(wt: Git, commit: str) -> None:
    wt.run("checkout", "-q", "-f", "--detach", commit)
    wt.run("clean", "-q", "-fdx")
