"""C text of the skeleton's `struct_ops` block, laid out exactly as bpftool prints it."""

from __future__ import annotations

from collections.abc import Sequence

from harness.btf.shadow import Shadow


def render_shadow(s: Shadow) -> str:
    opener = f"\t\tstruct {s.struct_name} {{\n" if s.struct_name else "\t\tstruct {\n"
    body = "".join(f"\t\t\t{f.decl};\n" for f in s.fields)
    return f"{opener}{body}\t\t}} *{s.map_name};\n"


def render_block(shadows: Sequence[Shadow]) -> str:
    """`\\tstruct {\\n ... \\t} struct_ops;\\n`, or '' when the object has no struct_ops map."""
    if not shadows:
        return ""
    return "\tstruct {\n" + "".join(render_shadow(s) for s in shadows) + "\t} struct_ops;\n"


def extract_block(skeleton: str) -> str:
    """The struct_ops block of a real bpftool skeleton header ('' when it has none)."""
    end_marker = "\t} struct_ops;\n"
    end = skeleton.find(end_marker)
    if end < 0:
        return ""
    start = skeleton.rfind("\tstruct {\n", 0, end)
    while start > 0 and not skeleton[start:].startswith("\tstruct {\n\t\tstruct"):
        start = skeleton.rfind("\tstruct {\n", 0, start)
    return skeleton[start: end + len(end_marker)]
