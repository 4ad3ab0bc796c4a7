"""Frames of kernel reports and scripts/faddr2line's answers (captured: tests/data)."""

from __future__ import annotations

from conftest import data

from harness.outcome import splats, symbols


def test_frames_of_a_module_warning() -> None:
    found = symbols.frames(data("dmesg-warning.log").splitlines())
    assert found[0] == symbols.Frame("harness_fault_store", "0x30", "0x1a0", "bpf_testmod")
    assert symbols.Frame("vfs_write", "0x28f", "0x450", None) in found
    assert symbols.Frame("kernfs_fop_write_iter", "0x12f", "0x210", None) in found
    assert len(found) == len(set(found))  # each once, though the RIP line repeats it


def test_frames_grouped_per_object_and_capped() -> None:
    grouped = symbols.by_object(symbols.frames(data("dmesg-refcount.log").splitlines()))
    assert [f.func for f in grouped["bpf_testmod"]] == ["harness_fault_refcount",
                                                         "harness_fault_store"]
    assert all(len(g) <= symbols.MAX_FRAMES for g in grouped.values())


def test_faddr2line_of_a_module() -> None:
    found = symbols.parse_faddr2line(data("faddr2line-module.txt"))
    assert found == {
        "harness_fault_store+0x30/0x1a0": "/cache/build/user-x/testmod-y/bpf_testmod.c:1444",
        "harness_fault_refcount+0x59/0x60": "/cache/build/user-x/testmod-y/bpf_testmod.c:1416",
    }  # "no match for no_such_function": nothing


def test_faddr2line_inlined_frame_takes_the_innermost_line() -> None:
    found = symbols.parse_faddr2line(data("faddr2line-vmlinux.txt"))
    assert found == {"kernfs_fop_write_iter+0x2cc/0x36f": "fs/kernfs/file.c:356",
                     "vfs_write+0x259/0x31d": "fs/read_write.c:590"}


def test_report_text_lists_the_source_lines() -> None:
    [sp] = splats.scan(data("dmesg-warning.log").splitlines())
    assert sp.text() == "\n".join(sp.lines)
    placed = sp.__class__(**{**vars(sp), "sources": (("harness_fault_store+0x30/0x1a0 "
                                                      "[bpf_testmod]", "bpf_testmod.c:1444"),)})
    assert placed.text().endswith("source lines (faddr2line):\n  harness_fault_store+0x30/0x1a0"
                                  " [bpf_testmod]: bpf_testmod.c:1444")
    assert placed.as_dict()["sources"] == {
        "harness_fault_store+0x30/0x1a0 [bpf_testmod]": "bpf_testmod.c:1444"}
