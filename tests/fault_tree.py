"""The fault matrix's tree: a clone of the 6.12 tree whose bpf_testmod can misbehave.

Commits (named in `History.ids`), each on the one before:

    faults          bpf_testmod gets /sys/kernel/harness_fault (tests/faults/
                    bpf_testmod_faults.c appended to bpf_testmod.c); prog_tests gets
                    harness_fault.c: tests harness_fault (one subtest per fault),
                    harness_basic, harness_flaky
    exit3           harness_basic also defined as a serial test: test_progs refuses its own
                    test table and exits 3 (EXIT_ERR_SETUP_INFRA) before any test
    panic-on-load   exit3 undone; bpf_testmod panics as test_progs loads it

Only tools/testing/selftests/ changes: every commit boots the installed kernel.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bisect_history import History, clone

FAULTS = Path(__file__).resolve().parent / "faults"
SELFTESTS = "tools/testing/selftests/bpf"
TESTMOD = f"{SELFTESTS}/bpf_testmod/bpf_testmod.c"
INIT = "module_init(bpf_testmod_init);\nmodule_exit(bpf_testmod_exit);\n"
EXIT3 = "\nvoid serial_test_harness_basic(void)\n{\n}\n"
PANIC = "#define HARNESS_PANIC_ON_LOAD\n"


def fault_tree(source: Path, dest: Path, log_dir: Path) -> History:
    w = clone(source, dest, log_dir)
    assert w.history is not None
    test = dest / SELFTESTS / "prog_tests/harness_fault.c"
    shutil.copyfile(FAULTS / "harness_fault.c", test)
    w.edit("faults", TESTMOD, INIT, (FAULTS / "bpf_testmod_faults.c").read_text(),
           "selftests/bpf: the harness's fault matrix")
    w.git.run("add", "-f", "--", str(test))
    w.git.run("commit", "-q", "--amend", "--no-edit")
    w.history.ids["faults"] = w.git.head()
    with test.open("a") as f:
        f.write(EXIT3)
    w.commit("exit3", "selftests/bpf: harness_basic defined twice (test_progs exits 3)")
    test.write_text(test.read_text().replace(EXIT3, ""))
    w.edit("panic-on-load", TESTMOD, "#include <linux/delay.h>\n",
           PANIC + "#include <linux/delay.h>\n", "selftests/bpf: bpf_testmod panics on load")
    return w.history
