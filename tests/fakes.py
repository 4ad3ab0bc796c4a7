"""A fake process layer: records every argv, answers from rules, replays captured logs.

Installed with `proc.using(FakeProcs(...))`.  git goes to the real backend (the unit
tests use small real repositories); everything else (make, qemu, ldd, clang) is answered
by the first rule whose text occurs in the command line.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import git

from harness.host import proc

DATA = Path(__file__).parent / "data"
IDENTITY = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
            "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
MAKEFILE = "VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n"


def fake_kernel_repo(path: Path, makefile: str = MAKEFILE) -> git.Repo:
    """A tiny git repository that passes the kernel-tree check (no real sources)."""
    for marker in ("kernel/bpf", "tools/testing/selftests/bpf/prog_tests"):
        (path / marker).mkdir(parents=True)
        (path / marker / "x.c").write_text("/* */\n")
    (path / "Makefile").write_text(makefile)
    repo = git.Repo.init(path)
    repo.git.add("-A")
    repo.git.commit("-qm", "base", env=IDENTITY)
    return repo

Effect = Callable[[proc.Request], None]


@dataclass
class Rule:
    needle: str  # matched against " ".join(argv)
    rc: int = 0
    output: str = ""
    effect: Effect | None = None  # e.g. create the files a build would make


@dataclass
class VmScript:
    """What a fake QEMU run shows: console lines and the guest's channel files."""

    console: list[str]
    channels: dict[str, str]  # file name in the run directory → content
    rc: int = 0
    ticks: tuple[float, ...] = (0.5,)  # elapsed times at which the watchdog is called


def captured_vm(test_progs_log: str, status: str | None = "HARNESS-EXIT 0\n",
                console: str = "console-pass.log", dmesg: str | None = None) -> VmScript:
    channels = {"test_progs.log": (DATA / test_progs_log).read_text(),
                "dmesg.log": (DATA / dmesg).read_text() if dmesg else ""}
    if status is not None:
        channels["status"] = status
    return VmScript(console=(DATA / console).read_text().splitlines(), channels=channels)


@dataclass
class FakeProcs:
    rules: list[Rule] = field(default_factory=list)
    vm: Callable[[proc.Request], VmScript] | None = None
    calls: list[list[str]] = field(default_factory=list)
    real: proc.Real = field(default_factory=proc.Real)

    def on(self, needle: str, rc: int = 0, output: str = "",
           effect: Effect | None = None) -> FakeProcs:
        self.rules.append(Rule(needle, rc, output, effect))
        return self

    def ran(self, needle: str) -> bool:
        return any(needle in " ".join(c) for c in self.calls)

    def run(self, req: proc.Request) -> proc.Completed:
        self.calls.append(list(req.argv))
        if req.argv[0] == "git":
            return self.real.run(req)
        text = " ".join(req.argv)
        rule = next((r for r in self.rules if r.needle in text), None)
        if rule is None:
            raise AssertionError(f"fake process layer: no rule for {text!r}")
        if rule.effect is not None:
            rule.effect(req)
        if req.log is not None:
            req.log.write_text(rule.output)
        if req.stdout is not None:
            req.stdout.write_text(rule.output)
        return proc.Completed(list(req.argv), rule.rc, rule.output, 0.0, req.log)

    def stream(self, req: proc.Request, on_line: Callable[[str], None],
               watchdog: proc.Watchdog | None) -> proc.Streamed:
        assert req.log is not None
        if "qemu" not in req.argv[0]:  # a streamed build: the rules, line by line
            done = self.run(req)  # records the call
            for line in done.output.splitlines():
                on_line(line)
            if watchdog is not None:
                watchdog(0.0)
            return proc.Streamed(done.returncode, None, 0.0)
        self.calls.append(list(req.argv))
        assert self.vm is not None, "no VM script for a stream"
        script = self.vm(req)
        run_dir = req.log.parent
        for name, text in script.channels.items():
            (run_dir / name).write_text(text)
        req.log.write_text("\n".join(script.console) + "\n")
        for line in script.console:
            on_line(line)
        for at in script.ticks:
            if watchdog is not None and (reason := watchdog(at)) is not None:
                return proc.Streamed(-9, reason, at)
        return proc.Streamed(script.rc, None, script.ticks[-1])


def elf_with_section(name: str, data: bytes) -> bytes:
    """A minimal ELF64 little-endian file holding one named section (and .shstrtab)."""
    shstrtab = b"\0" + name.encode() + b"\0.shstrtab\0"
    ehsize, shentsize = 64, 64
    data_off = ehsize
    str_off = data_off + len(data)
    sh_off = str_off + len(shstrtab)
    header = (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
              + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, sh_off, 0, ehsize, 0, 0,
                            shentsize, 3, 2))

    def section(name_off: int, kind: int, offset: int, size: int) -> bytes:
        return struct.pack("<IIQQQQIIQQ", name_off, kind, 0, 0, offset, size, 0, 0, 1, 0)

    sections = (bytes(shentsize) + section(1, 1, data_off, len(data))
                + section(len(name) + 2, 3, str_off, len(shstrtab)))
    return header + data + shstrtab + sections
