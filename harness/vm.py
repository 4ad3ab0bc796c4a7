"""Booting the guest: QEMU argv as data, and the outcome read from dedicated channels.

The guest's /init writes test_progs output, dmesg and finally its exit status to three
serial ports backed by files in the run directory.  The status file is the only proof the
run completed: without it the outcome is "VM lost" (or a panic, when the console says so),
never a test result.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import proc
from harness.config import ACCELS, VmSpec
from harness.errors import BootError, HarnessTimeout, UsageError

BOOT_MARKER = "HARNESS: booted"
STATUS_RE = re.compile(r"HARNESS-EXIT (\d+)")
PANIC_RE = re.compile(r"Kernel panic - not syncing|end Kernel panic")
CHANNELS = ("test_progs.log", "dmesg.log", "status")
KERNEL_ARGS = ("console=ttyS0", "panic=-1", "oops=panic", "quiet", "rdinit=/init")


@dataclass(frozen=True)
class Accel:
    name: str  # "tcg" or "kvm"
    note: str  # why this accelerator was chosen


def choose_accel(requested: str | None, env: Mapping[str, str], kvm_present: bool) -> Accel:
    """TCG unless KVM is explicitly asked for and allowed.

    HARNESS_ACCEL=tcg in the environment always wins: these machines must not run KVM.
    """
    forced = env.get("HARNESS_ACCEL")
    if forced is not None and forced not in ACCELS:
        raise UsageError(f"HARNESS_ACCEL={forced}: must be one of {', '.join(ACCELS)}")
    if forced == "tcg":
        note = "forced by HARNESS_ACCEL=tcg"
        if requested == "kvm":
            note += " (overrides --accel kvm)"
        return Accel("tcg", note)
    wanted = requested or forced or "tcg"
    if wanted == "kvm" and not kvm_present:
        raise UsageError("--accel kvm: /dev/kvm is not available; use --accel tcg")
    return Accel(wanted, "requested" if requested else "default")


def qemu_argv(
    qemu: str, spec: VmSpec, accel: Accel, *, kernel: Path, initrd: Path, run_dir: Path,
) -> list[str]:
    """The full QEMU command line (pure: compared as a list in tests)."""
    argv = [qemu, "-accel", accel.name]
    if accel.name == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-m", spec.memory, "-smp", str(spec.cpus),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", " ".join((*KERNEL_ARGS, *spec.kernel_args)),
        "-serial", "stdio",
    ]
    for name in CHANNELS:
        argv += ["-serial", f"file:{run_dir / name}"]
    return argv


@dataclass
class Console:
    """What the console showed, gathered line by line while the VM runs."""

    booted_at: float | None = None
    panic: str | None = None
    lines: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def feed(self, line: str) -> None:
        if BOOT_MARKER in line and self.booted_at is None:
            self.booted_at = time.monotonic() - self.started
        if self.panic is None and PANIC_RE.search(line):
            self.panic = line.strip()


@dataclass(frozen=True)
class Outcome:
    exit_status: int  # test_progs's exit status in the guest
    boot_seconds: float
    seconds: float
    qemu_status: int


def read_status(text: str) -> int | None:
    m = STATUS_RE.search(text)
    return int(m[1]) if m else None


def _boot_watchdog(console: Console, boot_timeout: float, log: Path) -> Callable[[float], None]:
    def check(elapsed: float) -> None:
        if console.booted_at is None and elapsed > boot_timeout:
            raise HarnessTimeout(f"guest did not reach /init within {boot_timeout:.0f} s", log)
    return check


def boot(argv: list[str], run_dir: Path, boot_timeout: float, run_timeout: float) -> Outcome:
    """Run the VM to completion and return test_progs's status, or raise BootError."""
    for name in CHANNELS:
        (run_dir / name).unlink(missing_ok=True)
    console = Console()
    log = run_dir / "console.log"
    start = time.monotonic()
    rc = proc.stream(argv, log=log, timeout=run_timeout, on_line=console.feed,
                     watchdog=_boot_watchdog(console, boot_timeout, log))
    status_file = run_dir / "status"
    status = read_status(status_file.read_text()) if status_file.is_file() else None
    if console.panic:
        raise BootError(f"kernel panic: {console.panic}", log)
    if status is None:
        what = "VM lost after boot" if console.booted_at is not None else "guest did not boot"
        raise BootError(f"{what}: no exit status from the guest (qemu exited {rc})", log)
    return Outcome(exit_status=status, boot_seconds=console.booted_at or 0.0,
                   seconds=time.monotonic() - start, qemu_status=rc)


def kvm_present() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)
