"""Gate BPF patch series on real kernel selftests run in a QEMU VM."""

__version__ = "0.1.0"
