"""The hermetic image's recipe and tag (issue 14): pure.

The image is the guest's root filesystem recipe (harness/boot/rootfs.py) with more
layers, so the two cannot drift apart.  Its base is the very root filesystem a build
inside the guest runs on (`runtime`: what the selftests expect; `toolchain`: what builds
bpftool, libbpf, the modules and test_progs), shared with it in the cache; on it, the
recipe's `image` layer (QEMU, busybox, git, squashfs-tools, ...) and the kernel the gate
boots (Debian's linux-source-6.12 and the cloud image and headers of the same version,
from bookworm-security, pinned), then the harness itself (its sources and the exact
versions of its Python dependencies).  The tag is a hash of all of it: the same recipe
reuses the image, any change builds a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.boot import rootfs

REPOSITORY = "harness-env"
BASE_LAYERS = ("runtime", "toolchain")  # the guest build's root filesystem
LAYER = "image"  # installed on it by apt, with the kernel layer
# What of the project goes into the image (and so into its tag).
PROJECT_PARTS = ("harness", "vm", "kernel_configs", "patches", "pyproject.toml")
SKIPPED = ("__pycache__", ".pyc")


@dataclass(frozen=True)
class ImageRecipe:
    base: rootfs.Recipe  # debootstrap from the mirror: BASE_LAYERS
    packages: tuple[str, ...]  # the image layer's, installed with the host's apt sources
    kernel: tuple[str, ...]  # "package=version", installed with them
    python: tuple[str, ...]  # the harness's dependencies, "name==version"
    project: str  # digest of PROJECT_PARTS

    def as_dict(self) -> dict[str, object]:
        return {"base": self.base.as_dict(), "packages": list(self.packages),
                "kernel": list(self.kernel),
                "python": list(self.python), "project": self.project}

    def key(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{REPOSITORY}:{self.key()}"


def kernel_layer(source_version: str, image: str, headers: str) -> tuple[str, ...]:
    """The kernel packages, pinned: the source tree and the image and headers built from
    it (bootstrap.kernel_packages names them from the source version)."""
    return (f"linux-source-6.12={source_version}", f"{image}={source_version}",
            f"{headers}={source_version}")


def make(mirror: str, kernel: tuple[str, ...], python: Iterable[str],
         project: str) -> ImageRecipe:
    return ImageRecipe(base=rootfs.recipe(BASE_LAYERS, mirror),
                       packages=rootfs.LAYERS[LAYER].packages, kernel=kernel,
                       python=tuple(sorted(python)), project=project)


def project_files(root: Path) -> list[Path]:
    """The project's files the image carries, sorted (relative to root)."""
    found: list[Path] = []
    for part in PROJECT_PARTS:
        path = root / part
        if path.is_file():
            found.append(Path(part))
            continue
        found += [p.relative_to(root) for p in sorted(path.rglob("*"))
                  if p.is_file() and not any(s in p.parts or p.name.endswith(s)
                                             for s in SKIPPED)]
    return found


def project_digest(root: Path) -> str:
    """A digest of the project's files (names and contents) as the image carries them."""
    h = hashlib.sha256()
    for rel in project_files(root):
        h.update(str(rel).encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


IMAGE_ENV = "HARNESS_IMAGE"  # "tag id", set by `--in-container` for the run inside
PACKAGES_FILE = Path("/opt/harness/packages.txt")  # written into the image when built


def current(env: dict[str, str], packages: Path = PACKAGES_FILE) -> dict[str, object] | None:
    """The image this process runs in, for the report: its tag, id and exact package
    versions; None outside the image."""
    given = env.get(IMAGE_ENV)
    if not given:
        return None
    tag, _, image_id = given.partition(" ")
    versions = rootfs.parse_packages(packages.read_text()) if packages.is_file() else {}
    return {"tag": tag, "id": image_id, "packages": versions}
