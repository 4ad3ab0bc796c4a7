"""Pure pieces of the targeted build: flags, tests.h and the generated Makefile."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.boot.kernel import Kernel
from harness.build import discover, inputs
from harness.build import targeted as build
from harness.config import Toolchain
from harness.host import proc
from harness.host.cache import Cache

CLANG_V = """\
clang version 19.1.7
#include "..." search starts here:
#include <...> search starts here:
 /usr/lib/llvm-19/lib/clang/19/include
 /usr/include
End of search list.
"""


def _plan() -> discover.Plan:
    source = '#include "a.skel.h"\n#include "b.lskel.h"\nvoid test_t(void) {}\n"r.bpf.o"\n'
    t = discover.parse_test_file("test_t", source, {})
    return discover.Plan(tests=(t,), extra_sources=("test_progs.c", "helpers.c"),
                         prog_cflags={"a": "-fno-inline"})


def _inputs() -> build.MakeInputs:
    tools = build.Tools(Path("/b/bpftool"), Path("/b/libbpf.a"), Path("/b/inc"))
    return build.MakeInputs(tree=Path("/t"), out=Path("/o"), tools=tools,
                            vmlinux=Path("/h/vmlinux"), toolchain=Toolchain(), arch="x86",
                            sys_includes=("-idirafter", "/usr/include"))


def test_sys_includes() -> None:
    assert build.sys_includes(CLANG_V) == [
        "-idirafter", "/usr/lib/llvm-19/lib/clang/19/include", "-idirafter", "/usr/include"]
    assert build.sys_includes("no list") == []


def test_tests_header_sorted() -> None:
    plan = _plan()
    assert build.tests_header(plan).splitlines()[1:] == ["DEFINE_TEST(t)"]


def test_makefile_builds_only_the_plan() -> None:
    text = build.render_makefile(_inputs(), _plan())
    assert "$(OUT)/a.bpf.o: $(SRC)/progs/a.c" in text
    assert "$(OUT)/r.bpf.o: $(SRC)/progs/r.c" in text
    assert "-fno-inline -MMD -MP" in text
    assert "gen skeleton -L $(OUT)/b.lskel.linked.o name b_lskel" in text
    assert "gen skeleton $(OUT)/a.skel.linked.o name a " in text
    assert "$(OUT)/test_progs: $(OUT)/test_t.test.o $(OUT)/test_progs.o $(OUT)/helpers.o" in text
    assert "all: $(OUT)/test_progs $(OUT)/r.bpf.o" in text
    # Generated headers are searched before the tree, so stale in-tree ones are never used.
    assert text.index("-I$(OUT) -I$(SRC)") > 0
    assert text.count(".bpf.o: $(SRC)/progs/") == 3


@pytest.mark.parametrize(("flavor", "mcpu", "atomics"), [
    ("test_progs", "-mcpu=v3", True),
    ("test_progs-no_alu32", "-mcpu=v2", False),
    ("test_progs-cpuv4", "-mcpu=v4", True),
])
def test_flavors_compile_as_the_makefile_runners(flavor: str, mcpu: str, atomics: bool) -> None:
    inputs = dataclasses.replace(_inputs(), flavor=flavor)
    text = build.render_makefile(inputs, _plan())
    flags = text.split("BPF_CFLAGS :=", 1)[1].split("CFLAGS :=", 1)[0]
    assert mcpu in flags and ("-DENABLE_ATOMICS_TESTS" in flags) is atomics
    assert flags.count("-mcpu=") == 1


def test_each_flavor_has_its_own_build_directory(tmp_path: Path) -> None:
    ctx = build.BuildContext(tree=tmp_path, tree_key="t", cache=Cache(tmp_path),
                             log_dir=tmp_path, toolchain=Toolchain(), jobs=1)
    k = Kernel(image=tmp_path / "bz", headers=tmp_path, release="r", identity="i", types="t")
    dirs = {ctx.selftests_dir(k, f).name.split("-")[0] for f in build.FLAVOR_CFLAGS}
    assert len({ctx.selftests_dir(k, f) for f in build.FLAVOR_CFLAGS}) == 3
    assert dirs == {"selftests"}


def test_write_if_changed_keeps_mtime(tmp_path: Path) -> None:
    f = tmp_path / "x" / "tests.h"
    build.write_if_changed(f, "a")
    before = f.stat().st_mtime_ns
    build.write_if_changed(f, "a")
    assert f.stat().st_mtime_ns == before
    build.write_if_changed(f, "b")
    assert f.read_text() == "b"


def test_first_error_names_the_compiler_error() -> None:
    log = ("gcc -c a.c -o a.o\n"
           "a.c: In function 'f':\n"
           "a.c:3:5: error: implicit declaration of function 'g'\n"
           "cc1: all warnings being treated as errors\n"
           "make: *** [targeted.mk:62: a.o] Error 1\n")
    assert build.first_error(log) == "a.c:3:5: error: implicit declaration of function 'g'"
    assert build.first_error("just a line\nlast line\n") == "last line"
    assert build.first_error("") == "no output"


def _commit_file(repo: Path, rel: str) -> None:
    from fakes import IDENTITY  # noqa: PLC0415
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(f"/* {rel} */\n")
    for args in (["add", "-A"], ["commit", "-qm", rel]):
        proc.run(["git", "-C", str(repo), *args], log=repo.parent / "g.log", timeout=30,
                 env=IDENTITY)


def test_bpftool_build_is_keyed_by_the_content_it_reads(tmp_path: Path) -> None:
    """make runs again only when tools/ (but the selftests) or bpftool's kernel files
    change; the ledger and the step's log say which."""
    from fakes import FakeProcs, fake_kernel_repo  # noqa: PLC0415
    repo = tmp_path / "linux"
    repo.mkdir()
    fake_kernel_repo(repo)

    def made(req: proc.Request) -> None:
        out = Path(next(a for a in req.argv if a.startswith("OUTPUT=")).split("=", 1)[1])
        dest = Path(next(a for a in req.argv if a.startswith("LIBBPF_DESTDIR=")).split("=")[1])
        (out / "bpftool").write_text("elf")
        (out.parent / "libbpf/libbpf.a").write_text("ar")
        (dest / "include/bpf").mkdir(parents=True, exist_ok=True)
        (dest / "include/bpf/libbpf.h").write_text("/* */")

    fake = FakeProcs().on("tools/bpf/bpftool", effect=made)
    steps = [(None, "built"), (None, "reused"), ("Documentation/bpf/a.rst", "reused"),
             ("tools/testing/selftests/bpf/t.c", "reused"), ("tools/lib/bpf/btf.c", "built"),
             ("kernel/bpf/disasm.c", "built"), ("kernel/bpf/verifier.c", "reused"),
             ("-tools/lib/bpf/btf.c kernel/bpf/disasm.c", "reused")]  # the first key again
    with proc.using(fake):
        for changed, expected in steps:
            if changed and changed.startswith("-"):
                proc.run(["git", "-C", str(repo), "rm", "-q", *changed[1:].split()],
                         log=tmp_path / "g.log", timeout=30)
                _commit_file(repo, "Documentation/bpf/b.rst")
            elif changed:
                _commit_file(repo, changed)
            ctx = build.BuildContext(tree=repo, tree_key="t", cache=Cache(tmp_path / "c"),
                                     log_dir=tmp_path, toolchain=Toolchain(), jobs=1)
            build.build_tools(ctx)
            assert ctx.ledger == {"bpftool": expected}, changed
            log = (tmp_path / "build-bpftool.log").read_text()
            assert log.startswith("harness: reused") is (expected == "reused")
    assert sum(1 for c in fake.calls if c[0] == "make") == 3
    assert "restored from the copy" in log  # the last step: the first build's copy
    assert (tmp_path / "c").exists()


# --- a damaged cache is never trusted (harness/build/inputs.py) -----------------------


def _built(tmp_path: Path) -> tuple[Path, list[Path]]:
    out = tmp_path / "out"
    (out / "include/bpf").mkdir(parents=True)
    (out / "bpftool").write_bytes(b"\x7fELF" + b"x" * 4096)
    (out / "include/bpf/libbpf.h").write_text("/* libbpf */\n")
    outputs = [out / "bpftool", out / "include"]
    inputs.remember(out, "key1", outputs)
    inputs.snapshot(out, "key1", outputs)
    return out, outputs


def test_truncated_output_is_corrupt_and_not_reusable(tmp_path: Path) -> None:
    out, outputs = _built(tmp_path)
    assert inputs.reusable(out, "key1", outputs) and inputs.corrupt(out, outputs) == []
    with (out / "bpftool").open("r+b") as f:
        f.truncate(100)
    assert inputs.corrupt(out, outputs) == [out / "bpftool"]
    assert not inputs.reusable(out, "key1", outputs)
    (out / "include/bpf/libbpf.h").write_text("/* edited */\n")  # a directory output too
    assert inputs.corrupt(out, outputs) == outputs


def test_damaged_copy_is_dropped_not_restored(tmp_path: Path) -> None:
    out, outputs = _built(tmp_path)
    kept = out / inputs.SNAPSHOTS / "key1"
    (kept / "bpftool").write_bytes(b"damaged")
    assert not inputs.restore(out, "key1", outputs)
    assert not kept.exists() and not (out / "bpftool").exists()


def test_intact_copy_is_restored(tmp_path: Path) -> None:
    out, outputs = _built(tmp_path)
    inputs.remember(out, "key2", outputs)
    assert inputs.restore(out, "key1", outputs)
    assert inputs.reusable(out, "key1", outputs)
