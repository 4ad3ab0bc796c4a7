"""The guest's root: a gzip'd newc cpio holding busybox, test_progs and what it loads.

The archive writer is pure Python (the newc format is a fixed 110-byte ASCII header per
entry); the list of entries comes from the build outputs plus the shared libraries that
`ldd` reports for test_progs.
"""

from __future__ import annotations

import gzip
import re
import stat
from collections.abc import Callable, Iterable
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


def render_run(payload: Payload, template: str) -> str:
    """The guest's stage 2: the template with test_progs's arguments (first run and
    retries) and the number of retries filled in."""
    args = test_progs_args(payload.allow, payload.deny)
    retry = test_progs_args((RETRY_LIST,), payload.deny, RETRY_LIST)
    return (template.replace("@ARGS@", " ".join(args))
            .replace("@RETRY_ARGS@", " ".join(retry))
            .replace("@RETRIES@", str(payload.retries)))


def test_progs_args(allow: tuple[str, ...], deny: tuple[str, ...], allow_list: str = "",
                    ) -> list[str]:
    """test_progs reads the selection back from list files in its directory (a retry
    reads the failed entries the guest wrote to `allow_list`)."""
    return [*(["-a", f"@{allow_list or ALLOW_LIST}"] if allow else []),
            *(["-d", f"@{DENY_LIST}"] if deny else [])]


ALLOW_LIST = "harness-allow.list"
DENY_LIST = "harness-deny.list"
RETRY_LIST = "harness-retry.list"  # written by the guest (vm/run.sh)


@dataclass(frozen=True)
class Payload:
    """What the guest gets: test_progs and the files beside it, the selection, the
    kernel's config, and how its root is made."""

    busybox: Path
    test_progs: Path | None  # None: the guest builds it (--build-in guest)
    files: tuple[tuple[str, Path], ...]  # (name in test_progs's directory, host path)
    allow: tuple[str, ...] = ()  # list-file lines (select.FilterSet.lines)
    deny: tuple[str, ...] = ()
    kernel_config: Path | None = None
    rootfs: str | None = None  # the root filesystem's recipe key; None: this initramfs
    boot_modules: tuple[tuple[str, bytes], ...] = ()  # (file name, .ko bytes), in order
    kernel_modules: Path | None = None  # /lib/modules/<release>: the guest's modprobe loads
    #                                     what the tests need (sch_clsact, veth, ...)
    retries: int = 0  # reruns of what failed, in the same boot (--retries)
    guest_build: tuple[tuple[str, bytes], ...] = ()  # (path under /harness, data): what
    #                                                   vm/build.sh builds, and how

    @property
    def programs(self) -> tuple[Path, ...]:
        """The ELF programs whose libraries the guest needs."""
        built = (self.test_progs,) if self.test_progs else ()
        return (*built, *(p for _, p in self.files if _is_program(p)))


def _is_program(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"\x7fELF" and bool(path.stat().st_mode & stat.S_IXUSR)
    except OSError:
        return False


def _lists(payload: Payload) -> list[Entry]:
    out = []
    for name, lines in ((ALLOW_LIST, payload.allow), (DENY_LIST, payload.deny)):
        if lines:
            out.append(regular(f"{GUEST_TEST_DIR}/{name}", ("\n".join(lines) + "\n").encode()))
    return out


def _harness_files(payload: Payload, libraries: list[str]) -> list[Entry]:
    """/harness: busybox, stage 2, the kernel config, libraries and boot modules."""
    template = (VM_DIR / "run.sh").read_text()
    files = [host_file("harness/busybox", payload.busybox),
             regular("harness/run.sh", render_run(payload, template).encode(), True),
             regular("harness/failed.awk", (VM_DIR / "failed.awk").read_bytes())]
    if payload.kernel_config is not None:
        files.append(host_file("harness/kernel.config", payload.kernel_config))
    files += [regular(f"harness/{name}", data, name.endswith(".sh"))
              for name, data in payload.guest_build]
    if payload.rootfs is None:  # the initramfs is the root: libraries where ldd found them
        return files + [host_file(lib.lstrip("/"), Path(lib)) for lib in libraries]
    files += [host_file(f"harness/lib/{Path(lib).name}", Path(lib)) for lib in libraries]
    files += [regular("harness/rootfs", f"{payload.rootfs}\n".encode())]
    files += [regular(f"harness/modules/{name}", data) for name, data in payload.boot_modules]
    order = "".join(f"{name}\n" for name, _ in payload.boot_modules)
    return [*files, regular("harness/modules.order", order.encode())]


def entries(payload: Payload, libraries: list[str]) -> list[Entry]:
    files = [
        host_file("bin/busybox", payload.busybox),
        *([host_file(f"{GUEST_TEST_DIR}/test_progs", payload.test_progs)]
          if payload.test_progs else [directory(GUEST_TEST_DIR)]),
        *(host_file(f"{GUEST_TEST_DIR}/{name}", path) for name, path in payload.files),
        *_lists(payload),
        *_harness_files(payload, libraries),
        *_module_tree(payload.kernel_modules),
        regular("init", (VM_DIR / "init.sh").read_bytes(), True),
    ]
    dirs = with_parents([f.path for f in files])
    mounts = [directory(d) for d in ("proc", "sys", "dev", "tmp", "run")]
    return [*dirs, *mounts, *files]


def _module_tree(root: Path | None) -> list[Entry]:
    """An installed kernel's modules at their place (symlinks to its sources left out)."""
    if root is None:
        return []
    return [host_file(f"lib/modules/{root.name}/{p.relative_to(root)}", p)
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]


def libraries(programs: Iterable[Path], present: Callable[[str], bool]) -> list[str]:
    """The shared libraries the programs load that the guest's root does not have."""
    found: dict[str, None] = {}
    for program in programs:
        for lib in parse_ldd(proc.capture(["ldd", str(program)], check=False)):
            if not present(lib):
                found[lib] = None
    return list(found)


def assemble(payload: Payload, dest: Path, present: Callable[[str], bool] | None = None,
             ) -> int:
    """Write the gzip'd archive to dest and return its size in bytes.  `present` says
    whether the guest's root already has a library (default: nothing is there)."""
    libs = libraries(payload.programs, present or (lambda _: False))
    data = gzip.compress(newc(entries(payload, libs)), compresslevel=1)
    dest.write_bytes(data)
    return len(data)
