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

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from harness.container import spec
from harness.container.recipe import REPOSITORY
from harness.errors import EngineError, EngineUnavailable

if TYPE_CHECKING:
    from docker import DockerClient
    from docker.models.containers import Container

DEFAULT_URL = "unix:///var/run/docker.sock"
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


def _reason(exc: Exception) -> str:
    text = str(exc)
    for known in ("No such file or directory", "Connection refused", "Permission denied"):
        if known in text:
            return known.lower()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def image_id(client: DockerClient, tag: str) -> str | None:
    """The id of the image tagged `tag`, or None when the engine does not have it."""
    from docker.errors import ImageNotFound  # noqa: PLC0415

    try:
        found = client.images.get(tag)
    except ImageNotFound:
        return None
    return str(found.id)


def import_tar(client: DockerClient, tar: Path, tag: str, changes: list[str]) -> str:
    """Import a root filesystem tarball as the image `tag` (with Dockerfile-like
    `changes`: ENV, CMD, LABEL); its id."""
    repository, _, version = tag.partition(":")
    client.api.import_image_from_file(str(tar), repository=repository, tag=version,
                                      changes=changes)
    found = image_id(client, tag)
    assert found is not None, f"{tag} imported but not found"
    return found


@contextmanager
def container(client: DockerClient, s: spec.ContainerSpec) -> Iterator[Container]:
    """A created (not started) container for the spec, removed when the block ends;
    the cache volume is created first, labelled, when it does not exist."""
    for m in s.mounts:
        if m.kind == "volume":
            _volume(client, m.source)
        elif not m.read_only:  # the run directory: the container writes into it
            Path(m.source).mkdir(parents=True, exist_ok=True)
    created = client.containers.create(**s.create_kwargs())
    try:
        yield created
    finally:
        created.remove(force=True)


def _volume(client: DockerClient, name: str) -> None:
    from docker.errors import NotFound  # noqa: PLC0415

    try:
        client.volumes.get(name)
    except NotFound:
        client.volumes.create(name=name, labels={spec.LABEL: "1"})


def run(client: DockerClient, s: spec.ContainerSpec, output: Callable[[bytes], None]) -> int:
    """Run the spec's container to its end, its output passed on as it comes; its exit
    status.  The container is removed in every case."""
    with container(client, s) as c:
        c.start()
        for chunk in c.logs(stream=True, follow=True):
            output(chunk)
        status = c.wait()
    return int(status.get("StatusCode", 1))


def output(client: DockerClient, tag: str, command: list[str]) -> str:
    """What `command` prints in a container of the image (no network, no mounts),
    removed afterwards; a non-zero exit is an EngineError naming the command."""
    s = spec.ContainerSpec(image=tag, command=tuple(command), mounts=())
    chunks: list[bytes] = []
    with container(client, s) as c:
        c.start()
        status = int(c.wait().get("StatusCode", 1))
        chunks.append(c.logs(stdout=True, stderr=False))
    if status != 0:
        raise EngineError(f"{' '.join(command)} exited with status {status} in {tag}")
    return b"".join(chunks).decode(errors="replace")


def save(client: DockerClient, tag: str, dest: Path) -> None:
    """The image as a tar file (docker save), written whole or not at all."""
    part = dest.with_name(dest.name + ".part")
    with part.open("wb") as f:
        for chunk in client.images.get(tag).save(named=True):
            f.write(chunk)
    part.rename(dest)


def load(client: DockerClient, source: Path) -> list[str]:
    """Load a saved image; the tags it brought."""
    with source.open("rb") as f:
        loaded = client.images.load(f.read())
    return [t for img in loaded for t in img.tags]


def prune(client: DockerClient, keep: str | None) -> list[str]:
    """Remove the harness's images but `keep`, and its volumes no container uses; what
    was removed, a line each."""
    from docker.errors import APIError  # noqa: PLC0415

    gone: list[str] = []
    for img in client.images.list(name=REPOSITORY):
        if keep in img.tags:
            continue
        client.images.remove(str(img.id), force=False)
        gone.append(f"image {' '.join(img.tags) or img.id}")
    for vol in client.volumes.list(filters={"label": spec.LABEL}):
        try:
            vol.remove()
        except APIError:  # in use by a container: kept
            continue
        gone.append(f"volume {vol.name}")
    return gone
