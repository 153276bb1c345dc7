#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside the test guest as root: scripts/guest.sh MODE OUTDIR KDIR.
# Loads the modules built in the checkout, then runs the kselftests (check)
# or the sample scenario (demo), leaving results in OUTDIR for vm.sh.
set -u

mode=$1
out=$2
kdir=$3
root=$(cd "$(dirname "$0")/.." && pwd)
export LOOPFS_KO="$root/rust/loopfs.ko"
# Built only against a kernel with the patches/ series.
export DEVGUARD_KO="$root/rust/devguard.ko"

# NSDEV_TESTS: programs to run (default all); NSDEV_TEST_ARGS: harness
# arguments for them, e.g. "-t mount".
. "$out/env"

exec >"$out/output.txt" 2>&1

# The kselftest binaries may live in the checkout on the read-only host root.
mkdir -p /tmp
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null
if [ -d /sys/kernel/debug ] && ! mountpoint -q /sys/kernel/debug; then
	mount -t debugfs none /sys/kernel/debug 2>/dev/null
fi

mkdir -p "$out/tap"
# Module load and unload are results of their own (TAP in nsdev_modules.tap).
modtap() {
	if "$@"; then
		echo "ok $((++modn)) $*"
	else
		echo "not ok $((++modn)) $*"
		rc=1
	fi >>"$out/tap/nsdev_modules.tap"
}
modn=0
rc=0
modtap insmod "$LOOPFS_KO"
[ -f "$DEVGUARD_KO" ] && modtap insmod "$DEVGUARD_KO"

# Whether NSDEV_TESTS (default all) selects the program.
selected() {
	[ -z "$NSDEV_TESTS" ] || [[ " $NSDEV_TESTS " == *" $1 "* ]]
}

# A result for a program that did not run: NAME ok|not-ok TEXT.
tap_result() {
	if [ "$2" = ok ]; then
		printf '1..1\nok 1 %s\n' "$3"
	else
		printf '1..1\nnot ok 1 %s\n' "$3"
	fi >"$out/tap/$1.tap"
	echo 0 >"$out/tap/$1.rc"
}

# The fault and stress tests fail allocations through debugfs.
case "$mode" in
check | stress)
	[ "${NSDEV_STRICT:-0}" = 1 ] && modtap test -w /sys/kernel/debug/failslab/probability
	;;
esac

case "$mode" in
check)
	for t in "$root"/build/selftests/*/*_test; do
		name=$(basename "$t")
		selected "$name" || continue
		echo "# running $name"
		# A hung test is killed, and so is its harness's process group.
		# shellcheck disable=SC2086 # harness arguments, split on purpose
		timeout -k 10 600 "$t" $NSDEV_TEST_ARGS >"$out/tap/$name.tap" 2>&1
		echo $? >"$out/tap/$name.rc"
	done
	# What the selftests Makefile left out is reported, not passed over.
	while read -r name reason; do
		selected "$name" && ! [ -f "$out/tap/$name.tap" ] &&
			tap_result "$name" ok "$name # SKIP not built: $reason"
	done <"$root/build/selftests/omitted"
	for name in $NSDEV_TESTS; do
		[ -f "$out/tap/$name.tap" ] || tap_result "$name" not-ok "$name: no such test program"
	done
	;;
stress)
	echo "# running loopfs_stress_test, $NSDEV_STRESS_OPS operations"
	NSDEV_STRESS_OPS=$NSDEV_STRESS_OPS NSDEV_STRESS_SEED=$NSDEV_STRESS_SEED \
		"$root/build/selftests/loopfs/loopfs_stress_test" \
		>"$out/tap/loopfs_stress_test.tap" 2>&1
	echo $? >"$out/tap/loopfs_stress_test.rc"
	;;
demo)
	"$root/samples/demo.sh" || rc=1
	;;
run)
	bash -c "$NSDEV_CMD" || rc=1
	;;
bench)
	"$root/scripts/bench.sh" || rc=1
	;;
*)
	echo "unknown mode $mode"
	rc=1
	;;
esac

# Every loopfs disk goes with its instance.
no_loopfs_disk_left() {
	local i
	for i in 1 2 3 4 5 6; do
		compgen -G '/sys/block/loopfs*' >/dev/null || return 0
		sleep 0.5
	done
	ls -d /sys/block/loopfs*
	return 1
}
case "$mode" in check | stress) modtap no_loopfs_disk_left ;; esac

# Nothing may hold the module once everything is torn down. Lazy unmounts
# finish asynchronously: allow them a moment, no more.
rmmod_settled() {
	local i
	for i in 1 2 3 4 5 6; do
		rmmod "$1" 2>/dev/null && return 0
		sleep 0.5
	done
	rmmod "$1"
}
[ -f "$DEVGUARD_KO" ] && modtap rmmod_settled devguard
modtap rmmod_settled loopfs
if [ -w /sys/kernel/debug/kmemleak ]; then
	# kmemleak reports no object younger than 5 s (those of the last test
	# and of the module unload), and an object only at the second scan
	# that finds it unreferenced (the first one takes its checksum).
	# The report is scanned by vm.sh.
	kmemleak_scan_twice() {
		echo scan >/sys/kernel/debug/kmemleak && sleep 1 &&
			echo scan >/sys/kernel/debug/kmemleak
	}
	sleep 6
	modtap kmemleak_scan_twice
	cat /sys/kernel/debug/kmemleak >"$out/kmemleak.txt"
fi
echo "1..$modn" >>"$out/tap/nsdev_modules.tap"
echo 0 >"$out/tap/nsdev_modules.rc"
dmesg >"$out/dmesg.txt"
echo $rc >"$out/status"
