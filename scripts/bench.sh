#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test guest (make bench). fio against the raw backing file, the
# in-kernel loop driver and a loopfs device on that same file, interleaved
# (each repetition runs every job on the three in turn; the order is rotated
# every second repetition and reversed in between, so that each runs first,
# and after each of the other two, equally often: make BENCH_REPS a multiple
# of 6), with the backing file on ext4 on a RAM block device (brd), both
# with direct I/O to the backing file and buffered. Prints per job the
# median and the spread (min-max) of BENCH_REPS runs and the ratios
# loopfs/loop.c and loopfs/raw of the medians, then the same ratios taken
# within each repetition (runs next to each other in time, which cancels the
# drift of the host's speed over the run), their median and spread; then the
# device scaling figures (scripts/bench-scale.py). BENCH_JOBS picks jobs by
# name. Writes through the page cache (the buffered writes, on every
# target) run BENCH_WB_RUNTIME seconds: long enough to span several
# writeback periods (vm.dirty_writeback_centisecs, 5 s), so that a run
# measures the throttled rate and not where it started against the dirty
# limits.
set -eu

size=${BENCH_SIZE:-256M}
runtime=${BENCH_RUNTIME:-5}
wb_runtime=${BENCH_WB_RUNTIME:-20}
reps=${BENCH_REPS:-6}
modes=${BENCH_MODES:-direct buffered}
here=$(dirname "$0")
ws=$(mktemp -d /tmp/bench.XXXXXX)

[ -b /dev/ram0 ] || { echo "no /dev/ram0 (CONFIG_BLK_DEV_RAM)"; exit 1; }
mkfs.ext4 -q -F /dev/ram0
mkdir "$ws/ext4"
mount /dev/ram0 "$ws/ext4"
img=$ws/ext4/img
fallocate -l "$size" "$img"
dd if=/dev/urandom of="$img" bs=1M count="${size%M}" conv=notrunc status=none
sync

mkdir "$ws/lfs"
mount -t loop loop "$ws/lfs"

# loop_config with LO_FLAGS_DIRECT_IO (lo_flags at 8 + 52) when asked.
lfs_attach() {
	python3 - "$ws/lfs" "$img" "$1" <<'PY'
import fcntl, os, struct, sys
ctl = os.open(sys.argv[1] + "/loop-control", os.O_RDWR)
n = fcntl.ioctl(ctl, 0x4C82)
dev = os.open("%s/loop%d" % (sys.argv[1], n), os.O_RDWR)
f = os.open(sys.argv[2], os.O_RDWR)
cfg = bytearray(304)
struct.pack_into("II", cfg, 0, f, 0)
struct.pack_into("I", cfg, 8 + 52, 16 if sys.argv[3] == "on" else 0)
fcntl.ioctl(dev, 0x4C0A, cfg)
print("%s/loop%d" % (sys.argv[1], n))
PY
}

lfs_detach() {
	python3 -c "import fcntl,os; fcntl.ioctl(os.open('$1', os.O_RDONLY), 0x4C01)"
}

jobs=()
for job in "seq-read:read:1M" "seq-write:write:1M" "rand-read:randread:4k" "rand-write:randwrite:4k"; do
	case " ${BENCH_JOBS:-${job%%:*}} " in
	*" ${job%%:*} "*) jobs+=("$job") ;;
	esac
done
[ ${#jobs[@]} -gt 0 ] || { echo "BENCH_JOBS: no such job"; exit 1; }
targets=(raw loop loopfs)
out=$ws/results
: >"$out"

for mode in $modes; do
	dio=$([ $mode = direct ] && echo on || echo off)
	c_dev=$(losetup -f --show --direct-io=$dio "$img")
	lfs_dev=$(lfs_attach $dio)
	for rep in $(seq "$reps"); do
		# Repetitions in pairs: one order, then the same reversed, so
		# that each target runs after each other one as often.
		first=$((((rep - 1) / 2) % ${#targets[@]}))
		order=("${targets[@]:first}" "${targets[@]:0:first}")
		if [ $((rep % 2)) = 0 ]; then
			order=("${order[2]}" "${order[1]}" "${order[0]}")
		fi
		for job in "${jobs[@]}"; do
			IFS=: read -r name rw bs <<<"$job"
			rt=$runtime
			[ $mode = buffered ] && [ "${rw%write}" != "$rw" ] && rt=$wb_runtime
			for target in "${order[@]}"; do
				case $target in
				raw) file=$img direct=$([ $mode = direct ] && echo 1 || echo 0) ;;
				loop) file=$c_dev direct=1 ;;
				loopfs) file=$lfs_dev direct=1 ;;
				esac
				sync
				echo 3 >/proc/sys/vm/drop_caches
				fio --name="$name" --filename="$file" --rw="$rw" --bs="$bs" \
					--direct=$direct --ioengine=libaio --iodepth=16 \
					--size="$size" --invalidate=0 --time_based \
					--runtime="$rt" --output-format=json \
					--output="$ws/out.json"
				python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; print(sys.argv[2], int(j["read"]["bw"] + j["write"]["bw"]))' \
					"$ws/out.json" "$mode $name $target $rep" >>"$out"
			done
		done
	done
	losetup -d "$c_dev"
	lfs_detach "$lfs_dev"
done

python3 - "$out" "$size" "$runtime" "$reps" "$modes" "$wb_runtime" <<'PY'
import statistics, sys
bw, jobs = {}, []
for line in open(sys.argv[1]):
    mode, job, target, rep, kib = line.split()
    bw[(mode, job, target, int(rep))] = int(kib)
    if job not in jobs:
        jobs.append(job)
reps = sorted({k[3] for k in bw})
print("\nfio, libaio iodepth 16, %s file on ext4 on brd, %ss runs (buffered writes %ss), "
      "%s repetitions interleaved, order rotated and reversed; KiB/s median [min-max]"
      % (sys.argv[2], sys.argv[3], sys.argv[6], sys.argv[4]))
print("devices with fio direct=1; 'direct'/'buffered': the loop drivers' backing "
      "I/O (and fio on the raw file)")
hdr = "%-9s %-11s %26s %26s %26s %8s %8s"
print(hdr % ("mode", "job", "raw", "loop.c", "loopfs", "lfs/loop", "lfs/raw"))
for mode in sys.argv[5].split():
    for job in jobs:
        med, cell = {}, {}
        for t in ("raw", "loop", "loopfs"):
            v = [bw[(mode, job, t, n)] for n in reps]
            med[t] = statistics.median(v)
            cell[t] = "%d [%d-%d]" % (med[t], min(v), max(v))
        print(hdr % (mode, job, cell["raw"], cell["loop"], cell["loopfs"],
                     "%.2f" % (med["loopfs"] / med["loop"]),
                     "%.2f" % (med["loopfs"] / med["raw"])))
print("\nratios within each repetition: median [min-max], repetitions at or above 1.0")
hdr = "%-9s %-11s %26s %26s"
print(hdr % ("mode", "job", "lfs/loop", "lfs/raw"))
for mode in sys.argv[5].split():
    for job in jobs:
        cell = {}
        for t in ("loop", "raw"):
            r = [bw[(mode, job, "loopfs", n)] / bw[(mode, job, t, n)] for n in reps]
            cell[t] = "%.2f [%.2f-%.2f] %d/%d" % (statistics.median(r), min(r), max(r),
                                                   sum(x >= 1.0 for x in r), len(r))
        print(hdr % (mode, job, cell["loop"], cell["raw"]))
PY

umount "$ws/lfs"
umount "$ws/ext4"
rm -rf "$ws"

[ "${BENCH_SCALE:-}" = none ] || python3 "$here/bench-scale.py" ${BENCH_SCALE:-}

# The guard check (kernels with patches/ and devguard.ko loaded).
bench=$here/../build/samples/devguard-bench
if [ -x "$bench" ] && grep -qw devguard /proc/modules; then
	"$bench"
fi
