"""Kernel splats: the reports the kernel prints when something went wrong, found in a log.

A run whose subtests all pass is still not a pass when the kernel warned, oopsed, hit a
sanitizer, locked up or stalled while the tests ran.  The patterns follow the kernel's own
message formats (the function that prints each is named beside it); a report is cut from
its first line to the kernel's end marker and classified by the most specific family any
of its lines names (a refcount_t warning is `refcount`, not a bare `warning`).  Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
CUT_HERE = "------------[ cut here ]------------"  # __warn(), report_bug(): a report follows
END = re.compile(r"^---\[ end ")  # "---[ end trace ...", "---[ end Kernel panic ..."
KASAN_RULE = re.compile(r"^={40,}$")  # KASAN frames its report (allocation, memory) in these
MAX_LINES = 120  # a report longer than this is cut (the log keeps it whole)


@dataclass(frozen=True)
class Family:
    name: str
    pattern: re.Pattern[str]
    what: str  # where the kernel prints it


def _family(name: str, pattern: str, what: str) -> Family:
    return Family(name, re.compile(pattern), what)


# Most specific first: a report takes the first family any of its lines matches.
FAMILIES: tuple[Family, ...] = (
    _family("panic", r"^Kernel panic - not syncing: ", "panic()"),
    _family("kasan", r"^BUG: KASAN: ", "mm/kasan/report.c"),
    _family("ubsan", r"^UBSAN: ", "lib/ubsan.c ubsan_prologue()"),
    _family("soft-lockup", r"^watchdog: BUG: soft lockup - CPU#\d+ stuck for ",
            "kernel/watchdog.c watchdog_timer_fn()"),
    _family("hard-lockup", r"^(watchdog|NMI watchdog): Watchdog detected hard LOCKUP on cpu ",
            "kernel/watchdog.c watchdog_hardlockup_check()"),
    _family("rcu-stall", r"^rcu: INFO: \S+ (self-detected stall on CPU|detected stalls on "
                         r"CPUs/tasks|detected expedited stalls)",
            "kernel/rcu/tree_stall.h"),
    _family("hung-task", r"^INFO: task \S.* blocked for more than \d+ seconds\.",
            "kernel/hung_task.c check_hung_task()"),
    _family("refcount", r"^refcount_t: ", "lib/refcount.c refcount_warn_saturate()"),
    _family("lockdep", r"^WARNING: (possible circular locking|possible recursive locking|"
                       r"inconsistent lock state|suspicious RCU usage|bad unlock balance|"
                       r"held lock freed|lock held when returning)",
            "kernel/locking/lockdep.c"),
    _family("oops", r"^(Oops: |kernel BUG at \S+:\d+!)",
            "arch/x86/kernel/dumpstack.c __die_header(), lib/bug.c report_bug()"),
    _family("bug", r"^BUG: ", "BUG reports: scheduling while atomic, page faults, ..."),
    _family("warning", r"^WARNING: CPU: \d+ PID: \d+ at ", "kernel/panic.c __warn()"),
)
STARTS = tuple(f.pattern for f in FAMILIES)
FAMILIES_BY_NAME = {f.name: f for f in FAMILIES}

# Lines that are never a splat, whatever a pattern says (README: "Kernel splats").
ALLOWED_LINES: tuple[tuple[str, str], ...] = (
    (r"loading out-of-tree module taints kernel\.",
     "the test modules are built out of tree (bpf_testmod and its kin)"),
    (r"module verification failed: signature and/or required key missing - tainting kernel",
     "the test modules are not signed"),
)
ALLOWED = tuple(re.compile(p) for p, _ in ALLOWED_LINES)


@dataclass(frozen=True)
class Splat:
    family: str
    title: str  # the line that named the family (without its timestamp)
    lines: tuple[str, ...]  # the report as logged
    first: int  # its first line's index in the log (0-based)
    allowed_by: str | None = None  # the --allow-splat pattern that waved it through
    sources: tuple[tuple[str, str], ...] = ()  # (frame, file:line) from faddr2line

    def as_dict(self) -> dict[str, object]:
        return {"family": self.family, "title": self.title, "line": self.first + 1,
                "lines": list(self.lines), "allowed_by": self.allowed_by,
                "sources": dict(self.sources)}

    def text(self) -> str:
        """The report as logged, then the source line of each frame that has one."""
        where = [f"  {frame}: {line}" for frame, line in self.sources]
        return "\n".join([*self.lines, *(["source lines (faddr2line):", *where] if where
                                          else [])])


def bare(line: str) -> str:
    """A log line without its printk timestamp."""
    return TIMESTAMP.sub("", line.rstrip("\r\n"))


def _starts(text: str) -> bool:
    return text == CUT_HERE or any(p.search(text) for p in STARTS)


def _end(lines: Sequence[str], start: int) -> int:
    """The index after the report that begins at `start`."""
    limit = min(len(lines), start + MAX_LINES)
    framed = bool(FAMILIES_BY_NAME["kasan"].pattern.search(bare(lines[start])))
    i = start + 1
    while i < limit:
        text = bare(lines[i])
        if END.search(text) or (framed and KASAN_RULE.match(text)):
            return i + 1
        if _starts(text) and not _continues(lines, start, i):
            return i
        if text.strip() == "</TASK>" and not framed and not _ends_next(lines, i + 1):
            return i + 1
        i += 1
    return limit


OOPS_AFTER_BUG = 6  # "BUG: kernel NULL pointer dereference", #PF lines, then "Oops: "


def _continues(lines: Sequence[str], start: int, i: int) -> bool:
    """The message and the WARNING line right after "cut here" belong to its report, as
    does the "Oops:" line a few lines after the BUG line of a fault."""
    first = bare(lines[start])
    if first == CUT_HERE:
        return i - start <= 3
    oops = FAMILIES_BY_NAME["oops"].pattern.search(bare(lines[i]))
    return first.startswith("BUG: ") and i - start <= OOPS_AFTER_BUG and bool(oops)


def _ends_next(lines: Sequence[str], i: int) -> bool:
    return i < len(lines) and bool(END.search(bare(lines[i])))


def _classify(block: Sequence[str]) -> tuple[Family, str] | None:
    texts = [bare(ln) for ln in block]
    for family in FAMILIES:
        title = next((t for t in texts if family.pattern.search(t)), None)
        if title is not None:
            return family, title
    return None


def scan(lines: Iterable[str], allow: Sequence[re.Pattern[str]] = ()) -> list[Splat]:
    """Every kernel report in a log (dmesg or the console), in order.  `allow`: patterns
    of known benign reports (matched against the title): kept, marked allowed."""
    # allowed lines are blanked, not dropped, so that indices stay the log's
    kept = ["" if any(a.search(ln) for a in ALLOWED) else ln for ln in lines]
    found: list[Splat] = []
    i = 0
    while i < len(kept):
        if not _starts(bare(kept[i])):
            i += 1
            continue
        end = _end(kept, i)
        named = _classify(kept[i:end])
        if named is not None:
            family, title = named
            waved = next((a.pattern for a in allow if a.search(title)), None)
            found.append(Splat(family.name, title, tuple(ln.rstrip("\r\n") for ln in
                                                         kept[i:end]), i, waved))
        i = end
    return found


def gating(splats: Iterable[Splat]) -> list[Splat]:
    """The reports that fail a run: all but those an --allow-splat pattern waved through."""
    return [s for s in splats if s.allowed_by is None]


def summary(splats: Sequence[Splat]) -> str:
    """One line: how many reports of which families, and the first one's title."""
    families = sorted({s.family for s in splats})
    return (f"{len(splats)} kernel splat(s) ({', '.join(families)}): "
            f"first: {splats[0].title}")
