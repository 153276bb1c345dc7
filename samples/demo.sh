#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The nsdev demo, run as root in the test guest with loopfs.ko loaded:
# an unprivileged user becomes root of a new user namespace (a rootless
# "container"), mounts its own loopfs instance, looks at it, and leaves.
set -eu

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "loopfs.ko is loaded and registers the filesystem type 'loop'"
run grep -w loop /proc/filesystems

mnt=$(mktemp -d /tmp/loopfs-demo.XXXXXX)
chmod 0755 "$mnt"

step "as user nobody (uid 65534), in a new user + mount namespace:"
# setpriv drops to nobody; unshare makes it root of its own namespaces.
setpriv --reuid=65534 --regid=65534 --clear-groups \
	unshare --user --map-root-user --mount -- sh -eu -c '
run() { printf "$ %s\n" "$*"; "$@"; }
mnt=$1
run cat /proc/self/uid_map
run mount -t loop -o max=4 loop "$mnt"
run findmnt -n -o TARGET,FSTYPE,OPTIONS "$mnt"
run ls -la "$mnt"
run stat -f "$mnt"
run umount "$mnt"
' sh "$mnt"

step "the instance is gone with its mount namespace; unloading the module"
run rmmod loopfs
if grep -qw loop /proc/filesystems; then
	echo "loop is still registered after rmmod" >&2
	exit 1
fi
echo "filesystem type 'loop' unregistered"
run insmod "$LOOPFS_KO"
rmdir "$mnt"
echo
echo "demo finished"
