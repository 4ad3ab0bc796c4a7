"""test_progs' selection language, evaluated on the host.

`test_progs -t NAMES` matches substrings of test names, `-a`/`-d` take globs (only `*`),
`test/subtest` narrows to subtests, and a name starting with `@` reads a list file (one
entry per line, `#` comments).  Entries for one test pattern are merged as test_progs
merges them (`-a foo -a foo/bar` runs only foo/bar), and a deny entry with subtests
never denies the whole test.  This module reproduces those rules on the tree's test
names to decide what to build, and writes the very same entries for the guest's
test_progs (`-a @allow.list -d @deny.list`), so host and guest select alike.

File stems are the harness's own addition: a `--tests` entry that, read as a -t name,
matches no test but names a prog_tests file (`test_struct_ops_module`, with or without
`.c`) selects exactly the tests the file defines.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import SelectionError, UsageError


def glob_match(name: str, pattern: str) -> bool:
    """test_progs' glob: `*` matches any run of characters, everything else itself."""
    head, star, rest = pattern.partition("*")
    if not star:
        return name == pattern
    if not name.startswith(head):
        return False
    tail = name[len(head):]
    rest = rest.lstrip("*")
    if not rest:
        return True
    return any(glob_match(tail[i:], rest) for i in range(len(tail) + 1))


@dataclass(frozen=True)
class Entry:
    """One selection entry: a glob over test names, optionally one over subtest names."""

    test: str
    subtest: str | None
    origin: str  # where it was written: "--tests", "DENYLIST:4", ...

    def text(self) -> str:
        return self.test if self.subtest is None else f"{self.test}/{self.subtest}"


def entry(spec: str, *, glob: bool, origin: str) -> Entry:
    """An entry as test_progs' insert_test makes it: `-t` names become `*name*`."""
    test, sep, sub = spec.partition("/")
    wrap = (lambda s: s) if glob else (lambda s: f"*{s}*")
    return Entry(wrap(test), wrap(sub) if sep else None, origin)


@dataclass(frozen=True)
class FilterSet:
    """test_progs' test_filter_set: per test pattern, the subtest patterns (merged)."""

    tests: Mapping[str, tuple[str, ...]]
    origins: Mapping[str, str]

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> FilterSet:
        tests: dict[str, tuple[str, ...]] = {}
        origins: dict[str, str] = {}
        for e in entries:
            subs = tests.setdefault(e.test, ())
            origins.setdefault(e.test, e.origin)
            if e.subtest is not None and e.subtest not in subs:
                tests[e.test] = (*subs, e.subtest)
        return cls(tests, origins)

    def whole(self, name: str) -> bool:
        """A pattern without subtests matches the test (a deny entry that denies it)."""
        return any(not subs and glob_match(name, t) for t, subs in self.tests.items())

    def any_pattern(self, name: str) -> bool:
        return any(glob_match(name, t) for t in self.tests)

    def lines(self) -> list[str]:
        """The list file test_progs reads back into the same set (`-a @file`)."""
        out: list[str] = []
        for t, subs in self.tests.items():
            out += [f"{t}/{s}" for s in subs] if subs else [t]
        return out


def parse_list(text: str, origin: str) -> list[Entry]:
    """A list file in test_progs' (and BPF CI's ALLOWLIST/DENYLIST) format, as globs.

    Raises UsageError naming the file and line for an entry test_progs would read as
    something else than meant: inner whitespace, a comma, an empty test or subtest part.
    """
    found: list[Entry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        spec = raw.split("#", 1)[0].strip()
        if not spec:
            continue
        problem = _malformed(spec)
        if problem:
            raise UsageError(f"{origin}:{number}: {problem} in {spec!r}; write one "
                             f"'test' or 'test/subtest' glob per line ('#' starts a comment)")
        found.append(entry(spec, glob=True, origin=f"{origin}:{number}"))
    return found


def _malformed(spec: str) -> str | None:
    if any(c.isspace() for c in spec):
        return "whitespace inside an entry"
    if "," in spec:
        return "a comma (one entry per line)"
    test, sep, sub = spec.partition("/")
    if not test or (sep and not sub):
        return "an empty test or subtest name"
    return None


@dataclass(frozen=True)
class Request:
    """What the command line asked for, before the tree is read."""

    tests: tuple[str, ...] = ()  # --tests: file stems or -t names
    allow: tuple[str, ...] = ()  # --allow: globs or @FILE
    deny: tuple[str, ...] = ()  # --deny: globs or @FILE
    tree_denylist: bool = True


@dataclass(frozen=True)
class Resolved:
    """A selection resolved against one tree's tests."""

    tests: tuple[str, ...]  # test names test_progs will run (some subtests may be denied)
    stems: tuple[str, ...]  # the prog_tests files that define them, to build
    allow: FilterSet
    deny: FilterSet
    denied: tuple[str, ...]  # "test" or "test/subtest-glob" the deny lists take away
    deny_sources: tuple[str, ...] = field(default=())

    def allow_lines(self) -> list[str]:
        return self.allow.lines()

    def deny_lines(self) -> list[str]:
        return self.deny.lines()


Reader = Callable[[Path], str]


def _expand(values: Iterable[str], *, glob: bool, option: str, read: Reader) -> list[Entry]:
    """Comma lists and @FILE lists of one option, as entries."""
    found: list[Entry] = []
    for value in values:
        if value.startswith("@"):
            found += parse_list(read_list(Path(value[1:]), option, read), value[1:])
            continue
        for spec in filter(None, value.split(",")):
            problem = _malformed(spec)
            if problem:
                raise UsageError(f"{option} {spec!r}: {problem}")
            found.append(entry(spec, glob=glob, origin=option))
    return found


def read_list(path: Path, option: str, read: Reader) -> str:
    try:
        return read(path)
    except FileNotFoundError:
        raise UsageError(f"{option} @{path}: no such file; give an existing list "
                         f"file") from None
    except IsADirectoryError:
        raise UsageError(f"{option} @{path}: is a directory; give a list file") from None
    except OSError as exc:
        raise UsageError(f"{option} @{path}: cannot read ({exc.strerror})") from None


def _stem_entries(names: Iterable[str], files: Mapping[str, tuple[str, ...]],
                  ) -> tuple[list[Entry], list[str]]:
    """--tests names are test_progs -t names; one that as such matches no test but names
    a prog_tests file (`test_struct_ops_module`, `x.c`) selects the tests it defines."""
    tests = [fn for fns in files.values() for fn in fns]
    exact: list[Entry] = []
    rest: list[str] = []
    for name in names:
        stem, sep, sub = name.partition("/")
        as_t = any(stem in t for t in tests)
        stem = stem.removesuffix(".c")
        if stem in files and not as_t:
            exact += [Entry(fn, sub if sep else None, "--tests") for fn in files[stem]]
        else:
            rest.append(name)
    return exact, rest


def resolve(req: Request, files: Mapping[str, tuple[str, ...]],
            tree_lists: Iterable[tuple[str, str]], read: Reader = Path.read_text,
            ) -> Resolved:
    """Resolve a request on a tree: `files` maps each prog_tests stem to its test names,
    `tree_lists` gives (name, text) of the tree's deny lists honoured by default."""
    exact, names = _stem_entries(_split(req.tests), files)
    allow = [*exact, *_expand(names, glob=False, option="--tests", read=read),
             *_expand(req.allow, glob=True, option="--allow", read=read)]
    deny = _expand(req.deny, glob=True, option="--deny", read=read)
    if req.tree_denylist:
        deny = [e for name, text in tree_lists for e in parse_list(text, name)] + deny
    owner = {fn: stem for stem, fns in files.items() for fn in fns}
    _check_matches(allow, owner, files)
    allowed, denied = FilterSet.of(allow), FilterSet.of(deny)
    wanted = [t for t in sorted(owner) if not allowed.tests or allowed.any_pattern(t)]
    runs = tuple(t for t in wanted if not denied.whole(t))
    if not runs:
        raise SelectionError(f"every selected test is denied ({len(wanted)} selected); "
                             f"pass --no-tree-denylist or change --deny")
    return Resolved(tests=runs, stems=tuple(sorted({owner[t] for t in runs})),
                    allow=allowed, deny=denied, denied=_denied(wanted, denied))


def _split(values: Iterable[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _check_matches(allow: list[Entry], owner: Mapping[str, str],
                   files: Mapping[str, tuple[str, ...]]) -> None:
    """Every allow entry must match at least one test of the tree (exit 5 otherwise)."""
    for e in allow:
        if not any(glob_match(t, e.test) for t in owner):
            raise SelectionError(_no_match(e, list(owner) + list(files)))


def _no_match(e: Entry, candidates: list[str]) -> str:
    bare = e.test.strip("*")
    close = list(dict.fromkeys(difflib.get_close_matches(bare, candidates, n=5, cutoff=0.6)))
    hint = f"; close: {', '.join(close[:3])}" if close else ""
    return (f"{e.origin} {e.text()!r} matches no test in "
            f"tools/testing/selftests/bpf/prog_tests{hint}")


def _denied(wanted: Iterable[str], deny: FilterSet) -> tuple[str, ...]:
    """What the deny lists take away from the wanted tests, as report names."""
    out: list[str] = []
    for name in wanted:
        for pattern, subs in deny.tests.items():
            if glob_match(name, pattern):
                out += [f"{name}/{s}" for s in subs] if subs else [name]
    return tuple(dict.fromkeys(out))


def tree_list_names(arch: str, version: str) -> list[str]:
    """The tree's deny lists honoured by default, in order: upstream's DENYLIST and
    DENYLIST.<arch>, then the per-kernel-version convention DENYLIST-<major.minor>
    (and its .<arch> variant) for lists a user keeps per stable kernel."""
    series = ".".join(version.split(".")[:2])
    return ["DENYLIST", f"DENYLIST.{arch}", f"DENYLIST-{series}", f"DENYLIST-{series}.{arch}"]
