// SPDX-License-Identifier: GPL-2.0

//! loopfs: loop devices for containers, one private set per mount.
//!
//! Every mount of the filesystem type `loop` is a new instance. User-namespace
//! root may mount it. The `max=N` mount option limits the number of devices of
//! an instance. The filesystem plumbing (fs_context, superblock, inodes) is in
//! `loopfs_fs.c`; the instances and their policy are here.

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    error::to_result,
    ffi::c_void,
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::ForeignOwnable,
};

module! {
    type: LoopfsModule,
    name: "loopfs",
    author: "nsdev",
    description: "loopfs: per-mount loop device instances for user namespaces",
    license: "GPL",
}

/// Largest accepted `max=` value: the number of minors a block major has.
const MAX_DEVICES: u32 = 1 << 20;

extern "C" {
    fn loopfs_register_filesystem() -> kernel::ffi::c_int;
    fn loopfs_unregister_filesystem();
}

struct LoopfsModule;

impl kernel::Module for LoopfsModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once at module init; the filesystem type is a static
        // in `loopfs_fs.c` and is unregistered in `drop`.
        to_result(unsafe { loopfs_register_filesystem() })?;
        Ok(LoopfsModule)
    }
}

impl Drop for LoopfsModule {
    fn drop(&mut self) {
        // SAFETY: `init` registered the filesystem type. Module exit only runs
        // when no superblock holds a reference to the module any more.
        unsafe { loopfs_unregister_filesystem() };
    }
}

/// One mount of loopfs: the state its superblock points to.
struct Instance {
    /// Most devices this instance may hold; 0 means no per-instance limit.
    max: AtomicU32,
}

/// Borrows the instance behind a pointer C holds.
///
/// # Safety
///
/// `ptr` must come from [`rust_loopfs_instance_new`] and must not have been
/// passed to [`rust_loopfs_instance_free`] yet.
unsafe fn instance<'a>(ptr: *mut c_void) -> ArcBorrow<'a, Instance> {
    // SAFETY: By the function's safety requirements `ptr` is a live
    // `Arc<Instance>` made by `into_foreign`; the borrow lasts no longer than
    // the C caller's own reference.
    unsafe { <Arc<Instance> as ForeignOwnable>::borrow(ptr) }
}

/// Creates the state of a new mount. Returns NULL when out of memory.
#[no_mangle]
extern "C" fn rust_loopfs_instance_new(max: u32) -> *mut c_void {
    match Arc::new(
        Instance {
            max: AtomicU32::new(max),
        },
        GFP_KERNEL,
    ) {
        Ok(instance) => instance.into_foreign().cast_mut(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Drops the superblock's reference to its instance.
///
/// # Safety
///
/// `ptr` must come from [`rust_loopfs_instance_new`] and is not used again.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_free(ptr: *mut c_void) {
    // SAFETY: By the function's safety requirements, this gives back the one
    // reference C held.
    drop(unsafe { <Arc<Instance> as ForeignOwnable>::from_foreign(ptr) });
}

#[no_mangle]
extern "C" fn rust_loopfs_max_valid(max: u32) -> bool {
    (1..=MAX_DEVICES).contains(&max)
}

/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_set_max(ptr: *mut c_void, max: u32) {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { instance(ptr) }.max.store(max, Ordering::Relaxed);
}

/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_max(ptr: *mut c_void) -> u32 {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { instance(ptr) }.max.load(Ordering::Relaxed)
}
