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

import git
from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from harness.errors import SeriesError

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


def diffstat(diff: str, where: str) -> tuple[FileStat, ...]:
    """Per-file counts from a unified diff; a diff that does not parse is an input error."""
    if not diff:
        return ()
    try:
        patch_set = PatchSet(diff)
    except UnidiffParseError as exc:
        raise SeriesError(f"{where}: corrupt diff ({exc}); regenerate the patch") from exc
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


def from_range(repo_path: Path, spec: str) -> Series:
    """BASE..TIP of a git repository, through `git format-patch` (read-only)."""
    try:
        repo = git.Repo(repo_path)
        text = repo.git.format_patch("--stdout", "--no-signature", spec,
                                     stdout_as_string=False)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise SeriesError(f"{spec}: {repo_path} is not a git repository; pass --tree") from exc
    except git.GitCommandError as exc:
        detail = str(exc.stderr).strip()
        raise SeriesError(f"{spec}: not a valid range in {repo_path}: {detail}") from exc
    assert isinstance(text, bytes)
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


def load(src: str, tree: Path | None = None) -> Series:
    """Read a series from any supported source, chosen by what SRC looks like."""
    path = Path(src)
    if path.is_file():
        return from_mbox(path)
    if path.is_dir():
        return from_directory(path)
    if RANGE_RE.match(src):
        return from_range(tree or Path.cwd(), src)
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
