"""Skeleton/object discovery for prog_tests: pure functions, then the real 6.12 tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.build import discover, select
from harness.errors import BuildError, TreeError

TEST_SOURCE = """\
#include <test_progs.h>
#include "struct_ops_module.skel.h"
#include "linked_funcs.skel.h"
#include "fentry_test.lskel.h"
#include "test_subskeleton_lib.subskel.h"
static void helper(void) { bpf_object__open_file("test_pinning.bpf.o", NULL); }
void test_alpha(void) {}
void serial_test_beta(void)
{
}
static void test_not_an_entry(void) {}
"""

MAKEFILE = """\
linked_funcs.skel.h-deps := linked_funcs1.bpf.o linked_funcs2.bpf.o
test_subskeleton_lib.skel.h-deps := test_subskeleton_lib2.bpf.o test_subskeleton_lib.bpf.o
progs/syscall.c-CFLAGS := -fno-strict-aliasing
TRUNNER_EXTRA_SOURCES := test_progs.c \\
    cgroup_helpers.c \\
    flow_dissector_load.h
TRUNNER_EXTRA_SOURCES := other.c
"""


def test_functions_as_tests_h_lists_them() -> None:
    assert discover.test_functions(TEST_SOURCE) == ("alpha", "beta")


def test_skeletons_with_linked_deps() -> None:
    skels = discover.skeletons(TEST_SOURCE, discover.linked_deps(MAKEFILE))
    assert [(s.header, s.objects) for s in skels] == [
        ("struct_ops_module.skel.h", ("struct_ops_module",)),
        ("linked_funcs.skel.h", ("linked_funcs1", "linked_funcs2")),
        ("fentry_test.lskel.h", ("fentry_test",)),
        ("test_subskeleton_lib.subskel.h", ("test_subskeleton_lib2", "test_subskeleton_lib")),
    ]


def test_runtime_objects() -> None:
    assert discover.runtime_objects(TEST_SOURCE) == ("test_pinning.bpf.o",)


def test_makefile_extras() -> None:
    assert discover.extra_sources(MAKEFILE) == ("test_progs.c", "cgroup_helpers.c")
    assert discover.prog_cflags(MAKEFILE) == {"syscall": "-fno-strict-aliasing"}


def _req(*tests: str) -> select.Request:
    return select.Request(tests=tests)


def test_files_providing_functions_a_selected_file_calls_are_linked() -> None:
    sources = {
        "iters": "extern int stack_mprotect(void);\nvoid test_iters(void)\n{\n"
                 "\tstack_mprotect();\n}\n",
        "test_lsm": "int stack_mprotect(void)\n{\n\treturn 0;\n}\n"
                    "static int helper(void)\n{\n\treturn 1;\n}\nvoid test_lsm(void)\n{\n}\n",
        "other": "static int stack_mprotect2(void)\n{\n}\nvoid test_other(void)\n{\n}\n",
    }
    assert discover.exported(sources["test_lsm"]) == {"stack_mprotect"}
    assert discover.with_providers(("iters",), sources) == ("iters", "test_lsm")
    assert discover.with_providers(("other",), sources) == ("other",)


def test_objects_a_macro_pastes_together() -> None:
    source = '.btf_src_file = "btf__core_reloc_" #name ".bpf.o",\n'
    progs = ["btf__core_reloc_arrays", "btf__core_reloc_ints", "test_core_reloc_ints"]
    assert discover.pasted_objects(source, progs) == (
        "btf__core_reloc_arrays.bpf.o", "btf__core_reloc_ints.bpf.o")


def test_skeletons_included_with_angle_brackets() -> None:
    source = '#include <test_progs.h>\n#include <preempt_lock.skel.h>\n'
    assert [s.header for s in discover.skeletons(source, {})] == ["preempt_lock.skel.h"]


def test_runtime_objects_however_the_path_is_written() -> None:
    source = 'open("./a.bpf.o"); open("b.bpf.o"); x = "progs/c.bpf.o"; y = "%s.bpf.o";'
    assert discover.runtime_objects(source) == ("a.bpf.o", "b.bpf.o", "c.bpf.o")


EXTRAS_MAKEFILE = """\
TRUNNER_EXTRA_FILES := $(OUTPUT)/urandom_read $(OUTPUT)/bpf_testmod.ko\t\\
\t\t       $(OUTPUT)/bpf_test_no_cfi.ko\t\t\t\\
\t\t       $(OUTPUT)/liburandom_read.so\t\t\\
\t\t       $(OUTPUT)/sign-file\t\t\t\\
\t\t       verify_sig_setup.sh\t\t\t\t\\
\t\t       $(wildcard progs/btf_dump_test_case_*.c)\t\t\\
\t\t       $(wildcard progs/*.bpf.o)
TRUNNER_EXTRA_FILES :=
"""


def test_extra_files_from_the_makefile(tmp_path: Path) -> None:
    for d in ("bpf_testmod", "bpf_test_no_cfi"):
        (tmp_path / d).mkdir()
    (tmp_path / "progs").mkdir()
    (tmp_path / "progs/btf_dump_test_case_bitfields.c").write_text("")
    (tmp_path / "verify_sig_setup.sh").write_text("./sign-file sha256 key cert mod\n")
    extras = discover.extra_files(EXTRAS_MAKEFILE, tmp_path)
    assert [(e.name, e.kind) for e in extras] == [
        ("urandom_read", "program"), ("bpf_testmod", "module"), ("bpf_test_no_cfi", "module"),
        ("liburandom_read.so", "program"), ("sign-file", "program"),
        ("verify_sig_setup.sh", "file"), ("progs/btf_dump_test_case_bitfields.c", "file")]
    needed = discover.needed_extras(extras, ['open("bpf_test_no_cfi.ko")'], tmp_path)
    assert [e.name for e in needed] == ["bpf_testmod", "bpf_test_no_cfi"]
    # A program brings its lib<name>.so; a script brings what it runs.
    needed = discover.needed_extras(extras, ['run("./urandom_read")', "verify_sig_setup.sh"],
                                    tmp_path)
    assert [e.name for e in needed] == ["urandom_read", "bpf_testmod", "liburandom_read.so",
                                        "sign-file", "verify_sig_setup.sh"]
    needed = discover.needed_extras(extras, ['"progs/btf_dump_test_case_%s.c"'], tmp_path)
    assert "progs/btf_dump_test_case_bitfields.c" in [e.name for e in needed]


@pytest.mark.build
def test_plan_for_struct_ops_module_on_real_tree(default_tree: Path) -> None:
    plan = discover.load_plan(default_tree, _req("test_struct_ops_module"))
    assert plan.functions == ("struct_ops_module",)
    # The five skeletons 6.12.117's test includes, found from the source.
    assert plan.bpf_objects == (
        "struct_ops_detach", "struct_ops_forgotten_cb", "struct_ops_module",
        "struct_ops_nulled_out_cb", "unsupported_ops")
    assert "test_loader.c" in plan.extra_sources and "test_progs.c" in plan.extra_sources


@pytest.mark.build
def test_backport_with_missing_program_is_named(default_tree: Path) -> None:
    # 6.12.117's prog_tests/bpf_attr_size.c includes a skeleton whose program is absent.
    with pytest.raises(BuildError, match=r"bpf_attr_size\.c includes .*progs/.*\.c is not"):
        discover.load_plan(default_tree, _req("bpf_attr_size"))


def test_selftests_without_a_makefile_is_a_tree_error(tmp_path: Path) -> None:
    (tmp_path / "tools/testing/selftests/bpf/prog_tests").mkdir(parents=True)
    with pytest.raises(TreeError, match=r"selftests/bpf/Makefile: cannot read"):
        discover.load_plan(tmp_path, _req("test_struct_ops_module"))
