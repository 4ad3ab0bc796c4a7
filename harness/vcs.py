"""The one way harness runs git: `git -C DIR ...` through proc (argv, timeout, commands.log).

GitPython is not used by harness: every operation here is a single git command whose
output is either ignored or one short line, which the CLI gives as directly, and proc
adds what GitPython lacks (a deadline, the command log, killing on Ctrl-C).  The
identity for commits harness makes (`git am`, the tree import) is set here alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import proc

TIMEOUT = 600.0
IDENTITY: Mapping[str, str] = {
    "GIT_AUTHOR_NAME": "harness", "GIT_AUTHOR_EMAIL": "harness@localhost",
    "GIT_COMMITTER_NAME": "harness", "GIT_COMMITTER_EMAIL": "harness@localhost",
}
FIXED_DATE = "2000-01-01T00:00:00+0000"  # reproducible import commits


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
        argv = ["git", "-C", str(self.path), *args]
        return proc.run(argv, log=self.log_dir / (log or _log_name(args)),
                        timeout=self.timeout, env={**IDENTITY, **(env or {})}, check=check,
                        stdout=stdout)

    def commit_of(self, rev: str) -> str | None:
        """The commit `rev` names, or None."""
        done = self.run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False,
                        log="git-rev-parse.log")
        text = done.output.strip()
        return text if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{40,64}", text) else None

    def is_repo(self) -> bool:
        """True when `path` is the top of a work tree (not a directory inside another)."""
        done = self.run("rev-parse", "--show-toplevel", check=False, log="git-rev-parse.log")
        top = done.output.strip().splitlines()[-1:] if done.returncode == 0 else []
        return bool(top) and Path(top[0]).resolve() == self.path.resolve()

    def dirty(self) -> bool:
        """Tracked files with uncommitted changes."""
        done = self.run("--no-optional-locks", "status", "--porcelain", "--untracked-files=no",
                        log="git-status.log")
        return bool(done.output.strip())

    def head(self) -> str:
        commit = self.commit_of("HEAD")
        if commit is None:
            raise proc.ProcError(["git", "rev-parse", "HEAD"], 1, "no HEAD commit", None)
        return commit
