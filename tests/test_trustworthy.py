"""Issue 8's defects, one test each: the verdict and the exit code always tell the truth.

Written before the fixes (the history shows them failing).  Defects 10 and 11 have their
tests in test_series_corrupt.py and test_bench_prereqs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import git
import pytest
from fakes import IDENTITY, fake_kernel_repo

from harness import cli
from harness.host import proc

PATCHES = Path(__file__).resolve().parents[1] / "patches"


def _report(out: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((out / "report.json").read_text())
    return data


def _one_patch_mbox(dest: Path, path: str, old: str, new: str) -> Path:
    dest.write_text(
        "From harness Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\n"
        "Subject: [PATCH 1/1] change a line\n\nmsg\n---\n"
        f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n"
        f"@@ -1,2 +1,2 @@\n-{old}\n+{new}\n PATCHLEVEL = 12\n")
    return dest


# 1 and 2: a dry run of the series gate applies nothing and never says PASS; --json works.
@pytest.mark.integration
def test_defect_1_2_series_dry_run(default_tree: Path, cache: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    worktrees = cache / "worktrees"
    before = sorted(p.name for p in worktrees.iterdir()) if worktrees.is_dir() else []
    out = tmp_path / "run"
    code = cli.main(["run", "--series", str(PATCHES / "shadow-layout"), "--dry-run",
                     "--json", "--out", str(out)])
    assert code == cli.EXIT_DRY_RUN != cli.EXIT_PASS
    printed = json.loads(capsys.readouterr().out)
    assert printed["verdict"] == "dry-run" == _report(out)["verdict"]
    assert next(p["subject"] for p in printed["patches"]).startswith("libbpf: document")
    assert {p["outcome"] for p in printed["patches"]} == {"not-applied"}
    assert printed["base"]["verdict"] == "dry-run"
    after = sorted(p.name for p in worktrees.iterdir()) if worktrees.is_dir() else []
    assert after == before


# 3: a run that tested nothing is not "a test failed".
def test_defect_3_ran_no_test_is_not_a_test_failure(tmp_path: Path) -> None:
    log = tmp_path / "test_progs.log"
    log.write_text("Summary: 0/0 PASSED, 0 SKIPPED, 0 FAILED\n")
    assert cli.main(["parse", str(log), "--exit-status", "2"]) == cli.EXIT_NO_TESTS


# 4: unexpected exceptions anywhere are exit 70 with a traceback; ProcError has its own code.
def test_defect_4_series_apply_bug_is_internal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from harness.source import series  # noqa: PLC0415

    def boom(*_: object, **__: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(series, "load", boom)
    out = tmp_path / "out"
    assert cli.main(["series", "apply", "x.mbox", "--out", str(out)]) == cli.EXIT_INTERNAL
    assert "KeyError" in (out / "traceback.txt").read_text()
    assert "internal error" in capsys.readouterr().err


def test_defect_4_shadow_bug_keeps_traceback_in_cache(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.btf import verify  # noqa: PLC0415

    def boom(*_: object, **__: object) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(verify, "emulate", boom)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert cli.main(["shadow", str(tmp_path / "x.bpf.o")]) == cli.EXIT_INTERNAL
    dumps = list((tmp_path / "cache/logs").glob("*/traceback.txt"))
    assert len(dumps) == 1 and "ValueError" in dumps[0].read_text()


def test_defect_4_proc_error_has_its_own_code_and_a_real_log() -> None:
    with pytest.raises(proc.ProcError) as exc:
        proc.capture(["sh", "-c", "echo detail >&2; exit 3"])
    assert "/dev/null" not in exc.value.line() and "detail" in exc.value.line()
    assert cli.code_for(exc.value) == cli.EXIT_COMMAND
    assert cli.EXIT_COMMAND not in (cli.EXIT_INTERNAL, cli.EXIT_TEST_FAILURE)


# 5: every git command has a timeout and a line in commands.log.
def test_defect_5_git_commands_are_logged(tmp_path: Path) -> None:
    user = tmp_path / "linux"
    user.mkdir()
    fake_kernel_repo(user)
    mbox = _one_patch_mbox(tmp_path / "p.mbox", "Makefile", "VERSION = 6", "VERSION = 7")
    out = tmp_path / "out"
    code = cli.main(["series", "apply", str(mbox), "--tree", str(user), "--out", str(out),
                     "--cache", str(tmp_path / "cache")])
    assert code == cli.EXIT_PASS
    commands = "".join(p.read_text() for p in out.rglob("commands.log"))
    for verb in ("clone", "checkout", "worktree add", "clean", "am"):
        assert f" {verb} " in commands, verb
    assert all(" git -C " in line for line in commands.splitlines())


# 6: two gates at once on one --tree at two revisions get their own verdicts.
@pytest.mark.slow
def test_defect_6_two_gates_on_one_tree(default_tree: Path, cache: Path, tmp_path: Path) -> None:
    from harness.host.cache import Cache  # noqa: PLC0415
    from harness.source import tree  # noqa: PLC0415

    scratch = tmp_path / "linux"
    repo = git.Repo.clone_from(str(default_tree), str(scratch), shared=True)
    gen = scratch / "tools/bpf/bpftool/gen.c"
    line = 'printf("\\t\\t\\tchar __unsupported_%d[%d];\\n", i, size);'
    gen.write_text(gen.read_text().replace(line, line.replace(", size);", ", size - 4);")))
    repo.git.commit("-qam", "bpftool: break the shadow layout", env=IDENTITY)
    env = {**os.environ, "HARNESS_ACCEL": "tcg"}
    argv = [sys.executable, "-m", "harness", "run", "--tree", str(scratch)]
    try:
        runs = {rev: subprocess.Popen([*argv, "--rev", rev, "--out", str(tmp_path / name)],
                                      env=env, stderr=subprocess.DEVNULL)
                for rev, name in (("HEAD", "broken"), ("HEAD~1", "good"))}
        codes = {rev: p.wait(timeout=1500) for rev, p in runs.items()}
    finally:
        tree.forget(Cache(cache), scratch)
    assert codes == {"HEAD": cli.EXIT_TEST_FAILURE, "HEAD~1": cli.EXIT_PASS}
    assert _report(tmp_path / "broken")["verdict"] == "fail"
    assert _report(tmp_path / "good")["verdict"] == "pass"


# 7: usage is checked before preflight.
def test_defect_7_kernel_without_headers_is_usage(tmp_path: Path) -> None:
    image = tmp_path / "bzImage"
    image.write_bytes(b"x")
    code = cli.main(["run", "--kernel", str(image), "--out", str(tmp_path / "r")])
    assert code == cli.EXIT_USAGE


def test_defect_7_bad_tree_before_missing_qemu(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code = cli.main(["run", "--tree", str(tmp_path / "no-such-tree"),
                     "--out", str(tmp_path / "r")])
    assert code == cli.EXIT_BAD_TREE


# 8: a series that does not apply stops before the base side is built.
@pytest.mark.integration
def test_defect_8_conflict_before_base_run(default_tree: Path, tmp_path: Path) -> None:
    mbox = _one_patch_mbox(tmp_path / "p.mbox", "Makefile", "VERSION = 99", "VERSION = 7")
    out = tmp_path / "run"
    started = time.monotonic()
    assert cli.main(["run", "--series", str(mbox), "--out", str(out)]) == cli.EXIT_APPLY
    assert time.monotonic() - started < 60
    rep = _report(out)
    assert rep["verdict"] == "error" and rep.get("base") is None
    assert not (out / "base").exists()


# 9: defaults live in config.py alone.
def test_defect_9_cli_defaults_come_from_config() -> None:
    from harness.config import RunConfig, Toolchain, VmSpec  # noqa: PLC0415

    args = cli.parser().parse_args(["run"])
    for name in ("clang", "memory", "cpus", "rev", "jobs"):
        assert getattr(args, name) is None, name
    cfg = cli.run_config(args)
    assert cfg.toolchain == Toolchain() and cfg.vm == VmSpec()
    assert cfg.rev == RunConfig.__dataclass_fields__["rev"].default


# 12: build outputs are keyed by every input, not by the tree alone.
def test_defect_12_build_dirs_keyed_by_kernel(tmp_path: Path) -> None:
    from harness.boot.kernel import Kernel  # noqa: PLC0415
    from harness.build import targeted as build  # noqa: PLC0415
    from harness.config import Toolchain  # noqa: PLC0415
    from harness.host.cache import Cache  # noqa: PLC0415

    kernels = []
    for name, btf in (("a", b"BTF one"), ("b", b"BTF two")):
        headers = tmp_path / name
        headers.mkdir()
        (headers / "vmlinux").write_bytes(btf)
        kernels.append(Kernel(image=tmp_path / "bzImage", headers=headers, release="6.12.117"))
    cache = Cache(tmp_path / "cache")
    dirs = [build.output_dirs(cache, "debian-x", k, Toolchain()) for k in kernels]
    assert dirs[0].selftests != dirs[1].selftests and dirs[0].testmod != dirs[1].testmod
    assert dirs[0].tools == dirs[1].tools
    assert dirs[0] == build.output_dirs(cache, "debian-x", kernels[0], Toolchain())
