"""The only module that starts processes.

Every command is an argv list with a mandatory timeout; its command line goes to the run's
`commands.log` and its output is teed into a log file of its own.  Each command runs in a
process group of its own, and the whole group is killed on a timeout, a stop request, or
any exception (Ctrl-C included), so no make, compiler or QEMU outlives its step.

The process starter is a `Backend`: the real one here, a replaying fake in the tests
(`using(fake)` swaps it for the duration of a `with` block).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TextIO

from harness.errors import ProcError, ProcTimeout, ToolchainError

__all__ = ["Backend", "Completed", "ProcError", "ProcTimeout", "Real", "Request", "Streamed",
           "capture", "daemon", "foreground", "kill_group", "run", "stream", "using"]

TICK = 0.25  # seconds between watchdog calls while streaming
KILL_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
EXIT_WAIT = 10.0  # seconds a streamed process may take to exit after closing its output
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

# A watchdog returns None to let the process go on, or a reason to end it now.
Watchdog = Callable[[float], str | None]


@dataclass(frozen=True)
class Request:
    argv: tuple[str, ...]
    timeout: float
    log: Path | None  # output (stdout and stderr) goes here; None: captured in memory
    cwd: Path | None = None
    env: Mapping[str, str | None] | None = None  # None as a value: unset the variable
    stdout: Path | None = None  # stdout alone into this file (stderr stays in log)


TIMEOUT_PREFIX = "timeout after"  # how a stream's deadline is reported (Streamed.stopped)


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    output: str  # the log's text (or, captured, stdout)
    seconds: float
    log: Path | None
    stderr: str = ""


@dataclass(frozen=True)
class Streamed:
    returncode: int
    stopped: str | None  # why the harness ended the process (None: it exited by itself)
    seconds: float


class Backend(Protocol):
    def run(self, req: Request) -> Completed: ...

    def stream(self, req: Request, on_line: Callable[[str], None],
               watchdog: Watchdog | None) -> Streamed: ...


def _env(extra: Mapping[str, str | None] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    for name, value in extra.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def _popen(req: Request, **kw: Any) -> subprocess.Popen[Any]:
    """Start the process in a group of its own; a missing program is a ToolchainError."""
    try:
        return subprocess.Popen(list(req.argv), cwd=req.cwd, env=_env(req.env),
                                stdin=subprocess.DEVNULL, start_new_session=True, **kw)
    except (FileNotFoundError, PermissionError) as exc:
        if req.cwd is not None and not req.cwd.is_dir():
            raise
        raise ToolchainError(f"{req.argv[0]}: cannot run it ({exc.strerror}); install it or "
                             f"run the README's setup command") from exc


def kill_group(p: subprocess.Popen[Any], grace: float = KILL_GRACE) -> None:
    """End the process and everything it started (its own process group).

    SIGTERM first, so make deletes a half-written target and git drops its lock files;
    SIGKILL after `grace` seconds.  Signals are blocked meanwhile: a second Ctrl-C
    cannot interrupt the cleanup.
    """
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
            try:
                p.wait(timeout=grace)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)  # what the leader left behind
                return
            except subprocess.TimeoutExpired:
                continue
        p.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Real:
    """Starts real processes."""

    def run(self, req: Request) -> Completed:
        start = time.monotonic()
        if req.log is None:
            return self._capture(req, start)
        with contextlib.ExitStack() as files:
            out = files.enter_context(req.log.open("w"))
            sink = files.enter_context(req.stdout.open("w")) if req.stdout else out
            p = _popen(req, stdout=sink, stderr=out)
            rc = _wait(p, req)
        output = req.log.read_text(errors="replace")
        return Completed(list(req.argv), rc, output, time.monotonic() - start, req.log)

    def _capture(self, req: Request, start: float) -> Completed:
        p = _popen(req, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   errors="replace")
        try:
            out, err = p.communicate(timeout=req.timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(p)
            raise ProcTimeout(req.argv, req.timeout, None) from exc
        except BaseException:
            kill_group(p)
            raise
        return Completed(list(req.argv), p.returncode, out, time.monotonic() - start, None, err)

    def stream(self, req: Request, on_line: Callable[[str], None],
               watchdog: Watchdog | None) -> Streamed:
        assert req.log is not None
        start = time.monotonic()
        lines: queue.Queue[str | None] = queue.Queue()
        with req.log.open("w") as out:
            p = _popen(req, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace")
            threading.Thread(target=_reader, args=(p.stdout, lines), daemon=True).start()
            try:
                stopped = _pump(lines, out, on_line, watchdog, start=start, timeout=req.timeout)
                if stopped is None:  # output closed: give the process a moment to exit
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        p.wait(timeout=EXIT_WAIT)
                    if p.returncode is None:
                        stopped = "still running after its output closed"
            finally:
                if p.returncode is None:
                    kill_group(p)
            return Streamed(p.returncode, stopped, time.monotonic() - start)


def _wait(p: subprocess.Popen[Any], req: Request) -> int:
    try:
        return p.wait(timeout=req.timeout)
    except subprocess.TimeoutExpired as exc:
        kill_group(p)
        raise ProcTimeout(req.argv, req.timeout, req.log) from exc
    except BaseException:
        kill_group(p)
        raise


def _reader(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    assert stream is not None
    for line in stream:
        lines.put(line)
    lines.put(None)


def _pump(lines: queue.Queue[str | None], out: TextIO, on_line: Callable[[str], None],
          watchdog: Watchdog | None, *, start: float, timeout: float) -> str | None:
    """Copy lines until EOF; return why the process must be ended early, if it must."""
    while True:
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            return f"{TIMEOUT_PREFIX} {timeout:.0f} s"
        if watchdog is not None and (reason := watchdog(elapsed)) is not None:
            return reason
        try:
            line = lines.get(timeout=TICK)
        except queue.Empty:
            continue
        if line is None:
            return None
        out.write(line)
        out.flush()
        on_line(line.rstrip("\r\n"))


_REAL = Real()
_backend: contextvars.ContextVar[Backend | None] = contextvars.ContextVar("backend",
                                                                         default=None)


def _current() -> Backend:
    return _backend.get() or _REAL


@contextlib.contextmanager
def using(backend: Backend) -> Iterator[Backend]:
    """Start processes through `backend` inside the block (the tests' fake)."""
    token = _backend.set(backend)
    try:
        yield backend
    finally:
        _backend.reset(token)


def _record(log: Path, argv: Sequence[str], cwd: Path | None) -> None:
    """Append the command line to the run's command log, beside the step's own log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    where = f" (cwd {cwd})" if cwd else ""
    with (log.parent / "commands.log").open("a") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {' '.join(argv)}{where} > {log.name}\n")


def run(
    argv: Sequence[str],
    *,
    log: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str | None] | None = None,
    check: bool = True,
    stdout: Path | None = None,
) -> Completed:
    """Run argv to completion, output into `log` (stdout into `stdout` if given)."""
    _record(log, argv, cwd)
    done = _current().run(Request(tuple(argv), timeout, log, cwd, env, stdout))
    if check and done.returncode != 0:
        raise ProcError(argv, done.returncode, done.output, log)
    return done


def capture(argv: Sequence[str], *, timeout: float = 30, with_stderr: bool = False,
            check: bool = True) -> str:
    """Run a short read-only query (a version, a library lookup) and return its output.

    Not logged to a run directory: these may run before one exists and change nothing.
    A failure names the command and its last line of stderr (`check=False`: the output
    whatever the exit status).
    """
    done = _current().run(Request(tuple(argv), timeout, None))
    if check and done.returncode != 0:
        raise ProcError(argv, done.returncode, done.stderr or done.output, None)
    return done.output + done.stderr if with_stderr else done.output


def foreground(argv: Sequence[str], *, timeout: float, cwd: Path | None = None) -> int:
    """Run argv with the terminal's stdout and stderr (bootstrap's tox tiers).

    Not through the backend: nothing is captured, so there is nothing to replay.
    """
    req = Request(tuple(argv), timeout, None, cwd)
    return _wait(_popen(req), req)


def stream(
    argv: Sequence[str],
    *,
    log: Path,
    timeout: float,
    on_line: Callable[[str], None],
    watchdog: Watchdog | None = None,
    env: Mapping[str, str | None] | None = None,
) -> Streamed:
    """Run argv, teeing each output line to `log` and handing it to `on_line`.

    `watchdog(elapsed)` is called about every TICK seconds; when it returns a reason, the
    process group is ended and the reason returned in `Streamed.stopped` (as it is when
    `timeout` passes).  Exceptions (Ctrl-C) end the process group before propagating.
    """
    _record(log, argv, None)
    return _current().stream(Request(tuple(argv), timeout, log, env=env), on_line, watchdog)


@contextlib.contextmanager
def daemon(argv: Sequence[str], *, log: Path, grace: float = KILL_GRACE,
           ) -> Iterator[subprocess.Popen[Any]]:
    """A background service for the block (bootstrap's Docker engine), its output in
    `log`; it and everything it started are ended when the block ends (SIGTERM, then
    SIGKILL `grace` seconds later)."""
    _record(log, argv, None)
    with log.open("w") as out:
        p = _popen(Request(tuple(argv), 0.0, log), stdout=out, stderr=subprocess.STDOUT)
        try:
            yield p
        finally:
            kill_group(p, grace)
