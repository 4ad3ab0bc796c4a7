"""Reading back a guest build: its steps, logs, times and why one failed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.boot.kernel import Kernel
from harness.build import guest
from harness.errors import BuildError, DiskFull, HarnessTimeout, RunTimeout, TreeError

STREAM = """\
HARNESS: booted 6.12.118+deb12-cloud-amd64
HARNESS-BUILD: begin bpftool
  CC      /build/tools/bpftool/gen.o
  LINK    /build/tools/bpftool/bpftool
HARNESS-BUILD: end bpftool rc=0 seconds=412
HARNESS-BUILD: begin testmod
  CC [M]  /build/testmod/bpf_testmod.o
HARNESS-BUILD: end testmod rc=0 seconds=61.5
HARNESS-BUILD: begin test_progs
/build/selftests/struct_ops_module.skel.h:12:3: error: unknown type name 'int_t'
make: *** [targeted.mk:40: /build/selftests/test_struct_ops_module.test.o] Error 1
HARNESS-BUILD: end test_progs rc=2 seconds=30
"""


def test_split_gives_each_step_its_output_and_times() -> None:
    steps = guest.split(STREAM)
    assert [s.name for s in steps] == ["bpftool", "testmod", "test_progs"]
    assert steps[0].lines == ["  CC      /build/tools/bpftool/gen.o",
                              "  LINK    /build/tools/bpftool/bpftool"]
    assert [s.rc for s in steps] == [0, 0, 2]
    assert guest.times(steps) == {"bpftool": 412.0, "testmod": 61.5, "test_progs": 30.0}


def test_logs_are_named_as_the_host_build_names_them(tmp_path: Path) -> None:
    guest.write_logs(guest.split(STREAM), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "build-bpftool.log", "build-test_progs.log", "build-testmod.log"]
    assert "LINK" in (tmp_path / "build-bpftool.log").read_text()


def _fail(text: str, dmesg: str = "", timed_out: bool = False) -> object:
    return guest.failure(guest.split(text), dmesg, Path("/run"), memory="2G", disk="4G",
                         timed_out=timed_out)


def test_a_compiler_error_is_a_build_error_with_its_first_line() -> None:
    err = _fail(STREAM)
    assert isinstance(err, BuildError)
    assert err.message == ("guest build test_progs failed: /build/selftests/"
                           "struct_ops_module.skel.h:12:3: error: unknown type name 'int_t'")
    assert err.log == Path("/run/build-test_progs.log")


def test_all_steps_ended_well_is_no_failure() -> None:
    assert _fail(STREAM.rsplit("HARNESS-BUILD: begin test_progs", 1)[0]) is None


def test_the_oom_killer_names_the_guest_memory_and_its_option() -> None:
    dmesg = ("[  88.1] Out of memory: Killed process 412 (cc1) total-vm:912345kB, "
             "anon-rss:400000kB, file-rss:0kB\n")
    err = _fail(STREAM, dmesg)
    assert isinstance(err, BuildError)
    assert "ran out of memory (2G; the kernel killed cc1): raise it with --memory" in err.line()


def test_a_full_build_disk_names_its_size_and_option() -> None:
    text = ("HARNESS-BUILD: begin bpftool\n/build/tools/libbpf/btf.o: No space left on "
            "device\nHARNESS-BUILD: end bpftool rc=2 seconds=3\n")
    err = _fail(text)
    assert isinstance(err, DiskFull)
    assert "build disk (4G) is full: raise it with --guest-disk" in err.message


@pytest.mark.parametrize(("timed_out", "kind"), [(True, HarnessTimeout), (False, type(None))])
def test_a_step_that_never_ended(timed_out: bool, kind: type) -> None:
    text = "HARNESS-BUILD: begin bpftool\n  CC      gen.o\n"
    err = _fail(text, timed_out=timed_out)
    assert isinstance(err, kind)
    if isinstance(err, HarnessTimeout):
        assert not isinstance(err, RunTimeout)  # no test was running: not a test hang
        assert "step bpftool did not end" in err.message and "--build-timeout" in err.message
        assert "short of memory (2G) stalls too: --memory" in err.message


def test_an_end_marker_of_another_step_does_not_close_the_current_one() -> None:
    text = ("HARNESS-BUILD: begin bpftool\nHARNESS-BUILD: end testmod rc=0 seconds=1\n")
    (step,) = guest.split(text)
    assert step.rc is None and step.lines == ["HARNESS-BUILD: end testmod rc=0 seconds=1"]


def test_build_env_is_quoted_shell_the_guest_script_reads(tmp_path: Path) -> None:
    plan = guest.Plan(tree=Path("/c/trees/my tree"), headers=Path("/usr/src/h"),
                      tools="/build/t/tools", modules_dir="/build/t/mods",
                      selftests="/build/t/selftests", helpers_dir="/build/t/helpers",
                      jobs=2, clang="clang-19", llvm_strip="llvm-strip-19",
                      llvm_suffix="-19", modules=("bpf_testmod", "bpf_test_no_cfi"),
                      objects=("a.bpf.o",), with_bpftool=True)
    env = tmp_path / "build.env"
    env.write_text(guest.render_env(plan))
    shown = subprocess.run(["/bin/busybox", "sh", "-c",
                            f'. {env}; echo "$TREE|$MODULES|$WITH_BPFTOOL|$HELPERS|"'],
                           capture_output=True, text=True, check=True).stdout
    assert shown == "/c/trees/my tree|bpf_testmod bpf_test_no_cfi|1||\n"


def test_a_tree_without_the_tools_sources_is_a_tree_error(tmp_path: Path) -> None:
    (tmp_path / "tools/bpf/bpftool").mkdir(parents=True)
    (tmp_path / "tools/bpf/bpftool/Makefile").write_text("all:\n")
    with pytest.raises(TreeError, match=r"no tools/lib/bpf/Makefile, tools/testing/selftests/"
                       r"bpf/Makefile: a build inside the guest needs the tree's tools/"):
        guest.check_tree(tmp_path)


def test_guest_output_directories_follow_the_kernel_and_the_toolchain() -> None:
    k = Kernel(image=Path("/boot/vmlinuz-x"), headers=Path("/usr/src/h"), release="x",
               identity="commit+config", types="btf-1")
    dirs = guest.output_dirs("tree", k, "runtime+toolchain-1", "test_progs")
    other = guest.output_dirs("tree", k, "runtime+toolchain-2", "test_progs")
    assert dirs["tools"].startswith("/build/tree/tools-") and dirs != other
    assert guest.output_dirs("tree", k, "runtime+toolchain-1", "test_progs-cpuv4")[
        "selftests"].startswith("/build/tree/selftests-test_progs-cpuv4-")
