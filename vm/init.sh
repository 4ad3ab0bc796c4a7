#!/bin/busybox sh
# Guest /init, filled in by harness/initramfs.py.  Channels (QEMU serial ports):
#   ttyS0 console, ttyS1 test_progs output, ttyS2 dmesg, ttyS3 exit status (written last).
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /sys/fs/bpf /sys/kernel/debug /sys/kernel/tracing
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t bpf bpffs /sys/fs/bpf
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
echo "HARNESS: booted $(uname -r)"
cd /root/test
# Fault injection for the harness's own tests: harness.kill_test_progs=SECONDS sends
# SIGSEGV to test_progs after that many seconds (a crash mid-run).
kill_after=$(sed -n 's/.*harness\.kill_test_progs=\([0-9.]*\).*/\1/p' /proc/cmdline)
./test_progs -t @TESTS@ >/dev/ttyS1 2>&1 &
pid=$!
if [ -n "$kill_after" ]; then
	sleep "$kill_after"
	kill -SEGV "$pid" 2>/dev/null
fi
wait "$pid"
rc=$?
echo "HARNESS: test_progs exited $rc"
dmesg >/dev/ttyS2
echo "HARNESS-EXIT $rc" >/dev/ttyS3
sync
# End the VM.  QEMU runs with -no-reboot, so a reboot ends it as a power-off would, and
# needs no ACPI (a kernel without ACPI cannot power off: it halts and QEMU keeps running).
# harness.halt_at_end makes the guest halt instead (the harness's own tests of a guest
# that cannot power off).
if grep -q 'harness\.halt_at_end' /proc/cmdline; then
	halt -f
fi
reboot -f
