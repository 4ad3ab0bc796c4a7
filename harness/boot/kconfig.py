"""Kernel config fragments that compose into profiles, and checking a config against them.

A fragment is a file of `CONFIG_X=value` and `# CONFIG_X is not set` lines.  A profile is a
list of fragments, merged in order (a later fragment wins, and the override is noted):

    struct_ops  kernel_configs/struct_ops.config (what `harness run` checks a prebuilt
                kernel against)
    minimal     kernel_configs/minimal.config + struct_ops.config (boots under QEMU with
                the harness's initramfs and channels, powers off, namespaces, BTF)
    selftests   minimal + the tree's tools/testing/selftests/bpf/config, config.vm and
                config.<arch> (what the selftests' own vmtest.sh and BPF CI use)

Anything else given as a profile is a fragment file.  Everything here is pure except
`read_fragment` and `fragments`, which read files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "kernel_configs"
SELFTESTS_CONFIGS = ("config", "config.vm", "config.{arch}")
PROFILES: dict[str, tuple[str, ...]] = {
    "struct_ops": ("struct_ops.config",),
    "minimal": ("minimal.config", "struct_ops.config"),
    "selftests": ("minimal.config", "struct_ops.config"),  # + the tree's own configs
}
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
    """The options all fragments ask for (a later one wins), and the overrides noted."""
    wanted: dict[str, Wanted] = {}
    notes: list[str] = []
    for frag in fragments:
        for name, value in frag.options.items():
            before = wanted.get(name)
            if before is not None and before.value != value:
                notes.append(f"{name}: {before.value} ({before.source}) overridden by "
                             f"{value} ({frag.source})")
            wanted[name] = Wanted(value, frag.source)
    return wanted, notes


def satisfied(want: str, have: str) -> bool:
    """Built in satisfies a request for a module; everything else must match."""
    return have == want or (want == "m" and have == "y")


def check(wanted: dict[str, Wanted], actual: dict[str, str]) -> list[Unmet]:
    """Every wanted option the config does not set as asked (absent counts as 'n')."""
    return [Unmet(name, w.value, actual.get(name, "n"), w.source)
            for name, w in wanted.items() if not satisfied(w.value, actual.get(name, "n"))]


def read_fragment(path: Path, label: str | None = None) -> Fragment:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise UsageError(f"--kconfig {path}: cannot read ({exc.strerror}); pass a profile "
                         f"({', '.join(PROFILES)}) or a fragment file") from exc
    options = parse(text)
    if not options:
        raise UsageError(f"--kconfig {path}: no CONFIG_ lines; not a config fragment")
    return Fragment(label or str(path), options)


def fragments(specs: Sequence[str], tree: Path | None, arch: str = "x86_64",
              ) -> list[Fragment]:
    """The fragments of profiles and files, in order; `selftests` needs the tree."""
    found: list[Fragment] = []
    for spec in specs:
        if spec not in PROFILES:
            found.append(read_fragment(Path(spec)))
            continue
        found += [read_fragment(CONFIG_DIR / name, f"kernel_configs/{name}")
                  for name in PROFILES[spec]]
        if spec == "selftests":
            found += _selftests_configs(tree, arch)
    return found


def _selftests_configs(tree: Path | None, arch: str) -> list[Fragment]:
    if tree is None:
        raise UsageError("the selftests profile needs a kernel tree (its selftests configs)")
    root = tree / "tools/testing/selftests/bpf"
    names = [n.format(arch=arch) for n in SELFTESTS_CONFIGS]
    files = [root / n for n in names if (root / n).is_file()]
    if not files:
        raise UsageError(f"{root}: no selftests config files ({', '.join(names)})")
    return [read_fragment(f, f"tools/testing/selftests/bpf/{f.name}") for f in files]
