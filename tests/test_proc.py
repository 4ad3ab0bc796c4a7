"""The process layer: timeouts, the watchdog, process groups, logs (real short processes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.errors import ProcError, ProcTimeout
from harness.host import proc


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.split(") ", 1)[1][0] != "Z"


def _alive(pid: int, within: float = 5.0) -> bool:
    """Still running after `within` seconds (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + within
    while _running(pid):
        if time.monotonic() > deadline:
            return True
        time.sleep(0.05)
    return False


def test_run_logs_command_and_output(tmp_path: Path) -> None:
    done = proc.run(["sh", "-c", "echo out; echo err >&2"], log=tmp_path / "x.log", timeout=10)
    assert done.returncode == 0 and "out" in done.output and "err" in done.output
    assert "sh -c echo out; echo err >&2 > x.log" in (tmp_path / "commands.log").read_text()
    with pytest.raises(ProcError, match="exited with status 3: boom") as exc:
        proc.run(["sh", "-c", "echo boom; exit 3"], log=tmp_path / "y.log", timeout=10)
    assert exc.value.log == tmp_path / "y.log"


def test_timeout_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ProcTimeout, match="killed after 1 s"):
        proc.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"],
                 log=tmp_path / "t.log", timeout=1)
    assert time.monotonic() - started < 10
    assert not _alive(int(pidfile.read_text()))


def test_stream_watchdog_stops_with_a_reason(tmp_path: Path) -> None:
    lines: list[str] = []

    def watchdog(elapsed: float) -> str | None:
        return "enough" if lines else None

    started = time.monotonic()
    done = proc.stream(["sh", "-c", "echo first; sleep 60"], log=tmp_path / "s.log",
                       timeout=30, on_line=lines.append, watchdog=watchdog)
    assert done.stopped == "enough" and lines == ["first"]
    assert time.monotonic() - started < 10
    assert (tmp_path / "s.log").read_text() == "first\n"


def test_stream_timeout_is_a_stop_reason(tmp_path: Path) -> None:
    done = proc.stream(["sleep", "60"], log=tmp_path / "s.log", timeout=0.5,
                       on_line=lambda _: None)
    assert done.stopped is not None and done.stopped.startswith("timeout")


def test_stream_exception_kills_the_process(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"

    def on_line(_: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        proc.stream(["sh", "-c", f"echo $$ > {pidfile}; echo go; sleep 60"],
                    log=tmp_path / "s.log", timeout=30, on_line=on_line)
    assert not _alive(int(pidfile.read_text()))


def test_capture_failure_names_stderr_not_dev_null() -> None:
    with pytest.raises(ProcError) as exc:
        proc.capture(["sh", "-c", "echo why >&2; exit 4"])
    assert exc.value.log is None and "why" in exc.value.line()
    assert proc.capture(["sh", "-c", "echo hi"]) == "hi\n"


def test_a_daemon_and_what_it_started_end_with_the_block(tmp_path: Path) -> None:
    log, pidfile = tmp_path / "d.log", tmp_path / "child"
    with proc.daemon(["sh", "-c", f"echo up; sleep 300 & echo $! > {pidfile}; wait"],
                     log=log) as p:
        deadline = time.monotonic() + 5
        while not pidfile.exists() or not pidfile.read_text().strip():
            assert time.monotonic() < deadline, "the daemon never started its child"
            time.sleep(0.05)
        child = int(pidfile.read_text())
        assert _running(p.pid) and _running(child)
    assert not _alive(p.pid) and not _alive(child)
    assert log.read_text() == "up\n"
