"""What a container that runs the harness is made of: a pure description (issue 14).

`harness run --in-container` (and `series`, `bisect`, `shadow --verify`) starts the same
command inside the hermetic image.  What the container may see is decided here, from
the command line alone, before any engine is asked:

- every existing absolute path the command names (the tree, a series, a kernel image, a
  headers directory, a BPF object, an `@file` list) is bind-mounted read-only at the same
  path, so the command inside reads its own argv unchanged, and so is what git reads
  outside a tree (a linked worktree's repository, the object directories a `clone
  --shared` or `--reference` borrows from);
- the run directory (`--out`) is bind-mounted read-write at the same path, so the run
  writes its files back to the host with the same layout;
- the harness cache is a named volume (builds and trees survive the container);
- `/dev/kvm` is passed only when KVM is selected, and networking is always disabled;
- the host's `/boot`, `/usr/src` and `/lib/modules` are never mounted: the kernel the
  gate boots comes from the image.

Learned from how CI systems describe jobs as data (GitLab's and Kubernetes' job specs):
the description is built and checked without an engine, and only `engine.py` turns it
into SDK calls.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import TreeError, UsageError

CACHE = "/var/cache/harness"  # the cache volume, inside the container
# What the command writes: the run directory, a bisection's directory (mounted read-write).
OUTPUT_OPTIONS = frozenset({"--out", "--resume"})
# Never mounted: the gate's kernel, headers and modules come from the image.
HOST_ONLY = (Path("/boot"), Path("/usr/src"), Path("/lib/modules"), Path("/usr/lib/modules"))
LABEL = "org.harness.run"  # every container and volume the harness creates carries it
KVM = "/dev/kvm"


@dataclass(frozen=True)
class Mount:
    source: str  # a host path (bind) or a volume name
    target: str
    read_only: bool
    kind: str = "bind"  # or "volume"


@dataclass(frozen=True)
class ContainerSpec:
    image: str
    command: tuple[str, ...]
    mounts: tuple[Mount, ...]
    devices: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    working_dir: str = "/"

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the SDK's containers.create (mounts as plain dicts)."""
        return {
            "image": self.image, "command": list(self.command),
            "network_disabled": True, "network_mode": "none",
            "mounts": [{"Type": m.kind, "Source": m.source, "Target": m.target,
                        "ReadOnly": m.read_only} for m in self.mounts],
            "devices": [f"{d}:{d}:rwm" for d in self.devices],
            "environment": dict(self.environment), "working_dir": self.working_dir,
            "labels": {LABEL: "1"}, "detach": True,
        }


def path_arguments(argv: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """The paths argv reads and writes: the value of an OUTPUT_OPTION is written; every
    other argument (an option's value, `--opt=value`, an `@file` list, a positional
    argument) that is an absolute path that exists is read.  The CLI makes the paths
    it is given absolute first; `--kernel build` and test names are not paths."""
    reads: list[Path] = []
    writes: list[Path] = []
    items = list(argv)
    for i, arg in enumerate(items):
        name, eq, inline = arg.partition("=")
        if name in OUTPUT_OPTIONS:
            value = inline if eq else (items[i + 1] if i + 1 < len(items) else "")
            writes.append(Path(value))
            continue
        if i > 0 and items[i - 1] in OUTPUT_OPTIONS:
            continue
        value = (inline if eq and name.startswith("--") else arg).lstrip("@")
        path = Path(value)
        if value and path.is_absolute() and path.exists():
            reads.append(path)
    return reads, writes


ALTERNATES_DEPTH = 5  # git's own limit on nested alternates (6 levels read, the first 0)


def git_dependencies(tree: Path) -> list[Path]:
    """What git reads outside a work tree it is given: the repository of a linked
    worktree (`.git` is a file naming it) and its common directory, and the object
    directories its objects borrow from (`objects/info/alternates`, as `clone --shared`
    or `--reference` writes them, followed through their own alternates); the ones
    outside `tree`, in order.  Each at the path git is given (where it looks inside the
    container) and, when a symbolic link is on the way, at its real path too.  A git
    file that cannot be read is a TreeError naming it."""
    found = _repository(tree)
    git = found[-1] if found else tree / ".git"
    objects = [git / "objects"]
    for _ in range(ALTERNATES_DEPTH + 1):
        objects = [b for d in objects for b in _alternates(d)]
        found += objects
    inside = (tree.absolute(), tree.resolve())
    return [p for p in dict.fromkeys(q for f in found for q in (f, f.resolve()))
            if not any(p.is_relative_to(t) for t in inside)]


def _joined(base: Path, written: str) -> Path:
    """A path git reads from a file, as git takes it: relative ones to `base`."""
    return Path(os.path.normpath(base / written))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TreeError(f"{path}: cannot be read ({exc}); git needs it to read the tree "
                        f"in the container") from exc


def _repository(tree: Path) -> list[Path]:
    """A linked worktree's git directory and its common directory (the repository)."""
    dot_git = tree / ".git"
    named = _read(dot_git).partition("gitdir:")[2].strip() if dot_git.is_file() else ""
    if not named:
        return []
    git = _joined(tree, named)
    common = git / "commondir"
    if not common.is_file():
        return [git]
    return [git, _joined(git, _read(common).strip())]


def _alternates(objects: Path) -> list[Path]:
    """The object directories `objects` borrows from (relative ones are to it)."""
    listed = objects / "info/alternates"
    lines = _read(listed).splitlines() if listed.is_file() else []
    paths = [_joined(objects, ln.strip()) for ln in lines
             if ln.strip() and not ln.startswith("#")]
    return [p for p in paths if p.is_dir()]


def inner_command(argv: Sequence[str]) -> tuple[str, ...]:
    """The command inside: the same arguments without --in-container (or an abbreviation
    argparse took for it), on the volume."""
    kept = [a for a in argv if not (len(a) > len("--in") and "--in-container".startswith(a))]
    return ("harness", *kept, "--cache", CACHE)


def _host_only(path: Path) -> bool:
    """The path is, holds or lies under one of HOST_ONLY (symbolic links followed)."""
    real = path.resolve()
    return any(real == h or h in real.parents or real in h.parents for h in HOST_ONLY)


def build(image: str, argv: Sequence[str], cache_volume: str, accel: str,
          environment: dict[str, str] | None = None) -> ContainerSpec:
    """The container for `harness <argv>`: argv's paths must be absolute (the CLI makes
    them so); a path under /boot, /usr/src or /lib/modules is a UsageError."""
    reads, writes = path_arguments(argv)
    reads += [dep for path in reads if path.is_dir() for dep in git_dependencies(path)]
    for path in [*reads, *writes]:
        if _host_only(path):
            raise UsageError(f"{path}: a run in the container never mounts the host's "
                             f"{', '.join(map(str, HOST_ONLY[:3]))} (its kernel comes from "
                             f"the image); copy the file elsewhere or run without "
                             f"--in-container")
    mounts = [Mount(str(p), str(p), read_only=True) for p in dict.fromkeys(reads)]
    mounts += [Mount(str(p), str(p), read_only=False) for p in dict.fromkeys(writes)]
    mounts.append(Mount(cache_volume, CACHE, read_only=False, kind="volume"))
    # git refuses a repository another user owns ("dubious ownership"); the tree is the
    # user's and read-only here
    env = {"HARNESS_ACCEL": accel, "GIT_CONFIG_COUNT": "1",
           "GIT_CONFIG_KEY_0": "safe.directory", "GIT_CONFIG_VALUE_0": "*",
           **(environment or {})}
    return ContainerSpec(image=image, command=inner_command(argv), mounts=tuple(mounts),
                         devices=(KVM,) if accel == "kvm" else (), environment=env)


# Options whose value is a path (when it is one: --kernel and --kconfig also take words).
PATH_OPTIONS = frozenset({"--tree", "--kernel", "--headers", "--kconfig", "--kernel-config",
                          "--cache", "--series", "--bpftool"})
KEYWORDS = {"--kernel": frozenset({"auto", "prebuilt", "build"}),
            "--kconfig": frozenset({"struct_ops", "minimal", "selftests"})}
LIST_OPTIONS = frozenset({"--allow", "--deny"})  # @FILE
# Commands whose --out defaults to a new directory under the current one (their logs).
WRITES_RUN_DIR = frozenset({"run", "bisect", "series", "shadow"})


@dataclass(frozen=True)
class Grammar:
    """What of a command line is a word of its own: the command (and its action), and
    the options that take a value (from the CLI's parser)."""

    leading: int  # the command and, for series and image, its action
    takes_value: frozenset[str]


def absolute(argv: Sequence[str], cwd: Path, grammar: Grammar, *,
             default_out: Path | None = None, drop: frozenset[str] = frozenset(),
             ) -> list[str]:
    """argv with the paths it names made absolute from `cwd` (PATH_OPTIONS' values that
    exist, @FILE lists, positional arguments that exist) and the run directory
    (OUTPUT_OPTIONS) always; test names, keywords and ranges kept.  The options in `drop`
    are left out (with their values).  With `default_out`, a command that writes a run
    directory and names none gets that one explicitly.  For the container (its files
    come back to the host's run directory) and for a bisection's log (resumed from
    anywhere, it reads the same files)."""
    out = list(argv[:grammar.leading])
    items = list(argv[grammar.leading:])
    skip = False
    for i, arg in enumerate(items):
        if skip:
            skip = False
            continue
        name, eq, value = arg.partition("=")
        if name in drop:
            skip = not eq
            continue
        if arg.startswith("--") and eq:
            out.append(f"{name}={_value(name, value, cwd)}")
        elif arg.startswith("-"):
            out.append(arg)
            if arg in grammar.takes_value and i + 1 < len(items):
                out.append(_value(arg, items[i + 1], cwd))
                skip = True
        else:
            out.append(_resolved(arg, cwd, force=False))
    given = {a.partition("=")[0] for a in argv}
    if default_out and argv and argv[0] in WRITES_RUN_DIR and not given & OUTPUT_OPTIONS:
        out += ["--out", str(cwd / default_out)]
    return out


def _value(option: str, value: str, cwd: Path) -> str:
    if option in OUTPUT_OPTIONS:
        return _resolved(value, cwd, force=True)
    if option in LIST_OPTIONS and value.startswith("@"):
        return "@" + _resolved(value[1:], cwd, force=True)
    if option in PATH_OPTIONS and value not in KEYWORDS.get(option, ()):
        return _resolved(value, cwd, force=False)
    return value


def _resolved(value: str, cwd: Path, force: bool) -> str:
    path = Path(value)
    if not value or path.is_absolute():
        return value
    if force or (cwd / path).exists():
        return str((cwd / path).resolve())
    return value
