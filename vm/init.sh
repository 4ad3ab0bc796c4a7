#!/bin/busybox sh
# Guest /init (stage 1), from harness/boot/initramfs.py.  With a root filesystem image
# (/harness/rootfs exists), load the block and filesystem modules it needs, mount the
# read-only image under a tmpfs overlay, copy the test payload into it and run
# /harness/run.sh there; without one, run /harness/run.sh in the initramfs itself.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() {
	echo "HARNESS: rootfs: $*"
	echo "HARNESS-EXIT rootfs" >/dev/ttyS3
	reboot -f
}
if [ ! -e /harness/rootfs ]; then
	exec /bin/busybox sh /harness/run.sh
fi
for m in $(cat /harness/modules.order 2>/dev/null); do
	insmod "/harness/modules/$m" || fail "insmod $m failed"
done
mkdir -p /lower /upper /newroot
i=0
while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
mount -t squashfs -o ro /dev/vda /lower || fail "cannot mount /dev/vda (squashfs)"
lower=/lower
# A build inside the guest: the share image (the tree and the kernel's build directory at
# their host paths) goes under the root filesystem, which wins where both have a path
# (its /lib symlink); the build disk is mounted at /build.
if [ -e /harness/build.env ]; then
	mkdir -p /share
	while [ ! -b /dev/vdc ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	mount -t squashfs -o ro /dev/vdb /share || fail "cannot mount /dev/vdb (the share image)"
	lower=/lower:/share
fi
mount -t tmpfs -o mode=0755 tmpfs /upper
mkdir -p /upper/data /upper/work
mount -t overlay overlay -o lowerdir=$lower,upperdir=/upper/data,workdir=/upper/work \
	/newroot || fail "cannot mount the overlay"
if [ -e /harness/build.env ]; then
	mkdir -p /newroot/build
	mount -t ext4 /dev/vdc /newroot/build || fail "cannot mount /dev/vdc (the build disk)"
fi
mkdir -p /newroot/root/test /newroot/harness
cp -a /root/test/. /newroot/root/test/
cp -a /harness/. /newroot/harness/
if [ -d /lib/modules ]; then
	mkdir -p /newroot/lib/modules
	cp -a /lib/modules/. /newroot/lib/modules/
fi
echo "HARNESS: root filesystem $(cat /harness/rootfs)"
exec chroot /newroot /harness/busybox sh /harness/run.sh
