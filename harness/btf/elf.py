"""The one place that reads ELF: section bytes and names from a BPF object, via pyelftools."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from harness.errors import BtfError, UsageError, unreadable

STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link", "?.struct_ops", "?.struct_ops.link")


@dataclass(frozen=True)
class BpfObject:
    path: Path
    btf: bytes
    sections: tuple[str, ...]  # section names in index order

    @property
    def struct_ops_sections(self) -> tuple[str, ...]:
        """The sections libbpf makes struct_ops maps from, in ELF order."""
        return tuple(s for s in self.sections if s in STRUCT_OPS_SECTIONS)


def load(path: Path) -> BpfObject:
    """Read .BTF and the section names; errors name the file and what is wrong."""
    if why := unreadable(path):
        raise UsageError(f"{path}: {why}; pass BPF object files (.bpf.o)")
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            names = tuple(s.name for s in elf.iter_sections())
            btf = elf.get_section_by_name(".BTF")
            if btf is None:
                raise BtfError(f"{path}: no .BTF section; compile with clang -g -target bpf")
            return BpfObject(path=path, btf=btf.data(), sections=names)
    except ELFError as exc:
        raise BtfError(f"{path}: not an ELF object ({exc})") from exc
    except OSError as exc:
        raise BtfError(f"{path}: cannot read ({exc.strerror})") from exc


def has_debug_info(path: Path) -> bool:
    """The ELF object at `path` carries DWARF (.debug_info); False when it cannot be read."""
    try:
        with path.open("rb") as f:
            return ELFFile(f).get_section_by_name(".debug_info") is not None
    except (OSError, ELFError):
        return False
