#!/harness/busybox sh
# Guest build (--build-in guest), run by vm/run.sh before the tests: bpftool with its
# libbpf, the test modules against the booted kernel's build directory, the targeted
# test_progs and its helpers, from the tree on the share image (read-only, at its host
# path) into the build disk (/build, kept between runs).  /harness/build.env, written by
# harness/build/guest.py, says what to build where.  Each step's output goes to the
# virtio port named harness.build between "HARNESS-BUILD: begin/end" lines; the first
# failing step ends the build (exit 1) with the step named.
bb=/harness/busybox
. /harness/build.env
port=/dev/null
for p in /sys/class/virtio-ports/*; do
	[ "$(cat "$p/name" 2>/dev/null)" = harness.build ] && port=/dev/${p##*/}
done
exec 3>"$port"
step() {
	name=$1
	shift
	echo "HARNESS-BUILD: begin $name" >&3
	start=$($bb date +%s)
	"$@" >&3 2>&1
	rc=$?
	echo "HARNESS-BUILD: end $name rc=$rc seconds=$(($($bb date +%s) - start))" >&3
	return $rc
}
# Copy a file only when it differs, so make sees no change where there is none.
put() {
	$bb cmp -s "$1" "$2" 2>/dev/null || cp -p "$1" "$2"
}
tools() {
	mkdir -p "$TOOLS/bpftool" "$TOOLS/libbpf" "$TOOLS/libbpf-dest" &&
		make -j"$JOBS" -C "$TREE/tools/bpf/bpftool" OUTPUT="$TOOLS/bpftool/" \
			LIBBPF_OUTPUT="$TOOLS/libbpf/" LIBBPF_DESTDIR="$TOOLS/libbpf-dest/" \
			CLANG="$CLANG" LLVM_STRIP="$LLVM_STRIP"
}
modules() {
	for m in $MODULES; do
		mkdir -p "$MODS/$m" || return 1
		for f in "$TREE/tools/testing/selftests/bpf/$m"/*; do
			case "$f" in *.c | *.h | */Makefile | */Kbuild) put "$f" "$MODS/$m/${f##*/}" ;; esac
		done
		make -j"$JOBS" -C "$HEADERS" M="$MODS/$m" modules || return 1
	done
}
selftests() {
	mkdir -p "$SELFTESTS/prog_tests" &&
		put /harness/build/tests.h "$SELFTESTS/prog_tests/tests.h" &&
		put /harness/build/targeted.mk "$SELFTESTS/targeted.mk" &&
		make -j"$JOBS" -f "$SELFTESTS/targeted.mk" all
}
helpers() {
	[ -z "$HELPERS" ] && return 0
	mkdir -p "$HELPERS_OUT" &&
		make -j"$JOBS" -C "$TREE/tools/testing/selftests/bpf" OUTPUT="$HELPERS_OUT" \
			CLANG="$CLANG" LLD="lld$LLVM_SUFFIX" LLC="llc$LLVM_SUFFIX" \
			LLVM_STRIP="$LLVM_STRIP" $(for h in $HELPERS; do echo "$HELPERS_OUT/$h"; done)
}
step bpftool tools || exit 1
step testmod modules || exit 1
step test_progs selftests || exit 1
step helpers helpers || exit 1
# What the tests run and load, beside test_progs (as the host build's initramfs has it).
cd /root/test || exit 1
cp "$SELFTESTS/test_progs" . || exit 1
for o in $OBJECTS; do cp "$SELFTESTS/$o" . || exit 1; done
for m in $MODULES; do cp "$MODS/$m/$m.ko" . || exit 1; done
for h in $HELPERS; do cp "$HELPERS_OUT/$h" . || exit 1; done
for f in $TREE_FILES; do cp "$TREE/tools/testing/selftests/bpf/$f" . || exit 1; done
[ -n "$WITH_BPFTOOL" ] && { cp "$TOOLS/bpftool/bpftool" . || exit 1; }
sync
echo "HARNESS-BUILD: done" >&3
exit 0
