"""The README's test command and the Docker engine the container tests need: asked on its
socket (a real one, served here), started when none answers, stopped afterwards."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from harness import bootstrap
from harness.errors import HarnessError
from harness.host import proc


def _serve(sock: Path, answer: bytes) -> threading.Thread:
    """A one-shot server on a unix socket that reads a request and writes `answer`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock))
    server.listen(1)

    def reply() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                request = conn.recv(4096)
                if request.startswith(b"GET /_ping "):
                    conn.sendall(answer)

    thread = threading.Thread(target=reply, daemon=True)
    thread.start()
    return thread


def test_an_engine_answers_its_ping(tmp_path: Path) -> None:
    sock = tmp_path / "docker.sock"
    served = _serve(sock, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK")
    assert bootstrap.engine_answers(sock)
    served.join(5)


def test_no_socket_or_an_engine_that_is_not_ready_is_no_engine(tmp_path: Path) -> None:
    assert not bootstrap.engine_answers(tmp_path / "absent.sock")
    sock = tmp_path / "docker.sock"
    served = _serve(sock, b"HTTP/1.0 500 Internal Server Error\r\n\r\n")
    assert not bootstrap.engine_answers(sock)
    served.join(5)


STARTED = ("start dockerd --bridge=none --iptables=false --ip6tables=false "
           "--host=unix:///var/run/docker.sock (grace 20 s)")


class _Machine:
    """What docker_engine asks of the machine: whether the engine answers (a list of
    answers, the last repeated), the packages it installs, the daemons it starts."""

    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.installed: list[str] = []
        self.events: list[str] = []

    def answers_now(self, sock: Path = bootstrap.DOCKER_SOCKET) -> bool:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def install(self, packages: Sequence[str], updated: list[bool]) -> None:
        self.installed += packages

    exited: int | None = None  # dockerd's exit status, once it has ended

    @contextlib.contextmanager
    def daemon(self, argv: Sequence[str], *, log: Path, grace: float) -> Iterator[Any]:
        self.events.append(f"start {' '.join(argv)} (grace {grace:.0f} s)")
        try:
            yield self
        finally:
            self.events.append("stop")

    def poll(self) -> int | None:
        return self.exited

    @property
    def returncode(self) -> int | None:
        return self.exited


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Machine]:
    m = _Machine([False])
    monkeypatch.setattr(bootstrap, "engine_answers", m.answers_now)
    monkeypatch.setattr(bootstrap, "_apt_install", m.install)
    monkeypatch.setattr(proc, "daemon", m.daemon)
    monkeypatch.setattr(bootstrap, "LOGS", tmp_path / "logs")
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    yield m


def test_a_running_engine_is_used_as_it_is(machine: _Machine) -> None:
    machine.answers = [True]
    with bootstrap.docker_engine():
        machine.events.append("tests")
    assert (machine.installed, machine.events) == ([], ["tests"])


def test_no_engine_installs_and_starts_one_without_networks_then_stops_it(
        machine: _Machine) -> None:
    machine.answers = [False, False, False, True]
    with bootstrap.docker_engine():
        machine.events.append("tests")
    assert machine.installed == ["docker.io"]
    assert machine.events == [
        STARTED, "tests", "stop"]


def test_an_engine_the_package_started_is_not_started_again(machine: _Machine) -> None:
    machine.answers = [False, True]
    with bootstrap.docker_engine():
        machine.events.append("tests")
    assert (machine.installed, machine.events) == (["docker.io"], ["tests"])


def test_an_engine_that_never_answers_is_an_error_and_is_stopped(
        machine: _Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bootstrap, "ENGINE_WAIT", 0.2)
    with (pytest.raises(HarnessError, match=r"dockerd did not answer within 0 s \(log: "),
          bootstrap.docker_engine()):
        machine.events.append("tests")
    assert machine.events == [
        STARTED, "stop"]


def test_the_tests_run_with_the_engine_and_a_failed_tier_fails(
        machine: _Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    machine.answers = [False, False, True]
    codes = {"lint": 0, "unit": 0, "integration": 1, "slow": 0}

    def foreground(argv: list[str], *, timeout: float, cwd: Path | None = None) -> int:
        machine.events.append(f"tier {argv[-1]}")
        return codes[argv[-1]]

    monkeypatch.setattr(proc, "foreground", foreground)
    assert bootstrap.run_tiers() == 1
    assert machine.events[1:] == ["tier lint", "tier unit", "tier integration", "tier slow",
                                  "stop"]


def test_a_dockerd_that_exits_is_an_error_at_once(machine: _Machine) -> None:
    machine.exited = 1
    with (pytest.raises(HarnessError, match=r"dockerd exited with status 1 before it "
                        r"answered \(log: .*dockerd.log\)"), bootstrap.docker_engine()):
        machine.events.append("tests")
    assert machine.events == [STARTED, "stop"]


def test_the_engine_docker_host_names(machine: _Machine,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """DOCKER_HOST's socket is the one asked and served; an engine elsewhere is left to
    whoever runs it."""
    assert bootstrap.engine_socket({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}) == (
        Path("/run/user/1000/docker.sock"))
    assert bootstrap.engine_socket({}) == bootstrap.DOCKER_SOCKET
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    with bootstrap.docker_engine():
        machine.events.append("tests")
    assert (machine.installed, machine.events) == ([], ["tests"])
