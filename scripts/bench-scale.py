#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Runs in the test guest (make bench): how long creating, attaching,
# detaching and removing N devices takes, through loopfs (N devices in one
# instance, and N instances with one device each) and through loop.c's
# /dev/loop-control, for N = 1, 10, 100, 1000. Prints milliseconds per
# device.

import ctypes
import fcntl
import os
import struct
import sys
import tempfile
import time

LOOP_CONFIGURE = 0x4C0A
LOOP_CLR_FD = 0x4C01
LOOP_CTL_ADD = 0x4C80
LOOP_CTL_REMOVE = 0x4C81
LOOP_BASE = 1000  # loop.c numbers used, far from its default devices

libc = ctypes.CDLL(None, use_errno=True)


def mount(src, target, fstype):
    if libc.mount(src.encode(), target.encode(), fstype.encode(), 0, None):
        raise OSError(ctypes.get_errno(), "mount " + target)


def umount(target):
    if libc.umount2(target.encode(), 0):
        raise OSError(ctypes.get_errno(), "umount " + target)


def configure(dev, backing):
    cfg = bytearray(304)
    struct.pack_into("II", cfg, 0, backing, 0)
    fcntl.ioctl(dev, LOOP_CONFIGURE, cfg)


def cycle(ctl, node, numbers, backing):
    """Creates, attaches, detaches and removes the devices numbered numbers."""
    for n in numbers:
        fcntl.ioctl(ctl, LOOP_CTL_ADD, n)
    for n in numbers:
        dev = os.open(node(n), os.O_RDWR)
        configure(dev, backing)
        fcntl.ioctl(dev, LOOP_CLR_FD)
        os.close(dev)
    for n in numbers:
        fcntl.ioctl(ctl, LOOP_CTL_REMOVE, n)


def loopfs_one_instance(ws, count, backing):
    mnt = os.path.join(ws, "one")
    os.mkdir(mnt)
    mount("loop", mnt, "loop")
    ctl = os.open(os.path.join(mnt, "loop-control"), os.O_RDWR)
    start = time.monotonic()
    cycle(ctl, lambda n: os.path.join(mnt, "loop%d" % n), range(count), backing)
    took = time.monotonic() - start
    os.close(ctl)
    umount(mnt)
    os.rmdir(mnt)
    return took


def loopfs_instances(ws, count, backing):
    mnts = []
    start = time.monotonic()
    for i in range(count):
        mnt = os.path.join(ws, "i%d" % i)
        os.mkdir(mnt)
        mount("loop", mnt, "loop")
        mnts.append(mnt)
        ctl = os.open(os.path.join(mnt, "loop-control"), os.O_RDWR)
        cycle(ctl, lambda n: os.path.join(mnt, "loop%d" % n), [0], backing)
        os.close(ctl)
    for mnt in mnts:
        umount(mnt)
    took = time.monotonic() - start
    for mnt in mnts:
        os.rmdir(mnt)
    return took


def loop_c(ws, count, backing):
    ctl = os.open("/dev/loop-control", os.O_RDWR)
    start = time.monotonic()
    cycle(ctl, lambda n: "/dev/loop%d" % n,
          range(LOOP_BASE, LOOP_BASE + count), backing)
    took = time.monotonic() - start
    os.close(ctl)
    return took


def main():
    counts = [int(c) for c in sys.argv[1:]] or [1, 10, 100, 1000]
    param = "/sys/module/loopfs/parameters/max_devices"
    saved = open(param).read().strip()
    with open(param, "w") as f:
        f.write(str(2 * max(counts) + 16))
    ws = tempfile.mkdtemp(prefix="scale.")
    mount("tmpfs", ws, "tmpfs")
    path = os.path.join(ws, "img")
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    backing = os.open(path, os.O_RDWR)
    print("\ncreate+attach+detach+remove, ms per device; instances: N loopfs "
          "mounts with one device each; time ratio: loopfs/loop.c")
    print("%-6s %12s %12s %12s %10s" %
          ("N", "loop.c", "loopfs", "instances", "time ratio"))
    for count in counts:
        c = loop_c(ws, count, backing)
        one = loopfs_one_instance(ws, count, backing)
        many = loopfs_instances(ws, count, backing)
        print("%-6d %12.1f %12.1f %12.1f %10.2f" %
              (count, 1000 * c / count, 1000 * one / count,
               1000 * many / count, one / c))
    os.close(backing)
    umount(ws)
    os.rmdir(ws)
    with open(param, "w") as f:
        f.write(saved)


if __name__ == "__main__":
    main()
