"""test_progs output parser, against logs captured from real runs (tests/data/README.md)."""

from __future__ import annotations

import pytest
from conftest import data

from harness.errors import GuestError, InfraError
from harness.outcome import infra
from harness.outcome.report import judge
from harness.outcome.results import Status, parse, parse_retried

SUBTESTS_6_12 = [
    "struct_ops_module/struct_ops_load",
    "struct_ops_module/struct_ops_not_zeroed",
    "struct_ops_module/struct_ops_incompatible",
    "struct_ops_module/struct_ops_null_out_cb",
    "struct_ops_module/struct_ops_forgotten_cb",
    "struct_ops_module/test_detach_link",
    "struct_ops_module/unsupported_ops",
]


def test_all_pass() -> None:
    parsed = parse(data("test_progs-pass.log").splitlines())
    assert [s.name for s in parsed.subtests] == SUBTESTS_6_12
    assert all(s.status is Status.PASS for s in parsed.subtests)
    assert [(t.name, t.status) for t in parsed.tests] == [("struct_ops_module", Status.PASS)]
    assert parsed.summary is not None and parsed.summary.subtests_passed == 7
    verdict = judge(parsed, 0)
    subtests = verdict.subtests
    assert verdict.verdict == "pass" and len(subtests) == 7


def test_subtest_failure_counted_once_with_its_log() -> None:
    parsed = parse(data("test_progs-subtest-fail.log").splitlines())
    # The failing subtest is printed again after "All error logs:": count it once.
    assert len(parsed.subtests) == 7
    failed = [s for s in parsed.subtests if s.status is Status.FAIL]
    assert [s.name for s in failed] == ["struct_ops_module/struct_ops_load"]
    assert any("test_2_result" in line for line in failed[0].log)
    assert parsed.summary is not None and parsed.summary.failed == 1
    verdict = judge(parsed, 1)
    assert verdict.verdict == "fail"
    assert "struct_ops_module/struct_ops_load" in verdict.reason


def test_crash_mid_run_is_a_failure_not_a_pass() -> None:
    parsed = parse(data("test_progs-crash-sigsegv.log").splitlines())
    assert not parsed.complete
    verdict = judge(parsed, 139)
    subtests = verdict.subtests
    assert verdict.verdict == "fail"
    assert "crashed: killed by signal 11 (SIGSEGV) (after struct_ops_module)" in verdict.reason
    assert subtests[-1].name == "test_progs/incomplete"
    assert subtests[-1].status is Status.FAIL


def test_signal_caught_but_run_completed() -> None:
    parsed = parse(data("test_progs-signal-survived.log").splitlines())
    assert parsed.complete and len(parsed.subtests) == 7
    assert judge(parsed, 0).verdict == "pass"


def test_no_output() -> None:
    parsed = parse(data("test_progs-empty.log").splitlines())
    assert parsed.tests == [] and parsed.subtests == [] and not parsed.complete
    verdict = judge(parsed, 0)
    assert verdict.verdict == "error" and isinstance(verdict.error, GuestError)
    assert verdict.subtests == []
    for status in (3, 126):
        assert judge(parsed, status).verdict == "error"
    crashed = judge(parsed, 139)  # killed before its first result: a crash, a failure
    assert crashed.verdict == "fail"
    assert [s.name for s in crashed.subtests] == ["test_progs/incomplete"]


def test_nothing_matched_exit_2_is_an_error() -> None:
    parsed = parse(["Summary: 0/0 PASSED, 0 SKIPPED, 0 FAILED"])
    assert judge(parsed, 2).verdict == "error"


def test_nonzero_exit_without_fail_line_still_fails() -> None:
    parsed = parse(data("test_progs-pass.log").splitlines())
    verdict = judge(parsed, 4)
    subtests = verdict.subtests
    assert verdict.verdict == "fail"
    assert subtests[-1].name == "test_progs/exit"


def test_skip_variants_and_names_with_colons() -> None:
    lines = [
        "#12/1   verifier_x/a test: with colon:SKIP",
        "#12/2   verifier_x/b:OK",
        "#12     verifier_x:OK (SKIP: 1/2)",
        "#13     plain_test:SKIP\r",
        "Summary: 2/1 PASSED, 2 SKIPPED, 0 FAILED",
    ]
    parsed = parse(lines)
    assert [(s.name, s.status) for s in parsed.subtests] == [
        ("verifier_x/a test: with colon", Status.SKIP), ("verifier_x/b", Status.PASS)]
    assert [(t.name, t.status) for t in parsed.tests] == [
        ("verifier_x", Status.PASS), ("plain_test", Status.SKIP)]
    verdict = judge(parsed, 0)
    subtests = verdict.subtests
    # A test without subtests is reported as its own entry.
    assert [s.name for s in subtests][-1] == "plain_test"
    assert verdict.verdict == "pass"


def test_test_module_that_did_not_load_is_missing_infrastructure() -> None:
    """A built kernel rejected a stale bpf_testmod.ko ("failed to validate module BTF"):
    test_progs runs on and every subtest fails, which must not read as test failures."""
    parsed = parse(data("test_progs-testmod-not-loaded.log").splitlines())
    assert parsed.modules_not_loaded == ["bpf_testmod.ko (-22)"]
    assert parsed.complete and len(parsed.failed()) == 8
    verdict = judge(parsed, 1)
    assert verdict.verdict == "error" and isinstance(verdict.error, InfraError)
    assert verdict.reason == ("missing module: test module bpf_testmod.ko (-22) did not load "
                              "in the guest, so the tests ran without it (see dmesg.log)")
    assert len(verdict.subtests) == 7  # kept for the report, not judged


def test_missing_command_is_infrastructure() -> None:
    """`ip` removed from the guest (harness.hide=ip): cgroup_ancestor's system("ip netns
    add ...") fails in the shell, which is the environment's fault, not the test's."""
    parsed = parse(data("test_progs-missing-command.log").splitlines())
    verdict = judge(parsed, 1)
    assert verdict.verdict == "error" and isinstance(verdict.error, InfraError)
    assert verdict.reason == ("1 subtest(s) could not run for want of test infrastructure: "
                              "missing command: ip")
    assert [(s.name, s.status) for s in verdict.subtests] == [
        ("cgroup_ancestor", Status.INFRA)]


@pytest.mark.parametrize(("line", "kind", "what"), [
    # libbpf's bpf_object__open on a missing file (libbpf.c: "elf: failed to open %s: %s")
    ("libbpf: elf: failed to open ./test_obj_id.bpf.o: No such file or directory",
     "object not found", "./test_obj_id.bpf.o"),
    # dash and busybox sh behind system()
    ("sh: 1: ip: not found", "missing command", "ip"),
    ("sh: tc: not found", "missing command", "tc"),
    ("sh: 1: ./bpftool: not found", "missing command", "./bpftool"),
    # testing_helpers.c load_module()
    ("Can't find bpf_test_no_cfi.ko kernel module: 2", "missing module", "bpf_test_no_cfi.ko"),
    # libbpf.c bpf_object__read_kconfig_file()
    ("libbpf: failed to open system Kconfig", "unreadable kernel config",
     "failed to open system Kconfig"),
])
def test_infrastructure_signatures(line: str, kind: str, what: str) -> None:
    [found] = infra.scan(["noise", line, line])
    assert (found.kind, found.what) == (kind, what)


def test_a_failure_that_matches_no_signature_stays_a_failure() -> None:
    parsed = parse(data("test_progs-subtest-fail.log").splitlines())
    verdict = judge(parsed, 1)
    assert verdict.verdict == "fail"
    assert not infra.scan(["test_x:FAIL:open ./x.bpf.o unexpected error: -22"])


# --- retries (--retries N): the guest's reruns after "HARNESS: retry" lines -----------


def _retried(first: str, *reruns: list[str]) -> list[str]:
    lines = data(first).splitlines()
    for k, rerun in enumerate(reruns, 1):
        lines += [f"HARNESS: retry {k} of {len(reruns)}: 1 failed", *rerun]
    return lines


RERUN_PASS = ["#1/2    struct_ops_module/struct_ops_load:OK", "#1      struct_ops_module:OK",
              "Summary: 1/1 PASSED, 0 SKIPPED, 0 FAILED"]
RERUN_FAIL = ["test_2_result:FAIL:again", "#1/2    struct_ops_module/struct_ops_load:FAIL",
              "#1      struct_ops_module:FAIL", "Summary: 0/0 PASSED, 0 SKIPPED, 1 FAILED"]


def test_failed_then_passed_on_a_retry_is_flaky_and_passes() -> None:
    parsed = parse_retried(_retried("test_progs-subtest-fail.log", RERUN_FAIL, RERUN_PASS))
    flaky = [r for r in parsed.subtests if r.status is Status.FLAKY]
    assert [r.name for r in flaky] == ["struct_ops_module/struct_ops_load"]
    assert [r.status for r in flaky[0].reruns] == [Status.FAIL, Status.PASS]
    verdict = judge(parsed, 0)
    assert verdict.verdict == "pass"
    assert verdict.reason.endswith("1 of them flaky (passed on a retry): "
                                   "struct_ops_module/struct_ops_load")
    assert judge(parsed, 0, flaky_fails=True).verdict == "fail"


def test_failed_on_every_retry_stays_a_failure() -> None:
    parsed = parse_retried(_retried("test_progs-subtest-fail.log", RERUN_FAIL))
    [failed] = [r for r in parsed.subtests if r.status is Status.FAIL]
    assert [r.status for r in failed.reruns] == [Status.FAIL]
    assert judge(parsed, 1).verdict == "fail"


def test_without_retries_nothing_changes() -> None:
    lines = data("test_progs-subtest-fail.log").splitlines()
    assert parse_retried(lines) == parse(lines)


# --- newer test_progs' watchdog (none in 6.12: lines in upstream's format) --------------

WATCHDOG_NOTE = "WATCHDOG: test case ns_bpf_qdisc/attach to mq executes for 10 seconds..."
WATCHDOG_KILL = ("WATCHDOG: test case ns_bpf_qdisc/attach to mq executes for 120 seconds, "
                 "terminating with SIGSEGV")


def test_watchdog_names_the_running_subtest() -> None:
    parsed = parse(["#1/1    a/b:OK", "#1      a:OK", WATCHDOG_NOTE])
    assert parsed.watchdog == "ns_bpf_qdisc/attach to mq (test_progs's watchdog: 10 s)"
    assert not parsed.watchdog_killed


def test_watchdog_kill_is_a_hang_not_a_plain_crash() -> None:
    parsed = parse([WATCHDOG_NOTE, WATCHDOG_KILL, "#219     ns_bpf_qdisc:FAIL",
                    "Caught signal #11!", "Stack trace:"])
    assert parsed.watchdog_killed
    verdict = judge(parsed, 139)
    assert verdict.verdict == "fail"
    assert verdict.reason == ("hung: ns_bpf_qdisc/attach to mq (test_progs's watchdog: "
                              "120 s), ended with SIGSEGV")
