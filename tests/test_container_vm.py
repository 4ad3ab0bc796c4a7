"""The hermetic image for real: built through the SDK on a real Docker engine (started by
the README's test command when none runs), the gate run inside it, its containers
inspected, and what goes wrong (no engine, a tree that does not exist, a recipe package
Debian does not have)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_emulator import c_source, compile_bpf
from test_gate_series import PATCHES, assert_broken_layout_verdict

from harness import cli
from harness.boot import rootfs
from harness.config import default_cache
from harness.container import command, engine, image, spec
from harness.host.cache import Cache

if TYPE_CHECKING:
    from docker import DockerClient

HOST_ONLY = ("/boot", "/usr/src", "/lib/modules")


@pytest.fixture(scope="module")
def client() -> DockerClient:
    return engine.connect()


def _leftovers(client: DockerClient) -> tuple[list[str], list[str]]:
    """The harness's containers, and its volumes but the cache's."""
    containers = [str(c.id) for c in client.containers.list(all=True,
                                                       filters={"label": spec.LABEL})]
    volumes = [v.name for v in client.volumes.list(filters={"label": spec.LABEL})
               if v.name != "harness-cache"]
    return containers, volumes


def _run(out: Path, *argv: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["run", "--in-container", "--out", str(out), *argv])
    return code, json.loads((out / "report.json").read_text())


@pytest.mark.vm
@pytest.mark.build
def test_the_gate_in_the_container_builds_then_reuses_the_image(
        client: DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tag = image.resolve(command.ROOT).tag
    if engine.image_id(client, tag) is not None:  # as on a machine that has no image yet
        client.images.remove(tag)
    code, rep = _run(tmp_path / "first")
    first = capsys.readouterr().err
    assert (code, rep["verdict"], rep["counts"]["pass"]) == (0, "pass", 7), rep["reason"]
    assert rep["image"]["tag"] == tag and rep["image"]["id"].startswith("sha256:")
    packages = rep["image"]["packages"]
    assert {"qemu-system-x86", "clang-19", "linux-source-6.12"} <= set(packages)
    assert rep["kernel"]["image"].startswith("/boot/vmlinuz-")  # the image's own kernel
    assert rep["rootfs"]["image"].startswith(image.ROOTFS_STORE)  # nothing built inside
    assert (tmp_path / "first/junit.xml").is_file()  # written back at its own path
    code, rep = _run(tmp_path / "second")
    second = capsys.readouterr().err
    assert (code, rep["image"]["id"]) == (0, engine.image_id(client, tag))
    assert f"image {tag} " in first and "): built in " in first and "): reused" in second
    print(f"\nimage, first run: {first.split(tag, 1)[1].splitlines()[0]}; "
          f"second run: {second.split(tag, 1)[1].splitlines()[0]}")
    assert _leftovers(client) == ([], [])


@pytest.mark.slow
@pytest.mark.vm
@pytest.mark.build
def test_the_broken_series_gets_the_same_verdict_on_the_host_and_in_the_container(
        default_tree: Path, tmp_path: Path) -> None:
    series = ["--series", str(PATCHES / "shadow-layout-broken.mbox"), "--kernel", "prebuilt"]
    verdicts = []
    for where in ([], ["--in-container"]):
        out = tmp_path / ("container" if where else "host")
        code = cli.main(["run", *where, *series, "--out", str(out)])
        rep = json.loads((out / "report.json").read_text())
        assert_broken_layout_verdict(code, rep)
        assert bool(rep.get("image")) == bool(where)
        verdicts.append((rep["verdict"], {s["name"]: (s["status"], s["change"])
                                          for s in rep["subtests"]}))
    assert verdicts[0] == verdicts[1]


def _shadow(where: list[str], objects: list[Path], out: Path,
            capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["shadow", *where, "--verify", *map(str, objects), "--out", str(out)])
    return code, capsys.readouterr().out


@pytest.mark.build
def test_shadow_verify_in_the_container_compares_with_the_image_bpftool(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An object bpftool and the emulator agree on, and one with bitfields whose layout
    check fails (bpftool's bitfield bug): the same lines inside and on the host."""
    plain, bits = tmp_path / "plain", tmp_path / "bits"
    plain.mkdir()
    bits.mkdir()
    objects = [compile_bpf(plain, c_source(["fnptr", "int", "s64"], tail=True)),
               compile_bpf(bits, c_source(["fnptr"], tail=False).replace(
                   "};\nSEC", "\tint flag:3;\n\tint more:5;\n};\nSEC"))]
    code, inside = _shadow(["--in-container"], objects, tmp_path / "in", capsys)
    assert code == cli.EXIT_TEST_FAILURE
    lines = inside.splitlines()
    assert lines[0] == f"{objects[0]}: identical, layout ok"
    assert lines[1].startswith(f"{objects[1]}: identical, LAYOUT MISMATCH (log: "
                               f"{tmp_path}/in/shadow/")
    assert lines[-1] == "1 passed, 1 failed"
    assert Path(lines[1].split("(log: ")[1].rstrip(")")).is_file()  # written back
    assert _shadow([], objects, tmp_path / "host", capsys) == (
        code, inside.replace(f"{tmp_path}/in/", f"{tmp_path}/host/"))


@pytest.mark.build  # the image, when the engine has not got it
def test_series_show_reads_the_series_in_the_container_as_on_the_host(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mbox = str(PATCHES / "shadow-layout-broken.mbox")
    shown = []
    for where in (["--in-container"], []):
        assert cli.main(["series", "show", *where, mbox, "--out", str(tmp_path / "o")]) == 0
        shown.append(capsys.readouterr().out)
    assert shown[0] == shown[1] and "shadow" in shown[0]


def _state(repo: Path) -> str:
    """The user's HEAD, checkout and index, as git tells them."""
    return subprocess.run(["git", "-C", str(repo), "status", "--porcelain=v2", "--branch"],
                          capture_output=True, text=True, check=True).stdout


@pytest.mark.build
def test_series_apply_in_the_container_on_a_tree_that_borrows_its_objects(
        default_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A `clone --shared` user tree: its objects are in another repository, which the
    container gets read-only beside the tree; the user's tree is left as it was."""
    user = tmp_path / "linux"
    subprocess.run(["git", "clone", "-q", "--shared", str(default_tree), str(user)],
                   check=True)
    before = _state(user)
    code = cli.main(["series", "apply", "--in-container", "--tree", str(user),
                     str(PATCHES / "shadow-layout-broken.mbox"), "--out", str(tmp_path / "o")])
    shown = capsys.readouterr().out
    assert code == cli.EXIT_PASS, shown
    assert shown.count("] applied: ") == 4 and _state(user) == before
    assert (tmp_path / "o/commands.log").is_file()  # its logs written back


@pytest.fixture
def created(client: DockerClient, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """What the engine says of a container the harness creates for a series run with KVM
    (created from the current image, never started)."""
    tree, series = tmp_path / "linux", tmp_path / "s.mbox"
    tree.mkdir()
    series.write_text("mail\n")
    tag = image.ensure(client, image.resolve(command.ROOT), cache=Cache(default_cache()),
                       root=command.ROOT, log_dir=tmp_path).tag  # built if need be
    s = spec.build(tag, ["run", "--tree", str(tree), "--series", str(series), "--out",
                         str(tmp_path / "out")], "harness-cache", "kvm")
    with engine.container(client, s) as c:
        c.reload()
        yield {"attrs": c.attrs, "tree": str(tree), "series": str(series),
               "out": str(tmp_path / "out")}


@pytest.mark.vm
@pytest.mark.build
def test_every_container_has_no_network_and_reads_its_inputs_only(
        created: dict[str, Any]) -> None:
    attrs = created["attrs"]
    assert attrs["HostConfig"]["NetworkMode"] == "none"
    assert attrs["Config"].get("NetworkDisabled") is True
    mounts = {m["Destination"]: m for m in attrs["Mounts"]}
    assert mounts[created["tree"]]["RW"] is False and mounts[created["series"]]["RW"] is False
    assert mounts[created["out"]]["RW"] is True
    assert mounts[spec.CACHE]["Type"] == "volume" and mounts[spec.CACHE]["Name"] == (
        "harness-cache")
    assert not [m for m in attrs["Mounts"]
                if any(m.get("Source", "").startswith(h) for h in HOST_ONLY)]
    assert [d["PathOnHost"] for d in attrs["HostConfig"]["Devices"]] == ["/dev/kvm"]


@pytest.mark.vm
def test_no_engine_is_exit_23_and_leaves_nothing(client: DockerClient, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    before = _leftovers(client)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code = cli.main(["run", "--in-container", "--out", str(tmp_path / "out")])
    assert code == cli.EXIT_NO_ENGINE
    assert "no Docker engine is reachable" in capsys.readouterr().err
    report = json.loads((tmp_path / "out/report.json").read_text())
    assert (report["verdict"], report["error"]) == ("error", "EngineUnavailable")
    monkeypatch.delenv("DOCKER_HOST")
    assert _leftovers(client) == before
    code = cli.main(["run", "--in-container", "--tree", str(tmp_path / "absent"), "--out",
                     str(tmp_path / "out")])
    assert code == cli.EXIT_BAD_TREE
    assert f"--tree {tmp_path}/absent: no such directory" in capsys.readouterr().err
    assert _leftovers(client) == before


@pytest.mark.vm
@pytest.mark.build
def test_a_recipe_package_debian_lacks_is_a_build_error_naming_it(
        client: DockerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    before = _leftovers(client)
    bad = rootfs.Layer("image", (*rootfs.IMAGE.packages, "harness-no-such-package"), "x")
    monkeypatch.setitem(rootfs.LAYERS, "image", bad)
    code = cli.main(["image", "build"])
    assert code == cli.EXIT_BUILD
    assert "names packages Debian bookworm does not have: harness-no-such-package" in (
        capsys.readouterr().err)
    assert _leftovers(client) == before
    assert engine.image_id(client, image.resolve(command.ROOT).tag) is None


@pytest.mark.vm
@pytest.mark.build
def test_save_and_load_move_the_image_without_a_registry(
        client: DockerClient, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["image", "build"]) == cli.EXIT_PASS
    tag = image.resolve(command.ROOT).tag
    built = engine.image_id(client, tag)
    saved = tmp_path / "image.tar"
    assert cli.main(["image", "save", str(saved)]) == cli.EXIT_PASS
    assert saved.stat().st_size > 500 * 2**20 and not saved.with_suffix(".tar.part").exists()
    client.images.remove(tag)  # as on a machine that never built it
    assert engine.image_id(client, tag) is None
    capsys.readouterr()
    assert cli.main(["image", "load", str(saved)]) == cli.EXIT_PASS
    assert tag in capsys.readouterr().out
    assert engine.image_id(client, tag) == built  # the same image, id and all
    assert cli.main(["image", "show"]) == cli.EXIT_PASS
    shown = capsys.readouterr().out
    assert shown.startswith(f"{tag}: {built}") and "\n  qemu-system-x86 " in shown
