"""Missing test infrastructure, told apart from test failures.

A selftest that fails because the environment lacks something the harness should have
provided (a BPF object beside test_progs, a command, a test module, the kernel config
libbpf reads) says nothing about the kernel or the series.  This is the closed list of
signatures that mark such a failure; each one is a message format of libbpf, of
test_progs' helpers or of the shell, and each has a captured log in tests/data/.
Anything that matches none of them stays a test failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Signature:
    kind: str  # what was missing
    pattern: re.Pattern[str]
    source: str  # who prints it


SIGNATURES = (
    Signature("object not found", re.compile(
        r"libbpf: elf: failed to open (?P<what>\S+\.bpf\.o): (?:No such file|-ENOENT|-2\b)"),
        "libbpf's bpf_object__open"),
    Signature("missing command", re.compile(
        r"(?:^|\s)(?:sh|bash|/bin/sh)(?:: \d+)?: (?:\d+: )?(?P<what>[\w./\-]+): "
        r"(?:not found|command not found)"), "the shell behind system()"),
    Signature("missing module", re.compile(
        r"(?:Can't find (?P<what>\S+\.ko) kernel module|Failed to load (?P<what2>\S+\.ko) "
        r"into the kernel)"), "test_progs' load_module"),
    Signature("unreadable kernel config", re.compile(
        r"libbpf: (?P<what>failed to open system Kconfig)"), "libbpf's __kconfig externs"),
)


@dataclass(frozen=True)
class Missing:
    kind: str
    what: str
    line: str

    def text(self) -> str:
        return f"{self.kind}: {self.what}"


def _match(sig: Signature, line: str) -> str | None:
    m = sig.pattern.search(line)
    if m is None:
        return None
    return next(v for k, v in m.groupdict().items() if v is not None)


def scan(lines: Iterable[str]) -> list[Missing]:
    """Every signature of missing infrastructure in a log, in order, each once."""
    found: dict[tuple[str, str], Missing] = {}
    for line in lines:
        for sig in SIGNATURES:
            what = _match(sig, line)
            if what is not None:
                found.setdefault((sig.kind, what), Missing(sig.kind, what, line.strip()))
    return list(found.values())
