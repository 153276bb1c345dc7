// SPDX-License-Identifier: GPL-2.0

//! loopfs: loop devices for containers, one private set per mount.
//!
//! Every mount of the filesystem type `loop` is a new instance holding a
//! `loop-control` node and the `loopN` block devices made through it, numbered
//! within the instance. User-namespace root may mount it and configure its
//! devices. `max=N` limits an instance, the `max_devices` parameter all of
//! them. The devices are a file-backed blk-mq driver with loop.c's ioctls.
//!
//! The filesystem and block plumbing is C (`loopfs_fs.c`, `loopfs_blk.c`);
//! the unsafe layer over it is [`sys`]; devices are in [`device`].

use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    bindings,
    ffi::{c_int, c_long, c_uint, c_ulong, c_void},
    fmt, new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{Arc, ArcBorrow, Mutex},
    types::ForeignOwnable,
};

#[path = "loopfs/device.rs"]
mod device;
#[path = "loopfs/sys.rs"]
mod sys;
#[path = "loopfs/uapi.rs"]
mod uapi;

use device::{Device, Registry, Served, MAX_PART_NODES};
use sys::{Bdev, Disk, KillableMutex, Request, SuperBlock, UserNs};

module! {
    type: LoopfsModule,
    name: "loopfs",
    author: "nsdev",
    description: "loopfs: per-mount loop device instances for user namespaces",
    license: "GPL",
}

/// Largest accepted `max=` value.
const MAX_PER_INSTANCE: u32 = 1 << 20;

struct LoopfsModule {
    /// Dropped after `drop()` unregistered everything.
    registry: Registry,
}

impl kernel::Module for LoopfsModule {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registry = Registry::new()?;
        sys::register()?;
        Ok(LoopfsModule { registry })
    }
}

impl Drop for LoopfsModule {
    fn drop(&mut self) {
        // Nothing is mounted and nobody has a disk open (either would pin the
        // module): what is left are orphans, queued for removal or not.
        sys::unregister_and_drain();
        let left = self.registry.remove_orphans();
        if left != 0 {
            pr_err!("{} devices left at module exit\n", left);
        }
        sys::unregister_blk();
    }
}

/// One mount of loopfs: the state its superblock points to.
#[pin_data]
pub(crate) struct Instance {
    /// The mounting user namespace: its root configures the devices.
    pub(crate) user_ns: UserNs,
    /// Most devices of this instance; 0 means no per-instance limit.
    max: AtomicU32,
    /// Serialises `loop-control` commands, which may sleep between taking
    /// a number and inserting its device; killable, as loop.c's.
    #[pin]
    ctl: KillableMutex<()>,
    #[pin]
    inner: Mutex<Inner>,
}

/// A device of the instance and the partition nodes it has there.
struct Entry {
    dev: Arc<Device>,
    /// Which `loopNpM` nodes exist (bit M - 1).
    part_nodes: u64,
}

struct Inner {
    /// The superblock while mounted; `None` once it is being killed.
    sb: Option<SuperBlock>,
    devices: RBTree<u32, Entry>,
}

/// The name of a node, `loopN` for the device, `loopNpM` for its partition
/// M (M > 0), made on the stack: removing a node never fails for memory.
pub(crate) struct NodeName {
    buf: [u8; NodeName::SIZE],
    len: usize,
}

impl NodeName {
    /// `loop`, a `u32`, `p`, a partition number and the NUL, with room.
    const SIZE: usize = 32;

    pub(crate) fn new(number: u32, partition: usize) -> Self {
        let mut name = NodeName {
            buf: [0; Self::SIZE],
            len: 0,
        };
        // Cannot fail: the longest name, 17 bytes, fits (`write_str` would
        // refuse, leaving a shorter name, what does not).
        let _ = if partition == 0 {
            core::fmt::Write::write_fmt(&mut name, fmt!("loop{}", number))
        } else {
            core::fmt::Write::write_fmt(&mut name, fmt!("loop{}p{}", number, partition))
        };
        name
    }

    pub(crate) fn as_cstr(&self) -> &CStr {
        // SAFETY: `write_str` stores no NUL and leaves the last byte of
        // `buf` alone, so `buf[len]` is the first NUL: `len < SIZE`.
        unsafe { CStr::from_bytes_with_nul_unchecked(&self.buf[..=self.len]) }
    }
}

impl core::fmt::Write for NodeName {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if b == 0 || self.len + 1 >= Self::SIZE {
                return Err(core::fmt::Error);
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Removes the nodes of device `number` whose partitions `part_nodes` has.
fn remove_nodes(sb: &SuperBlock, number: u32, part_nodes: u64) {
    for i in 0..MAX_PART_NODES {
        if part_nodes & (1u64 << i) != 0 {
            sb.remove_node(NodeName::new(number, i + 1).as_cstr());
        }
    }
    sb.remove_node(NodeName::new(number, 0).as_cstr());
}

impl Instance {
    /// Makes the instance's `loopNpM` nodes of `dev` match the partitions of
    /// its disk, read under the instance lock.
    pub(crate) fn sync_partition_nodes(&self, dev: &Device, disk: Disk<'_>) {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let (Some(sb), Some(entry)) = (inner.sb.as_ref(), inner.devices.get_mut(&dev.number))
        else {
            return;
        };
        if !core::ptr::eq(&*entry.dev, dev) {
            return;
        }
        let devts = disk.partitions::<MAX_PART_NODES>();
        for (i, &devt) in devts.iter().enumerate() {
            let bit = 1u64 << i;
            let name = NodeName::new(dev.number, i + 1);
            if entry.part_nodes & bit != 0 {
                sb.remove_node(name.as_cstr());
                entry.part_nodes &= !bit;
            }
            if devt != 0 && sb.add_node(name.as_cstr(), devt, dev.id).is_ok() {
                entry.part_nodes |= bit;
            }
        }
    }

    /// `LOOP_CTL_ADD`: a device numbered `req`, or the first free number if
    /// `req` is negative (`loop_add()`). The caller holds `ctl`.
    fn add(self: &Arc<Self>, req: i32) -> Result<i32> {
        let number = {
            let inner = self.inner.lock();
            let number = match u32::try_from(req) {
                Ok(n) if inner.devices.get(&n).is_some() => return Err(EEXIST),
                Ok(n) => n,
                Err(_) => {
                    let mut n = 0;
                    for &used in inner.devices.keys() {
                        if used != n {
                            break;
                        }
                        n += 1;
                    }
                    n
                }
            };
            let max = self.max.load(Ordering::Relaxed);
            if max != 0 && inner.devices.keys().count() >= max as usize {
                return Err(ENOSPC);
            }
            number
        };
        let name = NodeName::new(number, 0);
        let reservation = RBTreeNodeReservation::new(GFP_KERNEL)?;
        // The disk is made, and on failure deleted, with no lock held.
        let dev = Device::new(number, self.clone())?;
        let added = dev.devt().and_then(|devt| {
            let mut inner = self.inner.lock();
            inner
                .sb
                .as_ref()
                .ok_or(ENODEV)?
                .add_node(name.as_cstr(), devt, dev.id)?;
            let entry = Entry {
                dev: dev.clone(),
                part_nodes: 0,
            };
            inner.devices.insert(reservation.into_node(number, entry));
            Ok(())
        });
        if let Err(err) = added {
            match dev.start_removal(false) {
                Ok(removal) => removal.finish(),
                // Opened meanwhile through a node made elsewhere: removed on
                // its last close.
                Err(_) => device::orphan_add(&dev),
            }
            return Err(err);
        }
        Ok(number as i32)
    }

    /// `LOOP_CTL_REMOVE` (`loop_control_remove()`). The caller holds `ctl`.
    fn remove(&self, number: i32) -> Result<i32> {
        let number = u32::try_from(number).map_err(|_| EINVAL)?;
        let dev = match self.inner.lock().devices.get(&number) {
            Some(entry) => entry.dev.clone(),
            None => return Err(ENODEV),
        };
        let removal = match dev.start_removal(false) {
            Ok(removal) => Some(removal),
            // Gone already: only the entry is left to drop.
            Err(err) if err == ENXIO => None,
            Err(err) => return Err(err),
        };
        // Gone from the instance before the disk goes.
        {
            let mut inner = self.inner.lock();
            let entry = inner.devices.remove(&number);
            if let (Some(sb), Some(entry)) = (&inner.sb, &entry) {
                remove_nodes(sb, number, entry.part_nodes);
            }
        }
        match removal {
            Some(removal) => removal.finish(),
            None => return Err(ENODEV),
        }
        Ok(0)
    }

    /// `LOOP_CTL_GET_FREE`: an unbound device, made if there is none. The
    /// caller holds `ctl`.
    fn get_free(self: &Arc<Self>) -> Result<i32> {
        let mut devices = KVec::new();
        for (&number, entry) in self.inner.lock().devices.iter() {
            devices.push((number, entry.dev.clone()), GFP_KERNEL)?;
        }
        // Device states are never taken under the instance lock.
        for (number, dev) in &devices {
            if dev.is_free() {
                return Ok(*number as i32);
            }
        }
        drop(devices);
        self.add(-1)
    }

    fn ctl_ioctl(self: &Arc<Self>, cmd: u32, arg: usize) -> Result<i32> {
        if !self.user_ns.capable_sys_admin() {
            return Err(EPERM);
        }
        let _ctl = self.ctl.lock()?;
        // As loop.c, the argument is an int.
        let arg = arg as i32;
        match cmd {
            uapi::LOOP_CTL_ADD => self.add(arg),
            uapi::LOOP_CTL_REMOVE => self.remove(arg),
            uapi::LOOP_CTL_GET_FREE => self.get_free(),
            _ => Err(sys::enosys()),
        }
    }

    /// The superblock is going away: remove the idle devices now; the others
    /// become orphans, removed on their last close or at module exit.
    fn shutdown(&self) {
        let mut devices = {
            let mut inner = self.inner.lock();
            inner.sb = None;
            core::mem::take(&mut inner.devices)
        };
        while let Some(cursor) = devices.cursor_front() {
            let (_, node) = cursor.remove_current();
            let (_, entry) = node.to_key_value();
            // An orphan until removed, by whoever gets there first.
            device::orphan_add(&entry.dev);
            entry.dev.reap();
        }
    }

    /// `max=` on remount; 0 means the option was not given.
    fn reconfigure(&self, max: u32) {
        if max != 0 {
            self.max.store(max, Ordering::Relaxed);
        }
    }
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

/// Borrows the device behind a disk's private pointer.
///
/// # Safety
///
/// `ptr` must be the device reference a live loopfs disk holds.
unsafe fn device<'a>(ptr: *mut c_void) -> ArcBorrow<'a, Device> {
    // SAFETY: The disk holds this reference until `loopfs_disk_destroy()`
    // hands it back after `del_gendisk()`, after which no callback runs.
    unsafe { <Arc<Device> as ForeignOwnable>::borrow(ptr) }
}

fn to_c(result: Result<i32>) -> c_int {
    match result {
        Ok(n) => n,
        Err(err) => err.to_errno(),
    }
}

/// Creates the state of a new mount. Returns NULL when out of memory.
///
/// # Safety
///
/// `sb` must be the superblock being filled, `ns` a user namespace reference
/// that this function takes over in every case.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_new(
    sb: *mut bindings::super_block,
    ns: *mut bindings::user_namespace,
    max: u32,
) -> *mut c_void {
    // SAFETY: The caller gives up the reference.
    let Some(user_ns) = (unsafe { UserNs::from_raw(ns) }) else {
        return core::ptr::null_mut();
    };
    // SAFETY: The superblock outlives the instance's use of it: C calls
    // `rust_loopfs_instance_shutdown` before killing it.
    let sb = unsafe { SuperBlock::from_raw(sb) };
    let instance = Arc::pin_init(
        pin_init!(Instance {
            user_ns,
            max: AtomicU32::new(max),
            ctl <- KillableMutex::new(
                (),
                kernel::c_str!("loopfs::Instance::ctl"),
                kernel::static_lock_class!(),
            ),
            inner <- new_mutex!(Inner {
                sb,
                devices: RBTree::new(),
            }),
        }),
        GFP_KERNEL,
    );
    match instance {
        Ok(instance) => instance.into_foreign().cast_mut(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]), whose superblock
/// is being killed.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_shutdown(ptr: *mut c_void) {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { instance(ptr) }.shutdown();
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
    (1..=MAX_PER_INSTANCE).contains(&max)
}

/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_set_max(ptr: *mut c_void, max: u32) {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { instance(ptr) }.reconfigure(max);
}

/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_instance_max(ptr: *mut c_void) -> u32 {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { instance(ptr) }.max.load(Ordering::Relaxed)
}

/// An ioctl on the instance's `loop-control`.
///
/// # Safety
///
/// `ptr` must be a live instance pointer (see [`instance`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_ctl_ioctl(ptr: *mut c_void, cmd: c_uint, arg: c_ulong) -> c_long {
    // SAFETY: Guaranteed by the function's safety requirements.
    let instance: Arc<Instance> = unsafe { instance(ptr) }.into();
    to_c(instance.ctl_ioctl(cmd, arg)) as c_long
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_open(
    dev: *mut c_void,
    mode: u32,
    through_node: bool,
) -> c_int {
    // SAFETY: Guaranteed by the function's safety requirements.
    to_c(unsafe { device(dev) }.open(mode, through_node).map(|()| 0))
}

/// The device's id, which the instance's nodes carry.
///
/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_id(dev: *mut c_void) -> u64 {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { device(dev) }.id
}

/// Whether the current task may see the device's backing file.
///
/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]).
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_visible(dev: *mut c_void) -> bool {
    // SAFETY: Guaranteed by the function's safety requirements.
    unsafe { device(dev) }.visible()
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]); the disk's
/// `open_mutex` is held and it has no opener left.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_last_close(dev: *mut c_void, disk: *mut bindings::gendisk) {
    // SAFETY: The block layer keeps the disk during its release callback.
    let Some(disk) = (unsafe { Disk::from_raw(disk) }) else {
        return;
    };
    // SAFETY: Guaranteed by the function's safety requirements.
    let dev: Arc<Device> = unsafe { device(dev) }.into();
    dev.last_close(disk);
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]), `bdev` the
/// block device the ioctl came in on.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_ioctl(
    dev: *mut c_void,
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: The block device is open for the duration of the ioctl.
    let bdev = unsafe { Bdev::from_raw(bdev) };
    // SAFETY: Guaranteed by the function's safety requirements.
    to_c(unsafe { device(dev) }.ioctl(&bdev, mode, cmd, arg))
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]), `bdev` the
/// block device the ioctl came in on.
#[cfg(CONFIG_COMPAT)]
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_compat_ioctl(
    dev: *mut c_void,
    bdev: *mut bindings::block_device,
    mode: bindings::blk_mode_t,
    cmd: c_uint,
    arg: c_ulong,
) -> c_int {
    // SAFETY: The block device is open for the duration of the ioctl.
    let bdev = unsafe { Bdev::from_raw(bdev) };
    // SAFETY: Guaranteed by the function's safety requirements.
    to_c(unsafe { device(dev) }.compat_ioctl(&bdev, mode, cmd, arg))
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]), `rq` a
/// started request of that disk; with `nowait`, called from its `queue_rq()`.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_serve(
    dev: *mut c_void,
    rq: *mut bindings::request,
    nowait: bool,
) -> c_int {
    // SAFETY: The request stays valid until C ends it after this returns.
    let rq = unsafe { Request::from_raw(rq) };
    // SAFETY: Guaranteed by the function's safety requirements.
    served(unsafe { device(dev) }.serve(&rq, nowait))
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]), `rq` the
/// started request of that disk whose direct transfer ended with `ret`.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_aio_done(
    dev: *mut c_void,
    rq: *mut bindings::request,
    ret: isize,
    nowait: bool,
) -> c_int {
    // SAFETY: The request stays valid until C ends it after this returns.
    let rq = unsafe { Request::from_raw(rq) };
    // SAFETY: Guaranteed by the function's safety requirements.
    served(unsafe { device(dev) }.direct_done(&rq, ret, nowait))
}

fn served(served: Served) -> c_int {
    match served {
        Served::Done(ret) => ret,
        Served::Queued => sys::ffi::LOOPFS_RQ_QUEUED as c_int,
        Served::Retry => sys::ffi::LOOPFS_RQ_RETRY as c_int,
    }
}

/// # Safety
///
/// `dev` must be a live disk's device pointer (see [`device`]), `out` valid
/// for writing.
#[no_mangle]
unsafe extern "C" fn rust_loopfs_dev_info(dev: *mut c_void, out: *mut sys::ffi::loopfs_dev_info) {
    // SAFETY: Guaranteed by the function's safety requirements.
    let info = unsafe { device(dev) }.info();
    let value = sys::ffi::loopfs_dev_info {
        file: info
            .file
            .map_or(core::ptr::null_mut(), sys::FileRef::into_raw),
        offset: info.offset,
        sizelimit: info.sizelimit,
        flags: info.flags,
    };
    // SAFETY: `out` is valid for writing; C takes the file reference.
    unsafe { out.write(value) };
}

/// Each function C calls has the type `loopfs.h` declares (as bindgen read
/// it): a mismatch does not compile.
macro_rules! c_declared {
    ($($name:ident),+ $(,)?) => {
        $(
            const _: () = {
                let _ = if true { sys::ffi::$name } else { $name };
            };
        )+
    };
}

c_declared!(
    rust_loopfs_instance_new,
    rust_loopfs_instance_shutdown,
    rust_loopfs_instance_free,
    rust_loopfs_instance_set_max,
    rust_loopfs_instance_max,
    rust_loopfs_ctl_ioctl,
    rust_loopfs_dev_open,
    rust_loopfs_dev_visible,
    rust_loopfs_dev_id,
    rust_loopfs_dev_last_close,
    rust_loopfs_dev_ioctl,
    rust_loopfs_dev_serve,
    rust_loopfs_dev_aio_done,
    rust_loopfs_dev_info,
);

#[cfg(CONFIG_COMPAT)]
c_declared!(rust_loopfs_dev_compat_ioctl);
