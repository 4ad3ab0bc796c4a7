"""The kernel build stage (harness/build/kbuild.py) on a fake process layer and real git,
and the cache's show and prune of what builds occupy.

make is faked (its effects write what kbuild would), git is real: the workspace's source
worktree, the stamp that decides reuse, the config check and its explanation, the first
compiler error, and the toolchain minimum.  The real builds are in test_kernel_build.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fakes import IDENTITY, FakeProcs, elf_with_section, fake_kernel_repo

from harness import cli
from harness.boot import kconfig
from harness.build import kbuild
from harness.config import Toolchain
from harness.errors import BuildError, ConfigError, ToolchainError
from harness.host import cache as cache_mod
from harness.host import proc
from harness.host.cache import Cache

DATA = Path(__file__).parent / "data"
KCONFIG = 'config BPF\n\tbool "bpf"\n\nconfig SECURITY\n\tbool "security"\n\n' \
          'config BPF_LSM\n\tbool "lsm"\n\tdepends on BPF && SECURITY\n'
COMPILED = "  CC      kernel/bpf/core.o\n  CC      kernel/bpf/syscall.o\n  LD      vmlinux\n"


def _out_dir(argv: list[str] | tuple[str, ...]) -> Path:
    return Path(next(a for a in argv if a.startswith("O=")).removeprefix("O="))


def _tinyconfig(req: proc.Request) -> None:
    (_out_dir(req.argv) / ".config").write_text("CONFIG_64BIT=y\n")


def _olddefconfig_drops_lsm(req: proc.Request) -> None:
    config = _out_dir(req.argv) / ".config"
    config.write_text(re.sub(r"CONFIG_BPF_LSM=y\n", "", config.read_text()))


def _built(req: proc.Request) -> None:
    out = _out_dir(req.argv)
    (out / "arch/x86/boot").mkdir(parents=True, exist_ok=True)
    (out / "arch/x86/boot/bzImage").write_bytes(b"kernel image")
    (out / "include/config").mkdir(parents=True, exist_ok=True)
    (out / "include/config/kernel.release").write_text("6.12.117\n")
    (out / "vmlinux").write_bytes(elf_with_section(".BTF", b"types of " + req.argv[3].encode()))


def _fake(build_rc: int = 0, build_output: str = COMPILED) -> FakeProcs:
    return (FakeProcs()
            .on(" tinyconfig", effect=_tinyconfig)
            .on(" olddefconfig", effect=_olddefconfig_drops_lsm)
            .on(" bzImage modules", rc=build_rc, output=build_output, effect=_built))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    linux = tmp_path / "linux"
    linux.mkdir()
    r = fake_kernel_repo(linux)
    (linux / "Kconfig").write_text(KCONFIG)
    r.git.add("-A")
    r.git.commit("-qm", "Kconfig", env=IDENTITY)
    return linux


def _ctx(tmp_path: Path, lines: list[str] | None = None, ccache: bool = False,
         ) -> kbuild.KbuildContext:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    return kbuild.KbuildContext(
        cache=Cache(tmp_path / "cache"), log_dir=run_dir, toolchain=Toolchain(), jobs=2,
        timeout=60, versions={"gcc": "gcc 12"}, progress=(lines if lines is not None
                                                          else []).append, ccache=ccache)


def _frag(**options: str) -> list[kconfig.Fragment]:
    return [kconfig.Fragment("test.config", {f"CONFIG_{k}": v for k, v in options.items()})]


def _head(repo: Path) -> str:
    return proc.capture(["git", "-C", str(repo), "rev-parse", "HEAD"]).strip()


def _builds(fake: FakeProcs) -> int:
    return sum(1 for c in fake.calls if "bzImage" in c)


def test_build_then_reuse_only_what_the_stamp_proves(repo: Path, tmp_path: Path) -> None:
    fake = _fake()
    commit = _head(repo)
    with proc.using(fake):
        first = kbuild.build(_ctx(tmp_path), repo, commit, "lin", _frag(BPF="y"))
        again = kbuild.build(_ctx(tmp_path), repo, commit, "lin", _frag(BPF="y"))
    assert (first.compiled, first.reused) == (2, False)
    assert (again.compiled, again.reused) == (0, True) and _builds(fake) == 1
    assert sum(1 for c in fake.calls if "tinyconfig" in c) == 1  # the config was kept too
    assert first.kernel.image == tmp_path / "run/bzImage"
    assert first.kernel.release == "6.12.117"
    assert first.kernel.fingerprint() == again.kernel.fingerprint()
    assert first.kernel.fingerprint().startswith("built lin sources ")
    assert first.kernel.types_fingerprint().startswith("btf ")  # the .BTF section's hash
    ws = Path(first.workspace)
    assert (ws.parent / "src/Kconfig").is_file()  # a worktree of the repository
    # An image changed behind the stamp's back is not reused.
    (ws / kbuild.IMAGE).write_bytes(b"tampered")
    with proc.using(fake):
        third = kbuild.build(_ctx(tmp_path), repo, commit, "lin", _frag(BPF="y"))
    assert not third.reused and _builds(fake) == 2


def test_another_commit_rebuilds_in_the_same_workspace(repo: Path, tmp_path: Path) -> None:
    fake = _fake()
    with proc.using(fake):
        first = kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
        (repo / "kernel/bpf/x.c").write_text("/* changed */\n")
        proc.run(["git", "-C", str(repo), "commit", "-qam", "change"], log=tmp_path / "g.log",
                 timeout=30, env=IDENTITY)
        second = kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
    assert not second.reused and second.workspace == first.workspace
    assert (Path(first.workspace).parent / "src/kernel/bpf/x.c").read_text() == "/* changed */\n"
    assert (repo / "kernel/bpf/x.c").read_text() == "/* changed */\n"  # the user's, untouched


def test_commits_outside_the_kernel_sources_reuse_the_image(repo: Path, tmp_path: Path,
                                                            ) -> None:
    """Keyed by content: Documentation/ and the selftests are not kernel sources."""
    fake = _fake()
    changes = [("Documentation/bpf/x.rst", True), ("tools/testing/selftests/bpf/y.c", True),
               ("tools/bpf/bpftool/gen.c", True), ("kernel/bpf/x.c", False),
               ("tools/bpf/resolve_btfids/z.c", False), ("tools/lib/bpf/btf.c", False)]
    with proc.using(fake):
        first = kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
        for path, reused in changes:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            (repo / path).write_text(f"/* {path} */\n")
            proc.run(["git", "-C", str(repo), "add", "-A"], log=tmp_path / "g.log", timeout=30)
            proc.run(["git", "-C", str(repo), "commit", "-qm", path], log=tmp_path / "g.log",
                     timeout=30, env=IDENTITY)
            built = kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
            assert built.reused is reused, path
            assert (built.kernel.fingerprint() == first.kernel.fingerprint()) is reused


def test_progress_lines_and_ccache(repo: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    fake = _fake()
    with proc.using(fake):
        kbuild.build(_ctx(tmp_path, lines, ccache=True), repo, _head(repo), "lin",
                     _frag(BPF="y"))
    make = next(c for c in fake.calls if "bzImage" in c)
    assert "CC=ccache gcc" in make and "ARCH=x86_64" in make
    assert lines[-1].startswith("kernel build: 2 objects compiled in ")
    assert lines[-1].endswith("(last: kernel/bpf/syscall.o)")


def test_dropped_option_names_its_dependency(repo: Path, tmp_path: Path) -> None:
    fake = _fake()
    with proc.using(fake), pytest.raises(ConfigError) as err:
        kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y", BPF_LSM="y"))
    assert err.value.line() == (
        "kernel config: CONFIG_BPF_LSM=y became n after olddefconfig (from test.config): "
        "it depends on SECURITY (SECURITY=n)")
    assert _builds(fake) == 0
    assert "CONFIG_BPF_LSM" in (tmp_path / "run/kernel-config-unmet.txt").read_text()


@pytest.mark.parametrize("prefix", ["", "../src/", "{src}/"])
def test_compile_error_is_the_first_error_line(repo: Path, tmp_path: Path, prefix: str) -> None:
    src = tmp_path / "cache/kbuild/lin/src"
    output = ("  CC      kernel/bpf/core.o\n"
              f"{prefix.format(src=src)}kernel/bpf/core.c:12:9: error: expected expression "
              "before ';' token\n"
              "kernel/bpf/core.c:13:1: error: second\n"
              "make[2]: *** [scripts/Makefile.build:229: kernel/bpf/core.o] Error 1\n")
    with proc.using(_fake(build_rc=2, build_output=output)), \
            pytest.raises(BuildError) as err:
        kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
    assert err.value.line().startswith(
        "kernel build failed: kernel/bpf/core.c:12:9: error: expected expression")
    assert err.value.log == tmp_path / "run/build-kernel.log"


def test_compiler_older_than_the_tree_needs(repo: Path, tmp_path: Path) -> None:
    (repo / "scripts").mkdir()
    (repo / "scripts/min-tool-version.sh").write_text("echo 99.1.0\n")
    proc.run(["git", "-C", str(repo), "add", "-A"], log=tmp_path / "g.log", timeout=30)
    proc.run(["git", "-C", str(repo), "commit", "-qm", "min"], log=tmp_path / "g.log",
             timeout=30, env=IDENTITY)
    fake = _fake().on("min-tool-version.sh gcc", output="99.1.0\n").on(
        "-dumpfullversion", output="12.2.0\n")
    with proc.using(fake), pytest.raises(ToolchainError) as err:
        kbuild.build(_ctx(tmp_path), repo, _head(repo), "lin", _frag(BPF="y"))
    assert "gcc 12.2.0 is older than this tree's minimum 99.1.0" in err.value.line()


def test_workspace_key_names_options_and_compilers(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    a = kbuild.workspace(ctx, "lin", _frag(BPF="y"))
    assert a == kbuild.workspace(ctx, "lin", _frag(BPF="y"))
    assert a.key != kbuild.workspace(ctx, "lin", _frag(BPF="n")).key
    other = kbuild.KbuildContext(**{**vars(ctx), "versions": {"gcc": "gcc 13"}})
    assert a.key != kbuild.workspace(other, "lin", _frag(BPF="y")).key
    assert a.lock == "kbuild-lin" and a.out.parent == a.src.parent


def test_counter_on_a_real_build_log() -> None:
    """tests/data/build-kernel-excerpt.log: the start of a real 6.12 build (see README)."""
    counter = kbuild.Counter(progress=lambda _: None)
    for line in (DATA / "build-kernel-excerpt.log").read_text().splitlines():
        counter.feed(line)
    assert counter.compiled == 9  # CC and AS lines; HOSTCC, LD, AR, GEN, WRAP are not


# --- harness cache show | prune -----------------------------------------------------------


def _layout(root: Path) -> Cache:
    for d in ("trees/debian-x", "worktrees/debian-x-series", "build/debian-x/tools-1",
              "kbuild/debian-x/src", "kbuild/debian-x/out-abc", "kbuild/debian-x/config-abc",
              "rootfs/runtime-abc", "guest/debian-x", "image/abc", "ccache", "logs"):
        (root / d).mkdir(parents=True)
        (root / d / "f").write_bytes(b"x" * 4096)
    return Cache(root)


def test_cache_entries_and_their_locks(tmp_path: Path) -> None:
    cache = _layout(tmp_path / "c")
    found = {(e.kind, e.path.relative_to(cache.root).as_posix()): e.locks
             for e in cache.entries()}
    assert found[("tree", "trees/debian-x")] == ("debian-x", "debian-x-series",
                                                "kbuild-debian-x")
    assert found[("kernel build", "kbuild/debian-x/out-abc")] == ("kbuild-debian-x",)
    assert found[("ccache", "ccache")] == ()
    assert found[("rootfs", "rootfs/runtime-abc")] == ("rootfs-runtime-abc",)
    assert found[("guest build disk", "guest/debian-x")] == ("guest-debian-x",)
    assert found[("image work", "image/abc")] == ("image-abc",)
    assert len(found) == 11


def test_prune_keeps_trees_and_what_a_run_holds(tmp_path: Path) -> None:
    cache = _layout(tmp_path / "c")
    kinds = [k for k in cache_mod.KINDS if k != "tree"]
    with cache.lock("kbuild-debian-x"):  # a run building the kernel
        pruned = cache_mod.prune(cache, kinds)
    removed = {p.entry.path.name for p in pruned if p.removed}
    kept = {p.entry.path.name for p in pruned if not p.removed}
    assert removed == {"debian-x-series", "tools-1", "runtime-abc", "debian-x", "abc",
                       "ccache", "logs"}
    assert kept == {"src", "out-abc", "config-abc"}
    assert all(p.kib >= 4 for p in pruned)
    assert (cache.root / "trees/debian-x").is_dir()
    assert [p.entry.kind for p in cache_mod.prune(cache, ["tree"])] == ["tree"]
    assert not (cache.root / "trees/debian-x").exists()


def test_cli_cache_show_and_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _layout(tmp_path / "c").root
    assert cli.main(["cache", "show", "--cache", str(root), "--json"]) == cli.EXIT_PASS
    shown = json.loads(capsys.readouterr().out)
    assert {e["kind"] for e in shown} == set(cache_mod.KINDS)
    assert cli.main(["cache", "prune", "--cache", str(root), "--kind", "logs"]) == 0
    out = capsys.readouterr().out
    assert "freed" in out and not (root / "logs").exists() and (root / "ccache").exists()
