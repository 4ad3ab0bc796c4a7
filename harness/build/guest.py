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

import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.build.targeted import first_error
from harness.errors import NO_SPACE, BuildError, DiskFull, HarnessError, RunTimeout

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
            return RunTimeout(f"guest build hung: step {broken.name} did not end before the "
                              f"build deadline (raise it with --build-timeout)", log)
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
