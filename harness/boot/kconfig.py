"""Kernel config fragments that compose into profiles, and checking a config against them.

A fragment is a file of `CONFIG_X=value` and `# CONFIG_X is not set` lines.  A profile is a
list of fragments, merged in order (a later fragment wins, and the override is noted):

    struct_ops  kernel_configs/struct_ops.config (what `harness run` checks a prebuilt
                kernel against)
    minimal     kernel_configs/minimal.config + struct_ops.config (boots under QEMU with
                the harness's initramfs and channels, namespaces, BTF); a build also
                leaves out what trim.config lists
    selftests   minimal + the tree's tools/testing/selftests/bpf/config, config.vm and
                config.<arch> (what the selftests' own vmtest.sh and BPF CI use)

Anything else given as a profile is a fragment file.  Everything here is pure except
`read_fragment` and `fragments`, which read files, and `explain`, which evaluates the
tree's Kconfig with kconfiglib to say why an option did not survive olddefconfig.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kconfiglib

from harness.errors import UsageError, unreadable

CONFIG_DIR = Path(__file__).resolve().parents[2] / "kernel_configs"
SELFTESTS_CONFIGS = ("config", "config.vm", "config.{arch}")
SELFTESTS_DIR = "tools/testing/selftests/bpf/"
PROFILES: dict[str, tuple[str, ...]] = {
    "struct_ops": ("struct_ops.config",),
    "minimal": ("minimal.config", "struct_ops.config", "trim.config"),
    "selftests": ("minimal.config", "struct_ops.config"),  # + the tree's own configs
}
BUILD_ONLY = frozenset({"trim.config"})  # what a build leaves out, not a requirement
SET_RE = re.compile(r"^(CONFIG_\w+)=(.*)$")
UNSET_RE = re.compile(r"^# (CONFIG_\w+) is not set")


def parse(text: str) -> dict[str, str]:
    """CONFIG_X=y lines and '# CONFIG_X is not set' lines, as {name: value or 'n'}."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if m := SET_RE.match(line.strip()):
            values[m[1]] = m[2]
        elif m := UNSET_RE.match(line.strip()):
            values[m[1]] = "n"
    return values


@dataclass(frozen=True)
class Fragment:
    source: str  # where it came from, as the user should read it
    options: dict[str, str]


@dataclass(frozen=True)
class Wanted:
    value: str
    source: str


@dataclass(frozen=True)
class Unmet:
    name: str
    want: str
    have: str
    source: str

    def line(self) -> str:
        return f"{self.name}={self.want} (kernel has {self.have}; from {self.source})"


def merge(fragments: Sequence[Fragment]) -> tuple[dict[str, Wanted], list[str]]:
    """The options all fragments ask for (a later one wins), and the overrides noted.

    Ordered by last assignment: written out in this order, Kconfig's own rule (the last
    `=y` of a choice wins) agrees with "a later fragment wins".
    """
    wanted: dict[str, Wanted] = {}
    notes: list[str] = []
    for frag in fragments:
        for name, value in frag.options.items():
            before = wanted.pop(name, None)
            if before is not None and before.value != value:
                notes.append(f"{name}: {before.value} ({before.source}) overridden by "
                             f"{value} ({frag.source})")
            wanted[name] = Wanted(value, frag.source)
    return wanted, notes


def base_config(fragments: Sequence[Fragment]) -> str:
    """The make target a built kernel's config starts from: Kconfig's defaults when the
    tree's selftests configs are merged (as their vmtest.sh does: they were written
    against the defaults), tinyconfig otherwise."""
    selftests = any(f.source.startswith(SELFTESTS_DIR) for f in fragments)
    return "alldefconfig" if selftests else "tinyconfig"


def satisfied(want: str, have: str) -> bool:
    """Built in satisfies a request for a module; everything else must match."""
    return have == want or (want == "m" and have == "y")


def check(wanted: dict[str, Wanted], actual: dict[str, str]) -> list[Unmet]:
    """Every wanted option the config does not set as asked (absent counts as 'n')."""
    return [Unmet(name, w.value, actual.get(name, "n"), w.source)
            for name, w in wanted.items() if not satisfied(w.value, actual.get(name, "n"))]


def read_fragment(path: Path, label: str | None = None) -> Fragment:
    if (why := unreadable(path)) and why != "no such file":
        raise UsageError(f"--kconfig {path}: {why}; pass a profile ({', '.join(PROFILES)}) "
                         f"or a fragment file")
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"--kconfig {path}: cannot read ({exc.strerror}); pass a profile "
                         f"({', '.join(PROFILES)}) or a fragment file") from exc
    options = parse(text)
    if not options:
        raise UsageError(f"--kconfig {path}: no CONFIG_ lines; not a config fragment")
    return Fragment(label or str(path), options)


def fragments(specs: Sequence[str], tree: Path | None, arch: str = "x86_64", *,
              building: bool = False) -> list[Fragment]:
    """The fragments of profiles and files, in order; `selftests` needs the tree.

    `building`: for a kernel the harness builds, with what it leaves out (BUILD_ONLY);
    otherwise the requirements alone, to check a kernel against.
    """
    found: list[Fragment] = []
    for spec in specs:
        if spec not in PROFILES:
            found.append(read_fragment(Path(spec)))
            continue
        found += [read_fragment(CONFIG_DIR / name, f"kernel_configs/{name}")
                  for name in PROFILES[spec] if building or name not in BUILD_ONLY]
        if spec == "selftests":
            found += _selftests_configs(tree, arch)
    return found


def check_specs(specs: Sequence[str]) -> None:
    """Every fragment file given is readable and has options (profiles are read later)."""
    for spec in specs:
        if spec not in PROFILES:
            read_fragment(Path(spec))


def _selftests_configs(tree: Path | None, arch: str) -> list[Fragment]:
    if tree is None:
        raise UsageError("the selftests profile needs a kernel tree (its selftests configs)")
    root = tree / "tools/testing/selftests/bpf"
    names = [n.format(arch=arch) for n in SELFTESTS_CONFIGS]
    files = [root / n for n in names if (root / n).is_file()]
    if not files:
        raise UsageError(f"{root}: no selftests config files ({', '.join(names)})")
    return [read_fragment(f, f"{SELFTESTS_DIR}{f.name}") for f in files]


# --- why olddefconfig dropped an option (kconfiglib evaluates the tree's Kconfig) ------

VERSION_SYMBOLS = {"GCC_VERSION": "gcc", "CLANG_VERSION": "clang", "PAHOLE_VERSION": "pahole",
                   "LD_VERSION": "ld", "AS_VERSION": "as", "RUSTC_VERSION": "rustc",
                   "LLD_VERSION": "ld.lld", "BINDGEN_VERSION": "bindgen"}


@dataclass(frozen=True)
class Explained:
    """One unmet option and, where Kconfig tells, why."""

    unmet: Unmet
    unknown: bool = False  # no such option in this tree's Kconfig
    chosen: str | None = None  # another requested member of its choice, which Kconfig kept
    blockers: tuple[str, ...] = ()  # unmet parts of its dependency, with their values
    tool: str | None = None  # a toolchain version the dependency asks for
    unreadable: str | None = None  # why Kconfig could not be evaluated

    def line(self) -> str:
        u = self.unmet
        if self.unreadable:
            return f"{u.line()}; {self.unreadable}"
        if self.unknown:
            return f"{u.name} (from {u.source}) is not an option of this tree's Kconfig"
        if self.chosen:
            return (f"{u.name}={u.want} (from {u.source}) gave way to {self.chosen}=y, also "
                    f"requested, in the same choice")
        head = f"{u.name}={u.want} became {u.have} after olddefconfig (from {u.source})"
        if self.blockers:
            return f"{head}: it depends on {' && '.join(self.blockers)}"
        return f"{head}: its dependencies hold; a choice or a select overrides it"


def _kconfig_class() -> Any:
    """kconfiglib's Kconfig, taught the `modules` attribute of kernels after 5.x.

    kconfiglib 14 knows only the older `option modules` spelling and assumes the symbol
    MODULES either way, so the bare attribute line is read as blank.  kconfiglib runs the
    `$(shell,...)` macros of the Kconfig files itself (compiler probes): the one place
    processes start outside harness/host/proc.py, read-only and only to explain an error.
    """
    class Kernel(kconfiglib.Kconfig):  # type: ignore[misc]
        def _open(self, filename: str, mode: str) -> Any:
            f = super()._open(filename, mode)
            if mode != "r":
                return f
            with f:
                return io.StringIO(MODULES_ATTR_RE.sub("", f.read()))

    return Kernel


MODULES_ATTR_RE = re.compile(r"(?m)^[ \t]*modules[ \t]*$")


def _blockers(kconf: Any, sym: Any) -> tuple[tuple[str, ...], str | None]:
    """The conjuncts of a symbol's dependency that are false, shown with their values."""
    parts = kconfiglib.split_expr(sym.direct_dep, kconfiglib.AND)
    failed = [p for p in parts if kconfiglib.expr_value(p) == 0]
    shown: list[str] = []
    tool = None
    for part in failed:
        names = sorted({s.name for s in kconfiglib.expr_items(part)
                        if isinstance(s, kconfiglib.Symbol) and s.nodes})
        values = ", ".join(f"{n}={kconf.syms[n].str_value or 'n'}" for n in names)
        shown.append(f"{kconfiglib.expr_str(part)} ({values})" if values else
                     kconfiglib.expr_str(part))
        tool = tool or next((VERSION_SYMBOLS[n] for n in names if n in VERSION_SYMBOLS), None)
    return tuple(shown), tool


def explain(kconfig: Path, config: Path, unmet: Sequence[Unmet],
            env: Mapping[str, str], wanted_y: frozenset[str] = frozenset()) -> list[Explained]:
    """Why each unmet option is not set, from the tree's Kconfig and the resolved config.

    `wanted_y`: every option the fragments set to y, to recognize a choice member that
    gave way to another requested member of its choice (not an error).

    `env` is what kbuild would export (srctree, ARCH, SRCARCH, CC, ...); it is set for
    the duration of the parse and restored after.
    """
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        kconf = _kconfig_class()(str(kconfig), warn=False)
        kconf.load_config(str(config))
    except (kconfiglib.KconfigError, OSError) as exc:  # syntax newer than kconfiglib's
        why = f"kconfiglib cannot read this tree's Kconfig ({str(exc).splitlines()[0]})"
        return [Explained(u, unreadable=why) for u in unmet]
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    found: list[Explained] = []
    for u in unmet:
        sym = kconf.syms.get(u.name.removeprefix("CONFIG_"))
        if sym is None or not sym.nodes:
            found.append(Explained(u, unknown=True))
            continue
        chosen = _chosen_sibling(sym, {x.name for x in unmet}, wanted_y)
        if chosen is not None:
            found.append(Explained(u, chosen=chosen))
            continue
        blockers, tool = _blockers(kconf, sym)
        found.append(Explained(u, blockers=blockers, tool=tool))
    return found


def _chosen_sibling(sym: Any, unmet: set[str], wanted_y: frozenset[str]) -> str | None:
    """The member Kconfig selected in `sym`'s choice, when the fragments asked for it too
    (two requested members of one choice: one of them must give way)."""
    selection = sym.choice.selection if sym.choice is not None else None
    if selection is None:
        return None
    name = f"CONFIG_{selection.name}"
    return name if name in wanted_y and name not in unmet else None
