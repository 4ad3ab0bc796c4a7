"""The only module that starts processes.

Every command is an argv list with a mandatory timeout; its command line goes to the run's
command log and its output is teed into a log file of its own.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from harness.errors import HarnessError, HarnessTimeout

TAIL_LINES = 20


class ProcError(HarnessError):
    """A command exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, output: str, log: Path) -> None:
        name = Path(argv[0]).name
        super().__init__(f"{name} exited with status {returncode}", log)
        self.argv = list(argv)
        self.returncode = returncode
        self.output = output
        self.tail = tail(output)


class ProcTimeout(HarnessTimeout):
    """A command ran past its timeout and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float, log: Path) -> None:
        super().__init__(f"{Path(argv[0]).name} killed after {timeout:.0f} s", log)
        self.argv = list(argv)
        self.timeout = timeout


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    output: str
    seconds: float
    log: Path


def tail(text: str, lines: int = TAIL_LINES) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _record(log: Path, argv: Sequence[str], cwd: Path | None) -> None:
    """Append the command line to the run's command log, beside the step's own log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    where = f" (cwd {cwd})" if cwd else ""
    with (log.parent / "commands.log").open("a") as f:
        f.write(f"{time.strftime('%H:%M:%S')} {' '.join(argv)}{where} > {log.name}\n")


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    log: Path,
    timeout: float,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    stdout: Path | None = None,
) -> Completed:
    """Run argv to completion, output into `log` (stdout into `stdout` if given)."""
    _record(log, argv, cwd)
    start = time.monotonic()
    with log.open("w") as out:
        sink = stdout.open("w") if stdout else out
        try:
            proc = subprocess.run(
                list(argv), cwd=cwd, env=_env(env), stdin=subprocess.DEVNULL,
                stdout=sink, stderr=out, timeout=timeout, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ProcTimeout(argv, timeout, log) from exc
        finally:
            if stdout:
                sink.close()
    output = log.read_text(errors="replace")
    done = Completed(list(argv), proc.returncode, output, time.monotonic() - start, log)
    if check and proc.returncode != 0:
        raise ProcError(argv, proc.returncode, output, log)
    return done


def capture(argv: Sequence[str], *, timeout: float = 30, with_stderr: bool = False) -> str:
    """Run a short query (a version, a library lookup) and return its output.

    Not logged to a run directory: these run before one exists and change nothing.
    """
    proc = subprocess.run(
        list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    if proc.returncode != 0:
        raise ProcError(argv, proc.returncode, proc.stderr, Path("/dev/null"))
    return proc.stdout + proc.stderr if with_stderr else proc.stdout


def _reader(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    assert stream is not None
    for line in stream:
        lines.put(line)
    lines.put(None)


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait()


def stream(
    argv: Sequence[str],
    *,
    log: Path,
    timeout: float,
    on_line: Callable[[str], None],
    watchdog: Callable[[float], None] | None = None,
) -> int:
    """Run argv, teeing each output line to `log` and handing it to `on_line`.

    `watchdog(elapsed)` is called about every second and may raise to stop the process
    (used for boot deadlines); the process is killed before the error propagates.
    """
    _record(log, argv, None)
    start = time.monotonic()
    lines: queue.Queue[str | None] = queue.Queue()
    with log.open("w") as out:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace",
        )
        thread = threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True)
        thread.start()
        try:
            _pump(lines, out, on_line=on_line, watchdog=watchdog, start=start,
                  timeout=timeout, argv=argv, log=log)
        except BaseException:
            _kill(proc)
            raise
        return proc.wait()


def _pump(
    lines: queue.Queue[str | None],
    out: TextIO,
    *,
    on_line: Callable[[str], None],
    watchdog: Callable[[float], None] | None,
    start: float,
    timeout: float,
    argv: Sequence[str],
    log: Path,
) -> None:
    while True:
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            raise ProcTimeout(argv, timeout, log)
        if watchdog is not None:
            watchdog(elapsed)
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            continue
        if line is None:
            return
        out.write(line)
        out.flush()
        on_line(line.rstrip("\r\n"))
