"""Write .BTF bytes from Python (drgn-style test builders instead of checked-in binaries)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from harness.btf.types import Kind

HDR = struct.Struct("<HBBIIIII")


@dataclass
class Builder:
    """Append types; each add_* returns the new type id.  `build()` gives .BTF bytes."""

    strings: bytearray = field(default_factory=lambda: bytearray(b"\0"))
    types: bytearray = field(default_factory=bytearray)
    count: int = 0

    def _name(self, name: str) -> int:
        if not name:
            return 0
        off = len(self.strings)
        self.strings += name.encode() + b"\0"
        return off

    def _type(self, kind: Kind, name: str, vlen: int, size_or_type: int, *,
              kflag: bool = False, extra: bytes = b"") -> int:
        info = (int(kind) << 24) | vlen | (int(kflag) << 31)
        self.types += struct.pack("<III", self._name(name), info, size_or_type) + extra
        self.count += 1
        return self.count

    def int_(self, name: str, size: int, signed: bool = True, bits: int | None = None) -> int:
        word = ((1 if signed else 0) << 24) | (bits if bits is not None else size * 8)
        return self._type(Kind.INT, name, 0, size, extra=struct.pack("<I", word))

    def float_(self, name: str, size: int) -> int:
        return self._type(Kind.FLOAT, name, 0, size)

    def ref(self, kind: Kind, target: int, name: str = "") -> int:
        return self._type(kind, name, 0, target)

    def ptr(self, target: int) -> int:
        return self.ref(Kind.PTR, target)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self._type(Kind.ARRAY, "", 0, 0, extra=struct.pack("<III", elem, index, nelems))

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]],
               union: bool = False, kflag: bool = False) -> int:
        """members: (name, type id, raw offset in bits, already kflag-encoded if needed)."""
        extra = b"".join(struct.pack("<III", self._name(n), t, o) for n, t, o in members)
        kind = Kind.UNION if union else Kind.STRUCT
        return self._type(kind, name, len(members), size, kflag=kflag, extra=extra)

    def enum(self, name: str, size: int, values: list[tuple[str, int]],
             wide: bool = False) -> int:
        if wide:
            extra = b"".join(struct.pack("<III", self._name(n), v & 0xFFFFFFFF, v >> 32)
                             for n, v in values)
            return self._type(Kind.ENUM64, name, len(values), size, extra=extra)
        extra = b"".join(struct.pack("<Ii", self._name(n), v) for n, v in values)
        return self._type(Kind.ENUM, name, len(values), size, extra=extra)

    def func_proto(self, ret: int, params: list[int]) -> int:
        extra = b"".join(struct.pack("<II", 0, p) for p in params)
        return self._type(Kind.FUNC_PROTO, "", len(params), ret, extra=extra)

    def var(self, name: str, type_id: int) -> int:
        return self._type(Kind.VAR, name, 0, type_id, extra=struct.pack("<I", 1))

    def datasec(self, name: str, entries: list[tuple[int, int, int]]) -> int:
        extra = b"".join(struct.pack("<III", *e) for e in entries)
        size = max((o + s for _, o, s in entries), default=0)
        return self._type(Kind.DATASEC, name, len(entries), size, extra=extra)

    def raw(self, data: bytes) -> None:
        """Append arbitrary bytes to the type section (for corrupt-input tests)."""
        self.types += data

    def build(self, magic: int = 0xEB9F, version: int = 1) -> bytes:
        hdr_len = HDR.size
        return HDR.pack(magic, version, 0, hdr_len, 0, len(self.types), len(self.types),
                        len(self.strings)) + bytes(self.types) + bytes(self.strings)
