"""The pipeline and the series gate, with the process layer faked (no QEMU, clang or tree).

Real git on small repositories; make, clang, ldd and QEMU answered by tests/fakes.py,
QEMU replaying logs captured from real runs (tests/data).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import IDENTITY, FakeProcs, VmScript, captured_vm, fake_kernel_repo
from junit_schema import validate

from harness import cli, run
from harness.boot import vm
from harness.config import RunConfig, Toolchain
from harness.errors import BootError, HarnessTimeout, KernelPanic, RunTimeout
from harness.host import proc, toolchain
from harness.outcome import results
from harness.outcome.report import RunReport, Verdict

SELFTESTS = "tools/testing/selftests/bpf"
TEST_C = "#include \"test_progs.h\"\nvoid test_struct_ops_module(void)\n{\n}\n"


def _arg(req: proc.Request, prefix: str) -> Path:
    return Path(next(a for a in req.argv if a.startswith(prefix)).removeprefix(prefix))


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("built\n")


def _bpftool(req: proc.Request) -> None:
    _touch(_arg(req, "OUTPUT=") / "bpftool", _arg(req, "LIBBPF_OUTPUT=") / "libbpf.a",
           _arg(req, "LIBBPF_DESTDIR=") / "include/bpf/libbpf.h")


def _testmod(req: proc.Request) -> None:
    _touch(_arg(req, "M=") / "bpf_testmod.ko")


def _test_progs(req: proc.Request) -> None:
    makefile = Path(req.argv[req.argv.index("-f") + 1])
    _touch(makefile.parent / "test_progs")


def _debootstrap(req: proc.Request) -> None:
    _touch(Path(req.argv[-2]) / "usr/lib/x86_64-linux-gnu/libc.so.6")


def _mksquashfs(req: proc.Request) -> None:
    _touch(Path(req.argv[2]))


def builds(fake: FakeProcs, bpftool_rc: int = 0) -> FakeProcs:
    """Rules for a build that works (or whose bpftool step fails)."""
    return (fake.on("tools/bpf/bpftool", bpftool_rc, "gen.c:1:1: error: boom\n",
                    None if bpftool_rc else _bpftool)
            .on(" M=", effect=_testmod).on("targeted.mk", effect=_test_progs)
            .on("debootstrap ", effect=_debootstrap).on("mksquashfs ", effect=_mksquashfs)
            .on("dpkg-query --admindir", output="iproute2\t6.1.0-3\n")
            .on("ldd ", output="").on(" -v -E -", output="").on("--version", output="fake 1\n"))


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Path]]:
    """A tiny kernel git tree with one prog_test, a kernel image and its headers."""
    linux = tmp_path / "linux"
    linux.mkdir()
    repo = fake_kernel_repo(linux)
    st = linux / SELFTESTS
    (st / "Makefile").write_text("TRUNNER_EXTRA_SOURCES := test_progs.c\n")
    (st / "prog_tests/test_struct_ops_module.c").write_text(TEST_C)
    (st / "bpf_testmod").mkdir()
    (st / "bpf_testmod/bpf_testmod.c").write_text("/* module */\n")
    repo.git.add("-A")
    repo.git.commit("-qm", "selftests", env=IDENTITY)
    headers = tmp_path / "headers"
    (headers / "include/config").mkdir(parents=True)
    for name, text in (("Makefile", "all:\n"), ("vmlinux", "BTF"),
                       ("include/config/kernel.release", "6.12.117-fake\n")):
        (headers / name).write_text(text)
    (tmp_path / "bzImage").write_text("kernel")
    (tmp_path / "busybox").write_text("busybox")
    monkeypatch.setattr(toolchain, "check", lambda tc: None)
    yield {"linux": linux, "headers": headers, "image": tmp_path / "bzImage",
           "busybox": tmp_path / "busybox", "root": tmp_path}


def _cfg(world: dict[str, Path], name: str = "run", **extra: object) -> RunConfig:
    root = world["root"]
    return RunConfig(out=root / name, cache=root / "cache", tree=world["linux"],
                     kernel_mode="image", kernel=world["image"], headers=world["headers"], jobs=1,
                     toolchain=Toolchain(busybox=str(world["busybox"])), **extra)  # type: ignore[arg-type]


def _stages(rep: RunReport) -> list[tuple[str, str]]:
    return [(s.name, s.status) for s in rep.stages]


PIPELINE = ["inputs", "preflight", "resolve", "tree", "discover", "kernel", "build-bpftool",
            "build-testmod", "build-test_progs", "build-helpers", "rootfs", "initramfs",
            "boot+run", "parse"]


def test_pipeline_stage_order_and_pass(world: dict[str, Path]) -> None:
    fake = builds(FakeProcs(vm=lambda req: captured_vm("test_progs-pass.log")))
    with proc.using(fake):
        rep = run.execute(_cfg(world), lambda _: None)
    assert _stages(rep) == [(n, "ok") for n in PIPELINE]
    assert rep.verdict is Verdict.PASS and len(rep.subtests) == 7
    assert rep.vm is not None and rep.vm.ended == "powered off"
    boots = [i for i, c in enumerate(fake.calls) if "-initrd" in c]
    assert boots == [len(fake.calls) - 1]
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_PASS


def test_pipeline_stops_at_first_failure(world: dict[str, Path]) -> None:
    fake = builds(FakeProcs(), bpftool_rc=2)
    with proc.using(fake):
        rep = run.execute(_cfg(world), lambda _: None)
    assert _stages(rep)[-1] == ("build-bpftool", "failed")
    assert [n for n, _ in _stages(rep)] == PIPELINE[:7]
    assert not fake.ran("-initrd") and not fake.ran(" M=")
    assert rep.verdict is Verdict.ERROR and "error: boom" in rep.reason
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_BUILD


@pytest.mark.parametrize("script,code,words", [
    (captured_vm("test_progs-pass.log", status=None), cli.EXIT_VM_LOST, "VM lost after boot"),
    (captured_vm("test_progs-empty.log", status=None, console="console-panic-no-init.log"),
     cli.EXIT_PANIC, "kernel panic"),
    (captured_vm("test_progs-subtest-fail.log", status="HARNESS-EXIT 1\n"),
     cli.EXIT_TEST_FAILURE, "failed: struct_ops_module/struct_ops_load"),
    (captured_vm("test_progs-crash-sigsegv.log", status="HARNESS-EXIT 139\n"),
     cli.EXIT_TEST_FAILURE, "crashed: killed by signal 11 (SIGSEGV)"),
])
def test_vm_outcomes_through_the_pipeline(world: dict[str, Path], script: VmScript,
                                          code: int, words: str) -> None:
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        rep = run.execute(_cfg(world), lambda _: None)
    assert words in rep.reason
    assert cli.exit_code(rep.verdict, rep.error) == code


def test_guest_that_cannot_power_off_is_ended_and_judged(world: dict[str, Path]) -> None:
    script = captured_vm("test_progs-pass.log")
    script.ticks = (0.5, 1.0, 0.5 + vm.GRACE + 0.5)
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        rep = run.execute(_cfg(world), lambda _: None)
    assert rep.verdict is Verdict.PASS and rep.vm is not None
    assert rep.vm.ended == vm.NO_POWEROFF


def test_run_dry_run_builds_nothing(world: dict[str, Path]) -> None:
    fake = builds(FakeProcs())
    with proc.using(fake):
        rep = run.execute(_cfg(world, dry_run=True), lambda _: None)
    assert rep.verdict is Verdict.DRY_RUN and rep.qemu is not None
    assert not fake.ran("make -j") and not fake.ran("-initrd")
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_DRY_RUN != cli.EXIT_PASS


def test_guest_dry_run_reports_the_mode_and_makes_no_image(world: dict[str, Path]) -> None:
    fake = builds(FakeProcs())
    cfg = _cfg(world, dry_run=True, build_in="guest")
    with proc.using(fake):
        rep = run.execute(cfg, lambda _: None)
    assert rep.verdict is Verdict.DRY_RUN and rep.as_dict()["build_in"] == {"mode": "guest"}
    assert rep.qemu is not None and "virtserialport" in " ".join(rep.qemu)
    assert not fake.ran("mksquashfs") and not fake.ran("mkfs.ext4")
    assert not (cfg.out / run.SHARE_IMAGE).exists()


# --- the VM outcome decision, pure --------------------------------------------------


def _seen(**kw: object) -> vm.Observed:
    base: dict[str, object] = {"status": None, "booted_at": 1.0, "panic": None,
                               "stopped": None, "qemu_status": 0, "seconds": 3.0}
    return vm.Observed(**{**base, **kw})  # type: ignore[arg-type]


def test_decide() -> None:
    log = Path("console.log")
    assert vm.decide(_seen(status=0), log).ended == "powered off"
    assert vm.decide(_seen(status=1, stopped=vm.NO_POWEROFF), log).exit_status == 1
    with pytest.raises(BootError, match="kernel panic: boom"):
        vm.decide(_seen(status=0, panic="boom"), log)
    with pytest.raises(BootError, match="VM lost after boot"):
        vm.decide(_seen(), log)
    with pytest.raises(BootError, match=r"VM lost: .* halted without"):
        vm.decide(_seen(stopped=vm.HALTED), log)
    with pytest.raises(BootError, match="guest did not boot"):
        vm.decide(_seen(booted_at=None), log)
    with pytest.raises(HarnessTimeout, match="did not reach /init"):
        vm.decide(_seen(booted_at=None, stopped="boot timeout after 120 s"), log)
    with pytest.raises(RunTimeout, match="test run did not finish"):
        vm.decide(_seen(stopped="timeout after 900 s"), log)
    # Only the run's deadline after boot is a hang of the tests (bisect: bad); the rest
    # cannot be judged.
    with pytest.raises(HarnessTimeout, match="output closed") as info:
        vm.decide(_seen(stopped="still running after its output closed"), log)
    assert not isinstance(info.value, RunTimeout)
    with pytest.raises(KernelPanic) as panic:
        vm.decide(_seen(panic="boom"), log)
    assert panic.value.in_tests
    with pytest.raises(KernelPanic) as panic:
        vm.decide(_seen(panic="boom", booted_at=None), log)
    assert not panic.value.in_tests


# --- the series gate's branches -----------------------------------------------------


def _mbox(world: dict[str, Path], old: str, new: str) -> Path:
    path = world["root"] / "p.mbox"
    rel = f"{SELFTESTS}/prog_tests/test_struct_ops_module.c"
    path.write_text(
        "From harness Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\n"
        "Subject: [PATCH 1/1] touch the test\n\nmsg\n---\n"
        f"diff --git a/{rel} b/{rel}\n--- a/{rel}\n+++ b/{rel}\n"
        f"@@ -1,2 +1,2 @@\n-{old}\n+{new}\n void test_struct_ops_module(void)\n")
    return path


def _sided(series_log: str) -> FakeProcs:
    def script(req: proc.Request) -> VmScript:
        side_dir = next(a for a in req.argv if a.startswith("file:")).split("/")[-2]
        if side_dir == "series":
            return captured_vm(series_log, status="HARNESS-EXIT 1\n")
        return captured_vm("test_progs-pass.log")
    return builds(FakeProcs(vm=script))


def _gate(world: dict[str, Path], mbox: Path, fake: FakeProcs, dry_run: bool = False,
          ) -> tuple[int, dict[str, object]]:
    cfg = _cfg(world, dry_run=dry_run)
    with proc.using(fake):
        from harness import gate  # noqa: PLC0415

        code = cli.finish(gate.execute(cfg, str(mbox), lambda _: None), False)
    return code, json.loads((cfg.out / "report.json").read_text())


def test_gate_regression(world: dict[str, Path]) -> None:
    mbox = _mbox(world, '#include "test_progs.h"', '#include "test_progs.h" /* x */')
    code, rep = _gate(world, mbox, _sided("test_progs-subtest-fail.log"))
    assert code == cli.EXIT_TEST_FAILURE and rep["verdict"] == "fail"
    assert rep["reason"] == "regression: struct_ops_module/struct_ops_load"
    patches = rep["patches"]
    assert isinstance(patches, list) and patches[0]["outcome"] == "applied"


def test_gate_conflict_stops_before_any_build(world: dict[str, Path]) -> None:
    fake = _sided("test_progs-pass.log")
    code, rep = _gate(world, _mbox(world, "#include <absent.h>", "x"), fake)
    assert code == cli.EXIT_APPLY and rep["base"] is None
    assert not fake.ran("make -j") and not (world["root"] / "run/base").exists()


def test_gate_base_error_stops_the_gate(world: dict[str, Path]) -> None:
    mbox = _mbox(world, '#include "test_progs.h"', '#include "test_progs.h" /* x */')
    fake = builds(FakeProcs(), bpftool_rc=2)
    code, rep = _gate(world, mbox, fake)
    assert code == cli.EXIT_BUILD and str(rep["reason"]).startswith("base run failed")
    assert rep["series_run"] is None


def test_gate_dry_run_applies_nothing(world: dict[str, Path]) -> None:
    mbox = _mbox(world, '#include "test_progs.h"', '#include "test_progs.h" /* x */')
    fake = _sided("test_progs-pass.log")
    code, rep = _gate(world, mbox, fake, dry_run=True)
    assert code == cli.EXIT_DRY_RUN and rep["verdict"] == "dry-run"
    assert not fake.ran(" am ") and not fake.ran("worktree add") and not fake.ran("make -j")
    patches = rep["patches"]
    assert isinstance(patches, list) and patches[0]["outcome"] == "not-applied"


# --- what CI systems ingest ---------------------------------------------------------


def _finished(world: dict[str, Path], script: VmScript, name: str) -> ET.Element:
    cfg = _cfg(world, name)
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        cli.finish(run.execute(cfg, lambda _: None), False)
    validate(cfg.out / "junit.xml")
    return ET.parse(cfg.out / "junit.xml").getroot()


def test_junit_of_a_passing_run(world: dict[str, Path]) -> None:
    suite = _finished(world, captured_vm("test_progs-pass.log"), "pass")
    assert suite.tag == "testsuite" and suite.get("tests") == "7"
    assert suite.get("hostname") and suite.get("timestamp")
    assert all(c.get("time") is not None for c in suite.iter("testcase"))
    assert suite.find("system-out") is None


def test_junit_of_a_failing_run(world: dict[str, Path]) -> None:
    suite = _finished(world, captured_vm("test_progs-subtest-fail.log", "HARNESS-EXIT 1\n"),
                      "fail")
    failures = [c.find("failure") for c in suite.iter("testcase")]
    failed = [f for f in failures if f is not None]
    assert len(failed) == 1 and ":FAIL:" in (failed[0].get("message") or "")
    assert "test_2_result" in (failed[0].text or "")
    out = suite.find("system-out")
    assert out is not None and "Summary:" in (out.text or "")


def test_junit_of_a_crashed_run_and_a_dry_run(world: dict[str, Path]) -> None:
    crashed = _finished(world, captured_vm("test_progs-crash-sigsegv.log",
                                           "HARNESS-EXIT 139\n"), "crash")
    assert crashed.find("system-out") is not None
    cfg = _cfg(world, "dry", dry_run=True)
    with proc.using(builds(FakeProcs())):
        cli.finish(run.execute(cfg, lambda _: None), False)
    validate(cfg.out / "junit.xml")


def test_junit_of_series_gates(world: dict[str, Path]) -> None:
    mbox = _mbox(world, '#include "test_progs.h"', '#include "test_progs.h" /* x */')
    _gate(world, mbox, _sided("test_progs-subtest-fail.log"))
    root = ET.parse(world["root"] / "run/junit.xml").getroot()
    validate(world["root"] / "run/junit.xml")
    assert [s.get("name") for s in root] == ["gate"]
    for side in ("base", "series"):
        side_root = ET.parse(world["root"] / "run" / side / "junit.xml").getroot()
        assert side_root.get("name") == "harness"
        assert json.loads((world["root"] / "run" / side / "report.json").read_text())[
            "exit_code"] == (1 if side == "series" else 0)
    _gate(world, _mbox(world, "#include <absent.h>", "x"), _sided("test_progs-pass.log"))
    validate(world["root"] / "run/junit.xml")


def test_help_is_for_users_and_every_option_explained() -> None:
    text = cli.parser().format_help()
    assert "only place" not in text and "Gate BPF patch series" in text
    subparsers = [a for a in cli.parser()._actions
                  if isinstance(a, argparse._SubParsersAction)]
    for name, sub in subparsers[0].choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                for inner in action.choices.values():
                    assert all(a.help for a in inner._actions), name
            assert action.help, f"{name} {action.option_strings}"


def test_series_adding_the_selected_test_gates_it_as_new(world: dict[str, Path]) -> None:
    """The base lacks the selected prog_test (the series adds it): every subtest is new."""
    rel = f"{SELFTESTS}/prog_tests/test_brand_new.c"
    mbox = world["root"] / "new.mbox"
    mbox.write_text(
        "From harness Mon Sep 17 00:00:00 2001\nFrom: A <a@x>\n"
        "Subject: [PATCH 1/1] add a test\n\nmsg\n---\n"
        f"diff --git a/{rel} b/{rel}\nnew file mode 100644\n--- /dev/null\n+++ b/{rel}\n"
        "@@ -0,0 +1,3 @@\n+void test_brand_new(void)\n+{\n+}\n")
    cfg = dataclasses.replace(_cfg(world), tests=("brand_new",))
    with proc.using(_sided("test_progs-subtest-fail.log")):
        from harness import gate  # noqa: PLC0415

        rep = gate.execute(cfg, str(mbox), lambda _: None)
    assert rep.base is not None and rep.base.verdict is Verdict.ERROR
    changes = {c.name: c.change.value for c in rep.compared}
    assert changes["struct_ops_module/struct_ops_load"] == "new-failing"
    assert set(changes.values()) == {"new", "new-failing"}
    assert rep.verdict is Verdict.FAIL and cli.exit_code(rep.verdict, rep.error) == 1


def test_dry_run_of_a_series_adding_the_selected_test_is_no_pass(
        world: dict[str, Path]) -> None:
    """The base lacks the test and nothing is applied: still a dry run, never a pass."""
    cfg = dataclasses.replace(_cfg(world, dry_run=True), tests=("brand_new",))
    mbox = _mbox(world, '#include "test_progs.h"', '#include "test_progs.h" /* x */')
    with proc.using(_sided("test_progs-pass.log")):
        from harness import gate  # noqa: PLC0415

        rep = gate.execute(cfg, str(mbox), lambda _: None)
    assert rep.verdict is Verdict.DRY_RUN and rep.series_run is None
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_DRY_RUN


# --- kernel splats (the parser: test_splats.py) --------------------------------------


def _splat_run(world: dict[str, Path], allow: tuple[str, ...] = ()) -> RunReport:
    script = captured_vm("test_progs-pass.log", dmesg="dmesg-refcount.log")
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        return run.execute(_cfg(world, allow_splats=allow), lambda _: None)


def test_passing_tests_with_a_splat_fail_the_run(world: dict[str, Path]) -> None:
    rep = _splat_run(world)
    assert rep.verdict is Verdict.ERROR
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_SPLAT
    assert rep.reason.startswith("1 kernel splat(s) (refcount): first: refcount_t: decrement")
    assert len(rep.subtests) == 7 and all(r.status.value == "pass" for r in rep.subtests)
    report = rep.as_dict()
    assert [s["family"] for s in report["splats"]] == ["refcount"]
    assert report["splats"][0]["line"] == 3
    suite = rep.junit()
    [case] = [c for c in suite.iter("testcase") if c.get("classname") == "kernel"]
    failure = case.find("failure")
    assert case.get("name") == "refcount" and failure is not None
    assert failure.get("message", "").startswith("refcount_t: decrement hit 0")
    assert "refcount_warn_saturate" in (failure.text or "")
    assert "SPLAT refcount: refcount_t: decrement hit 0" in rep.summary()


def test_allowed_splat_passes_and_is_still_reported(world: dict[str, Path]) -> None:
    rep = _splat_run(world, ("^refcount_t: decrement hit 0",))
    assert rep.verdict is Verdict.PASS
    assert [s.allowed_by for s in rep.splats] == ["^refcount_t: decrement hit 0"]
    skipped = [c.find("skipped") for c in rep.junit().iter("testcase")
               if c.get("classname") == "kernel"]
    assert len(skipped) == 1 and skipped[0] is not None


def test_failing_tests_stay_a_failure_and_list_the_splat(world: dict[str, Path]) -> None:
    script = captured_vm("test_progs-subtest-fail.log", status="HARNESS-EXIT 1\n",
                         dmesg="dmesg-warning.log")
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        rep = run.execute(_cfg(world), lambda _: None)
    assert rep.verdict is Verdict.FAIL and [s.family for s in rep.splats] == ["warning"]


def test_panic_report_keeps_the_trace(world: dict[str, Path]) -> None:
    script = captured_vm("test_progs-empty.log", status=None,
                         console="console-panic-in-tests.log")
    with proc.using(builds(FakeProcs(vm=lambda req: script))):
        rep = run.execute(_cfg(world), lambda _: None)
    assert cli.exit_code(rep.verdict, rep.error) == cli.EXIT_PANIC
    assert rep.reason.startswith("kernel panic: Kernel panic - not syncing: harness fault")
    [panic] = rep.as_dict()["splats"]
    assert panic["family"] == "panic" and len(panic["lines"]) > 10


# --- retries: the guest reruns what failed (vm/run.sh) ---------------------------------


def _flaky_vm(rerun: str) -> VmScript:
    script = captured_vm("test_progs-subtest-fail.log",
                         status=f"HARNESS-EXIT {0 if rerun == 'OK' else 1}\n")
    script.channels["test_progs.log"] += "\n".join([
        "HARNESS: retry 1 of 1: 1 failed", "test_2_result:FAIL:rerun 0 nsec",
        f"#1/2    struct_ops_module/struct_ops_load:{rerun}", f"#1      struct_ops_module:{rerun}",
        f"Summary: {int(rerun == 'OK')}/0 PASSED, 0 SKIPPED, {int(rerun != 'OK')} FAILED", ""])
    return script


def test_flaky_subtest_passes_and_junit_says_flaky(world: dict[str, Path]) -> None:
    suite = _finished(world, _flaky_vm("OK"), "flaky")
    report = json.loads((world["root"] / "flaky/report.json").read_text())
    assert report["verdict"] == "pass" and report["counts"]["flaky"] == 1
    [case] = [c for c in suite.iter("testcase") if c.get("name") == "struct_ops_load"]
    assert case.find("failure") is None
    [flaky] = case.findall("flakyFailure")
    assert flaky.get("message", "").startswith("attach_ops_and_check:FAIL:")
    assert suite.get("failures") == "0"


def test_failed_on_retry_too_has_rerun_failures(world: dict[str, Path]) -> None:
    suite = _finished(world, _flaky_vm("FAIL"), "still")
    [case] = [c for c in suite.iter("testcase") if c.get("name") == "struct_ops_load"]
    assert case.find("failure") is not None and len(case.findall("rerunFailure")) == 1
    rerun = case.find("rerunFailure/stackTrace")
    assert rerun is not None and "rerun" in (rerun.text or "")


def test_flaky_fail_policy_fails_the_run(world: dict[str, Path]) -> None:
    with proc.using(builds(FakeProcs(vm=lambda req: _flaky_vm("OK")))):
        rep = run.execute(_cfg(world, flaky="fail", retries=1), lambda _: None)
    assert rep.verdict is Verdict.FAIL and rep.reason.startswith("flaky (failed, then passed")


def test_hang_named_by_a_newer_test_progs_watchdog() -> None:
    parsed = results.parse(["#1      a:OK", "WATCHDOG: test case b/c executes for 10 seconds..."])
    assert run.hung_in(parsed, None) == ("running: b/c (test_progs's watchdog: 10 s); "
                                         "1 test(s) had finished")
