"""The guest's Debian root filesystem: one layered recipe, built on the host and cached.

A recipe is a Debian suite, a mirror and an ordered list of layers, each a list of
packages.  The `runtime` layer is what BPF selftests expect of the machine they run on
(iproute2, ping, iptables, the libraries test programs link); later layers (the in-guest
toolchain, the container image) extend it, so the guest and the image cannot drift apart.
`debootstrap --variant=minbase` installs a recipe into a directory, which becomes a
read-only squashfs image the VM boots with a writable tmpfs overlay; the cache entry is
named by a hash of the recipe and records the exact package versions it got.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import BuildError, ConfigError, ProcError, ToolchainError
from harness.host import proc
from harness.host.cache import Cache

RECIPE_VERSION = 2  # 2: the image keeps no xattrs (a kernel without SQUASHFS_XATTR warns)
SUITE = "bookworm"


@dataclass(frozen=True)
class Layer:
    name: str
    packages: tuple[str, ...]
    why: str


RUNTIME = Layer("runtime", (
    "iproute2", "iputils-ping", "iptables", "nftables", "procps", "ethtool", "kmod",
    "keyutils", "netcat-openbsd", "libelf1", "zlib1g", "libcap2", "libssl3",
), "what the BPF selftests call and link: ip, tc, ping, iptables, nft, sysctl, "
   "insmod, keyctl, nc; libelf, zlib, libcap, libcrypto")
TOOLCHAIN = Layer("toolchain", (
    "gcc", "make", "libc6-dev", "libelf-dev", "zlib1g-dev", "clang-19", "llvm-19", "lld-19",
    "pahole", "flex", "bison", "bc", "libssl-dev", "python3",
), "builds inside the guest: bpftool, libbpf, test modules, test_progs")
IMAGE = Layer("image", (
    "qemu-system-x86", "busybox-static", "git", "cpio", "squashfs-tools", "debootstrap",
    "python3-venv", "xz-utils", "e2fsprogs", "ccache",
), "the hermetic image that runs the harness itself")
LAYERS = {layer.name: layer for layer in (RUNTIME, TOOLCHAIN, IMAGE)}
# Not needed once installed, and a third of a minbase tree.
PRUNED = ("var/cache/apt/archives", "usr/share/doc", "usr/share/man", "usr/share/locale",
          "usr/share/info")


@dataclass(frozen=True)
class Recipe:
    suite: str
    mirror: str
    layers: tuple[Layer, ...]

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p for layer in self.layers for p in layer.packages))

    def as_dict(self) -> dict[str, object]:
        return {"version": RECIPE_VERSION, "suite": self.suite, "mirror": self.mirror,
                "variant": "minbase", "layers": [layer.name for layer in self.layers],
                "packages": sorted(self.packages), "pruned": list(PRUNED)}

    def key(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        return f"{'+'.join(x.name for x in self.layers)}-{digest}"


def recipe(names: tuple[str, ...], mirror: str, suite: str = SUITE) -> Recipe:
    """The recipe of the named layers, `runtime` always first."""
    ordered = ["runtime", *(n for n in names if n != "runtime")]
    return Recipe(suite, mirror, tuple(LAYERS[n] for n in ordered))


SOURCES_LIST_RE = re.compile(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", re.M)
DEB822_RE = re.compile(r"^URIs:\s*(\S+)[^\n]*\nSuites:\s*([^\n]+)", re.M)


def mirror(apt_sources: str, suite: str = SUITE) -> str | None:
    """The Debian mirror apt uses for `suite` (one-line or deb822 sources)."""
    for uri, suites in [*SOURCES_LIST_RE.findall(apt_sources), *DEB822_RE.findall(apt_sources)]:
        if suite in suites.split() and "security" not in uri:
            return str(uri)
    return None


def host_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    texts = [p.read_text(errors="replace") for p in
             [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*"))]
             if p.is_file()]
    found = mirror("\n".join(texts))
    if found is None:
        raise ToolchainError(f"no Debian {SUITE} mirror in {etc_apt}/sources.list*: the guest's "
                             f"root filesystem is built from one; add it, or pass "
                             f"--rootfs initramfs")
    return found


@dataclass(frozen=True)
class Rootfs:
    """A built root filesystem: the installed tree, its image and what it got."""

    root: Path  # cache/rootfs/<key>
    recipe_key: str

    @property
    def tree(self) -> Path:
        return self.root / "tree"

    @property
    def image(self) -> Path:
        return self.root / "rootfs.squashfs"

    @property
    def packages_file(self) -> Path:
        return self.root / "packages.txt"

    def has(self, path: str) -> bool:
        """True when the installed tree holds this absolute path (following usrmerge)."""
        return (self.tree / path.lstrip("/")).exists()

    def packages(self) -> dict[str, str]:
        return parse_packages(self.packages_file.read_text())

    def as_dict(self) -> dict[str, object]:
        return {"key": self.recipe_key, "image": str(self.image),
                "bytes": self.image.stat().st_size, "packages": len(self.packages())}


DIGEST = "rootfs.squashfs.sha256"


def parse_packages(text: str) -> dict[str, str]:
    """`dpkg-query -W` output ("name<TAB>version" lines) as a dict."""
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


STORE_ENV = "HARNESS_ROOTFS_STORE"  # read-only built root filesystems (the hermetic image's)


def at(cache: Cache, rec: Recipe) -> Rootfs:
    """Where the recipe's root filesystem is: in the read-only store ($HARNESS_ROOTFS_STORE,
    set in the hermetic image) when it holds it, else (built or to be built) in the cache."""
    store = os.environ.get(STORE_ENV)
    if store:
        stored = Rootfs(Path(store) / rec.key(), rec.key())
        if stored.image.is_file() and stored.packages_file.is_file():
            return stored
    return Rootfs(cache.root / "rootfs" / rec.key(), rec.key())


def ensure(rec: Recipe, cache: Cache, log_dir: Path, progress: Callable[[str], None] | None = None,
           notes: list[str] | None = None) -> Rootfs:
    """The cached root filesystem of the recipe, built first when absent; an image that is
    not what mksquashfs wrote (its digest) is made again from the kept tree, and `notes`
    says so."""
    key = rec.key()
    found = at(cache, rec)
    if _intact(found) or not found.root.is_relative_to(cache.root):  # the store's: as is
        return found
    with cache.lock(f"rootfs-{key}", progress):
        if _intact(found):
            return found
        if found.packages_file.is_file() and found.tree.is_dir():
            if notes is not None and (found.root / DIGEST).is_file():
                notes.append(f"root filesystem: the cached {found.image} changed since it was "
                             f"made (truncated or damaged): made again from its tree")
            _squash(found.tree, found.root, log_dir)
        else:
            _build(rec, found, log_dir)
    return found


def _intact(found: Rootfs) -> bool:
    digest = found.root / DIGEST
    return (found.image.is_file() and found.packages_file.is_file() and digest.is_file()
            and digest.read_text().strip() == _sha256(found.image))


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _squash(tree: Path, root: Path, log_dir: Path) -> None:
    """The read-only image of `tree` in `root`, with its digest."""
    image = root / "rootfs.squashfs"
    (root / DIGEST).unlink(missing_ok=True)
    proc.run(["mksquashfs", str(tree), str(image), "-noappend", "-quiet", "-no-xattrs"],
             log=log_dir / "build-rootfs-image.log", timeout=1800)
    (root / DIGEST).write_text(_sha256(image) + "\n")


MISSING_DEBS_RE = re.compile(r"Couldn't find these debs: ([^\n]+)")


def _build(rec: Recipe, dest: Rootfs, log_dir: Path) -> None:
    for tool in ("debootstrap", "mksquashfs"):
        if shutil.which(tool) is None:
            raise ToolchainError(f"{tool} not found: the guest's root filesystem needs it; "
                                 f"apt-get install debootstrap squashfs-tools")
    work = dest.root.with_name(dest.root.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    tree = work / "tree"
    tree.mkdir(parents=True)
    try:
        proc.run(["debootstrap", "--variant=minbase", f"--include={','.join(rec.packages)}",
                  rec.suite, str(tree), rec.mirror], log=log_dir / "build-rootfs.log",
                 timeout=1800)
    except ProcError as exc:
        shutil.rmtree(work, ignore_errors=True)
        missing = MISSING_DEBS_RE.search(exc.output)
        if missing is None:
            raise
        raise BuildError(f"the root filesystem recipe ({'+'.join(x.name for x in rec.layers)}"
                         f") names packages Debian {rec.suite} does not have: {missing[1]}; "
                         f"fix the recipe's layers in harness/boot/rootfs.py",
                         exc.log) from exc
    for sub in PRUNED:
        shutil.rmtree(tree / sub, ignore_errors=True)
    versions = proc.capture(["dpkg-query", f"--admindir={tree}/var/lib/dpkg", "-W",
                             "-f", "${Package}\t${Version}\n"])
    (work / "packages.txt").write_text(versions)
    (work / "recipe.json").write_text(json.dumps(rec.as_dict(), indent=2) + "\n")
    _squash(tree, work, log_dir)
    shutil.rmtree(dest.root, ignore_errors=True)
    work.rename(dest.root)


@dataclass(frozen=True)
class Needs:
    """Kernel options stage 1 needs (option → module name), for what, and the way out."""
    options: dict[str, str]
    what: str
    instead: str


# What stage 1 needs to mount the image.
BOOT = Needs({"CONFIG_VIRTIO_BLK": "virtio_blk", "CONFIG_SQUASHFS": "squashfs",
              "CONFIG_OVERLAY_FS": "overlay"}, "the guest's root filesystem",
             "--rootfs initramfs")
# ... and for a build inside the guest: its ext4 build disk and the port its logs take.
GUEST_BUILD = Needs({**BOOT.options, "CONFIG_EXT4_FS": "ext4",
                     "CONFIG_VIRTIO_CONSOLE": "virtio_console"},
                    "a build inside the guest", "--build-in host")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """modules.dep: module name → (its path, the paths it depends on)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if sep:
            name = Path(path).name.split(".ko")[0].replace("-", "_")
            found[name] = (path, deps.split())
    return found


def load_order(names: list[str], deps: dict[str, tuple[str, list[str]]]) -> list[str]:
    """The module paths to insert, each after what it depends on (modules.dep lists a
    module's dependencies in load-last-first order)."""
    order: list[str] = []
    for name in names:
        path, needs = deps[name]
        for dep in [*reversed(needs), path]:
            if dep not in order:
                order.append(dep)
    return order


def unpacked(path: Path) -> bytes:
    """A module's ELF bytes (Debian ships them xz-compressed; busybox insmod takes ELF)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def boot_modules(config: dict[str, str], modules_dir: Path | None, needs: Needs = BOOT,
                 ) -> tuple[tuple[str, bytes], ...]:
    """The modules stage 1 inserts before it mounts the image (and, with GUEST_BUILD, the
    build disk): none when the kernel has the options built in.  Raises ConfigError when
    an option is missing."""
    wanted = [name for option, name in needs.options.items() if config.get(option) == "m"]
    missing = [o for o in needs.options if config.get(o) not in ("y", "m")]
    if missing:
        raise ConfigError(f"the kernel lacks {', '.join(missing)}, which {needs.what} "
                          f"needs; build it with the minimal profile or pass {needs.instead}")
    if not wanted:
        return ()
    dep_file = modules_dir / "modules.dep" if modules_dir else None
    if dep_file is None or not dep_file.is_file():
        raise ConfigError(f"the kernel has {', '.join(wanted)} as modules but no modules.dep "
                          f"to load them from ({dep_file}); pass --rootfs initramfs")
    assert modules_dir is not None
    order = load_order(wanted, parse_modules_dep(dep_file.read_text()))
    return tuple((Path(p).name.split(".ko")[0] + ".ko", unpacked(modules_dir / p))
                 for p in order)
