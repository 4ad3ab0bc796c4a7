"""Bad input across the subcommands: one clear line naming the input and what to do, and
a usage exit code, before anything is built or booted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes import IDENTITY, fake_kernel_repo

from harness import cli


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a text file, a directory and a FIFO (reading it would block)."""
    (tmp_path / "file.txt").write_text("not what was asked for\n")
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "linux").mkdir()
    repo = fake_kernel_repo(tmp_path / "linux")
    selftests = tmp_path / "linux/tools/testing/selftests/bpf"
    (selftests / "Makefile").write_text("TRUNNER_EXTRA_SOURCES := test_progs.c\n")
    (selftests / "prog_tests/x.c").write_text("void test_x(void)\n{\n}\n")
    repo.git.add("-A")
    repo.git.commit("-qm", "selftests", env=IDENTITY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path


# (argv, exit code, what the one line says)
CASES = [
    (["parse", "missing.log"], cli.EXIT_USAGE, "missing.log: no such file; pass a test_progs"),
    (["parse", "dir"], cli.EXIT_USAGE, "dir: is a directory, not a file"),
    (["parse", "fifo"], cli.EXIT_USAGE, "fifo: not a regular file"),
    (["shadow", "missing.bpf.o"], cli.EXIT_USAGE, "missing.bpf.o: no such file; pass BPF obj"),
    (["shadow", "dir"], cli.EXIT_USAGE, "dir: is a directory, not a file"),
    (["shadow", "fifo"], cli.EXIT_USAGE, "fifo: not a regular file"),
    (["shadow", "file.txt"], cli.EXIT_BAD_OBJECT, "file.txt: not an ELF object"),
    (["series", "show", "missing.mbox"], cli.EXIT_BAD_SERIES,
     "missing.mbox: no such file or directory, and not a git range or message-id"),
    (["series", "show", "dir"], cli.EXIT_BAD_SERIES, "dir: no .patch files and no series"),
    (["series", "apply", "file.txt"], cli.EXIT_BAD_SERIES, "not a mail message"),
    (["kconfig", "check", "--kernel-config", "missing"], cli.EXIT_USAGE,
     "--kernel-config missing: no such file; pass a kernel .config"),
    (["kconfig", "check", "--kernel-config", "fifo"], cli.EXIT_USAGE,
     "--kernel-config fifo: not a regular file"),
    (["kconfig", "check", "--kernel-config", "file.txt", "--kconfig", "dir"], cli.EXIT_USAGE,
     "--kconfig dir: is a directory, not a file; pass a profile"),
    (["run", "--tree", "missing", "--dry-run"], cli.EXIT_BAD_TREE,
     "--tree missing: no such directory"),
    (["run", "--tree", "file.txt", "--dry-run"], cli.EXIT_BAD_TREE,
     "--tree file.txt: not a directory"),
    (["run", "--kernel", "missing"], cli.EXIT_USAGE, "--kernel IMAGE and --headers DIR go "
     "together"),
    (["run", "--kernel", "dir", "--headers", "dir", "--dry-run"], cli.EXIT_BAD_TREE,
     "--kernel dir: is a directory, not a file; pass a bzImage"),
    (["run", "--tree", "linux", "--allow", "@missing", "--dry-run"], cli.EXIT_USAGE,
     "--allow @missing: no such file"),
    (["run", "--tree", "linux", "--deny", "@dir", "--dry-run"], cli.EXIT_USAGE,
     "--deny @dir: is a directory"),
    (["run", "--cache", "file.txt", "--dry-run"], cli.EXIT_USAGE,
     "--cache file.txt: not a directory"),
    (["run", "--out", "file.txt", "--dry-run"], cli.EXIT_USAGE,
     "cannot use it as the run directory"),
    (["run", "--list", "--series", "x"], cli.EXIT_USAGE, "--list resolves the selection on "
     "the tree alone"),
    (["run", "--bisect", "--dry-run"], cli.EXIT_GIT_ABORT, "--bisect judges one commit"),
    (["bisect", "--good", "v1"], cli.EXIT_USAGE, "bisect needs --good REV and --bad REV"),
    (["bisect", "--tree", "missing", "--good", "a", "--bad", "b"], cli.EXIT_BAD_TREE,
     "--tree missing: no such directory"),
    (["bisect", "--resume", "dir"], cli.EXIT_USAGE, "--resume dir: no readable bisect.json"),
]


@pytest.mark.parametrize(("argv", "code", "words"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_clear_line(place: Path, argv: list[str], code: int, words: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1, err
    assert words in errors[0], errors[0]


# (argv, what argparse says): wrong types and unknown choices
ARGPARSE = [
    (["run", "--cpus", "two"], "argument --cpus: invalid int value: 'two'"),
    (["run", "--retries", "-1"], "argument --retries: '-1': a whole number of 0 or more"),
    (["run", "--run-timeout", "soon"], "argument --run-timeout: 'soon': a number of seconds"),
    (["run", "--allow-splat", "(["], "argument --allow-splat: '([': not a regular expression"),
    (["run", "--flaky", "maybe"], "argument --flaky: invalid choice: 'maybe'"),
    (["parse", "x.log", "--exit-status", "abc"], "argument --exit-status: invalid int value"),
    (["bisect", "--repeat", "0"], "argument --repeat: '0': a whole number of 1 or more"),
    (["cache", "prune", "--kind", "nosuch"], "argument --kind: invalid choice: 'nosuch'"),
    (["shadow", "x.bpf.o", "--rules", "v5"], "argument --rules: invalid choice: 'v5'"),
    (["kconfig"], "the following arguments are required: ACTION"),
]


@pytest.mark.parametrize(("argv", "words"), ARGPARSE, ids=[" ".join(a[0]) for a in ARGPARSE])
def test_wrong_types_are_argparse_usage_errors(argv: list[str], words: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == cli.EXIT_USAGE
    assert words in capsys.readouterr().err


def test_unreadable_file(place: Path) -> None:
    """Root reads everything: the command runs as root without the capabilities that
    override file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), on a mode 000 file."""
    secret = place / "secret.log"
    secret.write_text("#1 x:OK\n")
    secret.chmod(0)
    root = Path(__file__).resolve().parents[1]  # harness from the source tree
    caps = "-dac_override,-dac_read_search"
    done = subprocess.run(["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}",
                           sys.executable, "-m", "harness", "parse", str(secret)],
                          capture_output=True, text=True, check=False, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == cli.EXIT_USAGE, done.stderr
    assert f"{secret}: not readable (permission denied)" in done.stderr
