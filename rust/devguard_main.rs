// SPDX-License-Identifier: GPL-2.0

//! devguard: device nodes in user namespaces, guarded by the host.
//!
//! When the host attached a device guard (a cgroup device program loaded
//! with `BPF_F_CGROUP_DEVICE_GUARD`) to a container's cgroup, tasks there
//! may `mknod()` device nodes with `CAP_MKNOD` in their own user namespace,
//! and open device nodes on filesystems their namespace mounted. The device
//! programs still decide on every device, `MNT_NODEV` still applies, and the
//! LSMs still deny. Without a guard nothing changes.

use kernel::{error::to_result, ffi::c_int, prelude::*};

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
    fn devguard_capable_mknod() -> bool;
    fn cgroup_bpf_device_guarded() -> bool;
}

/// Whether the current task's cgroup has a device guard among its
/// effective device programs.
fn guarded() -> bool {
    // SAFETY: Reads a per-cgroup bit under RCU; callable from any context.
    unsafe { cgroup_bpf_device_guarded() }
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
/// allowed for a guarded task with `CAP_MKNOD` in its own namespace. The
/// device programs then decide on the device.
#[no_mangle]
extern "C" fn rust_devguard_may_mknod(_mode: u16, _dev: u32) -> bool {
    // SAFETY: A capability check of the current task; does not sleep.
    guarded() && unsafe { devguard_capable_mknod() }
}

/// Opening a device node on a `SB_I_NODEV` superblock (never asked for
/// `MNT_NODEV` mounts): allowed for a guarded task. The device programs
/// then decide on the device.
#[no_mangle]
extern "C" fn rust_devguard_may_open_nodev(_path: *const kernel::ffi::c_void) -> bool {
    guarded()
}
