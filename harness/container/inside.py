"""`--in-container`: the same command, run inside the hermetic image (issue 14).

On the host: the command line's paths made absolute (the run directory decided here),
the tree checked, the engine reached, the image built or reused; then one container runs
`harness <command> <argv>` with the inputs read-only, the run directory written back at
its own path, the cache in a volume and no network (spec.py).  The container's exit
status is the command's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from harness.container import engine, image, spec
from harness.container.command import ROOT
from harness.errors import TreeError
from harness.host.cache import Cache

CACHE_VOLUME = "harness-cache"


def check_tree(argv: list[str]) -> None:
    """A --tree that does not exist is found here, before any engine or image."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        given = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        if name == "--tree" and not Path(given).is_dir():
            raise TreeError(f"--tree {given}: no such directory; pass the path of a kernel "
                            f"git tree")


def accel_for(requested: str | None) -> str:
    """KVM only when asked for and not forced off (HARNESS_ACCEL=tcg)."""
    if requested == "kvm" and os.environ.get("HARNESS_ACCEL") != "tcg":
        return "kvm"
    return "tcg"


def execute(command: str, argv: list[str], *, cache: Cache, default_out: Path,
            accel: str | None, progress: Callable[[str], None]) -> int:
    full = spec.absolute([command, *argv], Path.cwd(), default_out)
    check_tree(full)
    client = engine.connect()
    rec = image.resolve(ROOT)
    built = image.ensure(client, rec, cache=cache, root=ROOT, log_dir=cache.logs(),
                         progress=progress)
    progress(f"image {built.tag} ({built.id[:19]}): "
             f"{'reused' if built.reused else f'built in {built.seconds:.0f} s'}")
    s = spec.build(built.tag, full, CACHE_VOLUME, accel_for(accel),
                   {"HARNESS_IMAGE": f"{built.tag} {built.id}"})
    return engine.run(client, s, _echo)


def _echo(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.flush()
