// SPDX-License-Identifier: GPL-2.0

//! devguard: device nodes in user namespaces, guarded by the host.
//!
//! When the host attached a device guard (a cgroup device program loaded
//! with `BPF_F_CGROUP_DEVICE_GUARD`) to a container's cgroup, tasks there
//! may `mknod()` the devices the guard allows on filesystems of the
//! container's user namespace (the outermost below the initial one), and
//! open such nodes on filesystems mounted in that namespace. The guard is
//! asked in the same run of the device programs that decides on the device,
//! `MNT_NODEV` still applies, and the LSMs still deny. Without a guard
//! nothing changes.

use kernel::{
    bindings,
    error::to_result,
    ffi::{c_int, c_short, c_ulong},
    prelude::*,
};

module! {
    type: Devguard,
    name: "devguard",
    author: "nsdev",
    description: "devguard: mknod in user namespaces, guarded by the cgroup device program",
    license: "GPL",
}

extern "C" {
    fn devguard_register() -> c_int;
    fn devguard_unregister();
    fn cgroup_bpf_device_guard_allows(
        dev_type: c_short,
        major: u32,
        minor: u32,
        access: c_short,
    ) -> bool;
}

/// Whether the current task's effective device programs include a device
/// guard and allow `access` (`BPF_DEVCG_ACC_*`) to the device `mode`/`dev`,
/// both judged in one run of those programs.
fn guard_allows(mode: bindings::umode_t, dev: bindings::dev_t, access: u32) -> bool {
    let dev_type = if u32::from(mode) & bindings::S_IFMT == bindings::S_IFBLK {
        bindings::BPF_DEVCG_DEV_BLOCK
    } else {
        bindings::BPF_DEVCG_DEV_CHAR
    };
    let (major, minor) = (
        dev >> bindings::MINORBITS,
        dev & ((1 << bindings::MINORBITS) - 1),
    );
    // SAFETY: Runs the current task's device programs under RCU; callable
    // from any context the hooks are called in. The values fit: device
    // types and access bits are below 8.
    unsafe { cgroup_bpf_device_guard_allows(dev_type as c_short, major, minor, access as c_short) }
}

/// Whether a superblock is the container's own: owned by a user namespace
/// whose parent is the initial one. A namespace below the container's is
/// one anybody in the container can make and be root of (an unprivileged
/// user of the container, a sandbox): nodes on its filesystems would give
/// them every device the guard allows, whatever the owners and modes of the
/// container's own nodes.
///
/// # Safety
///
/// `sb` must be a live superblock, held by the caller.
unsafe fn sb_is_containers(sb: *const bindings::super_block) -> bool {
    let init = core::ptr::addr_of_mut!(bindings::init_user_ns);
    // SAFETY: The superblock pins its user namespace, and a namespace its
    // parent, which never changes.
    let ns = unsafe { (*sb).s_user_ns };
    // SAFETY: As above.
    ns != init && unsafe { (*ns).parent } == init
}

/// Whether a node may be made in `dir` under a guard: its superblock is the
/// container's (`sb_is_containers()`), the task has `CAP_MKNOD` over the
/// superblock's user namespace (is root of the container), and the
/// superblock is `SB_I_NODEV`, so that its nodes open only for guarded
/// tasks. A host filesystem, an overlay's upper layer on one and an
/// idmapped mount of one all fail the first test.
fn sb_allows_mknod(dir: *const bindings::inode) -> bool {
    // SAFETY: `vfs_mknod()` passes the directory it creates in, which it
    // holds, and with it its superblock, for the duration of the call.
    let sb = unsafe { (*dir).i_sb };
    // SAFETY: As above.
    let (ns, iflags) = unsafe { ((*sb).s_user_ns, (*sb).s_iflags) };
    // SAFETY: As above.
    let containers = unsafe { sb_is_containers(sb) };
    containers
        && iflags & bindings::SB_I_NODEV as c_ulong != 0
        // SAFETY: `ns` is the superblock's user namespace, pinned by the
        // superblock; a capability check of the current task, which does
        // not sleep.
        && unsafe { bindings::ns_capable(ns, bindings::CAP_MKNOD as c_int) }
}

struct Devguard;

impl kernel::Module for Devguard {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Registers a static policy table of this module, taken out
        // again in `drop`.
        to_result(unsafe { devguard_register() })?;
        Ok(Devguard)
    }
}

impl Drop for Devguard {
    fn drop(&mut self) {
        // SAFETY: `init` registered the policy; this returns only once no
        // caller runs it any more, so the module may go.
        unsafe { devguard_unregister() };
    }
}

/// mknod of a device node without `CAP_MKNOD` in the initial namespace:
/// allowed when a guard rules the task and allows creating the device, on
/// a superblock `sb_allows_mknod()` accepts.
#[no_mangle]
extern "C" fn rust_devguard_may_mknod(
    dir: *const bindings::inode,
    mode: bindings::umode_t,
    dev: bindings::dev_t,
) -> bool {
    sb_allows_mknod(dir) && guard_allows(mode, dev, bindings::BPF_DEVCG_ACC_MKNOD)
}

/// Opening a device node on a `SB_I_NODEV` superblock (never asked for
/// `MNT_NODEV` mounts): allowed when the superblock is the container's
/// (`sb_is_containers()`) and a guard rules the task and allows the access
/// the open asks for.
#[no_mangle]
extern "C" fn rust_devguard_may_open_nodev(path: *const bindings::path, mask: c_int) -> bool {
    // SAFETY: `may_open()` passes the path it opens, whose dentry is
    // positive and held, with its inode and superblock, for the duration of
    // the call.
    let (mode, rdev, sb) = unsafe {
        let inode = (*(*path).dentry).d_inode;
        ((*inode).i_mode, (*inode).i_rdev, (*inode).i_sb)
    };
    // SAFETY: As above.
    if !unsafe { sb_is_containers(sb) } {
        return false;
    }
    let mut access = 0;
    if mask as u32 & bindings::MAY_READ != 0 {
        access |= bindings::BPF_DEVCG_ACC_READ;
    }
    if mask as u32 & bindings::MAY_WRITE != 0 {
        access |= bindings::BPF_DEVCG_ACC_WRITE;
    }
    guard_allows(mode, rdev, access)
}
