"""Series intake: an mbox, a directory of format-patch files, a git range, or a message-id.

Mail is parsed with the standard library (`mailbox`, `email`), diffs with `unidiff`.
The result is a Series: an optional cover letter and the patches in order, each with its
subject, author, trailers, files and diffstat, plus warnings about the numbering.
"""

from __future__ import annotations

import email.policy
import mailbox
import os
import re
import tomllib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from harness.config import default_cache
from harness.errors import SeriesError
from harness.host import vcs
from harness.host.cache import Cache

PREFIX_RE = re.compile(r"^\s*(?:(?:re|fwd?):\s*)*\[(?P<prefix>[^\]]*)\]\s*(?P<subject>.*)$",
                       re.I | re.S)
COUNTER_RE = re.compile(r"(?:^|\s)(\d+)/(\d+)(?:\s|$)")
VERSION_RE = re.compile(r"(?:^|\s)v(\d+)(?:\s|$)", re.I)
TRAILER_RE = re.compile(r"^([A-Z][A-Za-z-]*-by|Fixes|Link|Closes|Cc): (.+)$", re.M)
BASE_RE = re.compile(r"^base-commit: ([0-9a-f]{7,40})\s*$", re.M)
INBODY_FROM_RE = re.compile(r"^From: (.+)$")
RANGE_RE = re.compile(r"^[^\s.][^\s]*\.\.\.?[^\s]+$")
MSGID_RE = re.compile(r"^<?[^\s<>@/]+@[^\s<>@/]+>?$")
FROM_LINE = b"From harness Mon Sep 17 00:00:00 2001\n"
HUNK_HEADER_RE = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")
SIGNATURE_LINES = ("-- ", "--")  # format-patch's signature ends the diff
CLIP = 60
REGENERATE = "regenerate the patch (git format-patch or b4 am) and pass the series again"
OUTSIDE = "a diff line outside any hunk (no '@@' header before it)"


@dataclass(frozen=True)
class FileStat:
    path: str
    added: int
    removed: int
    hunks: int
    is_new: bool = False


@dataclass(frozen=True)
class Patch:
    """One message: a patch (number ≥ 1) or the cover letter (number 0, no diff)."""

    subject: str  # without the [PATCH ...] prefix
    prefix: str  # "PATCH bpf-next v4 3/6"
    number: int | None
    total: int | None
    version: int
    author: str
    message_id: str
    trailers: tuple[tuple[str, str], ...]
    files: tuple[FileStat, ...]
    diff: str
    raw: bytes  # the whole message, as git am reads it
    base_commit: str | None = None

    @property
    def is_cover(self) -> bool:
        return self.number == 0 and not self.diff

    @property
    def label(self) -> str:
        if self.number is None:
            return "patch"
        return f"{self.number}/{self.total}"

    def as_dict(self) -> dict[str, object]:
        return {
            "number": self.number, "total": self.total, "version": self.version,
            "subject": self.subject, "author": self.author, "message_id": self.message_id,
            "trailers": [list(t) for t in self.trailers],
            "files": [vars(f) for f in self.files],
            "base_commit": self.base_commit,
        }


@dataclass
class Series:
    source: str
    cover: Patch | None
    patches: list[Patch]
    warnings: list[str] = field(default_factory=list)

    @property
    def version(self) -> int:
        versions = {p.version for p in self.patches}
        return max(versions) if versions else 1

    @property
    def base_commit(self) -> str | None:
        found = [p.base_commit for p in [*([self.cover] if self.cover else []), *self.patches]
                 if p.base_commit]
        return found[0] if found else None

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source, "version": self.version,
            "cover": self.cover.subject if self.cover else None,
            "base_commit": self.base_commit, "warnings": self.warnings,
            "patches": [p.as_dict() for p in self.patches],
        }


def split_subject(raw: str) -> tuple[str, str, int | None, int | None, int]:
    """'[PATCH bpf-next v4 3/6] foo' → ('foo', 'PATCH bpf-next v4 3/6', 3, 6, 4)."""
    flat = " ".join(raw.split())
    m = PREFIX_RE.match(flat)
    if m is None:
        return flat, "", None, None, 1
    prefix = m["prefix"]
    counter = COUNTER_RE.search(prefix)
    version = VERSION_RE.search(prefix)
    number, total = (int(counter[1]), int(counter[2])) if counter else (None, None)
    return m["subject"].strip(), prefix, number, total, int(version[1]) if version else 1


def unescape_mboxrd(text: str) -> str:
    """mboxrd quotes body lines starting with 'From ' as '>From ' (and '>From ' as '>>...')."""
    return re.sub(r"^>(>*From )", r"\1", text, flags=re.M)


def split_body(body: str) -> tuple[str, str]:
    """(commit message and notes, diff) split at the first 'diff --git' line."""
    m = re.search(r"^diff --git ", body, re.M)
    if m is None:
        return body, ""
    return body[: m.start()], body[m.start():]


def trailers(message: str) -> tuple[tuple[str, str], ...]:
    head = message.split("\n---\n", 1)[0]
    return tuple((m[1], m[2].strip()) for m in TRAILER_RE.finditer(head))


@dataclass(frozen=True)
class DiffProblem:
    """Where a diff is corrupt: line number (1 = its first 'diff --git'), that line, why."""

    line: int
    text: str
    reason: str

    def describe(self) -> str:
        text = self.text if len(self.text) <= CLIP else self.text[:CLIP] + "..."
        return f"line {self.line} of the diff ({text!r}): {self.reason}"


@dataclass
class _Hunk:
    line: int
    header: str
    old: int  # lines of the old side still to come
    new: int  # lines of the new side still to come


@dataclass
class _DiffScan:
    """The walk of `diff_problem`: where in a file diff we are, the open hunk, the counts."""

    region: str = "preamble"  # preamble | header (after 'diff --git') | hunks | binary
    hunk: _Hunk | None = None
    closed: _Hunk | None = None  # the hunk that ended on the previous line
    promise: tuple[int, str] | None = None  # the '+++ ' line of a file with no hunk yet
    first: _Hunk | None = None
    changes: int = 0


def _open_hunk(scan: _DiffScan, number: int, line: str) -> DiffProblem | None:
    m = HUNK_HEADER_RE.match(line)
    if m is None:
        return DiffProblem(number, line, "not a valid hunk header ('@@ -A,B +C,D @@')")
    old, new = (int(count) if count is not None else 1 for count in m.groups())
    scan.hunk = _Hunk(number, line, old, new)
    scan.first = scan.first or scan.hunk
    scan.promise, scan.region = None, "hunks"
    if old == new == 0:
        scan.hunk = None
    return None


def _hunk_line(scan: _DiffScan, hunk: _Hunk, number: int, line: str) -> DiffProblem | None:
    """One line inside an open hunk: context (' ' or empty), '+', '-' or a '\\' marker."""
    kind = line[:1]
    if kind == "\\":
        return None
    if kind not in ("", " ", "+", "-"):
        return DiffProblem(hunk.line, hunk.header, f"the hunk is shorter than its header says "
                           f"(line {number} {line[:CLIP]!r} is not a hunk line)")
    hunk.old -= kind != "+"
    hunk.new -= kind != "-"
    scan.changes += kind in ("+", "-")
    if min(hunk.old, hunk.new) < 0:
        return DiffProblem(number, line, f"the hunk at line {hunk.line} is longer than its "
                           "header says")
    if hunk.old == hunk.new == 0:
        scan.hunk, scan.closed = None, hunk
    return None


def _unfulfilled(scan: _DiffScan) -> DiffProblem | None:
    """A file whose '--- '/'+++ ' header announced a content change that no hunk made."""
    promise, scan.promise = scan.promise, None
    if promise is None:
        return None
    return DiffProblem(*promise, "the file header announces a content change but no hunk "
                       "follows")


def _header_line(scan: _DiffScan, number: int, line: str) -> DiffProblem | None:
    """Between 'diff --git' and the first hunk: git's extended headers, '--- ', '+++ '."""
    if line == "GIT binary patch":
        scan.region = "binary"
    elif line.startswith("+++ "):
        scan.promise, scan.region = (number, line), "hunks"
    elif line[0] in "+-" and not line.startswith("--- "):
        return DiffProblem(number, line, OUTSIDE)
    return None


def _outside_line(scan: _DiffScan, number: int, line: str) -> DiffProblem | None:
    closed, scan.closed = scan.closed, None
    if line.startswith("diff --git "):
        scan.region = "header"
        return _unfulfilled(scan)
    if scan.region in ("preamble", "binary") or not line:
        return None
    if line.startswith("@@"):
        return _open_hunk(scan, number, line)
    if scan.region == "header":
        return _header_line(scan, number, line)
    return _stray_line(closed, number, line)


def _stray_line(closed: _Hunk | None, number: int, line: str) -> DiffProblem | None:
    """A hunk body line ('+', '-', ' ') where no hunk is open: a header lied or is missing."""
    if line[0] not in "+- ":
        return None
    if closed is None:
        return DiffProblem(number, line, OUTSIDE)
    return DiffProblem(number, line, f"the hunk at line {closed.line} is longer than its "
                       "header says")


def _finish(scan: _DiffScan) -> DiffProblem | None:
    if scan.hunk is not None:
        return DiffProblem(scan.hunk.line, scan.hunk.header,
                           "the hunk is shorter than its header says (the diff ends first)")
    problem = _unfulfilled(scan)
    if problem is None and scan.first is not None and scan.changes == 0:
        problem = DiffProblem(scan.first.line, scan.first.header,
                              "its hunks add and remove no line: the diff changes nothing")
    return problem


def diff_problem(diff: str) -> DiffProblem | None:
    """The first structural defect of a git diff, or None.

    unidiff reads a mangled hunk header, and the body lines after it, as "patch info"
    between files, and stops a hunk at its header's counts, silently dropping the rest.
    So check here what it skips: every '@@' line is a valid header, every hunk has exactly
    the lines its header counts, a file with '--- '/'+++ ' has a hunk, and something
    changes.  Renames, mode changes, binary and empty new or deleted files have no hunk.
    """
    scan = _DiffScan()
    for number, crlf_line in enumerate(diff.removesuffix("\n").split("\n"), start=1):
        line = crlf_line.removesuffix("\r")  # structure only: a CRLF mail reads the same
        if scan.hunk is not None:
            problem = _hunk_line(scan, scan.hunk, number, line)
        elif line in SIGNATURE_LINES and scan.region != "binary":
            break
        else:
            problem = _outside_line(scan, number, line)
        if problem is not None:
            return problem
    return _finish(scan)


def diffstat(diff: str, where: str) -> tuple[FileStat, ...]:
    """Per-file counts from a unified diff; a diff that does not parse is an input error."""
    if not diff:
        return ()
    problem = diff_problem(diff)
    if problem is not None:
        raise SeriesError(f"{where}: corrupt diff at {problem.describe()}; {REGENERATE}")
    try:
        patch_set = PatchSet(diff)
    except UnidiffParseError as exc:
        detail = " ".join(str(exc).split())
        raise SeriesError(f"{where}: corrupt diff ({detail}); {REGENERATE}") from exc
    if not patch_set:
        raise SeriesError(f"{where}: 'diff --git' found but no file diff could be read")
    return tuple(
        FileStat(path=f.path, added=f.added, removed=f.removed, hunks=len(f),
                 is_new=f.is_added_file)
        for f in patch_set
    )


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        return ""
    content = part.get_content()
    return content if isinstance(content, str) else content.decode(errors="replace")


def parse_message(raw: bytes, where: str) -> Patch:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    if not msg["Subject"]:
        raise SeriesError(f"{where}: not a mail message (no Subject header)")
    subject, prefix, number, total, version = split_subject(str(msg["Subject"]))
    body = unescape_mboxrd(_body_text(msg))
    first = body.lstrip("\n").split("\n", 1)[0]
    inbody = INBODY_FROM_RE.match(first)
    author = inbody[1].strip() if inbody else str(msg["From"] or "")
    message, diff = split_body(body)
    label = f"{where} ({prefix or 'no prefix'})"
    base = BASE_RE.search(body)
    return Patch(
        subject=subject, prefix=prefix, number=number, total=total, version=version,
        author=author, message_id=str(msg["Message-Id"] or "").strip("<> "),
        trailers=trailers(message), files=diffstat(diff, label), diff=diff, raw=raw,
        base_commit=base[1] if base else None,
    )


def read_mbox(path: Path) -> list[bytes]:
    """Each message of an mbox file as bytes (no From_ line)."""
    data = path.read_bytes()
    if not data.strip():
        raise SeriesError(f"{path}: empty file; pass an mbox, a patch directory or a range")
    if not data.startswith(b"From "):
        # A single message without an mbox separator (e.g. a saved .eml): one message.
        return [data]
    box = mailbox.mbox(str(path), create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def _build(source: str, messages: list[tuple[bytes, str]]) -> Series:
    parsed = [parse_message(raw, where) for raw, where in messages]
    cover = next((p for p in parsed if p.is_cover), None)
    patches = [p for p in parsed if p.diff]
    ignored = [p for p in parsed if not p.diff and p is not cover]
    if not patches:
        raise SeriesError(f"{source}: no patch (no message with a diff) found")
    series = Series(source=source, cover=cover, patches=patches)
    series.warnings = check_numbering(patches)
    series.warnings += [f"ignored a message without a diff: {p.subject!r}" for p in ignored]
    series.patches = sorted(patches, key=lambda p: (p.number is None, p.number or 0))
    return series


def check_numbering(patches: list[Patch]) -> list[str]:
    """Warnings: missing or duplicate numbers, mixed versions, order, count vs numbering."""
    warnings: list[str] = []
    numbers = [p.number for p in patches if p.number is not None]
    totals = sorted({p.total for p in patches if p.total is not None})
    versions = sorted({p.version for p in patches})
    if len(versions) > 1:
        warnings.append("mixed versions: " + ", ".join(f"v{v}" for v in versions))
    if len(totals) > 1:
        warnings.append("numbering disagrees on the total: " + ", ".join(f"/{t}" for t in totals))
    for n in sorted({n for n in numbers if numbers.count(n) > 1}):
        warnings.append(f"patch {n} appears {numbers.count(n)} times")
    if numbers != sorted(numbers):
        warnings.append("patches were out of order (sorted by number)")
    if totals:
        total = totals[-1]
        missing = [n for n in range(1, total + 1) if n not in numbers]
        if missing:
            warnings.append("missing patches: " + ", ".join(f"{n}/{total}" for n in missing))
        if len(set(numbers)) != len(patches) or len(patches) != total:
            warnings.append(f"numbering says {total} patches but {len(patches)} were found")
    return warnings


def from_mbox(path: Path) -> Series:
    raws = read_mbox(path)
    return _build(str(path), [(raw, f"{path} message {i + 1}") for i, raw in enumerate(raws)])


def from_directory(path: Path) -> Series:
    """git format-patch output; a quilt `series` file, when present, gives the order."""
    order_file = path / "series"
    if order_file.is_file():
        names = [ln.split("#", 1)[0].strip() for ln in order_file.read_text().splitlines()]
        files = [path / n for n in names if n]
        absent = [str(f.name) for f in files if not f.is_file()]
        if absent:
            raise SeriesError(f"{order_file}: lists missing files: {', '.join(absent)}")
    else:
        files = sorted(p for p in path.iterdir() if p.suffix in (".patch", ".diff", ".eml"))
    if not files:
        raise SeriesError(f"{path}: no .patch files and no series file")
    messages: list[tuple[bytes, str]] = []
    for f in files:
        messages += [(raw, str(f)) for raw in read_mbox(f)]
    return _build(str(path), messages)


def from_range(repo_path: Path, spec: str, log_dir: Path) -> Series:
    """BASE..TIP of a git repository, through `git format-patch` (read-only)."""
    git = vcs.Git(repo_path, log_dir)
    if not repo_path.is_dir() or git.toplevel_problem() is not None:
        raise SeriesError(f"{spec}: {repo_path} is not a git repository; pass --tree")
    out = log_dir / "series-range.mbox"
    done = git.run("format-patch", "--stdout", "--no-signature", spec, check=False,
                   log="git-format-patch.log", stdout=out)
    if done.returncode != 0:
        detail = done.output.strip().splitlines()[-1:] or ["no output"]
        raise SeriesError(f"{spec}: not a valid range in {repo_path}: {detail[0]}", done.log)
    text = out.read_bytes()
    if not text.strip():
        raise SeriesError(f"{spec}: the range has no commits")
    chunks = [c for c in re.split(rb"(?m)^From [0-9a-f]{40} Mon Sep 17 00:00:00 2001\n", text)
              if c.strip()]
    return _build(spec, [(c, f"{spec} commit {i + 1}") for i, c in enumerate(chunks)])


def from_message_id(msgid: str) -> Series:
    """Fetching needs the network and b4; refused unless HARNESS_ALLOW_NETWORK=1."""
    if os.environ.get("HARNESS_ALLOW_NETWORK") != "1":
        raise SeriesError(
            f"{msgid}: fetching a message-id needs the network (set HARNESS_ALLOW_NETWORK=1 "
            f"and install b4); offline, pass an mbox (b4 am -o DIR {msgid.strip('<>')}), a "
            f"directory of format-patch files, or a git range BASE..TIP"
        )
    raise SeriesError(f"{msgid}: network fetching is not implemented yet; use `b4 am` and "
                      f"pass the mbox it writes")


def load(src: str, tree: Path | None = None, log_dir: Path | None = None) -> Series:
    """Read a series from any supported source, chosen by what SRC looks like.

    `log_dir` receives the logs of the git commands a range needs (default: a fresh
    directory under the cache's logs).
    """
    path = Path(src)
    if path.is_file():
        return from_mbox(path)
    if path.is_dir():
        return from_directory(path)
    if RANGE_RE.match(src):
        return from_range(tree or Path.cwd(), src, log_dir or Cache(default_cache()).logs())
    if MSGID_RE.match(src):
        return from_message_id(src)
    raise SeriesError(f"{src}: no such file or directory, and not a git range or message-id")


def require_complete(series: Series) -> None:
    """Refuse to apply a series with holes in its numbering."""
    missing = [w for w in series.warnings if w.startswith(("missing patches", "patch "))]
    if missing:
        raise SeriesError(f"{series.source}: {'; '.join(missing)}; pass the whole series")


def check_manifest(series: Series, manifest: dict[str, object]) -> list[str]:
    """Differences between a series and its manifest (patches/manifests/*.toml)."""
    problems: list[str] = []
    expected = manifest.get("patch", [])
    assert isinstance(expected, list)
    if manifest.get("version") not in (None, series.version):
        problems.append(f"version v{series.version}, manifest says v{manifest['version']}")
    if len(expected) != len(series.patches):
        problems.append(f"{len(series.patches)} patches, manifest lists {len(expected)}")
    for i, (want, got) in enumerate(zip(expected, series.patches, strict=False), start=1):
        if want.get("subject") != got.subject:
            problems.append(f"patch {i}: subject {got.subject!r}, expected {want['subject']!r}")
        files = [f.path for f in got.files]
        if want.get("files") != files:
            problems.append(f"patch {i}: files {files}, expected {want['files']}")
    return problems


def load_manifest(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SeriesError(f"--manifest {path}: cannot read ({exc})") from exc


def git_am_bytes(patch: Patch) -> bytes:
    """The message as an mbox of one, for `git am`."""
    return FROM_LINE + patch.raw if not patch.raw.startswith(b"From ") else patch.raw


def show(series: Series) -> str:
    """The human listing for `harness series show`."""
    lines = [f"series: {series.source}", f"version: v{series.version}"]
    lines.append(f"cover: {series.cover.subject if series.cover else '(none)'}")
    if series.base_commit:
        lines.append(f"base-commit: {series.base_commit}")
    for p in series.patches:
        added = sum(f.added for f in p.files)
        removed = sum(f.removed for f in p.files)
        lines.append(f"[{p.label}] {p.subject}")
        lines.append(f"    author: {p.author}")
        for f in p.files:
            lines.append(f"    {f.path} | +{f.added} -{f.removed}")
        lines.append(f"    {len(p.files)} files changed, +{added} -{removed}")
        lines += [f"    {k}: {v}" for k, v in p.trailers]
    lines += [f"warning: {w}" for w in series.warnings]
    return "\n".join(lines)
