"""What a container running the harness may see (pure: no engine is asked)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.container import spec
from harness.errors import TreeError, UsageError


def _spec(tmp_path: Path, *argv: str, accel: str = "tcg") -> spec.ContainerSpec:
    return spec.build("harness:abc", ["run", *argv], "harness-cache", accel)


def test_inputs_read_only_at_their_path_the_run_directory_written_back(tmp_path: Path) -> None:
    tree, series = tmp_path / "linux", tmp_path / "s.mbox"
    tree.mkdir()
    series.write_text("mail\n")
    out = tmp_path / "out"  # not there yet: created by the engine before the container
    s = _spec(tmp_path, "--tree", str(tree), f"--series={series}", "--tests",
              "struct_ops_module", "--out", str(out), "--kernel", "build")
    assert s.mounts == (
        spec.Mount(str(tree), str(tree), read_only=True),
        spec.Mount(str(series), str(series), read_only=True),
        spec.Mount(str(out), str(out), read_only=False),
        spec.Mount("harness-cache", spec.CACHE, read_only=False, kind="volume"))
    assert s.command == ("harness", "run", "--tree", str(tree), f"--series={series}",
                         "--tests", "struct_ops_module", "--out", str(out), "--kernel",
                         "build", "--cache", spec.CACHE)


def test_networking_disabled_and_kvm_only_when_selected(tmp_path: Path) -> None:
    tcg = _spec(tmp_path).create_kwargs()
    assert (tcg["network_disabled"], tcg["network_mode"]) == (True, "none")
    assert tcg["devices"] == [] and tcg["environment"]["HARNESS_ACCEL"] == "tcg"
    assert tcg["labels"] == {spec.LABEL: "1"}
    kvm = _spec(tmp_path, accel="kvm").create_kwargs()
    assert kvm["devices"] == ["/dev/kvm:/dev/kvm:rwm"] and kvm["network_mode"] == "none"


def test_the_flag_itself_is_not_passed_on(tmp_path: Path) -> None:
    assert _spec(tmp_path, "--in-container").command == ("harness", "run", "--cache",
                                                         spec.CACHE)


def test_objects_and_lists_given_by_position_or_at_file(tmp_path: Path) -> None:
    obj, allow = tmp_path / "x.bpf.o", tmp_path / "allow.txt"
    obj.write_bytes(b"\x7fELF")
    allow.write_text("struct_ops\n")
    reads, writes = spec.path_arguments(["shadow", "--verify", str(obj), "--allow",
                                         f"@{allow}", "relative.o", "/no/such/file"])
    assert (reads, writes) == ([obj, allow], [])


@pytest.mark.parametrize("host_path", ["/boot", "/usr/src", "/lib/modules"])
def test_host_kernel_paths_are_never_mounted(tmp_path: Path, host_path: str) -> None:
    assert Path(host_path).is_dir()  # Debian's kernel packages (bootstrap) put them there
    with pytest.raises(UsageError, match="never mounts the host's /boot, /usr/src"):
        _spec(tmp_path, "--kernel", host_path)
    with pytest.raises(UsageError, match="never mounts"):
        _spec(tmp_path, "--out", f"{host_path}/run")


RUN = spec.Grammar(leading=1, takes_value=frozenset(
    {"--tree", "--allow", "--tests", "--out", "--kernel", "--cache", "--resume"}))


def test_paths_made_absolute_for_the_container(tmp_path: Path) -> None:
    for name in ("linux", "run", "build", "verifier"):
        (tmp_path / name).mkdir()
    (tmp_path / "allow.txt").write_text("x\n")
    argv = ["run", "--tree", "linux", "--allow", "@allow.txt", "--tests", "verifier",
            "--out=r1", "--kernel", "build", "--cache", "mycache"]
    assert spec.absolute(argv, tmp_path, RUN, default_out=Path("harness-runs/x"),
                         drop=frozenset({"--cache"})) == [
        "run", "--tree", str(tmp_path / "linux"), "--allow", f"@{tmp_path}/allow.txt",
        "--tests", "verifier", f"--out={tmp_path}/r1", "--kernel", "build"]
    # no --out: the default is decided on the host, where the files must come back
    assert spec.absolute(["run"], tmp_path, RUN, default_out=Path("harness-runs/x")) == [
        "run", "--out", str(tmp_path / "harness-runs/x")]


def test_a_resumed_bisection_writes_its_own_directory(tmp_path: Path) -> None:
    argv = spec.absolute(["bisect", "--resume", "b1"], tmp_path, RUN, default_out=Path("x"))
    assert argv == ["bisect", "--resume", str(tmp_path / "b1")]  # no default --out
    assert spec.path_arguments(argv) == ([], [tmp_path / "b1"])


def test_positional_paths_and_the_action_word(tmp_path: Path) -> None:
    (tmp_path / "show").mkdir()
    (tmp_path / "s.mbox").write_text("mail\n")
    series = spec.Grammar(leading=2, takes_value=frozenset({"--tree"}))
    assert spec.absolute(["series", "show", "s.mbox", "v6.12..HEAD"], tmp_path, series,
                         default_out=Path("x")) == [
        "series", "show", str(tmp_path / "s.mbox"), "v6.12..HEAD", "--out", str(tmp_path / "x")]


@pytest.mark.parametrize("path", ["/", "/usr", "/usr/src/linux-headers-x"])
def test_parents_of_host_kernel_paths_are_refused_too(tmp_path: Path, path: str) -> None:
    with pytest.raises(UsageError, match="never mounts"):
        _spec(tmp_path, "--out", path)


def test_the_flag_or_its_abbreviation_is_not_passed_on_and_git_trusts_the_tree() -> None:
    assert spec.inner_command(["run", "--in-cont", "--tests", "x"]) == (
        "harness", "run", "--tests", "x", "--cache", spec.CACHE)
    env = spec.build("t", ["run"], "v", "tcg").environment
    assert (env["GIT_CONFIG_KEY_0"], env["GIT_CONFIG_VALUE_0"]) == ("safe.directory", "*")


def _git(*args: str | Path) -> None:
    subprocess.run(["git", *map(str, args)], check=True, capture_output=True)


def test_what_git_reads_outside_the_tree_is_mounted_too(tmp_path: Path) -> None:
    """A `clone --shared` of a `clone --shared` (alternates followed), and a linked
    worktree (its repository): read-only, each once; a plain repository needs nothing."""
    origin, mid, tree, linked = (tmp_path / n for n in ("origin", "mid", "tree", "linked"))
    _git("init", "-q", origin)
    _git("-C", origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
         "--allow-empty", "-m", "c")
    _git("clone", "-q", "--shared", origin, mid)
    _git("clone", "-q", "--shared", mid, tree)
    _git("-C", origin, "worktree", "add", "-q", linked)
    assert spec.git_dependencies(origin) == []
    assert spec.git_dependencies(tree) == [mid / ".git/objects", origin / ".git/objects"]
    assert spec.git_dependencies(linked) == [origin / ".git/worktrees/linked",
                                             origin / ".git"]
    mounts = spec.build("t", ["run", "--tree", str(tree)], "v", "tcg").mounts
    assert [(m.target, m.read_only) for m in mounts if m.kind == "bind"] == [
        (str(tree), True), (str(mid / ".git/objects"), True),
        (str(origin / ".git/objects"), True)]


def test_borrowed_objects_behind_a_link_are_mounted_where_git_looks(tmp_path: Path) -> None:
    """An alternates line through a symbolic link: mounted at the path as written (git
    reads that one inside) and at its real path; an unreadable git file is a TreeError."""
    origin, tree, link = tmp_path / "origin", tmp_path / "tree", tmp_path / "link"
    _git("init", "-q", origin)
    _git("init", "-q", tree)
    link.symlink_to(origin)
    alternates = tree / ".git/objects/info/alternates"
    alternates.write_text(f"# borrowed\n{link}/.git/objects\n")
    assert spec.git_dependencies(tree) == [link / ".git/objects", origin / ".git/objects"]
    alternates.write_bytes(b"\xff\xfe\n")
    with pytest.raises(TreeError, match=f"{alternates}: cannot be read"):
        spec.build("t", ["run", "--tree", str(tree)], "v", "tcg")


def test_what_the_command_would_refuse_is_refused_before_any_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No engine is reachable here: the errors come from the host's checks, and a
    --resume directory that does not exist is not created by its mount."""
    from harness import cli  # noqa: PLC0415

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bisect", "--in-container", "--resume", "gone"]) == cli.EXIT_USAGE
    assert f"--resume {tmp_path}/gone: no readable bisect.json there" in (
        capsys.readouterr().err)
    assert not (tmp_path / "gone").exists()
    assert cli.main(["series", "apply", "--in-container", "--tree", "absent", "x.mbox",
                     "--out", "o"]) == cli.EXIT_BAD_TREE
    assert "--tree absent: no such directory" in capsys.readouterr().err
