"""Histories to bisect, written on a clone of the 6.12 tree (the tests' and the benchmark's).

`tools_history` (13 commits, one a merge), first parent first:

     1 docs        Documentation/ only
     2 testmod     patch 3/4 of patches/shadow-layout-broken.mbox (bpf_testmod.h)
     3 docs
     4 unbuildable bpftool's main.c gets an #error: bpftool does not build from here ...
     5 docs
     6 docs
     7 merge       ... a side branch (one docs commit, off 3) merged while still broken
     8 repair      ... until the #error is removed here
     9 culprit     patch 2/4: bpftool's gen.c shrinks unsupported shadow members by 4 bytes
    10 docs
    11 subtest     patch 4/4: a new subtest of test_struct_ops_module (the layout check)
    12 docs

test_struct_ops_module passes on the base and at 1-8 (where it builds), fails from 9.
Nothing in it is read by the kernel build (harness/build/kernel_reads.py): every commit
boots the installed kernel under `--kernel auto`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.host import proc, vcs

ROOT = Path(__file__).resolve().parents[1]
BROKEN_MBOX = ROOT / "patches/shadow-layout-broken.mbox"
KERNEL_CULPRIT = ROOT / "patches/struct-ops-update-broken.mbox"  # one patch, kernel/bpf/
BPFTOOL_MAIN = "tools/bpf/bpftool/main.c"
BREAK = "#error \"harness test history: bpftool does not build at this commit\"\n"


@dataclass
class History:
    repo: Path
    base: str
    ids: dict[str, str] = field(default_factory=dict)  # name → commit
    unbuildable: set[str] = field(default_factory=set)  # commits

    @property
    def tip(self) -> str:
        return self.ids["tip"]

    def name(self, commit: str) -> str:
        return next((k for k, v in self.ids.items() if v == commit), commit[:12])


@dataclass
class Writer:
    repo: Path
    log_dir: Path
    history: History | None = None
    n: int = 0

    @property
    def git(self) -> vcs.Git:
        return vcs.Git(self.repo, self.log_dir)

    def commit(self, name: str, message: str, new: Path | None = None) -> str:
        self.git.run("add", "-u")
        if new is not None:  # Debian's .gitignore ignores every top-level entry
            self.git.run("add", "-f", "--", str(new))
        self.git.run("commit", "-q", "-m", message)
        sha = self.git.head()
        assert self.history is not None
        self.history.ids[name] = sha
        return sha

    def docs(self, name: str, file: str = "harness-history.rst") -> str:
        self.n += 1
        path = self.repo / "Documentation/bpf" / file
        with path.open("a") as f:
            f.write(f"Line {self.n} of a documentation-only commit.\n")
        return self.commit(name, f"Documentation: harness history, docs commit {self.n}", path)

    def patch(self, name: str, mail: Path) -> str:
        self.git.run("am", "-q", str(mail))
        sha = self.git.head()
        assert self.history is not None
        self.history.ids[name] = sha
        return sha

    def edit(self, name: str, rel: str, old: str, new: str, message: str) -> str:
        path = self.repo / rel
        text = path.read_text()
        assert old in text, f"{rel}: {old!r} not found"
        path.write_text(text.replace(old, new, 1))
        return self.commit(name, message)


def clone(source: Path, dest: Path, log_dir: Path) -> Writer:
    """A user tree: a clone of the imported 6.12 tree (sharing its objects)."""
    vcs.Git(dest.parent, log_dir).run("clone", "-q", "--shared", str(source), str(dest))
    w = Writer(dest, log_dir)
    w.history = History(dest, w.git.head())
    return w


def mails(log_dir: Path) -> list[Path]:
    """The broken shadow-layout series split into one mail each: the cover letter, 1/4..4/4."""
    out = log_dir / "mails"
    out.mkdir(parents=True, exist_ok=True)
    proc.run(["git", "mailsplit", f"-o{out}", str(BROKEN_MBOX)], log=log_dir / "mailsplit.log",
             timeout=60)
    return sorted(out.iterdir())


def tools_history(source: Path, dest: Path, log_dir: Path) -> History:
    w = clone(source, dest, log_dir)
    assert w.history is not None
    _, _, p2, p3, p4 = mails(log_dir)  # the cover letter, 1/4 .. 4/4
    w.docs("docs1")
    w.patch("testmod", p3)
    w.docs("docs2")
    w.git.run("branch", "side")
    w.edit("unbuildable", BPFTOOL_MAIN, "#include", BREAK + "#include",
           "bpftool: a commit of the test history that does not build")
    w.docs("docs3")
    w.docs("docs4")
    w.git.run("checkout", "-q", "side")
    w.docs("side", "harness-side.rst")
    w.git.run("checkout", "-q", "-")
    w.git.run("merge", "-q", "--no-ff", "-m", "Merge the docs side branch", "side")
    w.history.ids["merge"] = w.git.head()
    w.edit("repair", BPFTOOL_MAIN, BREAK, "", "bpftool: build again")
    w.patch("culprit", p2)
    w.docs("docs5")
    w.patch("subtest", p4)
    w.docs("tip")
    ids = w.history.ids
    w.history.unbuildable = {ids[k] for k in ("unbuildable", "docs3", "docs4", "merge")}
    return w.history


def docs_history(source: Path, dest: Path, log_dir: Path, count: int = 16,
                 culprit_at: int = 11) -> History:
    """`count` commits, all documentation but one: the broken gen.c patch at `culprit_at`
    (the benchmark's tools-only bisection)."""
    w = clone(source, dest, log_dir)
    assert w.history is not None
    p2 = mails(log_dir)[2]
    for i in range(1, count + 1):
        if i == culprit_at:
            w.patch("culprit", p2)
        else:
            w.docs("tip" if i == count else f"docs{i}")
    return w.history


def kernel_history(source: Path, dest: Path, log_dir: Path) -> History:
    """5 commits: docs, a harmless kernel/bpf/ change, the culprit (kernel/bpf/: struct_ops
    map updates of module types refused), docs, docs.  Every commit but the docs ones
    changes what the kernel build reads."""
    w = clone(source, dest, log_dir)
    assert w.history is not None
    w.docs("docs1")
    w.edit("kernel", "kernel/bpf/syscall.c", "\n", "\n/* harness test history */\n",
           "bpf: a comment (the test history's harmless kernel change)")
    w.patch("culprit", KERNEL_CULPRIT)
    w.docs("docs2")
    w.docs("tip")
    return w.history
