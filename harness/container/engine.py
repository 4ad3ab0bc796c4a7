"""The one boundary to the Docker engine, through the `docker` Python SDK (issue 14).

Everything the harness asks of an engine goes through here: whether one is reachable,
whether an image is present, importing a root filesystem as an image, saving and loading
images, and running a container from a ContainerSpec (spec.py) to its end.  Every
container and volume it creates carries spec.LABEL, and a container is removed however
its run ends (its exit, an error, Ctrl-C), so nothing is left running.

The SDK is imported when an engine is first asked for, so the harness inside the image
(which never talks to an engine) does not need it.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.container import spec
from harness.container.recipe import REPOSITORY
from harness.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

DEFAULT_URL = "unix:///var/run/docker.sock"
STOP_GRACE = 20  # seconds the harness inside has to write its aborted report
START_HINT = ("start one: `dockerd > /var/log/dockerd.log 2>&1 &` (Debian's docker.io; "
              "`apt-get install docker.io`), or point DOCKER_HOST at a running engine")


def connect(url: str | None = None) -> DockerClient:
    """A client of a reachable engine, or EngineUnavailable saying how to start one."""
    import docker  # noqa: PLC0415  (see the module's docstring)
    from docker.errors import DockerException  # noqa: PLC0415

    where = url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
    try:
        client = docker.DockerClient(base_url=where) if url else docker.from_env()
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(f"no Docker engine is reachable at {where} "
                                f"({_reason(exc)}): {START_HINT}") from exc
    return client


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for known in ("No such file or directory", "Connection refused", "Permission denied"):
        if known in text:
            return known.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


@contextmanager
def asking(what: str) -> Iterator[None]:
    """What the engine refuses or fails inside the block is an EngineError naming `what`
    (the SDK's errors and the HTTP layer's under it)."""
    import requests  # noqa: PLC0415  (the SDK's own dependency)
    from docker.errors import DockerException  # noqa: PLC0415

    try:
        yield
    except (DockerException, requests.RequestException) as exc:
        raise EngineError(f"the Docker engine failed to {what}: {_reason(exc)}") from exc


def image_id(client: DockerClient, tag: str) -> str | None:
    """The id of the image tagged `tag`, or None when the engine does not have it."""
    from docker.errors import ImageNotFound  # noqa: PLC0415

    with asking(f"look up {tag}"):
        try:
            found = client.images.get(tag)
        except ImageNotFound:
            return None
    return str(found.id)


def import_tar(client: DockerClient, tar: Path, tag: str, changes: list[str]) -> str:
    """Import a root filesystem tarball as the image `tag` (with Dockerfile-like
    `changes`: ENV, CMD, LABEL); its id.  An error the engine reports in its answer is
    an EngineError too."""
    repository, _, version = tag.partition(":")
    with asking(f"import {tar} as {tag}"):
        answer = client.api.import_image_from_file(str(tar), repository=repository,
                                                   tag=version, changes=changes)
    refused = import_error(answer)
    found = image_id(client, tag)
    if refused or found is None:
        raise EngineError(f"the Docker engine did not import {tar} as {tag}: "
                          f"{refused or 'no such image afterwards'}")
    return found


def import_error(answer: Any) -> str | None:
    """The error of an import's answer (JSON messages, one per line), if it has one."""
    for line in str(answer).splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("error"):
            return str(message["error"])
    return None


@contextmanager
def container(client: DockerClient, s: spec.ContainerSpec) -> Iterator[Container]:
    """A created (not started) container for the spec, removed when the block ends;
    the cache volume is created first, labelled, when it does not exist.  A block that
    ends by an exception (Ctrl-C) stops the container first (SIGTERM, then SIGKILL after
    STOP_GRACE), so the harness inside can write its aborted report."""
    for m in s.mounts:
        if m.kind == "volume":
            _volume(client, m.source)
        elif not m.read_only:  # the run directory: the container writes into it
            Path(m.source).mkdir(parents=True, exist_ok=True)
    with asking(f"create a container of {s.image}"):
        created = client.containers.create(**s.create_kwargs(),
                                            hostname=platform.node())
    try:
        yield created
    except BaseException:
        with asking("stop the container"):
            created.stop(timeout=STOP_GRACE)
        raise
    finally:
        with asking("remove the container"):
            created.remove(force=True)


def _volume(client: DockerClient, name: str) -> None:
    from docker.errors import NotFound  # noqa: PLC0415

    with asking(f"create the volume {name}"):
        try:
            client.volumes.get(name)
        except NotFound:
            client.volumes.create(name=name, labels={spec.LABEL: "1"})


Sink = Callable[[bytes], None]


def run(client: DockerClient, s: spec.ContainerSpec, out: Sink, err: Sink) -> int:
    """Run the spec's container to its end, its stdout and stderr passed on apart as
    they come; its exit status.  The container is removed in every case."""
    with container(client, s) as c, asking(f"run a container of {s.image}"):
        stream = c.attach(stream=True, logs=True, demux=True)
        c.start()
        for chunk_out, chunk_err in stream:
            if chunk_out:
                out(chunk_out)
            if chunk_err:
                err(chunk_err)
        status = c.wait()
    return int(status.get("StatusCode", 1))


def output(client: DockerClient, tag: str, command: list[str]) -> str:
    """What `command` prints in a container of the image (no network, no mounts),
    removed afterwards; a non-zero exit is an EngineError naming the command."""
    printed: list[bytes] = []
    said: list[bytes] = []
    status = run(client, spec.ContainerSpec(image=tag, command=tuple(command), mounts=()),
                 printed.append, said.append)
    if status != 0:
        raise EngineError(f"{' '.join(command)} exited with status {status} in {tag}: "
                          f"{b''.join(said).decode(errors='replace').strip()[:200]}")
    return b"".join(printed).decode(errors="replace")


def save(client: DockerClient, tag: str, dest: Path) -> None:
    """The image as a tar file (docker save), written whole or not at all."""
    part = dest.with_name(dest.name + ".part")
    try:
        with asking(f"save {tag}"), part.open("wb") as f:
            for chunk in client.images.get(tag).save(named=True):
                f.write(chunk)
        part.rename(dest)
    finally:
        part.unlink(missing_ok=True)


def load(client: DockerClient, source: Path) -> list[str]:
    """Load a saved image (streamed from the file); the tags it brought."""
    with asking(f"load {source}"), source.open("rb") as f:
        loaded = client.images.load(f)
    return [t for img in loaded for t in img.tags]


def prune(client: DockerClient, keep: str | None) -> list[str]:
    """Remove the harness's images but `keep`, and its volumes no container uses; what
    was done, a line each (what the engine keeps because it is in use says so)."""
    from docker.errors import APIError  # noqa: PLC0415

    done: list[str] = []
    with asking("list the harness's images and volumes"):
        images = client.images.list(name=REPOSITORY)
        volumes = client.volumes.list(filters={"label": spec.LABEL})
    for img in images:
        if keep in img.tags:
            continue
        name = " ".join(img.tags) or str(img.id)
        try:
            client.images.remove(str(img.id), force=False)
            done.append(f"removed image {name}")
        except APIError as exc:
            done.append(f"kept image {name} ({_reason(exc)})")
    for vol in volumes:
        try:
            vol.remove()
            done.append(f"removed volume {vol.name}")
        except APIError:
            done.append(f"kept volume {vol.name} (in use)")
    return done
