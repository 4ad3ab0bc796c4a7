"""The shadow-type emulator: BTF from BPF objects, and bpftool's struct_ops shadow types.

elf.py loads sections with pyelftools; types.py parses BTF into frozen dataclasses (pure);
shadow.py computes shadow layouts under the mainline or v4 rules (pure); render.py prints
the skeleton's `struct_ops` block; verify.py compares with the real bpftool.
"""
