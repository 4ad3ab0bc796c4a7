"""Bad input: one clear line and a distinct exit code each (cli.main is called in-process)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness import cli
from harness.errors import ParseError
from harness.host.cache import Cache
from harness.source import tree


def _run(args: list[str], out: Path) -> int:
    return cli.main(["run", "--out", str(out), *args])


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("ERROR:")]
    assert len(lines) == 1
    return lines[0]


def test_distinct_exit_codes() -> None:
    codes = [e.code for e in cli.EXITS if e.error is not ParseError]
    assert len(codes) == len(set(codes))
    assert cli.EXIT_PASS == 0 and cli.EXIT_TEST_FAILURE == 1
    errors = [e.code for e in cli.EXITS if e.error is not None]
    assert {0, 1}.isdisjoint(errors)
    assert cli.code_for(ParseError("x")) == cli.EXIT_USAGE


def test_readme_exit_table_matches_the_code() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| code")]
    assert [(int(c), m.strip()) for c, m in rows] == cli.exit_table()


def test_not_a_kernel_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "file.txt").write_text("x")
    assert _run(["--tree", str(junk)], tmp_path / "run") == cli.EXIT_BAD_TREE
    line = _error_line(capsys)
    assert str(junk) in line and "not a Linux kernel tree" in line
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert report["verdict"] == "error" and report["exit_code"] == cli.EXIT_BAD_TREE
    assert (tmp_path / "run/junit.xml").is_file()


def test_missing_clang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--clang", "clang-404"], tmp_path / "run") == cli.EXIT_MISSING_TOOL
    assert "clang-404 not found on PATH: install the Debian package clang-404" in (
        _error_line(capsys))


def test_missing_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    """A PATH holding every tool but QEMU: the message names the Debian package."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "gcc", "clang-19", "llvm-strip-19", "pahole", "ldd", "tar"):
        for d in os.environ["PATH"].split(os.pathsep):
            if (Path(d) / tool).is_file():
                (bin_dir / tool).symlink_to(Path(d) / tool)
                break
    monkeypatch.setenv("PATH", str(bin_dir))
    assert _run([], tmp_path / "run") == cli.EXIT_MISSING_TOOL
    line = _error_line(capsys)
    assert "qemu-system-x86_64 not found" in line
    assert "Debian package qemu-system-x86 " in line


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--accel", "xen"])
    assert exc.value.code == cli.EXIT_USAGE
    assert cli.main(["parse", str(tmp_path / "absent.log")]) == cli.EXIT_USAGE
    assert "absent.log: no such file" in capsys.readouterr().err


def test_parse_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(__file__).parent / "data"
    assert cli.main(["parse", str(data / "test_progs-pass.log")]) == cli.EXIT_PASS
    code = cli.main(["parse", str(data / "test_progs-subtest-fail.log"), "--exit-status", "1"])
    assert code == cli.EXIT_TEST_FAILURE
    assert "fail struct_ops_module/struct_ops_load" in capsys.readouterr().out


@pytest.mark.build
def test_tests_matching_nothing(default_tree: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    # A -t name is a substring: "struct_ops_modul" selects struct_ops_module; a typo
    # matches nothing.
    assert _run(["--tests", "struct_ops_moduel"], tmp_path / "run") == cli.EXIT_NO_TESTS
    line = _error_line(capsys)
    assert "--tests '*struct_ops_moduel*' matches no test" in line
    assert "close: struct_ops_module" in line


@pytest.mark.build
def test_tree_without_matching_kernel(default_tree: Path, cache: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """With --kernel prebuilt, a tree whose version has no installed kernel stops before
    building (`auto` would build its kernel: tests/test_kernel_build.py)."""
    import git  # noqa: PLC0415

    clone = git.Repo.clone_from(str(default_tree), str(tmp_path / "t"), shared=True)
    mk = Path(clone.working_dir) / "Makefile"
    mk.write_text(mk.read_text().replace("SUBLEVEL = ", "SUBLEVEL = 9", 1))
    clone.git.commit("-qam", "bump", env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                                         "GIT_COMMITTER_NAME": "t",
                                         "GIT_COMMITTER_EMAIL": "t@t"})
    try:
        code = _run(["--tree", str(clone.working_dir), "--kernel", "prebuilt"], tmp_path / "run")
    finally:
        tree.forget(Cache(cache), Path(clone.working_dir))
    assert code == cli.EXIT_BAD_TREE
    line = _error_line(capsys)
    assert "no installed kernel matches it" in line and "--kernel build" in line


@pytest.mark.build
def test_dry_run_builds_nothing_and_shows_kvm_argv(
        default_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The KVM path is exercised through argv only: --dry-run never starts QEMU."""
    from harness.boot import vm  # noqa: PLC0415

    monkeypatch.delenv("HARNESS_ACCEL")
    code = _run(["--dry-run", "--accel", "kvm", "--json"], tmp_path / "run")
    if not vm.kvm_present():
        assert code == cli.EXIT_USAGE
        return
    assert code == cli.EXIT_DRY_RUN
    plan = json.loads(capsys.readouterr().out)
    assert plan["verdict"] == "dry-run" and plan["exit_code"] == cli.EXIT_DRY_RUN
    assert plan["accelerator"] == {"name": "kvm", "why": "requested"}
    assert plan["qemu"].startswith("qemu-system-x86_64 -accel kvm -cpu host ")
    assert plan["tree"]["path"] == str(default_tree)
    assert not (tmp_path / "run/initramfs.cpio.gz").exists()
    assert not any(s["name"].startswith("build") for s in plan["stages"])


def test_internal_error_keeps_traceback_in_run_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.host import toolchain  # noqa: PLC0415

    def boom(_: object) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(toolchain, "check", boom)
    assert _run([], tmp_path / "run") == cli.EXIT_INTERNAL
    assert "KeyError" in (tmp_path / "run/traceback.txt").read_text()
    assert json.loads((tmp_path / "run/report.json").read_text())["exit_code"] == 70
    assert "internal error" in _error_line(capsys)


def test_list_with_series_is_a_usage_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--list", "--series", "x.mbox", "--out", str(tmp_path / "r")])
    assert code == cli.EXIT_USAGE
    assert "--list resolves the selection on the tree alone" in capsys.readouterr().err


def test_parse_reads_a_log_with_retries(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        ) -> None:
    """`harness parse` judges a saved log as the run did: a subtest that passed on a
    retry is flaky, not failed."""
    data = Path(__file__).parent / "data"
    log = tmp_path / "test_progs.log"
    log.write_text((data / "test_progs-subtest-fail.log").read_text() + "\n".join([
        "HARNESS: retry 1 of 1: 1 failed", "#1/2    struct_ops_module/struct_ops_load:OK",
        "#1      struct_ops_module:OK", "Summary: 1/1 PASSED, 0 SKIPPED, 0 FAILED", ""]))
    assert cli.main(["parse", str(log)]) == cli.EXIT_PASS
    assert "flaky struct_ops_module/struct_ops_load" in capsys.readouterr().out
