"""What each build reads from the tree, keyed by content: a build whose inputs are the same
as at its last build is reused without running make at all.

The key of a build is a hash of the git object ids (trees and blobs) of the paths it
reads, at the commit the harness-owned tree has checked out (always clean: checkout -f
and clean -fdx), plus whatever else names it (the generated Makefile, the outputs of the
build it depends on).  Commits that touch none of those paths (Documentation/, another
subsystem) give the same key: a bisection step over them only boots.  The build
directory stays one per tree, so a key that changed is an incremental make.

    <build dir>/harness-inputs.json   {"key": ..., "outputs": {path: sha256}}: written
                                      after a build succeeded, removed before one starts
    <build dir>/.by-key/<key>/        a copy of that build's outputs (the last KEPT keys)

A key the directory built before (a bisection going back and forth) is restored from its
copy: the outputs are copied back with the current time, so make, which the next new key
runs in the same directory, sees them as newer than the sources they were built from and
older than any source a later checkout rewrites.

Outputs are trusted only while their contents are what the build wrote: the stamp and
each kept copy record a digest per output, and an output that changed since (a truncated
or damaged file in the cache) is deleted, so that the build makes it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from harness.host import vcs

STAMP = "harness-inputs.json"
SNAPSHOTS = ".by-key"
KEPT = 24  # snapshots per build directory
COMPLETE = ".complete"

# bpftool and libbpf: tools/ but the selftests; libbpf's helper definitions come from
# scripts/bpf_doc.py, bpftool compiles the kernel's BPF disassembler.
TOOLS = ("tools/", "scripts/bpf_doc.py", "kernel/bpf/disasm.c", "kernel/bpf/disasm.h")
TOOLS_EXCLUDED = ("tools/testing",)
SELFTESTS = ("tools/testing/selftests/bpf", "tools/testing/selftests/lib.mk")
# A kernel build reads everything but the documentation and tools/, plus the host tools
# it builds from tools/ (objtool, resolve_btfids) and what they link (libbpf, subcmd).
KERNEL = ("", "tools/objtool", "tools/bpf/resolve_btfids", "tools/lib", "tools/include",
          "tools/build", "tools/scripts", "tools/arch")
KERNEL_EXCLUDED = ("Documentation", "tools")


def key_of(listing: str, excluded: Sequence[str] = (), extra: Iterable[str] = ()) -> str:
    """A key from `git ls-tree` output (mode, type, id, path per line), without the
    excluded paths, plus extra strings."""
    kept = sorted(line for line in listing.splitlines()
                  if line.strip() and line.split("\t", 1)[-1] not in excluded)
    digest = hashlib.sha256("\n".join([*kept, "--", *extra]).encode())
    return digest.hexdigest()[:24]


def tree_key(tree: Path, paths: Sequence[str], log_dir: Path, excluded: Sequence[str] = (),
             extra: Iterable[str] = ()) -> str | None:
    """The key of `paths` at the tree's checked-out commit; None when the tree is not a
    git checkout (then nothing is reused)."""
    git = vcs.Git(tree, log_dir)
    named = [p for p in paths if p]
    calls = [["ls-tree", "HEAD"]] if "" in paths else []  # "": the top level's entries
    calls += [["ls-tree", "HEAD", "--", *named]] if named else []
    listed = [git.run(*c, check=False, log="git-ls-tree.log") for c in calls]
    if any(done.returncode != 0 for done in listed):
        return None
    return key_of("\n".join(done.output for done in listed), excluded, extra)


def digest(path: Path) -> str | None:
    """The sha256 of a file, or of a directory's files (names and contents); None when
    it does not exist."""
    if not path.exists():
        return None
    h = hashlib.sha256()
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else "").encode() + b"\0")
        with f.open("rb") as stream:
            h.update(hashlib.file_digest(stream, "sha256").digest())
    return h.hexdigest()


def digests(out: Path, outputs: Sequence[Path]) -> dict[str, str | None]:
    return {str(p.relative_to(out)): digest(p) for p in outputs}


def _stamp(out: Path) -> dict[str, object]:
    try:
        stamp = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def corrupt(out: Path, outputs: Sequence[Path]) -> list[Path]:
    """Outputs whose contents are no longer what the last build wrote (truncated,
    overwritten, damaged): never to be trusted, whatever the key."""
    recorded = _stamp(out).get("outputs")
    if not isinstance(recorded, dict):
        return []
    return [p for p in outputs if p.exists()
            and recorded.get(str(p.relative_to(out))) not in (None, digest(p))]


def discard(paths: Sequence[Path]) -> None:
    """Delete outputs that cannot be trusted, so that make builds them again."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def reusable(out: Path, key: str | None, outputs: Sequence[Path]) -> bool:
    """The build directory's last build had exactly these inputs and its outputs exist
    with the contents it wrote."""
    stamp = _stamp(out)
    return (key is not None and stamp.get("key") == key
            and stamp.get("outputs") == digests(out, outputs)
            and all(p.exists() for p in outputs))


def forget(out: Path) -> None:
    """Before a build: a build cut short leaves no stamp behind."""
    (out / STAMP).unlink(missing_ok=True)


def remember(out: Path, key: str | None, outputs: Sequence[Path]) -> None:
    """After a build: its key and the digest of each output."""
    (out / STAMP).write_text(json.dumps({"key": key, "outputs": digests(out, outputs)},
                                        indent=2) + "\n")


def note(log: Path, key: str | None, out: Path, restored: bool = False) -> None:
    """The log of a reused build says so (every stage leaves its log)."""
    how = ("restored from the copy of an earlier build with these inputs" if restored
           else "its inputs are those of its last build")
    log.write_text(f"harness: reused {out} (key {key}): {how}; make not run\n")


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dest)


def snapshot(out: Path, key: str | None, outputs: Sequence[Path]) -> None:
    """Keep a copy of a build's outputs under its key (written aside, then renamed).
    Best effort: a copy that cannot be made (a full disk) is no copy, never an error."""
    if key is None:
        return
    root = out / SNAPSHOTS
    scratch: Path | None = None
    try:
        root.mkdir(parents=True, exist_ok=True)
        if (root / key / COMPLETE).is_file():
            return
        scratch = Path(tempfile.mkdtemp(prefix=".new-", dir=root))
        for path in outputs:
            _copy(path, scratch / path.relative_to(out))
        (scratch / COMPLETE).write_text(json.dumps(digests(out, outputs)) + "\n")
        shutil.rmtree(root / key, ignore_errors=True)
        scratch.rename(root / key)
        _trim(root)
    except OSError:
        pass
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _trim(root: Path) -> None:
    kept = sorted((d for d in root.iterdir() if (d / COMPLETE).is_file()),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for old in kept[KEPT:]:
        shutil.rmtree(old, ignore_errors=True)


def _touch(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p)


def restore(out: Path, key: str | None, outputs: Sequence[Path]) -> bool:
    """Copy a kept build of `key` back into the build directory; False if none is kept
    (or it cannot be copied back: then the build runs, its stamp already gone)."""
    if key is None:
        return False
    snap = out / SNAPSHOTS / key
    if not (snap / COMPLETE).is_file():
        return False
    if not all((snap / p.relative_to(out)).exists() for p in outputs):
        return False
    forget(out)
    try:
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            _copy(snap / path.relative_to(out), path)
            _touch(path)
        os.utime(snap)  # recently used: kept longest
        kept = json.loads((snap / COMPLETE).read_text())
    except (OSError, ValueError):
        return False
    if kept != digests(out, outputs):  # the copy was damaged: drop it, build instead
        shutil.rmtree(snap, ignore_errors=True)
        discard(outputs)
        return False
    remember(out, key, outputs)
    return True
