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
# --build-in guest: build what the tests need first (vm/build.sh); a failed build ends
# the run with a HARNESS-BUILD-FAILED status and the kernel's log (an OOM kill is there).
if [ -f /harness/build.env ]; then
	$bb sh /harness/build.sh
	rc=$?
	if [ "$rc" -ne 0 ]; then
		$bb dmesg >/dev/ttyS2
		echo "HARNESS-BUILD-FAILED $rc" >/dev/ttyS3
		sync
		$bb reboot -f
	fi
fi
cd /root/test
# test_progs's output goes to ttyS1 through tee, which keeps a copy: after a run that
# failed (exit 1), up to @RETRIES@ retries run only what failed (harness-retry.list),
# each announced on ttyS1 by a "HARNESS: retry" line the host's parser splits on.
retries=@RETRIES@
attempt=0
args="@ARGS@"
$bb mkfifo /tmp/harness-test_progs.fifo
while :; do
	$bb tee /tmp/harness-test_progs.log </tmp/harness-test_progs.fifo >/dev/ttyS1 &
	tee_pid=$!
	LD_LIBRARY_PATH=/harness/lib ./test_progs $args >/tmp/harness-test_progs.fifo 2>&1 &
	pid=$!
	if [ -n "$kill_after" ] && [ "$attempt" -eq 0 ]; then
		$bb sleep "$kill_after"
		kill -SEGV "$pid" 2>/dev/null
	fi
	wait "$pid"
	rc=$?
	# a test's background child may keep the fifo open: tee gets 2 s to drain it
	( $bb sleep 2; kill "$tee_pid" 2>/dev/null ) &
	wait "$tee_pid"
	echo "HARNESS: test_progs exited $rc"
	[ "$rc" -eq 1 ] && [ "$attempt" -lt "$retries" ] || break
	$bb awk -f /harness/failed.awk /tmp/harness-test_progs.log >harness-retry.list
	[ -s harness-retry.list ] || break
	attempt=$((attempt + 1))
	echo "HARNESS: retry $attempt of $retries: $($bb wc -l <harness-retry.list) failed" >/dev/ttyS1
	args="@RETRY_ARGS@"
done
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
