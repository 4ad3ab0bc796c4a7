"""The gate pipeline: inputs → preflight → tree → discover → kernel → build → boot → parse.

Each stage is timed, returns what it found, and the pipeline puts it on the report; the
first error stops the chain and is kept on the report for cli.py to turn into an exit
code.  The tree's lock is held from its checkout until the initramfs holds copies of
every build output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.boot import choice, initramfs, kconfig, kernel, rootfs, vm
from harness.btf import elf
from harness.build import discover, guest, kbuild, kernel_reads, select, share
from harness.build import targeted as build
from harness.config import DEFAULTS, RunConfig
from harness.errors import (
    Aborted,
    HarnessError,
    HarnessTimeout,
    KernelSplat,
    RunTimeout,
    TreeError,
    UsageError,
    VmLost,
    internal_error,
    os_error,
)
from harness.host import proc, toolchain
from harness.host.cache import Cache
from harness.outcome import results, splats, symbols
from harness.outcome.report import RunReport, Stage, Verdict, judge, reported
from harness.source import tree

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
        except KeyboardInterrupt:
            stage.status = "aborted"
            raise
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


class TreeSource:
    """Where a run's tree comes from: resolved before locking, checked out under the lock;
    and which kernel it boots (the series gate decides that for both its sides)."""

    def resolve(self, cfg: RunConfig) -> tree.Source:
        return tree.resolve(cfg.tree, cfg.rev, cfg.out)

    def checkout(self, src: tree.Source, cache: Cache, log_dir: Path) -> tree.Tree:
        return tree.checkout(src, cache, log_dir)

    def kernel_choice(self, cfg: RunConfig, t: tree.Tree) -> choice.Choice:
        if cfg.kernel_mode == "image":
            return choice.Choice(choice.How.IMAGE, "--kernel IMAGE --headers DIR")
        if cfg.kernel_mode == "build":
            return choice.Choice(choice.How.BUILD, "--kernel build")
        diff = choice.difference(t.path, t.commit, version=t.version,
                                 rule=kernel_reads.derive(t.path), cache=Cache(cfg.cache),
                                 log_dir=cfg.out, release=prebuilt_release(t.version),
                                 may_import=not cfg.dry_run)
        return unless_lacking(choice.decide(cfg.kernel_mode, diff), cfg, t.path, t.version)

    def kernel_fragments(self, cfg: RunConfig, t: tree.Tree) -> list[kconfig.Fragment]:
        """The config of a kernel built for this side (the gate gives both sides one)."""
        return kconfig.fragments(cfg.kconfig, t.path, building=True)


def prebuilt_release(version: str) -> str | None:
    try:
        return kernel.find_prebuilt(version).release
    except TreeError:
        return None


def requirements(cfg: RunConfig, tree_path: Path) -> list[kconfig.Fragment]:
    """What the booted kernel must have: struct_ops, and what --kconfig asks for."""
    return kconfig.fragments(["struct_ops", *cfg.kconfig], tree_path)


def unless_lacking(c: choice.Choice, cfg: RunConfig, tree_path: Path, version: str,
                   ) -> choice.Choice:
    """`auto`: an installed kernel that lacks a required option is built instead."""
    if c.how is not choice.How.PREBUILT or cfg.kernel_mode != "auto":
        return c
    try:
        unmet = kernel.check_config(kernel.find_prebuilt(version), requirements(cfg, tree_path))
    except TreeError:
        return c
    if not unmet:
        return c
    return choice.Choice(choice.How.BUILD, f"the installed kernel lacks options the run asks "
                         f"for: {lacking(unmet)}")


def lacking(unmet: list[str], shown: int = 3) -> str:
    """The first unmet options and how many more (one line, whatever the count)."""
    more = f" and {len(unmet) - shown} more" if len(unmet) > shown else ""
    return ", ".join(unmet[:shown]) + more


def check_inputs(cfg: RunConfig) -> None:
    """Usage checks that need no tool: run before the preflight, so they are answered first."""
    if bool(cfg.kernel) != bool(cfg.headers):
        raise UsageError("--kernel IMAGE and --headers DIR go together; pass both")
    if cfg.kconfig != DEFAULTS.kconfig and cfg.kernel_mode == "image":
        raise UsageError(f"--kconfig configures a kernel built from the tree; it means "
                         f"nothing with --kernel {cfg.kernel}")
    kconfig.check_specs(cfg.kconfig)
    if cfg.build_in == "guest" and cfg.root != "debian":
        raise UsageError("--build-in guest builds on the Debian root filesystem with the "
                         "toolchain; it cannot be used with --rootfs initramfs")
    if cfg.kernel and cfg.headers:
        kernel.explicit(cfg.kernel, cfg.headers)
    if cfg.tree is not None:
        tree.check_kernel_tree(cfg.tree)
    elif cfg.rev != DEFAULTS.rev:
        raise UsageError(f"--rev {cfg.rev} needs --tree: the default tree (Debian's "
                         f"linux-source) has a single commit")


def _ready_kernel(cfg: RunConfig, how: choice.How, t: tree.Tree) -> kernel.Kernel:
    """The image given on the command line, or the installed kernel (its config checked)."""
    if how is choice.How.IMAGE:
        assert cfg.kernel is not None and cfg.headers is not None
        return kernel.explicit(cfg.kernel, cfg.headers)
    k = kernel.find_prebuilt(t.version)
    unmet = kernel.check_config(k, requirements(cfg, t.path))
    if unmet:
        raise TreeError(f"kernel {k.release} lacks options the tests need: "
                        f"{lacking(unmet)}; pass --kernel build")
    return k


def _preflight(cfg: RunConfig, st: Stages, rep: RunReport) -> vm.Accel:
    with st.step("preflight"):
        toolchain.check(cfg.toolchain)
        rep.accel = vm.choose_accel(cfg.vm.accel, os.environ, vm.kvm_present())
        rep.versions.update(toolchain.versions(cfg.toolchain))
    return rep.accel


def kbuild_context(cfg: RunConfig, rep: RunReport, progress: Progress) -> kbuild.KbuildContext:
    return kbuild.KbuildContext(
        cache=Cache(cfg.cache), log_dir=cfg.out, toolchain=cfg.toolchain, jobs=cfg.jobs,
        timeout=cfg.timeouts.kernel_build, versions=rep.versions, progress=progress,
        ccache=toolchain.has_ccache())


def _kernel(cfg: RunConfig, st: Stages, rep: RunReport, source: TreeSource,
            held: contextlib.ExitStack) -> kernel.Kernel:
    """Choose the kernel and, when it is built, build it (its workspace stays locked)."""
    t = rep.tree
    assert t is not None
    with st.step("kernel"):
        rep.kernel_choice = source.kernel_choice(cfg, t)
        if rep.kernel_choice.warning:
            st.progress(f"warning: {rep.kernel_choice.warning}")
        if rep.kernel_choice.how is not choice.How.BUILD:
            return _ready_kernel(cfg, rep.kernel_choice.how, t)
        fragments = source.kernel_fragments(cfg, t)
    ctx = kbuild_context(cfg, rep, st.progress)
    if cfg.dry_run:
        ws = kbuild.workspace(ctx, t.lineage, fragments)
        return kernel.Kernel(image=cfg.out / "bzImage", headers=ws.out,
                             release="(not built: --dry-run)")
    with st.step("build-kernel", "build-kernel.log"):
        ws = kbuild.workspace(ctx, t.lineage, fragments)
        held.enter_context(Cache(cfg.cache).lock(ws.lock, st.progress))
        built = kbuild.build(ctx, t.path, t.commit, t.lineage, fragments)
        rep.kernel_build = built.as_dict()
    return built.kernel


def request(cfg: RunConfig) -> select.Request:
    return select.Request(tests=cfg.tests, allow=cfg.allow, deny=cfg.deny,
                          tree_denylist=cfg.tree_denylist)


def _build(cfg: RunConfig, st: Stages, rep: RunReport, boot_held: contextlib.ExitStack,
           ) -> None:
    if cfg.build_in == "guest":
        _build_in_guest(cfg, st, rep, boot_held)
        return
    t, k, plan = rep.tree, rep.kernel, rep.plan
    assert t is not None and k is not None and plan is not None
    ctx = build.BuildContext(tree=t.path, tree_key=t.key, cache=Cache(cfg.cache),
                             log_dir=cfg.out, toolchain=cfg.toolchain, jobs=cfg.jobs,
                             timeout=cfg.timeouts.build, versions=rep.versions)
    rep.builds = ctx.ledger  # filled as each build is done or reused
    rep.notes = ctx.notes
    with st.step("build-bpftool", "build-bpftool.log"):
        tools = build.build_tools(ctx)
    files: list[tuple[str, Path]] = []
    with st.step("build-testmod", "build-testmod.log"):
        rep.modules = {m: build.build_testmod(ctx, k, m) for m in plan.modules}
        files += [(f"{m}.ko", ko) for m, ko in rep.modules.items()]
    with st.step("build-test_progs", "build-test_progs.log"):
        selftests = build.build_selftests(ctx, plan, tools, k, cfg.flavor)
    files += [(p.name, p) for p in selftests.runtime_objects]
    with st.step("build-helpers", "build-helpers.log"):
        files += build.build_helpers(ctx, _helpers(plan, "program"))
    files += [(name, t.path / discover.SELFTESTS / name) for name in _helpers(plan, "file")]
    if plan.calls_bpftool:  # upstream links ./bpftool beside test_progs (core_reloc_btfgen)
        files.append(("bpftool", tools.bpftool))
    root = _root(cfg, st, rep)
    sel = plan.selection
    payload = initramfs.Payload(
        busybox=Path(cfg.toolchain.busybox), test_progs=selftests.test_progs,
        files=tuple(files), allow=tuple(sel.allow_lines()) if sel else (),
        deny=tuple(sel.deny_lines()) if sel else (),
        kernel_config=config_file(k), rootfs=root.recipe_key if root else None,
        boot_modules=boot_modules(k) if root else (), kernel_modules=k.modules_dir,
        retries=cfg.retries)
    with st.step("initramfs"):
        rep.initramfs_bytes = initramfs.assemble(payload, cfg.out / "initramfs.cpio.gz",
                                                 root.has if root else None)


def _build_in_guest(cfg: RunConfig, st: Stages, rep: RunReport,
                    boot_held: contextlib.ExitStack) -> None:
    """Everything the guest needs to build what the tests need itself (vm/build.sh):
    the toolchain root filesystem, the share image, the build disk (held until the VM
    ends) and the plan; the host compiles nothing."""
    t, k, plan = rep.tree, rep.kernel, rep.plan
    assert t is not None and k is not None and plan is not None
    with st.step("guest-plan"):
        guest.check_tree(t.path)
        modules = boot_modules(k, rootfs.GUEST_BUILD)
        recipe = root_recipe(cfg)
        dirs = guest.output_dirs(t.key, k, recipe.key(), cfg.flavor)
        inputs = build.MakeInputs(tree=t.path, out=Path(dirs["selftests"]),
                                  tools=guest.guest_tools(dirs), vmlinux=k.vmlinux,
                                  toolchain=cfg.toolchain, arch="x86", sys_includes=(),
                                  flavor=cfg.flavor)
        gplan = guest.Plan(
            tree=t.path, headers=k.headers, tools=dirs["tools"], modules_dir=dirs["mods"],
            selftests=dirs["selftests"], helpers_dir=dirs["helpers"], jobs=cfg.jobs,
            clang=cfg.toolchain.clang, llvm_strip=cfg.toolchain.llvm_strip,
            llvm_suffix=cfg.toolchain.llvm_suffix, modules=plan.modules,
            objects=plan.runtime_objects, helpers=_helpers(plan, "program"),
            tree_files=_helpers(plan, "file"), with_bpftool=plan.calls_bpftool)
        files = guest.payload(gplan, guest.makefile(inputs, plan), build.tests_header(plan))
    root = _root(cfg, st, rep)
    assert root is not None
    with st.step("share", "share.log"):
        roots = [*share.tree_roots(t.path), *share.kernel_roots(k.headers)]
        staged = share.make_image(roots, cfg.out / SHARE_IMAGE, cfg.out / "share.log")
    with st.step("build-disk", "build-disk.log"):
        disk = guest.disk_path(Cache(cfg.cache).root, t.key, recipe.key(), cfg.guest_disk)
        boot_held.enter_context(Cache(cfg.cache).lock(f"guest-{t.key}", st.progress))
        guest.ensure_disk(disk, cfg.guest_disk, cfg.out)
    rep.build_in.update(share={"files": staged.files, "bytes": staged.bytes},
                        disk=str(disk), outputs=dirs)
    sel = plan.selection
    payload = initramfs.Payload(
        busybox=Path(cfg.toolchain.busybox), test_progs=None, files=(),
        allow=tuple(sel.allow_lines()) if sel else (),
        deny=tuple(sel.deny_lines()) if sel else (), kernel_config=config_file(k),
        rootfs=root.recipe_key, boot_modules=modules, kernel_modules=k.modules_dir,
        retries=cfg.retries, guest_build=files)
    with st.step("initramfs"):
        rep.initramfs_bytes = initramfs.assemble(payload, cfg.out / "initramfs.cpio.gz",
                                                 root.has)


SHARE_IMAGE = "share.sqfs"


def _helpers(plan: discover.Plan, kind: str) -> tuple[str, ...]:
    return tuple(e.name for e in plan.extras if e.kind == kind)


def config_file(k: kernel.Kernel) -> Path | None:
    config = k.headers / ".config"
    return config if config.is_file() else None


def boot_modules(k: kernel.Kernel, needs: rootfs.Needs = rootfs.BOOT,
                 ) -> tuple[tuple[str, bytes], ...]:
    """What the guest's stage 1 inserts to mount the root filesystem (and the build disk),
    for this kernel."""
    config = config_file(k)
    if config is None:
        return ()
    return rootfs.boot_modules(kconfig.parse(config.read_text(errors="replace")),
                               k.modules_dir, needs)


def _root(cfg: RunConfig, st: Stages, rep: RunReport) -> rootfs.Rootfs | None:
    """The guest's Debian root filesystem (built once per recipe), or None: the initramfs."""
    if cfg.root != "debian":
        return None
    with st.step("rootfs", "build-rootfs.log"):
        rep.rootfs = rootfs.ensure(root_recipe(cfg), Cache(cfg.cache), cfg.out, st.progress,
                                   rep.notes)
    return rep.rootfs


def runtime_recipe() -> rootfs.Recipe:
    """The guest's root filesystem recipe: the runtime layer, from apt's mirror."""
    return rootfs.recipe(("runtime",), rootfs.host_mirror())


def root_recipe(cfg: RunConfig) -> rootfs.Recipe:
    """The runtime layer; with the toolchain layer for a build inside the guest."""
    if cfg.build_in == "guest":
        return rootfs.recipe(("runtime", "toolchain"), rootfs.host_mirror())
    return runtime_recipe()


def _qemu(cfg: RunConfig, k: kernel.Kernel, accel: vm.Accel, tree_key: str) -> list[str]:
    recipe = root_recipe(cfg)
    disk = rootfs.at(Cache(cfg.cache), recipe).image if cfg.root == "debian" else None
    build = None
    if cfg.build_in == "guest":
        build = vm.GuestBuild(
            share=cfg.out / SHARE_IMAGE, stream=cfg.out / vm.BUILD_STREAM,
            disk=guest.disk_path(Cache(cfg.cache).root, tree_key, recipe.key(),
                                 cfg.guest_disk))
    return vm.qemu_argv(cfg.toolchain.qemu, cfg.vm, accel, kernel=k.image,
                        initrd=cfg.out / "initramfs.cpio.gz", run_dir=cfg.out, disk=disk,
                        build=build)


def _boot(cfg: RunConfig, st: Stages, rep: RunReport) -> None:
    assert rep.qemu is not None
    try:
        with st.step("boot+run", "console.log"):
            rep.vm = _vm(cfg, rep)
    except RunTimeout as exc:  # a hang: what had finished, and what was running
        parsed = results.parse(_text(cfg.out / "test_progs.log").splitlines())
        rep.subtests = reported(parsed)
        raise RunTimeout(f"{exc.message}; {hung_in(parsed, rep.plan)}", exc.log) from exc
    finally:
        rep.splats = symbolize(kernel_splats(cfg.out, cfg.allow_splats), rep, cfg.out)
    with st.step("parse", "test_progs.log"):
        text = _text(cfg.out / "test_progs.log")
        judged = judge(results.parse_retried(text.splitlines()), rep.vm.exit_status,
                       flaky_fails=cfg.flaky == "fail")
    times = results.durations(rep.vm.stamped, rep.vm.boot_seconds)
    for r in judged.subtests:
        r.seconds = times.get(r.number)
    rep.verdict, rep.reason, rep.subtests, rep.error = (
        judged.verdict, judged.reason, judged.subtests + denied(rep.plan), judged.error)
    gating = splats.gating(rep.splats)
    if rep.verdict is Verdict.PASS and gating:
        rep.broke(KernelSplat(splats.summary(gating), cfg.out / "dmesg.log"))


def _vm(cfg: RunConfig, rep: RunReport) -> vm.Outcome:
    """The VM's outcome; with a build inside the guest, a failed or hung build is said as
    such (exit 6, 22 or 8) rather than as a lost VM or a run timeout."""
    assert rep.qemu is not None
    if cfg.build_in != "guest":
        return vm.boot(rep.qemu, cfg.out, cfg.timeouts.boot, cfg.timeouts.run)
    deadline = vm.BuildDeadline(cfg.out / vm.BUILD_STREAM, cfg.timeouts.build)
    timed_out = False
    try:
        return vm.boot(rep.qemu, cfg.out, cfg.timeouts.boot, cfg.timeouts.run, deadline)
    except (VmLost, HarnessTimeout) as exc:
        timed_out = vm.BUILD_TIMEOUT in exc.message
        raise
    finally:
        (cfg.out / SHARE_IMAGE).unlink(missing_ok=True)
        failed = _guest_steps(cfg, rep, timed_out)
        if failed is not None:
            raise failed


def _guest_steps(cfg: RunConfig, rep: RunReport, timed_out: bool) -> HarnessError | None:
    """The guest's build logs into the run directory (named as the host's), its step
    times on the report, and why it failed if it did."""
    steps = guest.split(_text(cfg.out / vm.BUILD_STREAM))
    guest.write_logs(steps, cfg.out)
    rep.build_in["seconds"] = guest.times(steps)
    rep.builds.update({s.name: "built in the guest" for s in steps if s.rc == 0})
    return guest.failure(steps, _text(cfg.out / "dmesg.log"), cfg.out, memory=cfg.vm.memory,
                         disk=cfg.guest_disk, timed_out=timed_out)


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def kernel_splats(run_dir: Path, allow: tuple[str, ...]) -> list[splats.Splat]:
    """The kernel's reports of the run: from dmesg.log, which the guest writes once the
    tests are over, else (a panic, a hang, a lost VM) from what reached the console."""
    patterns = [re.compile(a) for a in allow]
    for name in ("dmesg.log", "console.log"):
        text = _text(run_dir / name)
        if text:
            return splats.scan(text.splitlines(), patterns)
    return []


def symbolize(found: list[splats.Splat], rep: RunReport, log_dir: Path,
              ) -> list[splats.Splat]:
    """The reports with a source line for each frame the tree's scripts/faddr2line can
    place: in the kernel's vmlinux when it has debug info, in the test modules built for
    the run.  Best effort: a frame it cannot place stays as logged."""
    script = rep.tree.path / "scripts/faddr2line" if rep.tree else None
    if not found or script is None or not script.is_file() or rep.kernel is None:
        return found
    objects: dict[str | None, Path] = {None: rep.kernel.headers / "vmlinux"}
    objects.update(rep.modules)
    where: dict[str, str] = {}
    wanted = symbols.frames(ln for sp in found for ln in sp.lines)
    for module, group in symbols.by_object(wanted).items():
        obj = objects.get(module)
        if obj is None or not elf.has_debug_info(obj):
            continue
        try:
            done = proc.run([str(script), str(obj), *(f.spec for f in group)], check=False,
                            log=log_dir / f"faddr2line-{module or 'vmlinux'}.log",
                            timeout=300)
        except HarnessError:  # faddr2line itself failed or hung: the frames stay as logged
            continue
        where |= {_frame_name(spec, module): line
                  for spec, line in symbols.parse_faddr2line(done.output).items()}
    return [dataclasses.replace(sp, sources=tuple(
        (name, where[name]) for f in symbols.frames(sp.lines)
        if (name := _frame_name(f.spec, f.module)) in where)) for sp in found]


def _frame_name(spec: str, module: str | None) -> str:
    return f"{spec} [{module}]" if module else spec


def hung_in(parsed: results.Parsed, plan: discover.Plan | None) -> str:
    """What was running when the run hung: the test/subtest test_progs's watchdog named
    (newer trees), else the first selected test (in test_progs's order, tests.h's)
    without a result line: 6.12's test_progs has no watchdog and prints a test's lines
    only when it ends, so its subtest is not known."""
    finished = {t.name for t in parsed.tests}
    done = f"{len(finished)} test(s) had finished"
    if parsed.watchdog:  # a test_progs with a watchdog named it, subtest included
        return f"running: {parsed.watchdog}; {done}"
    tests = sorted(plan.selection.tests) if plan and plan.selection else []
    running = next((t for t in tests if t not in finished), None)
    if running is None:
        return f"{done}; no selected test was left to run"
    return f"running: {running} (its subtests print when it ends); {done}"


def denied(plan: discover.Plan | None) -> list[results.Result]:
    """What the deny lists took away: reported as `denied`, never as a pass."""
    sel = plan.selection if plan else None
    if sel is None:
        return []
    return [results.Result(name=name, number="-", status=results.Status.DENIED,
                           log=[sel.deny.origins.get(_pattern(sel, name), "deny list")])
            for name in sel.denied]


def _pattern(sel: select.Resolved, name: str) -> str:
    test = name.split("/", 1)[0]
    return next((p for p in sel.deny.tests if select.glob_match(test, p)), "")


def list_plan(cfg: RunConfig, progress: Progress, source: TreeSource | None = None,
              ) -> discover.Plan:
    """`run --list`: the tree checked out and the selection resolved; nothing built."""
    check_inputs(cfg)
    source = source or TreeSource()
    src = source.resolve(cfg)
    cache = Cache(cfg.cache)
    with cache.lock(src.key, progress):
        t = source.checkout(src, cache, cfg.out)
        return discover.load_plan(t.path, request(cfg), version=t.version)


def _pipeline(cfg: RunConfig, st: Stages, rep: RunReport, source: TreeSource) -> None:
    with st.step("inputs"):
        check_inputs(cfg)
    rep.build_in = {"mode": cfg.build_in}
    accel = _preflight(cfg, st, rep)
    with st.step("resolve"):
        src = source.resolve(cfg)
    with contextlib.ExitStack() as boot_held:
        _locked(cfg, st, rep, (source, src, accel), boot_held)
        if rep.verdict is not Verdict.DRY_RUN:
            _boot(cfg, st, rep)


def _locked(cfg: RunConfig, st: Stages, rep: RunReport,
            where: tuple[TreeSource, tree.Source, vm.Accel], boot_held: contextlib.ExitStack,
            ) -> None:
    """Everything under the tree's lock: checkout, discovery, kernel, builds (what must
    stay locked until the VM ends goes on `boot_held`)."""
    source, src, accel = where
    cache = Cache(cfg.cache)
    with cache.lock(src.key, st.progress), contextlib.ExitStack() as held:
        with st.step("tree"):
            rep.tree = source.checkout(src, cache, cfg.out)
            if rep.tree.warning:
                st.progress(f"warning: {rep.tree.warning}")
        with st.step("discover"):  # before the kernel: no kernel is built for no tests
            rep.plan = discover.load_plan(rep.tree.path, request(cfg),
                                          version=rep.tree.version)
        rep.kernel = _kernel(cfg, st, rep, source, held)
        rep.qemu = _qemu(cfg, rep.kernel, accel, rep.tree.key)
        if cfg.dry_run:
            rep.verdict, rep.reason = Verdict.DRY_RUN, "nothing built or booted (--dry-run)"
            return
        _build(cfg, st, rep, boot_held)


def execute(cfg: RunConfig, progress: Progress, source: TreeSource | None = None,
            ) -> RunReport:
    """Run the pipeline once (one tree, one kernel, one VM) and return its report.

    HarnessErrors end up on the report; Ctrl-C and SIGTERM (Aborted) give an aborted
    report; any other exception is a bug: an InternalError with traceback.txt.
    `source` supplies the tree (the series gate's two sides).
    """
    cfg.out.mkdir(parents=True, exist_ok=True)
    st = Stages(progress)
    rep = RunReport(run_dir=cfg.out, requested_tests=cfg.tests, stages=st.done)
    try:
        _pipeline(cfg, st, rep, source or TreeSource())
    except HarnessError as exc:
        rep.broke(exc)
    except OSError as exc:  # a full disk (DiskFull), else a bug
        rep.broke(os_error(exc, cfg.out))
    except KeyboardInterrupt as exc:
        rep.aborted(signal_name(exc))
    except Exception as exc:  # a bug: keep the traceback with the run
        rep.broke(internal_error(exc, cfg.out))
    return rep


def signal_name(exc: KeyboardInterrupt) -> str:
    return f"{exc.args[0]}" if isinstance(exc, Aborted) else "SIGINT"
