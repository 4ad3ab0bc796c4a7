#!/harness/busybox sh
# Guest stage 2, from harness/boot/initramfs.py: the environment the BPF selftests expect
# (the mounts, loopback up, the kernel config where libbpf reads it), then test_progs.
# Channels (QEMU serial ports): ttyS0 console, ttyS1 test_progs output, ttyS2 dmesg,
# ttyS3 exit status (written last).
bb=/harness/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root
mkdir -p /proc /sys /dev /tmp /run /boot
$bb mount -t proc proc /proc 2>/dev/null
$bb mount -t sysfs sysfs /sys 2>/dev/null
$bb mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs tmpfs /dev/shm
$bb mount -t tmpfs tmpfs /tmp
$bb mount -t tmpfs tmpfs /run
$bb mount -t bpf bpffs /sys/fs/bpf
$bb mount -t debugfs debugfs /sys/kernel/debug
$bb mount -t tracefs tracefs /sys/kernel/tracing
$bb mount -t cgroup2 cgroup2 /sys/fs/cgroup
[ -e /dev/fd ] || $bb ln -s /proc/self/fd /dev/fd
$bb hostname harness-guest
if [ -f /harness/kernel.config ]; then
	cp /harness/kernel.config "/boot/config-$($bb uname -r)"
fi
ip link set lo up || $bb ip link set lo up
echo "HARNESS: booted $($bb uname -r)"
# Fault injection for the harness's own tests: harness.kill_test_progs=SECONDS sends
# SIGSEGV to test_progs after that many seconds (a crash mid-run); harness.hide=CMD
# removes a command the environment provides (a missing-infrastructure run).
cmdline=$(cat /proc/cmdline)
kill_after=$(echo "$cmdline" | $bb sed -n 's/.*harness\.kill_test_progs=\([0-9.]*\).*/\1/p')
for word in $cmdline; do
	case "$word" in
	harness.hide=*)
		name=${word#harness.hide=}
		for dir in $(echo "$PATH" | tr : ' '); do rm -f "$dir/$name"; done
		;;
	esac
done
cd /root/test
LD_LIBRARY_PATH=/harness/lib ./test_progs @ARGS@ >/dev/ttyS1 2>&1 &
pid=$!
if [ -n "$kill_after" ]; then
	$bb sleep "$kill_after"
	kill -SEGV "$pid" 2>/dev/null
fi
wait "$pid"
rc=$?
echo "HARNESS: test_progs exited $rc"
$bb dmesg >/dev/ttyS2
echo "HARNESS-EXIT $rc" >/dev/ttyS3
sync
# End the VM.  QEMU runs with -no-reboot, so a reboot ends it as a power-off would, and
# needs no ACPI (a kernel without ACPI cannot power off: it halts and QEMU keeps running).
# harness.halt_at_end makes the guest halt instead (the harness's own tests of a guest
# that cannot power off).
case "$cmdline" in
*harness.halt_at_end*) $bb halt -f ;;
esac
$bb reboot -f
