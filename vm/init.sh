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
./test_progs -t @TESTS@ >/dev/ttyS1 2>&1
rc=$?
echo "HARNESS: test_progs exited $rc"
dmesg >/dev/ttyS2
echo "HARNESS-EXIT $rc" >/dev/ttyS3
sync
poweroff -f
