"""The engine boundary: no engine reachable (the real SDK, a socket nobody listens on),
and a container's life with a fake client (removed however its run ends)."""

from __future__ import annotations

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
    chunks: list[bytes]
    status: int = 0
    fail: BaseException | None = None
    events: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.events.append("start")

    def logs(self, stream: bool, follow: bool) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail

    def wait(self) -> dict[str, int]:
        return {"StatusCode": self.status}

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
    made = FakeContainer([b"PASS", b": 7 subtests\n"], status=1)
    client = FakeClient(made)
    seen: list[bytes] = []
    out = tmp_path / "out"
    assert engine.run(_client(client), _spec(out), seen.append) == 1
    assert b"".join(seen) == b"PASS: 7 subtests\n"
    assert made.events == ["start", "remove force=True"]
    assert out.is_dir()  # made on the host before the container writes into it
    assert client.volumes_made == [("harness-cache", {spec.LABEL: "1"})]
    assert client.created[0]["network_mode"] == "none"


def test_ctrl_c_while_it_runs_still_removes_the_container(tmp_path: Path) -> None:
    made = FakeContainer([b"booting\n"], fail=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        engine.run(_client(FakeClient(made)), _spec(tmp_path / "out"), lambda _: None)
    assert made.events == ["start", "remove force=True"]
