"""Building the kernel from a tree, incrementally, in a kbuild workspace the harness owns.

    <cache>/kbuild/<lineage>/src            a git worktree of the tree's repository, checked
                                            out in place at each commit to build (git
                                            rewrites only what differs, so make's
                                            timestamps hold for the rest)
    <cache>/kbuild/<lineage>/config-<key>/  where the config is made (tinyconfig, or
                                            Kconfig's defaults for the selftests
                                            profile; the fragments; olddefconfig) and
                                            checked
    <cache>/kbuild/<lineage>/out-<key>/     the O= build directory; <key> names the
                                            requested options, the arch and the compilers

A tree's lineage is the tree a series was applied to, so a series side is an incremental
build of its base.  The user's tree is never written: `src` is a worktree of the
harness-owned clone.  After a build, `harness-stamp.json` records the commit, the content
key of the sources the build reads (harness/build/inputs.py: all but Documentation/ and
tools/, plus the host tools it builds from tools/), the config's and the image's hashes;
a later run reuses the image without running make only when the content, config and
image match.  The bzImage is copied into the run directory, so nothing a later build
rewrites can change what this run boots.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.boot import kconfig
from harness.boot.kernel import Kernel
from harness.btf import elf
from harness.build import inputs
from harness.build.targeted import first_error
from harness.config import Toolchain
from harness.errors import (
    NO_SPACE,
    BtfError,
    BuildError,
    ConfigError,
    HarnessTimeout,
    ToolchainError,
    no_space,
)
from harness.host import proc, toolchain, vcs
from harness.host.cache import Cache, digest

ARCH = "x86_64"
SRCARCH = "x86"
IMAGE = "arch/x86/boot/bzImage"
STAMP = "harness-stamp.json"
TARGETS = ("bzImage", "modules")
OBJECT_RE = re.compile(r"^\s+(?:CC|AS)(?:\s+\[M\])?\s+(\S+\.o)\s*$")
PROGRESS_EVERY = 10.0  # seconds between progress lines during a build


@dataclass(frozen=True)
class KbuildContext:
    cache: Cache
    log_dir: Path  # the run directory
    toolchain: Toolchain
    jobs: int
    timeout: float
    versions: Mapping[str, str]  # toolchain.versions()
    progress: Callable[[str], None]
    ccache: bool = False


@dataclass(frozen=True)
class Workspace:
    root: Path
    lineage: str
    key: str  # names the requested config and the compilers

    @property
    def src(self) -> Path:
        return self.root / "src"

    @property
    def out(self) -> Path:
        return self.root / f"out-{self.key}"

    @property
    def config_dir(self) -> Path:
        return self.root / f"config-{self.key}"

    @property
    def lock(self) -> str:
        return f"kbuild-{self.lineage}"


def workspace(ctx: KbuildContext, lineage: str, fragments: Sequence[kconfig.Fragment],
              ) -> Workspace:
    """The workspace for a lineage and a requested config (see the module doc)."""
    wanted, _ = kconfig.merge(fragments)
    inputs = {"options": json.dumps({k: w.value for k, w in sorted(wanted.items())}),
              "base": kconfig.base_config(fragments), "arch": ARCH, "cc": ctx.toolchain.cc,
              "gcc": ctx.versions.get("gcc", ""), "pahole": ctx.versions.get("pahole", ""),
              "ccache": str(ctx.ccache)}
    return Workspace(ctx.cache.root / "kbuild" / lineage, lineage, digest(inputs))


@dataclass(frozen=True)
class Built:
    kernel: Kernel
    commit: str
    config_sha: str
    compiled: int  # objects this build compiled (0 when the image was reused)
    reused: bool
    seconds: float
    workspace: Path

    def as_dict(self) -> dict[str, object]:
        return {"commit": self.commit, "config_sha256": self.config_sha,
                "objects_compiled": self.compiled, "reused": self.reused,
                "seconds": round(self.seconds, 1), "workspace": str(self.workspace)}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --- toolchain minimums ---------------------------------------------------------------


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def check_compiler(ctx: KbuildContext, src: Path) -> None:
    """gcc at least the tree's own minimum (scripts/min-tool-version.sh)."""
    script = src / "scripts/min-tool-version.sh"
    if not script.is_file():
        return
    try:
        need = proc.capture(["sh", str(script), "gcc"]).strip()
        have = proc.capture([ctx.toolchain.cc, "-dumpfullversion"]).strip()
    except proc.ProcError:
        return
    if need and have and version_tuple(have) < version_tuple(need):
        raise ToolchainError(f"{ctx.toolchain.cc} {have} is older than this tree's minimum "
                             f"{need} (scripts/min-tool-version.sh); install a newer gcc, or "
                             f"pass --kernel IMAGE --headers DIR")


# --- make -----------------------------------------------------------------------------


def _make_argv(ctx: KbuildContext, src: Path, out: Path, *targets: str) -> list[str]:
    cc = f"ccache {ctx.toolchain.cc}" if ctx.ccache else ctx.toolchain.cc
    return [ctx.toolchain.make, f"-j{ctx.jobs}", "-C", str(src), f"O={out}", f"ARCH={ARCH}",
            f"CC={cc}", *targets]


# A fixed build timestamp, user and host make the image reproducible, and (kbuild's
# scripts/Makefile.btf) keep pahole from encoding BTF in parallel, whose type order
# changes from one link to the next: the same sources then give the same BTF, so a
# relink does not invalidate the modules and BPF programs built against it.
# The build number too: kbuild counts links in the workspace's .version, so without it a
# relink (a damaged cached bzImage, a run after another run on the same workspace) gives
# a "#N+1" kernel, not the same image.
REPRODUCIBLE = {"KBUILD_BUILD_TIMESTAMP": "Sat Jan  1 00:00:00 UTC 2000",
                "KBUILD_BUILD_USER": "harness", "KBUILD_BUILD_HOST": "harness",
                "KBUILD_BUILD_VERSION": "1"}


def _env(ctx: KbuildContext) -> dict[str, str | None]:
    if not ctx.ccache:
        return dict(REPRODUCIBLE)
    # Depend mode: a miss compiles once (no extra preprocessor pass), the hash taken
    # from the dependency file kbuild has gcc write (-Wp,-MMD).
    return {**REPRODUCIBLE, "CCACHE_DIR": str(ctx.cache.root / "ccache"),
            "CCACHE_BASEDIR": str(ctx.cache.root / "kbuild"), "CCACHE_NOHASHDIR": "1",
            "CCACHE_DEPEND": "1"}


def _make(ctx: KbuildContext, argv: list[str], log_name: str) -> None:
    try:
        proc.run(argv, log=ctx.log_dir / log_name, timeout=ctx.timeout, env=_env(ctx))
    except proc.ProcError as exc:
        raise BuildError(f"{log_name.removesuffix('.log')} failed: "
                         f"{first_error(exc.output)}", exc.log) from exc


# --- the config -----------------------------------------------------------------------


def kconfig_env(ctx: KbuildContext, src: Path) -> dict[str, str]:
    """What kbuild exports to Kconfig, for kconfiglib's explanation."""
    release = (src / "Makefile").read_text(errors="replace")
    version = ".".join(re.findall(r"^(?:VERSION|PATCHLEVEL|SUBLEVEL) = (\d+)", release, re.M))
    return {"srctree": str(src), "ARCH": SRCARCH, "SRCARCH": SRCARCH,
            "KERNELVERSION": version, "CC": ctx.toolchain.cc, "HOSTCC": ctx.toolchain.cc,
            "HOSTCXX": "g++", "LD": "ld", "CC_VERSION_TEXT": ctx.versions.get("gcc", ""),
            "PAHOLE": "pahole", "RUSTC": "rustc", "BINDGEN": "bindgen"}


def _config_error(explained: Sequence[kconfig.Explained]) -> ConfigError | ToolchainError:
    tool = next((e for e in explained if e.tool), None)
    if tool is not None:
        others = f" ({len(explained)} options unmet in all)" if len(explained) > 1 else ""
        return ToolchainError(f"the machine's {tool.tool} is too old for this tree's kernel "
                              f"config: {tool.line()}; install a newer {tool.tool}{others}")
    first = explained[0].line()
    more = f" (and {len(explained) - 1} more)" if len(explained) > 1 else ""
    return ConfigError(f"kernel config: {first}{more}")


def _make_config(ctx: KbuildContext, ws: Workspace, wanted: Mapping[str, kconfig.Wanted],
                 made: dict[str, str]) -> Path:
    """The base config (made["base"]), the requested options appended (a later line wins),
    olddefconfig; skipped when the config directory already holds this commit's config
    of these options."""
    config = ws.config_dir / ".config"
    record = ws.config_dir / "harness-config.json"
    if config.is_file() and _json_dict(record) == made:
        return config
    record.unlink(missing_ok=True)
    ws.config_dir.mkdir(parents=True, exist_ok=True)
    _make(ctx, _make_argv(ctx, ws.src, ws.config_dir, made["base"]), "kernel-config.log")
    lines = [f"{n}={w.value}" if w.value != "n" else f"# {n} is not set"
             for n, w in wanted.items()]
    config.write_text(config.read_text() + "\n".join(lines) + "\n")
    _make(ctx, _make_argv(ctx, ws.src, ws.config_dir, "olddefconfig"), "kernel-olddefconfig.log")
    record.write_text(json.dumps(made) + "\n")
    return config


def resolve_config(ctx: KbuildContext, ws: Workspace, commit: str,
                   fragments: Sequence[kconfig.Fragment]) -> Path:
    """The config of `commit` with the fragments' options, every requested option checked.
    Returns the resolved .config (copied into the build directory only when it differs,
    so an unchanged config rebuilds nothing)."""
    wanted, _ = kconfig.merge(fragments)
    made = {"commit": commit, "base": kconfig.base_config(fragments),
            "options": digest({n: w.value for n, w in wanted.items()})}
    config = _make_config(ctx, ws, wanted, made)
    shutil.copy2(config, ctx.log_dir / "kernel.config")
    unmet = kconfig.check(wanted, kconfig.parse(config.read_text(errors="replace")))
    if unmet:
        wanted_y = frozenset(n for n, w in wanted.items() if w.value == "y")
        explained = kconfig.explain(ws.src / "Kconfig", config, unmet,
                                    kconfig_env(ctx, ws.src), wanted_y)
        (ctx.log_dir / "kernel-config-unmet.txt").write_text(
            "".join(e.line() + "\n" for e in explained))
        errors = [e for e in explained if e.chosen is None]
        if errors:
            raise _config_error(errors)
        for e in explained:
            ctx.progress(f"kernel config: {e.line()}")
    ws.out.mkdir(parents=True, exist_ok=True)
    target = ws.out / ".config"
    if not target.is_file() or target.read_bytes() != config.read_bytes():
        shutil.copyfile(config, target)
    return target


# --- the build ------------------------------------------------------------------------


@dataclass
class Counter:
    """Counts the objects a build compiles and says how far it is every few seconds."""

    progress: Callable[[str], None]
    expected: int | None = None
    prefix: str = ""  # the build directory, as objects outside the kernel proper name it
    compiled: int = 0
    last: str = ""
    reported: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def feed(self, line: str) -> None:
        if m := OBJECT_RE.match(line):
            self.compiled += 1
            self.last = m[1].removeprefix(self.prefix)

    def line(self) -> str:
        of = f" of ~{self.expected}" if self.expected else ""
        last = f" (last: {self.last})" if self.last else ""
        return (f"kernel build: {self.compiled}{of} objects compiled in "
                f"{time.monotonic() - self.started:.0f}s{last}")

    def tick(self, elapsed: float) -> str | None:
        if elapsed - self.reported >= PROGRESS_EVERY:
            self.reported = elapsed
            self.progress(self.line())
        return None


def _compile(ctx: KbuildContext, ws: Workspace) -> int:
    """make bzImage modules, streamed: a progress line every few seconds."""
    cold = not (ws.out / "vmlinux").exists()
    counts = ws.root / "objects.json"
    known = _json_dict(counts)
    expected = known.get(ws.key) if cold else None
    counter = Counter(ctx.progress, expected, prefix=f"{ws.out}/")
    log = ctx.log_dir / "build-kernel.log"
    done = proc.stream(_make_argv(ctx, ws.src, ws.out, *TARGETS), log=log,
                       timeout=ctx.timeout, on_line=counter.feed, watchdog=counter.tick,
                       env=_env(ctx))
    if done.stopped:
        raise HarnessTimeout(f"kernel build: {done.stopped}", log)
    if done.returncode != 0:
        text = log.read_text(errors="replace")
        if NO_SPACE in text:
            raise no_space("kernel build failed", ws.out, log)
        where = re.sub(rf"(?:{re.escape(str(ws.src))}|\.\./{ws.src.name})/", "",
                       first_error(text))  # tree-relative, however kbuild or ccache spell it
        raise BuildError(f"kernel build failed: {where}", log)
    ctx.progress(counter.line())
    if cold:  # what to expect of the next cold build
        counts.write_text(json.dumps({**known, ws.key: counter.compiled}) + "\n")
    return counter.compiled


def _json_dict(path: Path) -> dict[str, Any]:
    """A small JSON record of the workspace ({} when missing or unreadable)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _stamp(ws: Workspace) -> dict[str, Any]:
    return _json_dict(ws.out / STAMP)


def _reusable(ws: Workspace, content: str | None, config_sha: str) -> bool:
    """The build directory holds a build of these sources and config, untouched since."""
    stamp = _stamp(ws)
    image = ws.out / IMAGE
    return (content is not None and stamp.get("content") == content
            and stamp.get("config_sha256") == config_sha
            and image.is_file() and stamp.get("image_sha256") == sha256(image))


def _drop_damaged_image(ctx: KbuildContext, ws: Workspace) -> None:
    """An image that is not what the last build wrote is deleted: make links it again."""
    image = ws.out / IMAGE
    recorded = _stamp(ws).get("image_sha256")
    if recorded and image.is_file() and recorded != sha256(image):
        image.unlink()
        (ws.out / STAMP).unlink(missing_ok=True)
        ctx.progress(f"kernel build: the cached {IMAGE} changed since it was built "
                     f"(truncated or damaged): deleted and linked again")


def _kernel(ctx: KbuildContext, ws: Workspace, content: str, config_sha: str) -> Kernel:
    image = ctx.log_dir / "bzImage"
    shutil.copyfile(ws.out / IMAGE, image)
    release = (ws.out / "include/config/kernel.release").read_text().strip()
    try:
        btf = elf.load(ws.out / "vmlinux").btf
    except BtfError as exc:
        raise BuildError(f"the built kernel has no usable BTF: {exc.line()}",
                         ctx.log_dir / "build-kernel.log") from exc
    return Kernel(image=image, headers=ws.out, release=release,
                  identity=f"built {ws.lineage} sources {content[:12]} config {config_sha[:12]}",
                  types=f"btf {hashlib.sha256(btf).hexdigest()}")


def build(ctx: KbuildContext, repo: Path, commit: str, lineage: str,
          fragments: Sequence[kconfig.Fragment]) -> Built:
    """The kernel of `commit` (in the repository at `repo`) with the fragments' options.

    The caller holds the workspace's lock (`workspace(...).lock`) until it has copied
    what it needs from the build directory (the module build reads it too).
    """
    start = time.monotonic()
    toolchain.check_kernel_build()
    ws = workspace(ctx, lineage, fragments)
    vcs.clean_checkout(vcs.worktree_at(repo, commit, ws.src, ctx.log_dir), commit)
    check_compiler(ctx, ws.src)
    config = resolve_config(ctx, ws, commit, fragments)
    config_sha = sha256(config)
    # Keyed by content: commits that touch only Documentation/ or the selftests reuse it.
    content = inputs.tree_key(ws.src, inputs.KERNEL, ctx.log_dir, inputs.KERNEL_EXCLUDED)
    _drop_damaged_image(ctx, ws)
    reused = _reusable(ws, content, config_sha)
    compiled = 0
    if not reused:
        (ws.out / STAMP).unlink(missing_ok=True)
        compiled = _compile(ctx, ws)
        if not (ws.out / IMAGE).is_file():
            raise BuildError(f"kernel build produced no {IMAGE}", ctx.log_dir / "build-kernel.log")
        (ws.out / STAMP).write_text(json.dumps({
            "commit": commit, "content": content, "config_sha256": config_sha,
            "image_sha256": sha256(ws.out / IMAGE)}, indent=2) + "\n")
    return Built(kernel=_kernel(ctx, ws, content or commit, config_sha), commit=commit,
                 config_sha=config_sha, compiled=compiled, reused=reused,
                 seconds=time.monotonic() - start, workspace=ws.out)
