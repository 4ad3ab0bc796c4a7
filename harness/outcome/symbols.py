"""Source lines for the frames of a kernel report, by the tree's own scripts/faddr2line.

A report's stack names frames as `function+0xoffset/0xsize`, with ` [module]` for a
module's.  faddr2line turns them into `file:line` given the object with its debug info:
the vmlinux of a kernel built from the tree, or the test module the harness built (the
Debian kernel's headers ship a vmlinux without debug info: its own frames stay as they
are).  Parsing the frames and faddr2line's answer is pure; running it is run.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

FRAME_RE = re.compile(r"(?:^|[\s:?(])(?P<func>[A-Za-z_][\w.]*)\+(?P<off>0x[0-9a-f]+)/"
                      r"(?P<size>0x[0-9a-f]+)(?: \[(?P<module>\w+)\])?")
HEADER_RE = re.compile(r"^(?P<frame>\S+\+0x[0-9a-f]+/0x[0-9a-f]+):$")
AT_RE = re.compile(r"^(?:\(inlined by\) )?\S+ at (?P<where>\S+:\d+)")
MAX_FRAMES = 16  # per object: a report's first frames are the ones that matter


@dataclass(frozen=True)
class Frame:
    func: str
    offset: str
    size: str
    module: str | None  # None: vmlinux

    @property
    def spec(self) -> str:
        """What faddr2line takes: func+0xoff/0xsize."""
        return f"{self.func}+{self.offset}/{self.size}"


def frames(lines: Iterable[str]) -> list[Frame]:
    """The distinct frames a report names, in order."""
    seen: dict[tuple[str, str | None], Frame] = {}
    for line in lines:
        for m in FRAME_RE.finditer(line):
            f = Frame(m["func"], m["off"], m["size"], m["module"])
            seen.setdefault((f.spec, f.module), f)
    return list(seen.values())


def by_object(found: Iterable[Frame]) -> dict[str | None, list[Frame]]:
    """Frames grouped by the object to ask (None: vmlinux), at most MAX_FRAMES each."""
    grouped: dict[str | None, list[Frame]] = {}
    for f in found:
        group = grouped.setdefault(f.module, [])
        if len(group) < MAX_FRAMES:
            group.append(f)
    return grouped


def parse_faddr2line(output: str) -> dict[str, str]:
    """func+0xoff/0xsize → the first `file:line` faddr2line gave for it (the innermost,
    when the frame was inlined)."""
    found: dict[str, str] = {}
    current: str | None = None
    for line in output.splitlines():
        if m := HEADER_RE.match(line.strip()):
            current = m["frame"]
        elif current and (m := AT_RE.match(line.strip())) and current not in found:
            found[current] = m["where"]
    return found
