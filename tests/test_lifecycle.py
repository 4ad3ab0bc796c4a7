"""The run ends cleanly whatever happens to it: real QEMU, real signals.

- A guest that writes its status but cannot power off (`harness.halt_at_end` makes the
  guest's /init halt instead of rebooting, as a kernel without ACPI halts on poweroff:
  the kernel prints "reboot: System halted" and QEMU keeps running) is ended after a
  short grace period and judged from its status.
- Ctrl-C (SIGINT) or SIGTERM during the boot: QEMU is ended, report.json says `aborted`,
  the exit code is its own, and no QEMU is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from junit_schema import validate

from harness import cli
from harness.boot import vm

pytestmark = [pytest.mark.integration, pytest.mark.vm, pytest.mark.build]


def _qemus_for(run_dir: Path) -> list[int]:
    """QEMU processes whose command line names this run directory."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"qemu-system-x86_64") and any(
                str(run_dir).encode() in a for a in argv):
            found.append(int(cmdline.parent.name))
    return found


def test_guest_that_cannot_power_off(default_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    started = time.monotonic()
    assert cli.main(["run", "--append", "harness.halt_at_end", "--out", str(out)]
                    ) == cli.EXIT_PASS
    assert time.monotonic() - started < 300
    report = json.loads((out / "report.json").read_text())
    assert report["vm"]["ended"] == vm.NO_POWEROFF
    boot = next(s for s in report["stages"] if s["name"] == "boot+run")
    assert boot["seconds"] < 60  # not the 900 s run timeout
    assert "reboot: System halted" in (out / "console.log").read_text()
    assert _qemus_for(out) == []
    validate(out / "junit.xml")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_boot_aborts(default_tree: Path, tmp_path: Path, signum: int) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "HARNESS_ACCEL": "tcg"}
    # As from a terminal: a shell runs background jobs with SIGINT ignored, and a child
    # inherits that, so a test run started with `&` would otherwise send Ctrl-C to no one.
    # A handler (unlike SIG_IGN) is not inherited: the child starts with the default.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        p = subprocess.Popen([sys.executable, "-m", "harness", "run", "--out", str(out)],
                             env=env, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert p.stderr is not None
    for line in p.stderr:
        if "boot+run ..." in line:
            break
    deadline = time.monotonic() + 30
    while not (out / "console.log").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    assert _qemus_for(out), "QEMU should be running"
    sent = time.monotonic()
    p.send_signal(signum)
    code = p.wait(timeout=30)
    assert time.monotonic() - sent < 10
    assert code == cli.EXIT_ABORTED
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "aborted" and report["exit_code"] == cli.EXIT_ABORTED
    assert signal.Signals(signum).name in report["reason"]
    assert report["stages"][-1]["name"] == "boot+run"
    assert report["stages"][-1]["status"] == "aborted"
    assert _qemus_for(out) == []
    validate(out / "junit.xml")
