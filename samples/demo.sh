#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The nsdev demo, run as root in the test guest with loopfs.ko loaded.
# An unprivileged user becomes root of a new user namespace (a rootless
# "container"), mounts its own loopfs instance, and uses loop devices in it
# with unmodified util-linux losetup, as in the loopfs RFC's session.
set -eu

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "loopfs.ko is loaded and registers the filesystem type 'loop'"
run grep -w loop /proc/filesystems

ws=$(mktemp -d /tmp/loopfs-demo.XXXXXX)
chmod 0755 "$ws"

step "a container: user nobody (uid 65534) as root of a new user + mount namespace"
# setpriv drops to nobody; unshare makes it root of its own namespaces.
setpriv --reuid=65534 --regid=65534 --clear-groups \
	unshare --user --map-root-user --mount -- bash -eu -c '
step() { printf "\n==> %s\n" "$*"; }
run() { printf "$ %s\n" "$*"; "$@"; }
ws=$1
run cat /proc/self/uid_map
mount --make-rprivate /
mount -t tmpfs tmpfs "$ws"
cd "$ws"

step "the container mounts its own loopfs instance"
mkdir loopfs
run mount -t loop -o max=4 loop "$ws/loopfs"
run findmnt -n -o TARGET,FSTYPE,OPTIONS "$ws/loopfs"
run ls -l "$ws/loopfs"

step "a private /dev whose loop-control and loopN point into the instance"
mkdir dev
for n in null zero urandom; do touch dev/$n; mount --bind /dev/$n dev/$n; done
ln -s "$ws/loopfs/loop-control" dev/loop-control
for i in 0 1 2 3; do ln -s "$ws/loopfs/loop$i" dev/loop$i; done
mount --rbind "$ws/dev" /dev
run ls -l /dev/loop-control /dev/loop0

step "unmodified losetup attaches an image"
truncate -s 64M disk.img
run losetup -f --show disk.img
run losetup -l /dev/loop0
run ls -l "$ws/loopfs"
echo "# losetup -a lists nothing here: it looks for /dev/loopfs<minor> nodes,"
echo "# which exist neither in a container nor on the host (loopfs.rst)"
run losetup -a

step "the device works: an ext4 filesystem, made and checked in the container"
run mkfs.ext4 -q /dev/loop0
run e2fsck -fn /dev/loop0
run blkid /dev/loop0

step "detach, and the instance goes with its mount"
run losetup -d /dev/loop0
run losetup -l /dev/loop0 || true
' bash "$ws"

step "back on the host: no loopfs device is left, nothing else saw it"
sleep 1
if compgen -G '/sys/block/loopfs*' >/dev/null; then
	echo "loopfs devices left behind: $(ls -d /sys/block/loopfs*)" >&2
	exit 1
fi
echo "no loopfs devices"

launcher="$(dirname "$0")/../build/samples/devguard-run"
if [ -x "$launcher" ] && grep -qw devguard /proc/modules; then
	step "devguard: the host guards a container's devices with a device program"
	printf '$ devguard-run -- bash -c ...\n'
	"$launcher" -c demo -- bash -eu -c '
run() { printf "  (container) \$ %s\n" "$*"; "$@"; }
mount --make-rprivate /
mount -t tmpfs tmpfs /mnt
run mknod /mnt/null c 1 3
run sh -c "echo hello > /mnt/null"
run mknod /mnt/zero c 1 5
run sh -c "head -c 8 /mnt/zero | od -An -tx1"
printf "  (container) \$ mknod /mnt/mem c 1 1   # not on the guard'"'"'s list\n"
if mknod /mnt/mem c 1 1 2>&1; then exit 1; fi
'
	step "without the guard, the same container gets stock behaviour"
	setpriv --reuid=65534 --regid=65534 --clear-groups \
		unshare --user --map-root-user --mount -- bash -c '
mount -t tmpfs tmpfs /mnt
printf "  (container) \$ mknod /mnt/null c 1 3\n"
mknod /mnt/null c 1 3 && exit 1 || true'
fi

container="$(dirname "$0")/../build/samples/nsdev-container"
if [ -x "$container" ] && grep -qw devguard /proc/modules; then
	step "all together: a rootless container with loopfs, devguard, a BPF token and binfmt_misc"
	"$container"
fi

step "unloading and reloading the module"
run rmmod loopfs
run insmod "$LOOPFS_KO"
rmdir "$ws"
echo
echo "demo finished"
