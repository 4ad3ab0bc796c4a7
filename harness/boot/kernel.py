"""The kernel a run boots: a prebuilt image plus the headers bpf_testmod builds against."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from harness.boot import kconfig
from harness.errors import TreeError, unreadable

FLAVOUR_ORDER = ("cloud-amd64", "amd64")
HASH_LIMIT = 64 << 20


@dataclass(frozen=True)
class Kernel:
    image: Path
    headers: Path  # a kbuild directory with Makefile and a BTF vmlinux
    release: str  # "6.12.117+deb12-cloud-amd64"
    identity: str | None = None  # a built kernel: its commit and config (else read below)
    types: str | None = None  # a built kernel: the hash of its vmlinux's .BTF section

    @property
    def modules_dir(self) -> Path | None:
        """Where an installed kernel's modules are (a kernel built by the harness has
        what the guest needs built in)."""
        if self.identity is not None:
            return None
        path = Path("/lib/modules") / self.release
        return path if path.is_dir() else None

    @property
    def vmlinux(self) -> Path:
        return self.headers / "vmlinux"

    def fingerprint(self) -> str:
        """Names the kernel's types: its release and its BTF vmlinux's content.

        Small (BTF-only) vmlinux files are hashed; a large one (a kernel built with debug
        info) is named by its path, size and modification time.  A kernel the harness
        built is named by the commit and config it was built from.
        """
        if self.identity is not None:
            return self.identity
        try:
            st = self.vmlinux.stat()
        except OSError:
            return f"{self.release} (no vmlinux)"
        if st.st_size <= HASH_LIMIT:
            return f"{self.release} {hashlib.sha256(self.vmlinux.read_bytes()).hexdigest()}"
        return f"{self.release} {self.vmlinux} {st.st_size} {st.st_mtime_ns}"

    def types_fingerprint(self) -> str:
        """Names the kernel's types alone (what vmlinux.h and the BPF programs see): two
        built kernels whose BTF is the same share their selftests build."""
        return self.types or self.fingerprint()

    def as_dict(self) -> dict[str, str]:
        return {"image": str(self.image), "headers": str(self.headers), "release": self.release,
                "identity": self.fingerprint()}


def _flavour_rank(release: str) -> int:
    for rank, flavour in enumerate(FLAVOUR_ORDER):
        if release.endswith(f"-{flavour}") and not release.endswith(f"-rt-{flavour}"):
            return rank
    return len(FLAVOUR_ORDER)


def matching_releases(version: str, images: list[str]) -> list[str]:
    """Releases among `vmlinuz-*` names whose upstream version equals the tree's, best first.

    A Debian release is '<version>+<abi>-<flavour>' (6.12.117+deb12-cloud-amd64); a plain
    '<version>-<suffix>' release also matches.
    """
    pattern = re.compile(rf"^vmlinuz-({re.escape(version)}[+-].+)$")
    releases = [m[1] for name in images if (m := pattern.match(name))]
    return sorted(releases, key=lambda r: (_flavour_rank(r), r))


def find_prebuilt(version: str, boot: Path = Path("/boot"), src: Path = Path("/usr/src")) -> Kernel:
    """The installed kernel image and headers matching the tree's version."""
    names = sorted(p.name for p in boot.glob("vmlinuz-*"))
    for release in matching_releases(version, names):
        headers = src / f"linux-headers-{release}"
        if (headers / "vmlinux").is_file() and (headers / "Makefile").is_file():
            return Kernel(image=boot / f"vmlinuz-{release}", headers=headers, release=release)
    have = ", ".join(n.removeprefix("vmlinuz-") for n in names) or "none"
    raise TreeError(
        f"the tree is Linux {version} but no installed kernel matches it (installed: {have}); "
        f"install linux-image-{version}+deb12-cloud-amd64 and its headers, or pass "
        f"--kernel build (built from the tree) or --kernel IMAGE --headers DIR"
    )


def explicit(image: Path, headers: Path) -> Kernel:
    if not image.is_file():
        raise TreeError(f"--kernel {image}: {unreadable(image) or 'no such file'}; pass a "
                        f"bzImage/vmlinuz")
    if not (headers / "Makefile").is_file() or not (headers / "vmlinux").is_file():
        raise TreeError(f"--headers {headers}: needs a kbuild Makefile and a BTF vmlinux")
    release_file = headers / "include/config/kernel.release"
    if not release_file.is_file():
        raise TreeError(f"--headers {headers}: no include/config/kernel.release; prepare it")
    return Kernel(image=image, headers=headers, release=release_file.read_text().strip())


def check_config(kernel: Kernel, fragments: list[kconfig.Fragment] | None = None,
                 ) -> list[str]:
    """Unmet options of the fragments (default: the struct_ops profile), read from the
    headers' .config (none when unreadable)."""
    config = kernel.headers / ".config"
    if not config.is_file():
        return []
    wanted, _ = kconfig.merge(fragments or kconfig.fragments(["struct_ops"], None))
    actual = kconfig.parse(config.read_text(errors="replace"))
    return [u.line() for u in kconfig.check(wanted, actual)]
