"""One frozen configuration, built once from the command line and passed explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TESTS = ("test_struct_ops_module",)
ACCELS = ("tcg", "kvm")
FLAVORS = ("test_progs", "test_progs-no_alu32", "test_progs-cpuv4")
FLAKY_POLICIES = ("pass", "fail")
ROOTS = ("debian", "initramfs")
BUILD_PLACES = ("host", "guest")


def default_cache() -> Path:
    """Where trees and builds are kept between runs ($HARNESS_CACHE or XDG cache)."""
    if "HARNESS_CACHE" in os.environ:
        return Path(os.environ["HARNESS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harness"


@dataclass(frozen=True)
class Toolchain:
    """Names of the programs the build uses."""

    clang: str = "clang-19"
    cc: str = "gcc"
    make: str = "make"
    qemu: str = "qemu-system-x86_64"
    busybox: str = "/bin/busybox"

    @property
    def llvm_suffix(self) -> str:
        """'-19' for clang-19, '' for a bare clang: the LLVM tools follow the same suffix."""
        return self.clang[len("clang"):] if self.clang.startswith("clang") else ""

    @property
    def llvm_strip(self) -> str:
        return f"llvm-strip{self.llvm_suffix}"


@dataclass(frozen=True)
class Timeouts:
    build: float = 1800.0
    kernel_build: float = 7200.0  # a cold build of the selftests profile takes an hour here
    boot: float = 120.0
    run: float = 900.0


@dataclass(frozen=True)
class VmSpec:
    accel: str | None = None  # None: HARNESS_ACCEL, else TCG
    memory: str = "2G"
    cpus: int = 2
    kernel_args: tuple[str, ...] = ()  # appended to the guest kernel command line


@dataclass(frozen=True)
class RunConfig:
    out: Path
    cache: Path
    tree: Path | None = None
    rev: str = "HEAD"
    tests: tuple[str, ...] = DEFAULT_TESTS  # file stems or test_progs -t names
    allow: tuple[str, ...] = ()  # test_progs -a globs or @FILE lists
    deny: tuple[str, ...] = ()  # test_progs -d globs or @FILE lists
    tree_denylist: bool = True  # honour the tree's DENYLIST, DENYLIST.<arch>, DENYLIST-<x.y>
    flavor: str = "test_progs"  # or test_progs-no_alu32, test_progs-cpuv4
    root: str = "debian"  # the guest's root: a Debian image (rootfs.py) or the initramfs
    kernel_mode: str = "auto"  # auto | prebuilt | build | image (kernel and headers set)
    kernel: Path | None = None
    headers: Path | None = None
    kconfig: tuple[str, ...] = ("minimal",)  # profiles and fragments of a built kernel
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    vm: VmSpec = VmSpec()
    timeouts: Timeouts = Timeouts()
    toolchain: Toolchain = Toolchain()
    dry_run: bool = False
    allow_splats: tuple[str, ...] = ()  # regexes of kernel reports that do not fail a run
    retries: int = 0  # reruns of what failed, in the same boot
    flaky: str = "pass"  # a subtest that passed on a retry: "pass" or "fail" the run
    build_in: str = "host"  # where bpftool, the modules and test_progs are built
    guest_disk: str = "4G"  # the guest's build disk (--build-in guest), sparse


# The defaults, for help texts (the paths are placeholders: the CLI always sets them).
DEFAULTS = RunConfig(out=Path("harness-runs"), cache=Path("~/.cache/harness"))
