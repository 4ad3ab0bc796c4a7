"""The gate pipeline: preflight → tree → build → initramfs → boot → parse → verdict.

Each stage is timed and recorded; the first error stops the chain and is kept on the
report for cli.py to turn into an exit code.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import harness
from harness import build, discover, initramfs, kernel, results, toolchain, tree, vm
from harness.config import RunConfig
from harness.errors import HarnessError, InternalError, TreeError
from harness.report import Report, Stage, judge

Progress = Callable[[str], None]


@dataclass
class Stages:
    """Times named stages, reports progress, and records them for the report."""

    progress: Progress
    done: list[Stage] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @contextlib.contextmanager
    def step(self, name: str, log: str | None = None) -> Iterator[Stage]:
        stage = Stage(name=name, status="running", seconds=0.0, log=log)
        self.progress(f"[{time.monotonic() - self.started:6.1f}s] {name} ...")
        start = time.monotonic()
        try:
            yield stage
        except BaseException as exc:
            stage.status = "failed"
            stage.detail = exc.line() if isinstance(exc, HarnessError) else repr(exc)
            raise
        else:
            stage.status = "ok"
        finally:
            stage.seconds = round(time.monotonic() - start, 3)
            self.done.append(stage)
            self.progress(f"[{time.monotonic() - self.started:6.1f}s] {name} {stage.status} "
                          f"({stage.seconds:.1f}s)")


@dataclass
class Outcome:
    """What cli.py needs: the report (verdict and context) and the error that stopped it."""

    report: Report
    error: HarnessError | None = None


def _select_kernel(cfg: RunConfig, version: str) -> kernel.Kernel:
    if cfg.kernel or cfg.headers:
        if not (cfg.kernel and cfg.headers):
            raise TreeError("--kernel and --headers go together; pass both")
        return kernel.explicit(cfg.kernel, cfg.headers)
    return kernel.find_prebuilt(version)


@dataclass(frozen=True)
class Resolved:
    """What a run is about, before anything is built."""

    tree: tree.Tree
    kernel: kernel.Kernel
    plan: discover.Plan


TreeSource = Callable[[], tree.Tree]


def _resolve(cfg: RunConfig, st: Stages, rep: Report, source: TreeSource | None) -> Resolved:
    with st.step("tree"):
        t = source() if source else tree.select(cfg.tree, cfg.rev, cfg.cache, cfg.out)
        rep.context["tree"] = t.as_dict()
        if t.warning:
            st.progress(f"warning: {t.warning}")
    with st.step("kernel"):
        k = _select_kernel(cfg, t.version)
        rep.context["kernel"] = k.as_dict()
        unmet = kernel.check_config(k)
        if unmet:
            raise TreeError(f"kernel {k.release} lacks options the tests need: {', '.join(unmet)}")
    with st.step("discover"):
        plan = discover.load_plan(t.path, cfg.tests)
        rep.context["tests"] = {"files": [x.stem for x in plan.tests],
                                "functions": list(plan.functions),
                                "bpf_objects": list(plan.bpf_objects)}
    return Resolved(tree=t, kernel=k, plan=plan)


def _build(cfg: RunConfig, st: Stages, rep: Report, res: Resolved) -> initramfs.Payload:
    t, k, plan = res.tree, res.kernel, res.plan
    ctx = build.BuildContext(tree=t.path, build_dir=cfg.cache / "build" / t.key,
                             log_dir=cfg.out, toolchain=cfg.toolchain, jobs=cfg.jobs,
                             timeout=cfg.timeouts.build)
    with tree.locked(cfg.cache, t.key):
        with st.step("build-bpftool", "build-bpftool.log"):
            tools = build.build_tools(ctx)
        with st.step("build-testmod", "build-testmod.log"):
            module = build.build_testmod(ctx, k)
        with st.step("build-test_progs", "build-test_progs.log"):
            selftests = build.build_selftests(ctx, plan, tools, k)
        payload = initramfs.Payload(
            busybox=Path(cfg.toolchain.busybox), test_progs=selftests.test_progs,
            module=module, bpf_objects=selftests.runtime_objects, tests=plan.functions)
        with st.step("initramfs"):
            size = initramfs.assemble(payload, cfg.out / "initramfs.cpio.gz")
            rep.context["initramfs_bytes"] = size
    return payload


def _qemu(cfg: RunConfig, k: kernel.Kernel, accel: vm.Accel) -> list[str]:
    return vm.qemu_argv(cfg.toolchain.qemu, cfg.vm, accel, kernel=k.image,
                        initrd=cfg.out / "initramfs.cpio.gz", run_dir=cfg.out)


def _boot(cfg: RunConfig, st: Stages, rep: Report, argv: list[str]) -> None:
    with st.step("boot+run", "console.log"):
        out = vm.boot(argv, cfg.out, cfg.timeouts.boot, cfg.timeouts.run)
    rep.context["vm"] = {"boot_seconds": round(out.boot_seconds, 3),
                         "seconds": round(out.seconds, 3), "qemu_status": out.qemu_status,
                         "test_progs_exit": out.exit_status}
    with st.step("parse", "test_progs.log"):
        parsed = results.parse((cfg.out / "test_progs.log").read_text(errors="replace")
                               .splitlines())
        verdict, subtests = judge(parsed, out.exit_status)
    rep.verdict, rep.reason, rep.subtests = verdict.verdict, verdict.reason, subtests


def execute(cfg: RunConfig, progress: Progress, source: TreeSource | None = None) -> Outcome:
    """Run the whole gate; never raises HarnessError (it is returned on the outcome).

    `source` supplies an already prepared tree (the series gate's two sides).
    """
    cfg.out.mkdir(parents=True, exist_ok=True)
    st = Stages(progress)
    rep = Report(verdict="error", reason="", exit_code=-1, run_dir=cfg.out, stages=st.done)
    rep.context.update(_static_context(cfg))
    try:
        with st.step("preflight"):
            toolchain.check(cfg.toolchain)
            accel = vm.choose_accel(cfg.vm.accel, os.environ, vm.kvm_present())
            rep.context["accelerator"] = {"name": accel.name, "why": accel.note}
            rep.context["versions"].update(toolchain.versions(cfg.toolchain))
        resolved = _resolve(cfg, st, rep, source)
        argv = _qemu(cfg, resolved.kernel, accel)
        rep.context["qemu"] = shlex.join(argv)
        if cfg.dry_run:
            rep.verdict, rep.reason = "dry-run", "nothing built or booted (--dry-run)"
            return Outcome(rep)
        _build(cfg, st, rep, resolved)
        _boot(cfg, st, rep, argv)
    except HarnessError as exc:
        rep.verdict, rep.reason = "error", exc.line()
        return Outcome(rep, exc)
    except Exception as exc:  # a bug: keep the traceback with the run
        dump = cfg.out / "traceback.txt"
        dump.write_text(traceback.format_exc())
        error = InternalError(f"internal error: {exc!r}", dump)
        rep.verdict, rep.reason = "error", error.line()
        return Outcome(rep, error)
    return Outcome(rep)


def _static_context(cfg: RunConfig) -> dict[str, object]:
    return {
        "harness": harness.__version__,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
        "requested_tests": list(cfg.tests),
        "versions": {"python": platform.python_version()},
    }
