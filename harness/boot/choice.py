"""Which kernel a run boots (`--kernel auto|prebuilt|build|IMAGE`), and why.

`auto` boots the installed Debian kernel only when it is provably the tree's own kernel:
the tree is Debian's linux-source (the package the installed image was built from) or
differs from it only in files the kernel build does not read (build/kernel_reads.py).
Anything else is built from the tree.  `prebuilt` boots the installed kernel whatever
the tree, with a warning on the report when that is not provably right; `build` always
builds; `IMAGE` (with `--headers`) boots the given image.  `decide` is pure; `difference`
gathers its input from git.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness.build.kernel_reads import Rule
from harness.errors import ProcError, ToolchainError, TreeError
from harness.host import proc, vcs
from harness.host.cache import Cache
from harness.source import tree

MODES = ("auto", "prebuilt", "build")
SHOWN = 3  # paths named in a reason


class How(StrEnum):
    PREBUILT = "prebuilt"
    BUILD = "build"
    IMAGE = "image"


@dataclass(frozen=True)
class Choice:
    how: How
    reason: str
    warning: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"how": self.how.value, "reason": self.reason, "warning": self.warning}


@dataclass(frozen=True)
class Difference:
    """How a tree state differs from the source of the installed Debian kernel."""

    origin: str  # "Debian linux-source-6.12 6.12.117-1~deb12u1"
    unrelated: str | None = None  # why no comparison is possible (another version, ...)
    read: Sequence[tuple[str, str]] = ()  # (path, why the kernel build reads it)
    unread: int = 0  # differing paths outside the kernel build

    @property
    def same_kernel(self) -> bool:
        return self.unrelated is None and not self.read


def describe(read: Sequence[tuple[str, str]], label: str = "") -> str:
    """'touches kernel/bpf/core.c (kernel source: ...)' with a count of the rest."""
    shown = "; ".join(f"{p} ({why})" for p, why in read[:SHOWN])
    more = f"; and {len(read) - SHOWN} more" if len(read) > SHOWN else ""
    return f"{label}touches {shown}{more}"


def _why_build(diff: Difference) -> str:
    if diff.unrelated is not None:
        return diff.unrelated
    return f"the tree differs from {diff.origin}: {describe(diff.read)}"


def _why_prebuilt(diff: Difference) -> str:
    if diff.unread:
        return (f"the tree differs from {diff.origin} only in {diff.unread} files the kernel "
                f"build does not read")
    return f"the tree is {diff.origin}, the installed kernel's own source"


def decide(mode: str, diff: Difference) -> Choice:
    """The choice for one tree state (`mode` is auto, prebuilt or build)."""
    if mode == "build":
        return Choice(How.BUILD, "--kernel build")
    if mode == "prebuilt":
        warning = None if diff.same_kernel else (
            f"--kernel prebuilt overrides the rule: {_why_build(diff)}")
        return Choice(How.PREBUILT, "--kernel prebuilt", warning)
    if diff.same_kernel:
        return Choice(How.PREBUILT, _why_prebuilt(diff))
    return Choice(How.BUILD, _why_build(diff))


@dataclass(frozen=True)
class PatchFiles:
    label: str  # "2/3"
    paths: tuple[str, ...]


@dataclass(frozen=True)
class GateChoice:
    base: Choice
    series: Choice
    notes: list[str] = field(default_factory=list)


def decide_gate(mode: str, base: Difference, patches: Sequence[PatchFiles],
                rule: Rule) -> GateChoice:
    """Both sides of a series gate boot the same kind of kernel (like for like).

    A built kernel on either side means built kernels on both, from the same config; the
    series side's reason names the first patch that touches what the kernel build reads.
    """
    touching = [(p.label, read) for p in patches if (read := rule.read_paths(p.paths))]
    series_why = (describe(touching[0][1], f"series patch {touching[0][0]} ")
                  if touching else None)
    if mode == "build":
        return GateChoice(Choice(How.BUILD, "--kernel build"), Choice(How.BUILD, "--kernel build"))
    if mode == "prebuilt":
        warning = f"--kernel prebuilt overrides the rule: {series_why}" if series_why else None
        return GateChoice(decide(mode, base), Choice(How.PREBUILT, "--kernel prebuilt", warning))
    if series_why is None and base.same_kernel:
        why = _why_prebuilt(base)
        return GateChoice(Choice(How.PREBUILT, why),
                          Choice(How.PREBUILT, f"{why}; the series touches nothing the "
                                 f"kernel build reads"))
    if series_why is None:
        own = _why_build(base)
        return GateChoice(Choice(How.BUILD, own),
                          Choice(How.BUILD, f"like for like with the base: {own}"))
    return GateChoice(Choice(How.BUILD, f"like for like with the series side: {series_why}"),
                      Choice(How.BUILD, series_why))


# --- gathering the difference from git --------------------------------------------------


def parse_ls_tree(text: str) -> dict[str, str]:
    """`git ls-tree -r -z` output as {path: object id}."""
    entries: dict[str, str] = {}
    for record in text.split("\0"):
        meta, sep, path = record.partition("\t")
        if sep:
            entries[path] = meta.split()[2]
    return entries


def changed_paths(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    """Paths added, removed or changed between two listings, sorted."""
    return sorted(p for p in a.keys() | b.keys() if a.get(p) != b.get(p))


def _listing(repo: Path, commit: str, log_dir: Path, name: str) -> dict[str, str]:
    out = log_dir / f"ls-tree-{name}.txt"
    vcs.Git(repo, log_dir).run("ls-tree", "-r", "-z", "--full-tree", commit,
                               log="git-ls-tree.log", stdout=out)
    listing = parse_ls_tree(out.read_text(errors="replace"))
    out.unlink()
    return listing


def _image_matches(source_version: str, release: str) -> bool:
    """The installed image package (signed, or its `-unsigned` twin: the same kernel) was
    built from this linux-source version."""
    for package in (f"linux-image-{release}", f"linux-image-{release}-unsigned"):
        try:
            have = proc.capture(["dpkg-query", "-W", "-f=${Version}", package])
        except (ProcError, ToolchainError):
            continue
        if have.strip() == source_version:
            return True
    return False


def difference(repo: Path, commit: str, *, version: str, rule: Rule, cache: Cache,
               log_dir: Path, release: str | None, may_import: bool = True) -> Difference:
    """How `commit` of `repo` (a tree of Linux `version`) differs from the Debian source of
    the installed kernel `release` (None: no installed kernel matches the version).

    `may_import`: import Debian's source into the cache if it is not there (a dry run
    does not: it then cannot compare, and says so)."""
    try:
        debian = tree.default_source()
    except TreeError:
        return Difference("Debian's linux-source", f"Debian's {tree.SOURCE_PACKAGE} is not "
                          f"installed, so no installed kernel is provably the tree's")
    origin = debian.origin
    if release is None:
        return Difference(origin, f"no installed kernel is Linux {version}")
    assert debian.version is not None
    if not _image_matches(debian.version, release):
        return Difference(origin, f"the installed kernel {release} was not built from "
                          f"{origin}")
    if not may_import and not (cache.tree(debian.key) / ".git").is_dir():
        return Difference(origin, f"{origin} is not imported yet, so the tree cannot be "
                          f"compared with it (a dry run imports nothing)")
    with cache.lock(debian.key):
        base_commit = tree.repository(debian, cache, log_dir)
    if repo == cache.tree(debian.key) and commit == base_commit:
        return Difference(origin)
    paths = changed_paths(_listing(repo, commit, log_dir, "tree"),
                          _listing(cache.tree(debian.key), base_commit, log_dir, "debian"))
    read = rule.read_paths(paths)
    return Difference(origin, read=read, unread=len(paths) - len(read))
