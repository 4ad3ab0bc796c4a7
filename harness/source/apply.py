"""Applying a series patch by patch in a worktree the harness owns (`git am --3way`).

Each patch ends as: applied, applied-3way, already-present (it reverse-applies cleanly),
or conflict (with the files and hunks that failed, and the share of its added lines
already found in the tree).  After the first conflict nothing more is applied, but every
remaining patch is still checked against the tree as it stands, so the report covers all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from unidiff.patch import PatchSet

from harness.host import proc, vcs
from harness.source.series import Patch, Series, git_am_bytes


class Outcome(StrEnum):
    APPLIED = "applied"
    APPLIED_3WAY = "applied-3way"
    ALREADY_PRESENT = "already-present"
    CONFLICT = "conflict"
    WOULD_APPLY = "would-apply"  # checked after an earlier conflict; not applied
    NOT_APPLIED = "not-applied"  # a dry run: nothing was tried


@dataclass
class FileResult:
    path: str
    applied_hunks: list[int] = field(default_factory=list)
    rejected_hunks: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def describe_failure(f: FileResult) -> str:
    """'hunks #1 (line 1229), #2 (line 4857) failed' or the error git gave."""
    lines = [m[1] for e in f.errors if (m := re.search(r":(\d+)$", e))]
    if f.rejected_hunks:
        parts = [f"#{h}" + (f" (line {lines[i]})" if i < len(lines) else "")
                 for i, h in enumerate(f.rejected_hunks)]
        return f"hunks {', '.join(parts)} failed"
    return "; ".join(f.errors)


PRESENT_SHARE = 0.9  # a failing patch with this share of its lines in the tree looks applied


@dataclass
class PatchResult:
    label: str
    subject: str
    outcome: Outcome
    files: list[FileResult] = field(default_factory=list)
    present_share: float | None = None  # share of added lines already in the target files
    log: str | None = None

    @property
    def looks_present(self) -> bool:
        return self.present_share is not None and self.present_share >= PRESENT_SHARE

    def as_dict(self) -> dict[str, object]:
        return {
            "patch": self.label, "subject": self.subject, "outcome": self.outcome.value,
            "present_share": None if self.present_share is None else round(self.present_share, 3),
            "looks_present": self.looks_present,
            "failed_files": [vars(f) for f in self.files if f.rejected_hunks or f.errors],
            "log": self.log,
        }


@dataclass
class Applied:
    worktree: Path
    base: str
    head: str
    results: list[PatchResult]

    @property
    def conflicts(self) -> list[PatchResult]:
        return [r for r in self.results if r.outcome is Outcome.CONFLICT]


CHECKING_RE = re.compile(r"^Checking patch (.+)\.\.\.$")
HUNK_OK_RE = re.compile(r"^Hunk #(\d+) applied cleanly\.$")
HUNK_BAD_RE = re.compile(r"^Rejected hunk #(\d+)\.$")
APPLYING_RE = re.compile(
    r"^Applying patch (.+?) with \d+ rejects?\.\.\.$|^Applied patch (.+) cleanly\.$")


def parse_reject(text: str) -> list[FileResult]:
    """Per-file hunk results from `git apply --reject -v` output."""
    files: dict[str, FileResult] = {}
    current: FileResult | None = None
    for line in text.splitlines():
        if m := CHECKING_RE.match(line):
            files.setdefault(m[1], FileResult(m[1]))
        elif m := APPLYING_RE.match(line):
            current = files.setdefault(m[1] or m[2], FileResult(m[1] or m[2]))
        elif (m := HUNK_OK_RE.match(line)) and current:
            current.applied_hunks.append(int(m[1]))
        elif (m := HUNK_BAD_RE.match(line)) and current:
            current.rejected_hunks.append(int(m[1]))
        elif line.startswith("error: ") and "while searching for" not in line:
            _record_error(files, line)
    return list(files.values())


def _record_error(files: dict[str, FileResult], line: str) -> None:
    message = line.removeprefix("error: ")
    for path, result in files.items():
        if message.startswith(f"patch failed: {path}:") or message.startswith(f"{path}:"):
            result.errors.append(message)
            return


def added_lines(diff: str) -> dict[str, list[str]]:
    """Meaningful added lines per target file (blank and brace-only lines left out)."""
    found: dict[str, list[str]] = {}
    for f in PatchSet(diff):
        lines = [ln.value.strip() for h in f for ln in h if ln.is_added]
        found[f.path] = [ln for ln in lines if len(ln) > 3]
    return found


def present_share(diff: str, tree: Path) -> float | None:
    """Share of the patch's added lines that already appear in the tree's files."""
    total = hits = 0
    for path, lines in added_lines(diff).items():
        target = tree / path
        text = target.read_text(errors="replace") if target.is_file() else ""
        present = {ln.strip() for ln in text.splitlines()}
        total += len(lines)
        hits += sum(1 for ln in lines if ln in present)
    return hits / total if total else None


class Worktree:
    """Git operations on the harness-owned worktree; every command is logged."""

    def __init__(self, path: Path, log_dir: Path) -> None:
        self.path = path
        self.log_dir = log_dir
        self.vcs = vcs.Git(path, log_dir)

    def git(self, args: list[str], log: str, check: bool = False) -> proc.Completed:
        return self.vcs.run(*args, log=log, check=check)

    def restore(self) -> None:
        self.git(["checkout", "-q", "-f", "HEAD", "--", "."], "git-restore.log", check=True)
        self.git(["clean", "-q", "-fd"], "git-clean.log", check=True)


def prepare(repo_dir: Path, base: str, dest: Path, log_dir: Path) -> None:
    """A detached worktree of the harness-owned repo at `base`, reset to a clean state.

    The caller holds the locks of the repository and of the worktree.
    """
    wt = vcs.worktree_at(repo_dir, base, dest, log_dir)
    wt.run("am", "--abort", check=False, log="git-am-abort.log")
    vcs.clean_checkout(wt, base)


@dataclass(frozen=True)
class Checks:
    """`git apply --check` of a patch against the worktree, both ways."""

    reverse: bool
    forward: bool

    @property
    def present(self) -> bool:
        """Reverse-applies cleanly and does not apply forward: the change is in the tree."""
        return self.reverse and not self.forward


def _check(wt: Worktree, file: Path, tag: str) -> Checks:
    reverse = wt.git(["apply", "--check", "-R", str(file)], f"{tag}-reverse.log")
    forward = wt.git(["apply", "--check", str(file)], f"{tag}-check.log")
    return Checks(reverse=reverse.returncode == 0, forward=forward.returncode == 0)


def _result(patch: Patch, outcome: Outcome, log: Path | None = None) -> PatchResult:
    return PatchResult(label=patch.label, subject=patch.subject, outcome=outcome,
                       log=str(log) if log else None)


def _conflict(wt: Worktree, patch: Patch, file: Path, tag: str) -> PatchResult:
    """Which files and hunks fail (git apply --reject, then undone) and what is present."""
    reject = wt.git(["apply", "--reject", "-v", str(file)], f"{tag}-reject.log")
    wt.restore()
    result = _result(patch, Outcome.CONFLICT, reject.log)
    result.files = parse_reject(reject.output)
    result.present_share = present_share(patch.diff, wt.path)
    return result


def _am(wt: Worktree, patch: Patch, file: Path, tag: str) -> PatchResult | None:
    done = wt.git(["am", "--3way", str(file)], f"{tag}-am.log")
    if done.returncode != 0:
        wt.git(["am", "--abort"], f"{tag}-am-abort.log")
        return None
    if "No changes -- Patch already applied" in done.output:  # found by the 3-way merge
        return _result(patch, Outcome.ALREADY_PRESENT, done.log)
    three_way = "3-way merge" in done.output
    return _result(patch, Outcome.APPLIED_3WAY if three_way else Outcome.APPLIED, done.log)


def _step(wt: Worktree, patch: Patch, file: Path, tag: str, stopped: bool) -> PatchResult:
    """One patch: applied unless an earlier one conflicted; otherwise only checked."""
    checks = _check(wt, file, tag)
    if checks.present:
        return _result(patch, Outcome.ALREADY_PRESENT)
    if stopped:
        return _result(patch, Outcome.WOULD_APPLY) if checks.forward else _conflict(
            wt, patch, file, tag)
    applied = _am(wt, patch, file, tag)
    if applied is not None:
        return applied
    if checks.forward:  # the diff applies, but git am refused the mail itself
        return _result(patch, Outcome.CONFLICT, wt.log_dir / f"{tag}-am.log")
    return _conflict(wt, patch, file, tag)


def planned(series: Series, worktree: Path, base: str) -> Applied:
    """What a dry run reports: every patch, none tried."""
    results = [_result(p, Outcome.NOT_APPLIED) for p in series.patches]
    return Applied(worktree=worktree, base=base, head=base, results=results)


def apply_series(series: Series, worktree: Path, base: str, log_dir: Path) -> Applied:
    """Apply in order; stop applying at the first conflict but check every patch."""
    patches_dir = log_dir / "patches"
    patches_dir.mkdir(parents=True, exist_ok=True)
    wt = Worktree(worktree, patches_dir)
    results: list[PatchResult] = []
    for i, patch in enumerate(series.patches, start=1):
        tag = f"{i:04d}"
        file = patches_dir / f"{tag}.patch"
        file.write_bytes(git_am_bytes(patch))
        stopped = any(r.outcome is Outcome.CONFLICT for r in results)
        results.append(_step(wt, patch, file, tag, stopped))
    head = wt.vcs.head()
    return Applied(worktree=worktree, base=base, head=head, results=results)
