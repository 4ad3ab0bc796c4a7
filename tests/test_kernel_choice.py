"""--kernel auto|prebuilt|build: the rule of what the kernel build reads, and the choice.

Unit tests on small trees written here; the real 6.12 tree's Makefiles at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import IDENTITY, fake_kernel_repo

from harness import cli
from harness.boot import choice
from harness.boot.choice import Choice, Difference, How, PatchFiles
from harness.build import kernel_reads
from harness.host import toolchain

TOP_MAKEFILE = """\
prepare: tools/objtool
prepare: tools/bpf/resolve_btfids
"""
OBJTOOL = """\
include ../scripts/Makefile.include
LIBSUBCMD_DIR = $(srctree)/tools/lib/subcmd/
INCLUDES := -I$(srctree)/tools/include -I$(srctree)/tools/arch/$(SRCARCH)/include
"""
RESOLVE_BTFIDS = """\
LIBBPF_SRC := $(srctree)/tools/lib/bpf/
"""
BUILD = "$(OUTPUT)%.o: ../../lib/%.c FORCE\n"
DECODE = '#include "../../../arch/x86/lib/insn.c"\n#include <stdio.h>\n'


def _tree(root: Path) -> Path:
    files = {
        "Makefile": TOP_MAKEFILE,
        "tools/objtool/Makefile": OBJTOOL,
        "tools/bpf/resolve_btfids/Makefile": RESOLVE_BTFIDS,
        "tools/bpf/resolve_btfids/Build": BUILD,
        "tools/lib/bpf/Makefile": "include $(srctree)/tools/build/Makefile.include\n",
        "tools/scripts/Makefile.include": "X := $(srctree)/tools/scripts/utilities.mak\n",
        "tools/objtool/arch/x86/decode.c": DECODE,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.mark.parametrize("path,read", [
    ("kernel/bpf/core.c", "kernel source"),
    ("include/uapi/linux/bpf.h", "kernel source"),
    ("Documentation/bpf/index.rst", None),
    ("Documentation/Kconfig", "Kconfig"),
    ("MAINTAINERS", None),
    ("kernel/bpf/.gitignore", None),
    ("tools/objtool/check.c", "prepare: tools/objtool"),
    ("tools/lib/subcmd/parse-options.c", "build of tools/objtool"),
    ("tools/include/linux/list.h", "build of tools/objtool"),
    ("tools/arch/x86/include/asm/insn.h", "build of tools/objtool"),
    ("tools/scripts/Makefile.include", "build of tools/objtool"),
    ("tools/scripts/utilities.mak", "build of tools/objtool"),  # named by an included file
    ("tools/lib/bpf/libbpf.c", "build of tools/bpf/resolve_btfids"),
    ("tools/build/Makefile.include", "build of tools/bpf/resolve_btfids"),  # via tools/lib/bpf
    ("tools/lib/rbtree.c", "build of tools/bpf/resolve_btfids"),  # ../../lib/%.c
    ("tools/arch/x86/lib/insn.c", "build of tools/objtool"),  # #include "../../../arch/..."
    ("tools/lib/perf/evsel.c", None),  # % stays within one directory
    ("tools/bpf/bpftool/gen.c", None),
    ("tools/testing/selftests/bpf/prog_tests/test_struct_ops_module.c", None),
    ("tools/arch/arm64/include/asm/barrier.h", None),  # another arch
])
def test_rule_from_the_makefiles(tmp_path: Path, path: str, read: str | None) -> None:
    rule = kernel_reads.derive(_tree(tmp_path))
    why = rule.reason(path)
    if read is None:
        assert why is None
    else:
        assert why is not None and read in why


def test_a_tree_without_prepare_tools_reads_no_tools(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n")
    rule = kernel_reads.derive(tmp_path)
    assert rule.tools == {}
    assert rule.reason("tools/lib/bpf/libbpf.c") is None
    assert rule.reason("kernel/bpf/core.c") is not None


# --- the choice ------------------------------------------------------------------------

ORIGIN = "Debian linux-source-6.12 6.12.117-1~deb12u1"
SAME = Difference(ORIGIN)
DOCS_ONLY = Difference(ORIGIN, unread=2)
KERNEL = Difference(ORIGIN, read=[("kernel/bpf/core.c", "kernel source")], unread=1)
OTHER = Difference(ORIGIN, unrelated="no installed kernel is Linux 6.13.0")


@pytest.mark.parametrize("mode,diff,how,words,warned", [
    ("auto", SAME, How.PREBUILT, "the installed kernel's own source", False),
    ("auto", DOCS_ONLY, How.PREBUILT, "only in 2 files the kernel build does not read", False),
    ("auto", KERNEL, How.BUILD, "kernel/bpf/core.c (kernel source)", False),
    ("auto", OTHER, How.BUILD, "no installed kernel is Linux 6.13.0", False),
    ("prebuilt", SAME, How.PREBUILT, "--kernel prebuilt", False),
    ("prebuilt", KERNEL, How.PREBUILT, "--kernel prebuilt", True),
    ("build", SAME, How.BUILD, "--kernel build", False),
])
def test_decide(mode: str, diff: Difference, how: How, words: str, warned: bool) -> None:
    got = choice.decide(mode, diff)
    assert got.how is how and words in got.reason
    assert (got.warning is not None) == warned
    if warned:
        assert got.warning is not None and "kernel/bpf/core.c" in got.warning


RULE = kernel_reads.Rule({"tools/lib/bpf": "read by the build of tools/bpf/resolve_btfids"})
KERNEL_SERIES = [PatchFiles("1/2", ("tools/testing/selftests/bpf/x.c",)),
                 PatchFiles("2/2", ("kernel/bpf/bpf_struct_ops.c",))]
TOOLS_SERIES = [PatchFiles("1/1", ("tools/bpf/bpftool/gen.c",))]
LIBBPF_SERIES = [PatchFiles("1/1", ("tools/lib/bpf/libbpf.c",))]


def test_gate_builds_both_sides_when_the_series_touches_the_kernel() -> None:
    got = choice.decide_gate("auto", SAME, KERNEL_SERIES, RULE)
    assert got.base.how is got.series.how is How.BUILD
    assert got.series.reason.startswith("series patch 2/2 touches kernel/bpf/bpf_struct_ops.c")
    assert got.base.reason.startswith("like for like with the series side: series patch 2/2")


def test_gate_names_libbpf_as_linked_into_resolve_btfids() -> None:
    got = choice.decide_gate("auto", SAME, LIBBPF_SERIES, RULE)
    assert got.series == Choice(How.BUILD, "series patch 1/1 touches tools/lib/bpf/libbpf.c "
                                "(read by the build of tools/bpf/resolve_btfids)")


def test_gate_on_prebuilt_when_nothing_the_kernel_reads_changes() -> None:
    got = choice.decide_gate("auto", SAME, TOOLS_SERIES, RULE)
    assert got.base.how is got.series.how is How.PREBUILT
    assert "the series touches nothing the kernel build reads" in got.series.reason


def test_gate_builds_both_when_the_base_needs_it() -> None:
    got = choice.decide_gate("auto", OTHER, TOOLS_SERIES, RULE)
    assert got.base.how is got.series.how is How.BUILD
    assert got.series.reason == "like for like with the base: no installed kernel is Linux 6.13.0"


def test_gate_prebuilt_override_warns_on_the_series_side() -> None:
    got = choice.decide_gate("prebuilt", SAME, KERNEL_SERIES, RULE)
    assert got.base.how is got.series.how is How.PREBUILT
    assert got.base.warning is None
    assert got.series.warning is not None and "patch 2/2" in got.series.warning


def test_describe_counts_the_rest() -> None:
    read = [(f"kernel/f{i}.c", "kernel source") for i in range(5)]
    text = choice.describe(read)
    assert text.count("kernel source") == choice.SHOWN and text.endswith("and 2 more")


def test_listings_compare_by_object_id() -> None:
    a = choice.parse_ls_tree("100644 blob aaa\tMakefile\x00100644 blob bbb\tkernel/x.c\x00")
    b = choice.parse_ls_tree("100644 blob aaa\tMakefile\x00100644 blob ccc\tkernel/x.c\x00"
                             "100644 blob ddd\tnew file.c\x00")
    assert a == {"Makefile": "aaa", "kernel/x.c": "bbb"}
    assert choice.changed_paths(a, b) == ["kernel/x.c", "new file.c"]
    assert choice.changed_paths(a, a) == []


# --- the real tree ---------------------------------------------------------------------


@pytest.mark.build
def test_rule_of_the_real_tree(default_tree: Path) -> None:
    rule = kernel_reads.derive(default_tree)
    assert {"tools/objtool", "tools/bpf/resolve_btfids"} <= set(rule.tools)
    libbpf = rule.reason("tools/lib/bpf/libbpf.c")
    assert libbpf is not None and "tools/bpf/resolve_btfids" in libbpf
    for unread in ("tools/bpf/bpftool/gen.c", "tools/testing/selftests/bpf/test_progs.c",
                   "tools/perf/builtin-record.c", "Documentation/bpf/index.rst"):
        assert rule.reason(unread) is None, unread
    assert not any("//" in ref for ref in rule.tools)
    for read in ("tools/include/uapi/linux/bpf.h", "tools/lib/subcmd/run-command.c",
                 "tools/arch/x86/lib/insn.c", "tools/arch/x86/lib/inat.c",
                 "tools/objtool/check.c", "kernel/bpf/bpf_struct_ops.c"):
        assert rule.reason(read) is not None, read


# --- --kernel prebuilt on a tree no installed kernel matches (real git, no build) -------


def test_prebuilt_on_a_tree_no_installed_kernel_matches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    linux = tmp_path / "linux"
    linux.mkdir()
    repo = fake_kernel_repo(linux, "VERSION = 6\nPATCHLEVEL = 13\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    selftests = linux / "tools/testing/selftests/bpf"
    (selftests / "Makefile").write_text("TRUNNER_EXTRA_SOURCES := test_progs.c\n")
    (selftests / "prog_tests/test_struct_ops_module.c").write_text(
        "void test_struct_ops_module(void) {}\n")
    repo.git.add("-A")
    repo.git.commit("-qm", "selftests", env=IDENTITY)
    monkeypatch.setattr(toolchain, "check", lambda tc: None)
    out = tmp_path / "run"
    code = cli.main(["run", "--tree", str(linux), "--kernel", "prebuilt", "--out", str(out),
                     "--cache", str(tmp_path / "cache")])
    assert code == cli.EXIT_BAD_TREE
    rep = json.loads((out / "report.json").read_text())
    assert rep["kernel"]["choice"]["how"] == "prebuilt"
    assert "no installed kernel matches it" in rep["reason"]
    assert "install linux-image-6.13.0+deb12-cloud-amd64" in rep["reason"]
    assert "--kernel build" in rep["reason"]


def test_kconfig_with_an_image_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = cli.main(["run", "--kernel", str(tmp_path / "bzImage"), "--headers", str(tmp_path),
                     "--kconfig", "selftests", "--out", str(out)])
    assert code == cli.EXIT_USAGE
    assert "it means nothing with --kernel /" in json.loads(
        (out / "report.json").read_text())["reason"]


def test_lacking_options_stay_one_short_line() -> None:
    from harness import run  # noqa: PLC0415

    unmet = [f"CONFIG_X{i}=y (kernel has n; from config)" for i in range(190)]
    text = run.lacking(unmet)
    assert text.count("CONFIG_") == 3 and text.endswith(" and 187 more")
    assert run.lacking(unmet[:2]) == ", ".join(unmet[:2])
