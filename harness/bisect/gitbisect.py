"""git bisect as the oracle: git chooses the next commit and decides the end.

The bisection runs `git bisect --no-checkout` in a bare clone the harness owns (it shares
the user's objects, read-only), so the user's checkout, index and bisect state are never
touched and git's own rules hold: merges in the range, a good commit that is not an
ancestor of the bad one (git tests their merge base first), skipped commits.  The next
commit is read from BISECT_HEAD; the end from git's words, parsed here (pure).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.bisect.driver import Ambiguous, Done, Mark, Next, State
from harness.errors import BisectRefused, UsageError
from harness.host import vcs

FIRST_RE = re.compile(r"^([0-9a-f]{40,64}) is the first (\S+) commit$", re.M)
CANDIDATES_RE = re.compile(r"could be any of:\n((?:[0-9a-f]{40,64}\n?)+)")
MERGE_BASE_RE = re.compile(r"a merge base must be tested")
MERGE_BASE_NEW_RE = re.compile(r"^The merge base ([0-9a-f]{40,64}) is (\S+)\.$", re.M)


def parse(output: str, bisect_head: str | None) -> State:
    """What git said after `start` or a mark: the first new commit, the candidates that
    skips leave, or the next commit to test (BISECT_HEAD)."""
    m = FIRST_RE.search(output)
    if m:
        return Done(m[1])
    m = CANDIDATES_RE.search(output)
    if m:
        return Ambiguous(tuple(m[1].split()))
    m = MERGE_BASE_NEW_RE.search(output)
    if m:
        raise BisectRefused(f"the merge base {m[1][:12]} of the endpoints is already "
                            f"{m[2]}: the change happened between it and the old endpoint, "
                            f"not between the old and the new (git bisect: "
                            f"{_first_line(output, m.start())})")
    if bisect_head is None:
        raise BisectRefused(f"git bisect named no commit to test: {output.strip()[-300:]}")
    note = "a merge base of the endpoints must be tested" if MERGE_BASE_RE.search(output) else ""
    return Next(bisect_head, note)


def _first_line(text: str, at: int) -> str:
    return text[at:].splitlines()[0] if text[at:] else ""


@dataclass
class GitBisect:
    """The oracle over a bare clone at `repo` (created from the user's `source`)."""

    repo: Path
    log_dir: Path
    terms: tuple[str, str] = ("good", "bad")

    @property
    def git(self) -> vcs.Git:
        return vcs.Git(self.repo, self.log_dir)

    def _head(self) -> str | None:
        return self.git.commit_of("BISECT_HEAD")

    def _say(self, *args: str) -> State:
        done = self.git.run("bisect", *args, check=False, log="git-bisect.log")
        state = parse(done.output, self._head())
        if isinstance(state, Next) and done.returncode != 0:
            raise BisectRefused(f"git bisect {args[0]} failed: {done.output.strip()[-300:]}")
        return state

    def reset(self) -> None:
        self.git.run("bisect", "reset", check=False, log="git-bisect-reset.log")

    def start(self, old: Sequence[str], new: str) -> State:
        self.reset()
        old_term, new_term = self.terms
        return self._say("start", "--no-checkout", f"--term-old={old_term}",
                         f"--term-new={new_term}", new, *old)

    def mark(self, commit: str, mark: Mark) -> State:
        word = {Mark.OLD: self.terms[0], Mark.NEW: self.terms[1], Mark.SKIP: "skip"}[mark]
        return self._say(word, commit)

    def log(self) -> str:
        """`git bisect log`: replayable with `git bisect replay` in any clone ("" before
        the bisection started)."""
        done = self.git.run("bisect", "log", check=False, log="git-bisect-log.log")
        return done.output if done.returncode == 0 else ""


def owned_clone(source: Path, dest: Path, log_dir: Path) -> Path:
    """A bare clone of the user's repository that borrows its objects (never writes it)."""
    if (dest / "HEAD").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".bisect-", dir=dest.parent))
    try:
        vcs.Git(dest.parent, log_dir).run("clone", "-q", "--bare", "--shared", str(source),
                                          str(scratch / "repo.git"))
        shutil.rmtree(dest, ignore_errors=True)
        (scratch / "repo.git").rename(dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return dest


def resolve(git: vcs.Git, rev: str, option: str) -> str:
    commit = git.commit_of(rev)
    if commit is None:
        raise UsageError(f"{option} {rev}: not a commit in {git.path}; pass a commit, tag or "
                         f"branch of --tree")
    return commit


def is_ancestor(git: vcs.Git, older: str, newer: str) -> bool:
    return git.run("merge-base", "--is-ancestor", older, newer, check=False,
                   log="git-merge-base.log").returncode == 0


def check_order(git: vcs.Git, old: Sequence[str], new: str, terms: tuple[str, str]) -> None:
    """Reversed endpoints (the new commit is an ancestor of an old one) are a usage error."""
    for o in old:
        if o == new:
            raise UsageError(f"the {terms[0]} and {terms[1]} endpoints are the same commit "
                             f"{new[:12]}")
        if is_ancestor(git, new, o):
            raise UsageError(f"the {terms[1]} endpoint {new[:12]} is an ancestor of the "
                             f"{terms[0]} endpoint {o[:12]}: reversed? (swap them)")


def describe(git: vcs.Git, commit: str) -> dict[str, object]:
    """Hash, subject, author and files a commit touched (for the culprit)."""
    out = git.run("show", "--no-patch", "--format=%H%n%s%n%an <%ae>", commit,
                  log="git-show.log").output.splitlines()
    files = git.run("diff-tree", "--no-commit-id", "--name-only", "-r", "-m",
                    "--first-parent", commit, log="git-show.log").output.split()
    return {"commit": out[0] if out else commit, "subject": out[1] if len(out) > 1 else "",
            "author": out[2] if len(out) > 2 else "", "files": sorted(set(files))}


def subject(git: vcs.Git, commit: str) -> str:
    return git.run("show", "--no-patch", "--format=%s", commit,
                   log="git-show.log").output.strip()
