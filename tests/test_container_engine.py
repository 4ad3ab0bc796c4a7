"""The engine boundary: no engine reachable (the real SDK, a socket nobody listens on),
and a container's life with a fake client (removed however its run ends)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from harness import cli
from harness.container import engine, spec
from harness.errors import EngineUnavailable
from harness.outcome.report import Verdict

if TYPE_CHECKING:
    from docker import DockerClient


def test_no_engine_is_a_clear_error_saying_how_to_start_one(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/docker.sock"
    with pytest.raises(EngineUnavailable) as caught:
        engine.connect(url)
    line = caught.value.line()
    assert line.startswith(f"no Docker engine is reachable at {url} (no such file or "
                           f"directory): start one: `dockerd")
    assert "\n" not in line
    assert cli.exit_code(Verdict.ERROR, caught.value) == cli.EXIT_NO_ENGINE == 23


@dataclass
class FakeContainer:
    chunks: list[tuple[bytes | None, bytes | None]]
    status: int = 0
    fail: BaseException | None = None
    events: list[str] = field(default_factory=list)

    def attach(self, stream: bool, logs: bool, demux: bool) -> Iterator[
            tuple[bytes | None, bytes | None]]:
        assert stream and logs and demux
        self.events.append("attach")
        return self._chunks()

    def _chunks(self) -> Iterator[tuple[bytes | None, bytes | None]]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def start(self) -> None:
        self.events.append("start")

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.status}

    def stop(self, timeout: int) -> None:
        self.events.append(f"stop timeout={timeout}")

    def remove(self, force: bool) -> None:
        self.events.append(f"remove force={force}")


@dataclass
class FakeClient:
    made: FakeContainer
    created: list[dict[str, Any]] = field(default_factory=list)
    volumes_made: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def containers(self) -> FakeClient:
        return self

    @property
    def volumes(self) -> FakeClient:
        return self

    def create(self, name: str | None = None, labels: dict[str, str] | None = None,
               **kwargs: Any) -> FakeContainer:
        if name is not None:  # volumes.create
            self.volumes_made.append((name, labels or {}))
            return self.made
        self.created.append(kwargs)
        return self.made

    def get(self, name: str) -> None:
        from docker.errors import NotFound  # noqa: PLC0415

        raise NotFound(f"volume {name}")


def _client(fake: FakeClient) -> DockerClient:
    return cast("DockerClient", fake)


def _spec(out: Path) -> spec.ContainerSpec:
    return spec.build("harness-env:abc", ["run", "--out", str(out)], "harness-cache", "tcg")


def test_a_run_streams_output_and_removes_its_container(tmp_path: Path) -> None:
    made = FakeContainer([(b"PASS", None), (None, b"[ 0.1s] boot\n"), (b": 7 subtests\n", None)],
                         status=1)
    client = FakeClient(made)
    out: list[bytes] = []
    err: list[bytes] = []
    run_dir = tmp_path / "out"
    assert engine.run(_client(client), _spec(run_dir), out.append, err.append) == 1
    assert (b"".join(out), b"".join(err)) == (b"PASS: 7 subtests\n", b"[ 0.1s] boot\n")
    assert made.events == ["attach", "start", "remove force=True"]
    assert run_dir.is_dir()  # made on the host before the container writes into it
    assert client.volumes_made == [("harness-cache", {spec.LABEL: "1"})]
    assert client.created[0]["network_mode"] == "none"
    assert client.created[0]["hostname"]  # the report's host is the host's name


def test_ctrl_c_stops_the_container_before_removing_it(tmp_path: Path) -> None:
    """Stopped first (SIGTERM): the harness inside writes its aborted report."""
    made = FakeContainer([(b"booting\n", None)], fail=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        engine.run(_client(FakeClient(made)), _spec(tmp_path / "out"), print, print)
    assert made.events == ["attach", "start", f"stop timeout={engine.STOP_GRACE}",
                           "remove force=True"]


def test_an_import_the_engine_refused_is_read_from_its_answer() -> None:
    answer = ('{"status":"Importing"}\n'
              '{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}\n')
    assert engine.import_error(answer) == "unexpected EOF"
    assert engine.import_error('{"status":"sha256:12"}\n') is None


def test_a_run_with_no_engine_still_leaves_its_report(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    out = tmp_path / "out"
    assert cli.main(["run", "--in-container", "--out", str(out)]) == cli.EXIT_NO_ENGINE
    report = json.loads((out / "report.json").read_text())
    assert (report["verdict"], report["error"], report["exit_code"]) == (
        "error", "EngineUnavailable", 23)
    assert (out / "junit.xml").is_file()
    # bad input is found before the engine is asked; a bad --out gets no report at all
    assert cli.main(["run", "--in-container", "--out", "/boot/x"]) == cli.EXIT_USAGE
    assert not Path("/boot/x").exists()
