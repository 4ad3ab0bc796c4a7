"""Preflight: the programs and libraries a run needs, each named with its Debian package."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness.config import Toolchain
from harness.errors import ToolchainError
from harness.host import proc

HEADERS = {"/usr/include/libelf.h": "libelf-dev", "/usr/include/zlib.h": "zlib1g-dev"}


@dataclass(frozen=True)
class Need:
    program: str
    package: str


def needs(tc: Toolchain) -> list[Need]:
    return [
        Need(tc.make, "make"),
        Need(tc.cc, "gcc"),
        Need(tc.clang, tc.clang),
        Need(tc.llvm_strip, f"llvm{tc.llvm_suffix}"),
        Need("pahole", "pahole"),
        Need(tc.qemu, "qemu-system-x86"),
        Need("ldd", "libc-bin"),
        Need("tar", "tar"),
        Need("git", "git"),
    ]


def _hint(package: str) -> str:
    return (f"install the Debian package {package} (apt-get install {package}) "
            f"or run the README's setup command")


def is_static(path: Path) -> bool:
    """True when the ELF file has no program interpreter (a statically linked binary)."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        return not any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())


def check(tc: Toolchain) -> None:
    """Raise ToolchainError naming the first missing program, header or static busybox."""
    for need in needs(tc):
        if shutil.which(need.program) is None:
            raise ToolchainError(f"{need.program} not found on PATH: {_hint(need.package)}")
    for header, package in HEADERS.items():
        if not Path(header).is_file():
            raise ToolchainError(f"{header} is missing: {_hint(package)}")
    busybox = Path(tc.busybox)
    try:
        static = busybox.is_file() and is_static(busybox)
    except ELFError:
        static = False
    if not static:
        raise ToolchainError(f"{busybox} is not a static busybox: {_hint('busybox-static')}")


# What a kernel build runs beyond a run's needs (kbuild's Kconfig parser, its timeconst).
KERNEL_BUILD = (Need("flex", "flex"), Need("bison", "bison"), Need("bc", "bc"))


def check_kernel_build() -> None:
    """Raise ToolchainError naming the first program a kernel build needs and lacks."""
    for need in KERNEL_BUILD:
        if shutil.which(need.program) is None:
            raise ToolchainError(f"{need.program} not found on PATH (the kernel build needs "
                                 f"it): {_hint(need.package)}")


def has_ccache() -> bool:
    """Kernel builds go through ccache (Debian's ccache) when it is installed."""
    return shutil.which("ccache") is not None


def versions(tc: Toolchain) -> dict[str, str]:
    """First line of each tool's --version, for the report."""
    found: dict[str, str] = {}
    for name, argv in {
        "clang": [tc.clang, "--version"], "gcc": [tc.cc, "--version"],
        "qemu": [tc.qemu, "--version"], "pahole": ["pahole", "--version"],
        "make": [tc.make, "--version"],
    }.items():
        try:
            found[name] = proc.capture(argv).splitlines()[0].strip()
        except (proc.ProcError, ToolchainError, IndexError):
            found[name] = "unknown"
    return found
