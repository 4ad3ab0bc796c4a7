"""Builds inside the guest: reading back what the guest's build steps did (pure).

In `--build-in guest` mode the guest runs each build step (bpftool, the test modules,
test_progs, the helpers) and streams its output to one host file, each step between
two marker lines:

    HARNESS-BUILD: begin bpftool
    ... make's output ...
    HARNESS-BUILD: end bpftool rc=0 seconds=412

`split` turns that stream into the host build's per-step logs and times; `failure`
says why a step failed: the guest's memory (the kernel's OOM killer in its dmesg), its
build disk (make's "No space left on device"), a step that never ended (a hang, once
the build deadline passed), else the step's first compiler error, as a host build
reports it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from harness.boot.initramfs import VM_DIR
from harness.boot.kernel import Kernel
from harness.build import discover
from harness.build.targeted import MakeInputs, Tools, first_error, render_makefile
from harness.errors import (
    NO_SPACE,
    BuildError,
    DiskFull,
    HarnessError,
    HarnessTimeout,
    TreeError,
)
from harness.host import proc
from harness.host.cache import digest

BEGIN_RE = re.compile(r"^HARNESS-BUILD: begin (\S+)\s*$")
END_RE = re.compile(r"^HARNESS-BUILD: end (\S+) rc=(\d+) seconds=(\d+(?:\.\d+)?)\s*$")
OOM_RE = re.compile(r"Out of memory: Killed process \d+ \(([^)]*)\)")
# The host build's log names, so a guest run's directory reads like a host run's.
LOG_NAMES = {"bpftool": "build-bpftool.log", "testmod": "build-testmod.log",
             "test_progs": "build-test_progs.log", "helpers": "build-helpers.log"}


@dataclass
class Step:
    name: str
    lines: list[str] = field(default_factory=list)
    rc: int | None = None  # None: the step never ended
    seconds: float | None = None

    @property
    def log_name(self) -> str:
        return LOG_NAMES.get(self.name, f"build-{self.name}.log")


def split(text: str) -> list[Step]:
    """The steps of a guest build stream, in order, each with its own output; lines
    outside any step are left out."""
    steps: list[Step] = []
    current: Step | None = None
    for line in text.splitlines():
        if m := BEGIN_RE.match(line):
            current = Step(m[1])
            steps.append(current)
        elif (m := END_RE.match(line)) and current is not None and m[1] == current.name:
            current.rc, current.seconds = int(m[2]), float(m[3])
            current = None
        elif current is not None:
            current.lines.append(line)
    return steps


def write_logs(steps: list[Step], run_dir: Path) -> None:
    """Each step's output as the host build would have logged it."""
    for step in steps:
        (run_dir / step.log_name).write_text("".join(f"{ln}\n" for ln in step.lines))


def times(steps: list[Step]) -> dict[str, float]:
    """Seconds each finished step took inside the guest (for the report)."""
    return {s.name: s.seconds for s in steps if s.seconds is not None}


def failure(steps: list[Step], dmesg: str, run_dir: Path, *, memory: str, disk: str,
            timed_out: bool) -> HarnessError | None:
    """Why the guest build did not get through, or None when every step ended with 0."""
    broken = next((s for s in steps if s.rc is None or s.rc != 0), None)
    if broken is None:
        return None
    log = run_dir / broken.log_name
    text = "\n".join(broken.lines)
    if broken.rc is None:
        if timed_out:
            # not a RunTimeout: no test was running (exit 8 all the same)
            return HarnessTimeout(f"guest build hung: step {broken.name} did not end before the "
                                  f"build deadline (raise it with --build-timeout; a guest "
                                  f"short of memory ({memory}) stalls too: --memory)", log)
        return None  # the VM ended mid-step: the VM's own outcome says why
    killed = OOM_RE.search(dmesg)
    if killed:
        return BuildError(f"guest build {broken.name} failed: the guest ran out of memory "
                          f"({memory}; the kernel killed {killed[1]}): raise it with "
                          f"--memory", log)
    if NO_SPACE in text:
        return DiskFull(f"guest build {broken.name} failed: the guest's build disk ({disk}) "
                        f"is full: raise it with --guest-disk", log)
    return BuildError(f"guest build {broken.name} failed: {first_error(text)}", log)


@dataclass(frozen=True)
class Plan:
    """What the guest builds and where (vm/build.sh reads it as /harness/build.env).

    The tree and the kernel's build directory are at their host paths (the share
    image); outputs go to directories of the build disk named as the host build names
    its own (by tree and inputs), so a second run is an incremental make."""

    tree: Path
    headers: Path
    tools: str  # bpftool and libbpf (guest paths under /build)
    modules_dir: str
    selftests: str
    helpers_dir: str
    jobs: int
    clang: str
    llvm_strip: str
    llvm_suffix: str
    modules: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()  # runtime .bpf.o files test_progs opens by name
    helpers: tuple[str, ...] = ()  # helper programs the selftests Makefile builds
    tree_files: tuple[str, ...] = ()  # files shipped beside test_progs from the tree
    with_bpftool: bool = False  # a test runs ./bpftool


def render_env(plan: Plan) -> str:
    """/harness/build.env: shell assignments, each value quoted."""
    values = {
        "TREE": str(plan.tree), "HEADERS": str(plan.headers), "TOOLS": plan.tools,
        "MODS": plan.modules_dir, "SELFTESTS": plan.selftests,
        "HELPERS_OUT": plan.helpers_dir, "JOBS": str(plan.jobs), "CLANG": plan.clang,
        "LLVM_STRIP": plan.llvm_strip, "LLVM_SUFFIX": plan.llvm_suffix,
        "MODULES": " ".join(plan.modules), "OBJECTS": " ".join(plan.objects),
        "HELPERS": " ".join(plan.helpers), "TREE_FILES": " ".join(plan.tree_files),
        "WITH_BPFTOOL": "1" if plan.with_bpftool else "",
    }
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


# clang's own include directories, asked of the guest's clang when make runs (BPF
# programs built with --target=bpf miss asm/types.h otherwise); `#` would start a
# comment in make, hence a pattern without it.
SYS_INCLUDES_MAKE = ("$(shell $(CLANG) -v -E - </dev/null 2>&1 | awk '/^End of search/ "
                     "{ on = 0 } on { print \"-idirafter \" $$1 } /<...> search starts "
                     "here/ { on = 1 }')")
# What the guest builds from the tree: without them there is nothing to build.
TREE_NEEDS = ("tools/bpf/bpftool/Makefile", "tools/lib/bpf/Makefile",
              "tools/testing/selftests/bpf/Makefile")
GUEST_ROOT = "/build"  # the build disk in the guest


def check_tree(tree: Path) -> None:
    """TreeError (exit 3) when the tree lacks the tools sources a guest build needs."""
    missing = [p for p in TREE_NEEDS if not (tree / p).is_file()]
    if missing:
        raise TreeError(f"{tree} has no {', '.join(missing)}: a build inside the guest "
                        f"needs the tree's tools/ sources; pass a full kernel tree")


def output_dirs(tree_key: str, k: Kernel, recipe_key: str, flavor: str) -> dict[str, str]:
    """The guest's output directories on the build disk, named like the host's: one
    per tree and per set of inputs make cannot see (the kernel, the guest toolchain)."""
    base = f"{GUEST_ROOT}/{tree_key}"
    tools = {"toolchain": recipe_key}
    mods = {"kernel": k.fingerprint(), "types": k.types_fingerprint(),
            "headers": str(k.headers), **tools}
    tests = {"kernel": k.types_fingerprint(), "headers": str(k.headers), **tools}
    part = "selftests" if flavor == "test_progs" else f"selftests-{flavor}"
    return {"tools": f"{base}/tools-{digest(tools)}", "mods": f"{base}/testmod-{digest(mods)}",
            "selftests": f"{base}/{part}-{digest(tests)}",
            "helpers": f"{base}/helpers-{digest(tools)}"}


def mkfs_argv(image: Path) -> list[str]:
    """An ext4 file system on the (sparse) build disk image, quickly: its inode tables
    and journal are initialised lazily."""
    return ["mkfs.ext4", "-q", "-F", "-L", "harness-build",
            "-E", "lazy_itable_init=1,lazy_journal_init=1", str(image)]


def disk_path(cache_root: Path, tree_key: str, recipe_key: str, size: str) -> Path:
    """The tree's build disk for one guest toolchain and size (kept between runs: a run
    with another --guest-disk gets its own disk and leaves this one as it is)."""
    return cache_root / "guest" / tree_key / f"build-{recipe_key}-{size}.ext4"


def ensure_disk(path: Path, size: str, log_dir: Path) -> Path:
    """The build disk, made (sparse, ext4) when absent or not of its size."""
    wanted = _bytes(size)
    if path.is_file() and path.stat().st_size == wanted:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(wanted)
    proc.run(mkfs_argv(path), log=log_dir / "build-disk.log", timeout=300)
    return path


def _bytes(size: str) -> int:
    return int(size[:-1]) << {"K": 10, "M": 20, "G": 30}[size[-1]]


def makefile(m: MakeInputs, plan: discover.Plan) -> str:
    """The targeted test_progs Makefile with the guest's paths and its clang's includes."""
    return render_makefile(dataclasses.replace(m, sys_includes=(SYS_INCLUDES_MAKE,)), plan)


def guest_tools(dirs: dict[str, str]) -> Tools:
    """Where bpftool and libbpf are in the guest (as build_tools lays them out)."""
    out = Path(dirs["tools"])
    return Tools(bpftool=out / "bpftool/bpftool", libbpf_a=out / "libbpf/libbpf.a",
                 libbpf_include=out / "libbpf-dest/include")


def payload(plan: Plan, makefile_text: str, tests_h: str) -> tuple[tuple[str, bytes], ...]:
    """The files the guest's /harness gets for vm/build.sh."""
    script = (VM_DIR / "build.sh").read_bytes()
    return (("build.env", render_env(plan).encode()), ("build.sh", script),
            ("build/tests.h", tests_h.encode()), ("build/targeted.mk", makefile_text.encode()))
