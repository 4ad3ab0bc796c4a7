"""`--in-container`: the same command, run inside the hermetic image (issue 14).

On the host: the command line's paths made absolute (the run directory decided here),
the tree checked, the engine reached, the image built or reused; then one container runs
`harness <command> <argv>` with the inputs read-only, the run directory written back at
its own path, the cache in a volume and no network (spec.py).  The container's exit
status is the command's.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from harness.bisect import command as bisect_cmd
from harness.container import engine, image, recipe, spec
from harness.container.command import ROOT
from harness.errors import TreeError, UsageError
from harness.host.cache import Cache

CACHE_VOLUME = "harness-cache"


def check_inputs(argv: list[str]) -> None:
    """What the command would refuse at once, found here before any engine or image:
    a --tree that does not exist, a --resume directory without a bisection's log (read
    by bisect's own loader; the directory is then never created by the mount)."""
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        given = value if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        if name == "--tree" and not Path(given).is_dir():
            raise TreeError(f"--tree {given}: no such directory; pass the path of a kernel "
                            f"git tree")
        if name == "--resume":
            bisect_cmd.load_steps(Path(given))


def accel_for(requested: str | None) -> str:
    """KVM only when asked for and not forced off (HARNESS_ACCEL=tcg)."""
    if requested == "kvm" and os.environ.get("HARNESS_ACCEL") != "tcg":
        return "kvm"
    return "tcg"


def execute(argv: list[str], grammar: spec.Grammar, *, cache: Cache, default_out: Path,
            accel: str | None, progress: Callable[[str], None]) -> int:
    """`harness <argv>` in the image: everything that can be wrong with the command line
    is found before the engine is asked or the image built."""
    # the host's cache is not the container's (the volume is)
    full = spec.absolute(argv, Path.cwd(), grammar, default_out=default_out,
                         drop=frozenset({"--cache"}))
    chosen = accel_for(accel)
    if chosen == "kvm" and not Path(spec.KVM).exists():
        raise UsageError(f"--accel kvm: {spec.KVM} is not available; use --accel tcg")
    s = spec.build(recipe.REPOSITORY, full, CACHE_VOLUME, chosen)  # its UsageErrors first
    check_inputs(full)
    client = engine.connect()
    built = image.ensure(client, image.resolve(ROOT), cache=cache, root=ROOT,
                         log_dir=cache.logs(), progress=progress)
    progress(f"image {built.tag} ({built.id[:19]}): "
             f"{'reused' if built.reused else f'built in {built.seconds:.0f} s'}")
    s = dataclasses.replace(s, image=built.tag, environment={
        **s.environment, recipe.IMAGE_ENV: f"{built.tag} {built.id}"})
    return engine.run(client, s, _echo(sys.stdout), _echo(sys.stderr))


def _echo(stream: TextIO) -> engine.Sink:
    def write(chunk: bytes) -> None:
        stream.buffer.write(chunk)
        stream.flush()

    return write
