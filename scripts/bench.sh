#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test guest (make bench): fio against the raw backing file, the
# in-kernel loop driver and a loopfs device on that same file, in one run,
# and prints each loop driver's throughput as a ratio of the others.
# The backing file lives on tmpfs: the figures compare driver overhead, not
# storage.
set -eu

size=${BENCH_SIZE:-256M}
runtime=${BENCH_RUNTIME:-8}
ws=$(mktemp -d /tmp/bench.XXXXXX)
mount -t tmpfs -o size=1g tmpfs "$ws"
truncate -s "$size" "$ws/img"
# Fill it so that reads hit real pages.
dd if=/dev/zero of="$ws/img" bs=1M count="${size%M}" conv=notrunc status=none

mkdir "$ws/lfs"
mount -t loop loop "$ws/lfs"
ln -s "$ws/lfs/loop-control" "$ws/ctl"
lfsn=$(python3 -c "import fcntl,os; print(fcntl.ioctl(os.open('$ws/ctl', os.O_RDWR), 0x4C82))")
loopfs_dev="$ws/lfs/loop$lfsn"
python3 - "$loopfs_dev" "$ws/img" <<'PY'
import fcntl, os, struct, sys
dev = os.open(sys.argv[1], os.O_RDWR)
f = os.open(sys.argv[2], os.O_RDWR)
# struct loop_config: fd, block_size, loop_info64 (lo_flags at 52), reserved
cfg = bytearray(304)
struct.pack_into("II", cfg, 0, f, 0)
struct.pack_into("I", cfg, 8 + 52, 16)  # LO_FLAGS_DIRECT_IO
fcntl.ioctl(dev, 0x4C0A, cfg)
PY
c_dev=$(losetup -f --show --direct-io=on "$ws/img")

jobs=("seq-read:read:1M" "seq-write:write:1M" "rand-read:randread:4k" "rand-write:randwrite:4k")
declare -A bw
for target in raw loop loopfs; do
	case $target in
	raw) file="$ws/img" ;;
	loop) file=$c_dev ;;
	loopfs) file=$loopfs_dev ;;
	esac
	for job in "${jobs[@]}"; do
		IFS=: read -r name rw bs <<<"$job"
		fio --name="$name" --filename="$file" --rw="$rw" --bs="$bs" \
			--direct=1 --ioengine=libaio --iodepth=16 --size="$size" \
			--invalidate=0 --time_based --runtime="$runtime" \
			--output-format=json --output="$ws/out.json"
		bw[$target,$name]=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; print(int(j["read"]["bw"] + j["write"]["bw"]))' "$ws/out.json")
	done
done

printf '\nfio, direct=1, libaio iodepth 16, %s of a %s file on tmpfs, %ss each (KiB/s)\n' \
	"$size" "$size" "$runtime"
printf '%-11s %10s %10s %10s %12s %12s\n' job raw loop loopfs loopfs/loop loopfs/raw
for job in "${jobs[@]}"; do
	name=${job%%:*}
	r=${bw[raw,$name]} l=${bw[loop,$name]} f=${bw[loopfs,$name]}
	printf '%-11s %10d %10d %10d %12s %12s\n' "$name" "$r" "$l" "$f" \
		"$(python3 -c "print(f'{$f/$l:.2f}')")" "$(python3 -c "print(f'{$f/$r:.2f}')")"
done

losetup -d "$c_dev"
python3 -c "import fcntl,os; fcntl.ioctl(os.open('$loopfs_dev', os.O_RDONLY), 0x4C01)"
rm "$ws/ctl"
umount "$ws/lfs"
umount "$ws"
rmdir "$ws"

# The guard check (kernels with patches/ and devguard.ko loaded).
bench=$(dirname "$0")/../build/samples/devguard-bench
if [ -x "$bench" ] && grep -qw devguard /proc/modules; then
	"$bench"
fi
