"""The guest's root: a gzip'd newc cpio holding busybox, test_progs and what it loads.

The archive writer is pure Python (the newc format is a fixed 110-byte ASCII header per
entry); the list of entries comes from the build outputs plus the shared libraries that
`ldd` reports for test_progs.
"""

from __future__ import annotations

import gzip
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.host import proc

NEWC_MAGIC = "070701"
TRAILER = "TRAILER!!!"
GUEST_TEST_DIR = "root/test"
VM_DIR = Path(__file__).resolve().parents[2] / "vm"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the archive, no leading slash
    mode: int  # full st_mode: type bits and permissions
    data: bytes = b""


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry, name: bytes) -> bytes:
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = [ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, 0, 0, len(name), 0]
    return (NEWC_MAGIC + "".join(f"{v:08x}" for v in fields)).encode()


def newc(entries: Iterable[Entry]) -> bytes:
    """Serialize entries as a newc ("070701") cpio archive with its trailer."""
    out = bytearray()
    all_entries = [*entries, Entry(TRAILER, 0)]
    for ino, entry in enumerate(all_entries, start=1):
        name = entry.path.encode() + b"\0"
        head = _header(ino if entry.path != TRAILER else 0, entry, name)
        out += head + name + _pad4(len(head) + len(name))
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def directory(path: str) -> Entry:
    return Entry(path, stat.S_IFDIR | 0o755)


def regular(path: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(path, stat.S_IFREG | (0o755 if executable else 0o644), data)


def host_file(path: str, source: Path) -> Entry:
    resolved = source.resolve()
    executable = bool(resolved.stat().st_mode & stat.S_IXUSR)
    return regular(path, resolved.read_bytes(), executable)


LDD_RE = re.compile(r"^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)\s*$")


def parse_ldd(text: str) -> list[str]:
    """Absolute paths of the libraries (and loader) in `ldd` output; vdso lines skipped."""
    return [m[1] for line in text.splitlines() if (m := LDD_RE.match(line))]


def with_parents(paths: Iterable[str]) -> list[Entry]:
    """Directory entries for every parent of the given archive paths, outermost first."""
    dirs: set[str] = set()
    for p in paths:
        parts = p.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return [directory(d) for d in sorted(dirs, key=lambda d: (d.count("/"), d))]


def render_init(tests: Iterable[str], template: str) -> str:
    """The guest's /init: the template with the test_progs filter filled in."""
    return template.replace("@TESTS@", ",".join(tests))


@dataclass(frozen=True)
class Payload:
    busybox: Path
    test_progs: Path
    module: Path
    bpf_objects: tuple[Path, ...]
    tests: tuple[str, ...]  # test_progs -t names


def entries(payload: Payload, libraries: list[str]) -> list[Entry]:
    files = [
        host_file("bin/busybox", payload.busybox),
        host_file(f"{GUEST_TEST_DIR}/test_progs", payload.test_progs),
        host_file(f"{GUEST_TEST_DIR}/{payload.module.name}", payload.module),
        *(host_file(f"{GUEST_TEST_DIR}/{o.name}", o) for o in payload.bpf_objects),
        *(host_file(lib.lstrip("/"), Path(lib)) for lib in libraries),
    ]
    template = (VM_DIR / "init.sh").read_text()
    files.append(regular("init", render_init(payload.tests, template).encode(), True))
    dirs = with_parents([f.path for f in files])
    mounts = [directory(d) for d in ("proc", "sys", "dev", "tmp", "run")]
    return [*dirs, *mounts, *files]


def assemble(payload: Payload, dest: Path) -> int:
    """Write the gzip'd archive to dest and return its size in bytes."""
    libraries = parse_ldd(proc.capture(["ldd", str(payload.test_progs)]))
    data = gzip.compress(newc(entries(payload, libraries)), compresslevel=1)
    dest.write_bytes(data)
    return len(data)
