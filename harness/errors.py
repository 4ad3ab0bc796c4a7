"""Typed errors.  Library code raises these; only cli.py turns them into exit codes."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import stat
import tempfile
import traceback
from collections.abc import Sequence
from pathlib import Path

TAIL_LINES = 20


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def unreadable(path: Path) -> str | None:
    """Why `path` cannot be read as a file, in a few words (None: it can): it is missing,
    a directory, not a regular file (reading a FIFO would block), or not readable."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return "no such file"
    except PermissionError:
        return "not readable (permission denied)"
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    if not stat.S_ISREG(mode):
        return "is a directory, not a file" if stat.S_ISDIR(mode) else "not a regular file"
    return None if os.access(path, os.R_OK) else "not readable (permission denied)"


class HarnessError(Exception):
    """Base error: a one-line message plus, where there is one, the log to read."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log = log

    def line(self) -> str:
        """The one line printed to the user."""
        if self.log is not None:
            return f"{self.message} (log: {self.log})"
        return self.message


class UsageError(HarnessError):
    """Command-line arguments that cannot work together."""


class TreeError(HarnessError):
    """The kernel tree is missing, not a kernel tree, or has no matching kernel."""


class ToolchainError(HarnessError):
    """A program or library the build needs is not installed, or is older than the tree
    needs."""


class SelectionError(HarnessError):
    """The requested tests match nothing in the tree (or test_progs ran none)."""


class ConfigError(HarnessError):
    """A requested kernel config option is unknown, or olddefconfig dropped or changed it."""


class BuildError(HarnessError):
    """A build step failed."""


class DiskFull(HarnessError):
    """No space left on the device a build, a checkout or the run directory writes to."""


NO_SPACE = "No space left on device"


def no_space(what: str, where: Path, log: Path | None = None) -> DiskFull:
    """The error for a full disk, naming the directory and the space left there."""
    place = where
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = f"{shutil.disk_usage(place).free / 2**20:.0f} MB free"
    except OSError:
        free = "free space unknown"
    return DiskFull(f"{what}: no space left on device under {where} ({free}): free some "
                    f"space (harness cache prune) or pass --cache/--out on a larger disk", log)


def os_error(exc: OSError, where: Path) -> HarnessError:
    """An OSError that reached the top: a full disk is the user's to fix (DiskFull),
    anything else is a bug (internal_error)."""
    if exc.errno == errno.ENOSPC:
        name = exc.filename or where
        return no_space(f"writing {name}", Path(name).parent)
    return internal_error(exc, where)


class BootError(HarnessError):
    """The VM did not boot, panicked, or was lost before reporting a status."""


class KernelPanic(BootError):
    """The guest kernel panicked; `in_tests` when it had reached the guest's /init (the
    tests were running), else it never booted."""

    def __init__(self, message: str, log: Path | None = None, in_tests: bool = False) -> None:
        super().__init__(message, log)
        self.in_tests = in_tests


class VmLost(BootError):
    """The guest booted, then QEMU ended without the guest's exit status: killed from
    outside (a signal), or exited by itself."""


class GuestError(BootError):
    """test_progs could not run in the guest: no result line and no crash (126, 127), or
    it exited 3 (EXIT_ERR_SETUP_INFRA: its own setup failed)."""


class KernelSplat(HarnessError):
    """The tests passed, but the kernel reported a problem while they ran (a WARNING, BUG,
    oops, sanitizer report, lockup, stall: harness/outcome/splats.py)."""


class InfraError(HarnessError):
    """A test could not run because the guest lacked something the harness provides (a
    BPF object, a command, a test module, the kernel config): harness/outcome/infra.py."""


class HarnessTimeout(HarnessError):
    """A step ran past its time limit."""


class RunTimeout(HarnessTimeout):
    """The guest booted and the tests started, but the run did not finish in time (a
    hang while the tests ran)."""


class BisectRefused(HarnessError):
    """A bisection's endpoints do not behave: the old one fails or the new one passes the
    selected tests (or cannot be judged), or git refuses the range."""


class BisectAmbiguous(HarnessError):
    """Skipped commits leave more than one candidate for the first bad (or fixed) commit."""

    def __init__(self, message: str, candidates: Sequence[str], log: Path | None = None,
                 ) -> None:
        super().__init__(message, log)
        self.candidates = list(candidates)


class ParseError(HarnessError):
    """A saved log could not be read."""


class InternalError(HarnessError):
    """A bug in harness itself; the traceback is in the log."""


def internal_error(exc: BaseException, where: Path) -> InternalError:
    """A bug: its traceback goes to `where`/traceback.txt (or, if that cannot be written,
    to a fresh temporary directory), named by the error.  Never raises."""
    text = "".join(traceback.format_exception(exc))
    for place in (where, None):
        try:
            folder = place or Path(tempfile.mkdtemp(prefix="harness-traceback-"))
            folder.mkdir(parents=True, exist_ok=True)
            dump = folder / "traceback.txt"
            dump.write_text(text)
            return InternalError(f"internal error: {exc!r}", dump)
        except OSError:
            continue
    return InternalError(f"internal error: {exc!r} (traceback not saved)")


class SeriesError(HarnessError):
    """The series input cannot be read: empty, not mail, a corrupt diff, unreachable."""


class BtfError(HarnessError):
    """Unreadable BTF: bad magic, truncated, an id out of range, a cycle."""


class EngineUnavailable(HarnessError):
    """No Docker engine is reachable (a run --in-container, `harness image`)."""


class EngineError(HarnessError):
    """The engine refused or failed what the harness asked (an image, a container)."""


class ApplyError(HarnessError):
    """A patch of the series does not apply to the tree."""


class ProcError(HarnessError):
    """A helper command (git, tar, dpkg-query, ...) exited non-zero where it must not."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str,
                 log: Path | None) -> None:
        name = " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv[:3]))
        last = next((ln.strip() for ln in reversed(output.splitlines()) if ln.strip()), "")
        detail = f": {last}" if last else ""
        super().__init__(f"{name} exited with status {returncode}{detail}", log)
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.tail = tail(output)


class ProcTimeout(HarnessTimeout):
    """A command ran past its timeout and was killed (with its children)."""

    def __init__(self, argv: Sequence[str], timeout: float, log: Path | None) -> None:
        super().__init__(f"{Path(argv[0]).name} killed after {timeout:.0f} s", log)
        self.argv = list(argv)
        self.timeout = timeout


class Aborted(KeyboardInterrupt):
    """The user stopped the run (Ctrl-C) or it was terminated (SIGTERM).

    A KeyboardInterrupt, so that no `except Exception` can swallow it on its way up.
    """

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
