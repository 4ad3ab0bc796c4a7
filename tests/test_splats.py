"""Kernel splats: one captured real log per family (tests/data/README.md says how each was
made), the report's and JUnit's view of them, and the gate they fail."""

from __future__ import annotations

import re

import pytest
from conftest import data

from harness import cli
from harness.outcome import splats


@pytest.mark.parametrize(("log", "family", "title"), [
    ("dmesg-warning.log", "warning",
     r"^WARNING: CPU: 0 PID: 182 at \S+/bpf_testmod\.c:\d+ harness_fault_store\+"),
    ("dmesg-refcount.log", "refcount", r"^refcount_t: decrement hit 0; leaking memory\.$"),
    ("dmesg-bug-atomic-sleep.log", "bug", r"^BUG: scheduling while atomic: test_progs/"),
    ("dmesg-soft-lockup.log", "soft-lockup",
     r"^watchdog: BUG: soft lockup - CPU#0 stuck for 3s! \[test_progs:180\]$"),
    ("dmesg-rcu-stall.log", "rcu-stall", r"^rcu: INFO: rcu_preempt self-detected stall on CPU$"),
    ("dmesg-hung-task.log", "hung-task",
     r"^INFO: task test_progs:180 blocked for more than 2 seconds\.$"),
    ("dmesg-kasan.log", "kasan",
     r"^BUG: KASAN: slab-out-of-bounds in harness_fault_kasan\.isra\.0\+0x83/0x92 "
     r"\[bpf_testmod\]$"),
    ("dmesg-ubsan.log", "ubsan",
     r"^UBSAN: array-index-out-of-bounds in \S+/bpf_testmod\.c:\d+:\d+$"),
])
def test_one_family_per_captured_report(log: str, family: str, title: str) -> None:
    lines = data(log).splitlines()
    [found] = splats.scan(lines)
    assert found.family == family
    assert re.search(title, found.title), found.title
    assert found.lines[0] == lines[found.first]  # the log's own line, timestamp kept
    assert found.first == 2  # each capture keeps two lines of context before the report
    last = splats.bare(found.lines[-1]).strip()
    assert splats.END.search(last) or last == "</TASK>" or splats.KASAN_RULE.match(last)
    assert len(found.lines) < len(lines)  # the context after it is not part of it


def test_warning_report_starts_at_cut_here_and_keeps_its_message() -> None:
    [found] = splats.scan(data("dmesg-warning.log").splitlines())
    assert splats.bare(found.lines[0]) == splats.CUT_HERE
    assert splats.bare(found.lines[1]) == "harness fault: warn"
    assert any("harness_fault_store" in ln for ln in found.lines)


def test_a_clean_boot_with_an_unsigned_out_of_tree_module_has_no_splat() -> None:
    text = data("dmesg-clean.log")
    for pattern, _ in splats.ALLOWED_LINES:  # the allowlisted lines are really there
        assert re.search(pattern, text), pattern
    assert splats.scan(text.splitlines()) == []


def test_oops_then_panic_on_the_console() -> None:
    found = splats.scan(data("console-oops-panic.log").splitlines())
    assert [s.family for s in found] == ["oops", "panic"]
    oops, panic = found
    assert splats.bare(oops.lines[0]).startswith("BUG: kernel NULL pointer dereference")
    assert oops.title.startswith("Oops: Oops: 0002 [#1]")
    assert any("harness_fault_oops+0x" in ln for ln in oops.lines)
    assert panic.title == "Kernel panic - not syncing: Fatal exception"


def test_panic_in_the_tests() -> None:
    found = splats.scan(data("console-panic-in-tests.log").splitlines())
    assert [s.family for s in found] == ["panic"]
    assert found[0].title == "Kernel panic - not syncing: harness fault: panic"
    assert any("harness_fault_store" in ln for ln in found[0].lines)


def test_allow_pattern_marks_a_report_allowed_not_gone() -> None:
    lines = data("dmesg-refcount.log").splitlines() + data("dmesg-warning.log").splitlines()
    found = splats.scan(lines, [re.compile(r"^refcount_t: decrement hit 0")])
    assert [(s.family, s.allowed_by is not None) for s in found] == [
        ("refcount", True), ("warning", False)]
    assert [s.family for s in splats.gating(found)] == ["warning"]
    assert found[1].first == len(data("dmesg-refcount.log").splitlines()) + 2


def test_a_report_without_an_end_is_cut() -> None:
    lines = ["[    1.0] BUG: scheduling while atomic: x/1/0x2"] + [
        f"[    1.1] line {i}" for i in range(500)]
    [found] = splats.scan(lines)
    assert len(found.lines) == splats.MAX_LINES


def test_two_reports_back_to_back_are_two() -> None:
    lines = data("dmesg-soft-lockup.log").splitlines()
    found = splats.scan(lines[2:-2] * 2)
    assert [s.family for s in found] == ["soft-lockup", "soft-lockup"]


def test_lines_that_only_look_alike_are_not_splats() -> None:
    lines = ["[    0.1] rcu: Preemptible hierarchical RCU implementation.",
             "[    0.2] NMI watchdog: Perf NMI watchdog permanently disabled",
             "test_warn:PASS:WARNING: CPU: in a test's own output 0 nsec",
             "[    0.3] audit: BUG: not at the start of the message"]
    assert splats.scan(lines) == []


def test_bad_allow_splat_regex_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--allow-splat", "([unclosed", "--dry-run"])
    assert exc.value.code == cli.EXIT_USAGE
    assert "--allow-splat: '([unclosed': not a regular expression" in capsys.readouterr().err


def test_kasan_report_is_kept_whole_to_its_closing_rule() -> None:
    [found] = splats.scan(data("dmesg-kasan.log").splitlines())
    text = "\n".join(found.lines)
    for part in ("Allocated by task 71:", "Memory state around the buggy address:"):
        assert part in text


def test_hard_lockup_line_in_the_kernels_format() -> None:
    """Not captured: neither the cloud kernel (perf NMI watchdog, no PMU under TCG) nor
    the sanitizers build (buddy detector) reported one here.  The line is
    kernel/watchdog.c's format, "Watchdog detected hard LOCKUP on cpu %d", with its
    "watchdog: " prefix."""
    lines = ["[   12.5] watchdog: Watchdog detected hard LOCKUP on cpu 1",
             "[   12.5] Modules linked in: bpf_testmod(OE)", "[   12.5] </TASK>"]
    assert [s.family for s in splats.scan(lines)] == ["hard-lockup"]


def test_oops_int3_at_boot_is_named() -> None:
    """The "Oops: int3" this machine's guest once hit at boot (README, VM), in
    arch/x86/kernel/dumpstack.c's format (it was not captured: thread=single ended it)."""
    lines = ["[    1.1] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI",
             "[    1.1] RIP: 0010:get_random_u64+0x1/0x2", "[    1.1] ---[ end trace 0 ]---",
             "[    1.2] Kernel panic - not syncing: Fatal exception in interrupt"]
    found = splats.scan(lines)
    assert [(s.family, s.title) for s in found] == [
        ("oops", "Oops: int3: 0000 [#1] PREEMPT SMP NOPTI"),
        ("panic", "Kernel panic - not syncing: Fatal exception in interrupt")]
