"""`harness image build|show|prune|save|load`: the hermetic image, through the engine.

    build   the image of today's recipe (reused when the engine has its tag)
    show    the recipe's tag, whether the engine has it, and the exact package versions
            inside it (read from the image, in a container with no network)
    prune   remove the harness's images other than the current recipe's (--all: that too)
            and its cache volumes no container uses
    save    write the image to a tar file (docker save), to move it without a registry
    load    read such a file into the engine
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.config import default_cache
from harness.container import engine, image, recipe
from harness.errors import UsageError
from harness.host.cache import Cache

if TYPE_CHECKING:
    from docker import DockerClient

ROOT = Path(__file__).resolve().parents[2]  # the project: what the image carries
ACTIONS = (("build", "build the image of the current recipe (reused when present)"),
           ("show", "the recipe's tag, and the package versions inside the image"),
           ("prune", "remove other recipes' images and unused cache volumes"),
           ("save", "write the image to a tar file"),
           ("load", "read an image tar file into the engine"))


def register(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION",
                           help=" or ".join(name for name, _ in ACTIONS))
    parsers = {name: sub.add_parser(name, help=text) for name, text in ACTIONS}
    for a in parsers.values():
        a.add_argument("--cache", type=Path, help="the harness cache (default $HARNESS_CACHE "
                       "or ~/.cache/harness)")
    parsers["show"].add_argument("--json", action="store_true", help="print it as JSON")
    parsers["prune"].add_argument("--all", action="store_true",
                                  help="the current recipe's image too")
    for name in ("save", "load"):
        parsers[name].add_argument("file", type=Path, help="the image's tar file")


def cmd_image(args: argparse.Namespace) -> int:
    cache = Cache((args.cache or default_cache()).resolve())
    if args.action == "load":
        if not args.file.is_file():
            raise UsageError(f"{args.file}: no such file; pass a file `harness image save` "
                             f"wrote")
        print("\n".join(engine.load(engine.connect(), args.file)))
        return 0
    client = engine.connect()
    rec = image.resolve(ROOT)
    if args.action == "build":
        built = image.ensure(client, rec, cache=cache, root=ROOT, log_dir=cache.logs(),
                             progress=_progress)
        print(f"{built.tag} {built.id} "
              f"{'reused' if built.reused else f'built in {built.seconds:.0f} s'}")
        return 0
    if args.action == "show":
        return _show(client, rec, args.json)
    if args.action == "prune":
        for line in engine.prune(client, keep=None if args.all else rec.tag):
            print(line)
        return 0
    engine.save(client, _present(client, rec), args.file)
    print(f"{rec.tag} saved to {args.file}")
    return 0


def _present(client: DockerClient, rec: recipe.ImageRecipe) -> str:
    if engine.image_id(client, rec.tag) is None:
        raise UsageError(f"the engine has no {rec.tag} (the current recipe's image): run "
                         f"`harness image build` first")
    return rec.tag


def _show(client: DockerClient, rec: recipe.ImageRecipe, as_json: bool) -> int:
    found = engine.image_id(client, rec.tag)
    packages = image.packages_in(client, rec.tag) if found else {}
    if as_json:
        print(json.dumps({"tag": rec.tag, "id": found, "recipe": rec.as_dict(),
                          "packages": packages}, indent=2))
        return 0
    print(f"{rec.tag}: {found or 'not built (harness image build)'}")
    print(f"  kernel layer: {' '.join(rec.kernel)}")
    print(f"  python: {' '.join(rec.python)}")
    for name, version in sorted(packages.items()):
        print(f"  {name} {version}")
    return 0


def _progress(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)
