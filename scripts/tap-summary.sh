#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Prints the TAP of every test program the guest ran and the closing line
# "N passed, N failed[, N skipped]". Exits non-zero on any failure.
#
#   scripts/tap-summary.sh TAPDIR ok|fail [STRICT]
#
# TAPDIR holds NAME.tap (the program's output) and NAME.rc (its exit code).
# A program that died before reporting every planned test counts the missing
# ones as failed; the second argument is the verdict on the guest kernel log,
# reported as one more test. With STRICT 1 (the project's own kernel, which
# has everything every test needs) a skipped test fails the run too; a
# "not ok ... # SKIP" always counts as failed.
set -uo pipefail

tapdir=$1
klog=$2
strict=${3:-0}
pass=0 fail=0 skip=0

shopt -s nullglob
for tap in "$tapdir"/*.tap; do
	name=$(basename "$tap" .tap)
	rc=$(cat "$tapdir/$name.rc" 2>/dev/null || echo missing)
	echo "# ---- $name (exit $rc)"
	cat "$tap"
	read -r p f s planned < <(awk '
		/^ok [0-9]+/ { if ($0 ~ /# SKIP/) s++; else p++ }
		/^not ok [0-9]+/ { f++ }
		/^1\.\.[0-9]+/ { split($0, a, "\\.\\."); plan = a[2] + 0 }
		END { print p + 0, f + 0, s + 0, plan + 0 }' "$tap")
	seen=$((p + f + s))
	if [ "$planned" -gt "$seen" ]; then
		echo "not ok - $name: $((planned - seen)) planned tests never reported"
		f=$((f + planned - seen))
	elif [ "$planned" = 0 ]; then
		echo "not ok - $name: no test plan"
		f=$((f + 1))
	fi
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "not ok - $name exited $rc"
		f=1
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done

if [ "$klog" = ok ]; then
	echo "ok - guest kernel log clean"
	pass=$((pass + 1))
else
	echo "not ok - guest kernel log clean"
	fail=$((fail + 1))
fi

if [ "$skip" -gt 0 ] && [ "$strict" = 1 ]; then
	echo "not ok - $skip tests skipped: the project's kernel and scripts/setup.sh provide what every test needs"
	fail=$((fail + skip)) skip=0
fi

if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" = 0 ]
