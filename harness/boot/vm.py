"""Booting the guest: QEMU argv as data, and the outcome read from dedicated channels.

The guest's /init writes test_progs output, dmesg and finally its exit status to three
serial ports backed by files in the run directory.  The status file is the only proof the
run completed: without it the outcome is "VM lost" (or a panic, when the console says so),
never a test result.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import ACCELS, VmSpec
from harness.errors import (
    BootError,
    HarnessTimeout,
    KernelPanic,
    RunTimeout,
    UsageError,
    VmLost,
)
from harness.host import proc
from harness.outcome.splats import bare

BOOT_MARKER = "HARNESS: booted"
SETUP_MARKER = "HARNESS: rootfs: "  # stage 1 could not set up the root filesystem
STATUS_RE = re.compile(r"HARNESS-EXIT (\d+)")
PANIC_RE = re.compile(r"Kernel panic - not syncing|end Kernel panic")
HALT_RE = re.compile(r"Power off not available|reboot: System halted")
GRACE = 3.0  # seconds QEMU gets to power off after the guest wrote its status
NO_POWEROFF = "ended by harness: the guest wrote its status but did not power off"
HALTED = "ended by harness: the guest halted without writing a status"
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


# One host thread runs every vCPU.  With a thread per vCPU (QEMU's default on x86), a
# vCPU can go on executing code another vCPU has just patched (the kernel patches its
# static branches through int3 while booting): seen here as an "Oops: int3" panic of the
# Debian kernel at boot, about one boot in a hundred.
TCG_ARGS = "tcg,thread=single"


@dataclass(frozen=True)
class GuestBuild:
    """What a build inside the guest adds to the VM: the share image (the tree's build
    inputs and the kernel's build directory, harness/build/share.py), the writable disk
    its outputs stay on between runs, and a port its build stream goes to."""

    share: Path  # read-only: /dev/vdb in the guest
    disk: Path  # read-write ext4: /dev/vdc
    stream: Path  # the host file of the guest's BUILD_PORT


BUILD_PORT = "harness.build"  # /sys/class/virtio-ports/*/name in the guest
BUILD_STREAM = "guest-build.log"


def guest_build_argv(build: GuestBuild) -> list[str]:
    """The share image read-only, the build disk writable, the build stream's port."""
    return [
        "-drive", f"file={build.share},if=virtio,format=raw,readonly=on",
        "-drive", f"file={build.disk},if=virtio,format=raw",
        "-device", "virtio-serial-pci",
        "-chardev", f"file,id=harness-build,path={build.stream}",
        "-device", f"virtserialport,chardev=harness-build,name={BUILD_PORT}",
    ]


def qemu_argv(
    qemu: str, spec: VmSpec, accel: Accel, *, kernel: Path, initrd: Path, run_dir: Path,
    disk: Path | None = None, build: GuestBuild | None = None,
) -> list[str]:
    """The full QEMU command line (pure: compared as a list in tests)."""
    argv = [qemu, "-accel", TCG_ARGS if accel.name == "tcg" else accel.name]
    if accel.name == "kvm":
        argv += ["-cpu", "host"]
    argv += [
        "-m", spec.memory, "-smp", str(spec.cpus),
        "-nodefaults", "-display", "none", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd),
        "-append", " ".join((*KERNEL_ARGS, *spec.kernel_args)),
        "-serial", "stdio",
    ]
    if disk is not None:  # the root filesystem image, read-only (the guest overlays it)
        argv += ["-drive", f"file={disk},if=virtio,format=raw,readonly=on"]
    if build is not None:
        if disk is None:
            raise UsageError("a build inside the guest needs the Debian root filesystem "
                             "with the toolchain: drop --rootfs initramfs")
        argv += guest_build_argv(build)
    for name in CHANNELS:
        argv += ["-serial", f"file:{run_dir / name}"]
    return argv


@dataclass
class Console:
    """What the console showed, gathered line by line while the VM runs."""

    booted_at: float | None = None
    panic: str | None = None
    halted: bool = False
    setup_error: str | None = None
    started: float = field(default_factory=time.monotonic)

    def feed(self, line: str) -> None:
        if SETUP_MARKER in line and self.setup_error is None:
            self.setup_error = line.split(SETUP_MARKER, 1)[1].strip()
        if BOOT_MARKER in line and self.booted_at is None:
            self.booted_at = time.monotonic() - self.started
        if self.panic is None and PANIC_RE.search(line):
            self.panic = line.strip()
        if HALT_RE.search(line):
            self.halted = True


class LineClock:
    """Tails a channel file, stamping each complete line with the host's clock."""

    def __init__(self, path: Path, started: float) -> None:
        self.path = path
        self.started = started
        self.offset = 0
        self.partial = b""
        self.stamped: list[tuple[float, str]] = []

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        now = time.monotonic() - self.started
        self.stamped += [(now, ln.decode(errors="replace")) for ln in complete]


@dataclass(frozen=True)
class Observed:
    """Everything the run showed, for the pure decision below."""

    status: int | None  # test_progs's exit status from the status channel
    booted_at: float | None
    panic: str | None
    stopped: str | None  # why the harness ended QEMU, if it did
    qemu_status: int
    seconds: float
    setup_error: str | None = None  # the guest could not mount its root filesystem


@dataclass(frozen=True)
class Outcome:
    exit_status: int  # test_progs's exit status in the guest
    boot_seconds: float
    seconds: float
    qemu_status: int
    ended: str  # "powered off", or why the harness ended QEMU
    stamped: tuple[tuple[float, str], ...] = ()  # test_progs lines with host times

    def as_dict(self) -> dict[str, object]:
        return {"boot_seconds": round(self.boot_seconds, 3), "seconds": round(self.seconds, 3),
                "qemu_status": self.qemu_status, "test_progs_exit": self.exit_status,
                "ended": self.ended}


def decide(seen: Observed, log: Path) -> Outcome:
    """The VM's outcome: a status to judge, or the error that says why there is none.

    A panic wins over everything; a status is used even when QEMU had to be ended
    (the guest could not power off); no status is a lost VM, a boot failure or a timeout,
    never a test result.
    """
    if seen.panic:
        raise KernelPanic(f"kernel panic: {bare(seen.panic)}", log,
                          in_tests=seen.booted_at is not None)
    if seen.setup_error:
        raise BootError(f"guest root filesystem: {seen.setup_error}", log)
    if seen.status is not None:
        return Outcome(exit_status=seen.status, boot_seconds=seen.booted_at or 0.0,
                       seconds=seen.seconds, qemu_status=seen.qemu_status,
                       ended=seen.stopped or "powered off")
    if seen.stopped == HALTED:
        raise BootError(f"VM lost: {seen.stopped}", log)
    if seen.stopped and seen.booted_at is None:
        raise HarnessTimeout(f"guest did not reach /init ({seen.stopped})", log)
    if seen.stopped and seen.stopped.startswith(proc.TIMEOUT_PREFIX):
        # the run's deadline, with the guest booted long before it (the boot watchdog
        # ends a boot that takes longer): the tests hung
        raise RunTimeout(f"test run did not finish: {seen.stopped}", log)
    if seen.stopped:
        raise HarnessTimeout(f"test run did not finish: {seen.stopped}", log)
    if seen.booted_at is None:
        raise BootError(f"guest did not boot: no exit status from the guest "
                        f"(qemu {_ended(seen.qemu_status)})", log)
    raise VmLost(f"VM lost after boot: qemu {_ended(seen.qemu_status)} before the guest "
                 f"wrote its exit status", log)


def _ended(status: int) -> str:
    """How QEMU ended, from its exit status (negative: the signal that killed it)."""
    if status < 0:
        return f"was killed by {signal.Signals(-status).name}"
    return f"exited {status}"


def read_status(text: str) -> int | None:
    m = STATUS_RE.search(text)
    return int(m[1]) if m else None


BUILD_DONE = "HARNESS-BUILD: done"
BUILD_TIMEOUT = "guest build timeout"


@dataclass
class BuildDeadline:
    """The guest's build must write its last line within `seconds` of the boot."""

    stream: Path
    seconds: float
    done: bool = False

    def passed(self, booted_at: float | None, elapsed: float) -> bool:
        if self.done or booted_at is None or elapsed - booted_at <= self.seconds:
            return False
        self.done = BUILD_DONE in _read(self.stream)
        return not self.done


@dataclass
class Watch:
    """The boot deadline, and ending QEMU once the guest has written its status."""

    console: Console
    status_file: Path
    boot_timeout: float
    clock: LineClock
    grace: float = GRACE
    status_seen: float | None = None
    halted_seen: float | None = None
    build: BuildDeadline | None = None  # a build inside the guest must end in time

    def __call__(self, elapsed: float) -> str | None:
        self.clock.poll()
        if self.console.booted_at is None and elapsed > self.boot_timeout:
            return f"boot timeout after {self.boot_timeout:.0f} s"
        if self.build and self.build.passed(self.console.booted_at, elapsed):
            return f"{BUILD_TIMEOUT} after {self.build.seconds:.0f} s"
        if self.status_seen is None and read_status(_read(self.status_file)) is not None:
            self.status_seen = elapsed
        if self.halted_seen is None and self.console.halted:
            self.halted_seen = elapsed
        if self.status_seen is not None:
            if self.console.halted or elapsed - self.status_seen > self.grace:
                return NO_POWEROFF
        elif self.halted_seen is not None and elapsed - self.halted_seen > self.grace:
            return HALTED
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def boot(argv: list[str], run_dir: Path, boot_timeout: float, run_timeout: float,
         build: BuildDeadline | None = None) -> Outcome:
    """Run the VM to completion and return test_progs's status; raise BootError (panic,
    lost VM, no boot) or HarnessTimeout (boot, build or run deadline) when there is none.
    With a build inside the guest, the run's deadline starts when the build's ends."""
    for name in CHANNELS:
        (run_dir / name).unlink(missing_ok=True)
    console = Console()
    log = run_dir / "console.log"
    clock = LineClock(run_dir / "test_progs.log", console.started)
    watch = Watch(console, run_dir / "status", boot_timeout, clock, build=build)
    total = run_timeout + (build.seconds if build else 0.0)
    streamed = proc.stream(argv, log=log, timeout=total, on_line=console.feed,
                           watchdog=watch)
    clock.poll()
    seen = Observed(status=read_status(_read(run_dir / "status")), booted_at=console.booted_at,
                    panic=console.panic, stopped=streamed.stopped,
                    qemu_status=streamed.returncode, seconds=streamed.seconds,
                    setup_error=console.setup_error)
    outcome = decide(seen, log)
    return dataclasses.replace(outcome, stamped=tuple(clock.stamped))


def kvm_present() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)
