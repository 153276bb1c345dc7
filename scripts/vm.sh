#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the test kernel under virtme-ng and run scripts/guest.sh MODE in it.
#
#   scripts/vm.sh KDIR check|stress|demo|run|bench
#
# run executes $CMD in the guest (as root, modules loaded).
#
# The guest writes its results into a shared read-write directory; this
# script judges the run from those files, never from vng's exit status. Any
# oops, BUG, WARNING, KASAN or lockdep report in the guest's kernel log fails
# the run. VM_TIMEOUT (seconds) bounds the whole boot; KVM=1 tries hardware
# acceleration after probing that it really boots, TCG otherwise.
set -euo pipefail

. "$(dirname "$0")/lib.sh"

kdir=$1
mode=$2
image="$kdir/arch/x86/boot/bzImage"
[ -f "$image" ] || die "no bzImage in $kdir"
out="$NSDEV_ROOT/build/vm-$mode"
rm -rf "$out"
mkdir -p "$out"

memory=2G
[ "${FLAVOUR:-normal}" = debug ] && memory=4G
# A bench takes about 340 s a repetition at its defaults (buffered writes
# 20 s); set VM_TIMEOUT for longer runs.
timeout_s=${VM_TIMEOUT:-2400}
[ "$mode" = bench ] && timeout_s=${VM_TIMEOUT:-$((600 + 450 * ${BENCH_REPS:-6}))}

# boot OUTDIR TIMEOUT ACCEL-ARGS... -- GUEST-COMMAND
boot() {
	local dir=$1 secs=$2
	shift 2
	local args=()
	while [ "$1" != -- ]; do
		args+=("$1")
		shift
	done
	shift
	# A soft lockup is 2 * watchdog_thresh seconds on a CPU: under TCG a
	# busy host can hold a vCPU back for 20 s.
	timeout -k 10 "$secs" vng --run "$image" "${args[@]}" \
		--append watchdog_thresh=30 \
		--cpus 2 --memory "$memory" --rwdir "$dir" --cwd "$NSDEV_ROOT" \
		--verbose --exec "$*" </dev/null >"$dir/console.log" 2>&1 || true
}

accel=(--disable-kvm)
if [ "${KVM:-0}" = 1 ]; then
	probe="$NSDEV_ROOT/build/vm-kvm-probe"
	rm -rf "$probe"
	mkdir -p "$probe"
	boot "$probe" 60 -- "echo ok > $probe/ok"
	if [ -f "$probe/ok" ]; then
		accel=()
		log "KVM works here: using it"
	else
		log "KVM requested but a guest does not boot with it: using TCG"
	fi
fi

# What the guest needs to know beyond its arguments.
{
	printf 'NSDEV_TESTS=%q\n' "${TESTS:-}"
	printf 'NSDEV_TEST_ARGS=%q\n' "${TEST_ARGS:-}"
	printf 'NSDEV_CMD=%q\n' "${CMD:-}"
	printf 'NSDEV_STRESS_OPS=%q\n' "${STRESS_OPS:-100000}"
	printf 'NSDEV_STRESS_SEED=%q\n' "${STRESS_SEED:-}"
	printf 'NSDEV_STRICT=%q\n' "${NSDEV_STRICT:-0}"
	for v in BENCH_SIZE BENCH_RUNTIME BENCH_WB_RUNTIME BENCH_REPS BENCH_MODES BENCH_JOBS BENCH_SCALE; do
		[ -n "${!v:-}" ] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	for v in DIFF_SEED DIFF_STEPS; do
		[ -n "${!v:-}" ] && printf 'export NSDEV_%s=%q\n' "$v" "${!v}"
	done
} >"$out/env"

log "booting $(basename "$kdir") ($mode, ${accel[*]:-kvm}, timeout ${timeout_s}s)"
start=$(date +%s)
boot "$out" "$timeout_s" "${accel[@]}" -- \
	"$NSDEV_ROOT/scripts/guest.sh $mode $out $kdir"
log "guest ran for $(($(date +%s) - start))s"

[ -f "$out/output.txt" ] && cat "$out/output.txt"

status=0
if [ ! -f "$out/status" ]; then
	log "the guest did not finish (crash or timeout); end of its console:"
	tail -n 60 "$out/console.log" >&2
	status=1
fi

# The kernel log as the console saw it, plus dmesg as the guest saved it,
# into one file. Left out: the "Call Trace:" line of the reports of
# vmalloc()s that failed for want of a slab object (warn_alloc(): a stack
# dump, not a bug), which the tests' injected slab failures cause on
# purpose. Everything else of those reports stays, as does every other
# report of a failed vmalloc() (a size no memory can hold is a bug).
klog() {
	local f logs=()
	for f in "$@"; do
		[ -f "$f" ] && logs+=("$f")
	done
	[ ${#logs[@]} -gt 0 ] || return 0
	awk 'FNR == 1 {left = 0}
	     /vmalloc error: size [0-9]+, (vm_struct allocation failed|failed to allocated page array)/ {left = 6}
	     left && /Call Trace:/ {left = 0; next}
	     left {left--}
	     {print}' "${logs[@]}"
}
pattern='Oops|BUG:|BUG [^ ]+ \(|kernel BUG at|WARNING:|cut here|KASAN|kmemleak: [0-9]+ new suspected|unreferenced object|possible recursive locking|possible circular locking|inconsistent lock state|suspicious RCU usage|DEBUG_LOCKS_WARN_ON|lockdep is turned off|Call Trace|Kernel panic|general protection fault|UBSAN|blocked for more than|rcu: INFO|detected stall|soft lockup|list_(add|del) corruption'
# Whether a log file holds a report. grep reads the file itself: in a pipe,
# its early exit on the first match would fail the writer (SIGPIPE), and
# with pipefail the match would read as none.
has_report() {
	grep -aEq "$pattern" "$1"
}
klog "$out/console.log" "$out/dmesg.txt" "$out/kmemleak.txt" >"$out/klog.txt"
# The scan must find a report in a log of this size: a canary appended to a
# copy of it, and one put first.
{ cat "$out/klog.txt"; echo "[    0.000000] WARNING: CPU: 0 PID: 1 at canary"; } >"$out/klog-canary.txt"
has_report "$out/klog-canary.txt" || die "the log scan misses a report at the end of the log"
{ echo "[    0.000000] BUG: canary"; cat "$out/klog.txt"; } >"$out/klog-canary.txt"
has_report "$out/klog-canary.txt" || die "the log scan misses a report at the start of the log"
rm -f "$out/klog-canary.txt"
if has_report "$out/klog.txt"; then
	log "the guest kernel log has errors:"
	grep -aE -A 25 "$pattern" "$out/klog.txt" | head -n 120 >&2 || true
	klog=fail
else
	klog=ok
fi

case "$mode" in
check | stress)
	"$NSDEV_ROOT/scripts/tap-summary.sh" "$out/tap" "$klog" "${NSDEV_STRICT:-0}" || status=1
	;;
*)
	if [ "$klog" != ok ] || [ "$(cat "$out/status" 2>/dev/null)" != 0 ]; then
		status=1
	fi
	;;
esac
exit $status
