"""Booting: the kernel to boot (kernel), the guest's initramfs (initramfs) and QEMU with
the outcome read from its channels (vm)."""
