// SPDX-License-Identifier: GPL-2.0

//! One loop device of an instance: its state machine, the loop ioctls with
//! loop.c's semantics and errnos, and file-backed I/O.

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use kernel::{
    bindings,
    error::code::*,
    new_mutex, new_spinlock, new_work,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{Arc, Mutex, SpinLock},
    uaccess::UserSlice,
    workqueue::{self, impl_has_work, Work, WorkItem},
};

use crate::sys::{self, Bdev, Cred, Disk, FileRef, Request, UserNs};
use crate::uapi::*;
use crate::Instance;

/// `BLK_OPEN_WRITE` (a cast bindgen cannot evaluate).
const BLK_OPEN_WRITE: u32 = 1 << 1;

const SECTOR_SHIFT: u32 = 9;
const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
const FALLOC_FL_ZERO_RANGE: i32 = 0x10;

/// Partitions that get a node in the instance: `loopNp1` to `loopNp64`.
const MAX_PART_NODES: usize = 64;

/// How many devices exist, in all and per user namespace.
pub(crate) struct Counts {
    total: u32,
    /// Devices of the instances of a namespace and its descendants, keyed by
    /// the namespace's address; only namespaces with devices are here.
    per_ns: RBTree<usize, u32>,
}

/// The module's device counts, set while the module is loaded.
static COUNTS: AtomicPtr<Mutex<Counts>> = AtomicPtr::new(core::ptr::null_mut());

/// Owns the device counts; the module holds it from init to exit.
pub(crate) struct Registry {
    _counts: Arc<Mutex<Counts>>,
}

impl Registry {
    pub(crate) fn new() -> Result<Self> {
        let counts = Arc::pin_init(
            new_mutex!(Counts {
                total: 0,
                per_ns: RBTree::new(),
            }),
            GFP_KERNEL,
        )?;
        COUNTS.store(
            core::ptr::from_ref::<Mutex<Counts>>(&counts).cast_mut(),
            Ordering::Release,
        );
        Ok(Registry { _counts: counts })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        COUNTS.store(core::ptr::null_mut(), Ordering::Release);
    }
}

fn counts() -> Result<&'static Mutex<Counts>> {
    let counts = COUNTS.load(Ordering::Acquire);
    // SAFETY: The pointer is set at module init, before the filesystem is
    // registered, and cleared at module exit, after it is unregistered and
    // the last device slot is gone (each pins the module). Devices are only
    // made and dropped in between, while the `Registry` owns the counts.
    unsafe { counts.as_ref() }.ok_or(ENODEV)
}

/// One device counted against `max_devices`, `max_devices_per_userns` and
/// the reserve of the initial namespace, with the module pinned.
pub(crate) struct DeviceSlot {
    /// The instance's namespace: the counts of it and its ancestors.
    ns: UserNs,
}

impl DeviceSlot {
    /// Reserves a device for an instance of `ns`: `ENOSPC` at a limit.
    pub(crate) fn reserve(ns: &UserNs) -> Result<Self> {
        let mut counts = counts()?.lock();
        let mut max = sys::max_devices();
        if ns.lineage().next().is_some() {
            // Containers cannot take the devices the host keeps for itself.
            max = max.saturating_sub(sys::reserved_devices());
        }
        if counts.total >= max {
            return Err(ENOSPC);
        }
        let per_ns = sys::max_devices_per_userns();
        for key in ns.lineage() {
            match counts.per_ns.get(&key) {
                Some(&n) if n >= per_ns => return Err(ENOSPC),
                Some(_) => {}
                None if per_ns == 0 => return Err(ENOSPC),
                None => {
                    counts.per_ns.insert(RBTreeNode::new(key, 0, GFP_KERNEL)?);
                }
            }
        }
        for key in ns.lineage() {
            if let Some(n) = counts.per_ns.get_mut(&key) {
                *n += 1;
            }
        }
        counts.total += 1;
        sys::module_get();
        Ok(DeviceSlot { ns: ns.clone_ref() })
    }
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        if let Ok(counts) = counts() {
            let mut counts = counts.lock();
            counts.total -= 1;
            for key in self.ns.lineage() {
                match counts.per_ns.get_mut(&key) {
                    Some(n) if *n > 1 => *n -= 1,
                    _ => {
                        counts.per_ns.remove(&key);
                    }
                }
            }
        }
        sys::module_put();
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No backing file.
    Unbound,
    /// Serving a backing file.
    Bound,
    /// Being unbound on last close.
    Rundown,
    /// Being removed.
    Deleting,
}

/// What the ioctls configure; under the device mutex (`lo_mutex`).
struct Ctl {
    state: State,
    offset: u64,
    sizelimit: u64,
    flags: u32,
    file_name: [u8; LO_NAME_SIZE],
    /// The backing file's allocation mask before it was attached.
    saved_gfp: bindings::gfp_t,
    /// Whether the `loop/` sysfs attributes are there.
    sysfs: bool,
}

impl Ctl {
    /// Forgets what a configuration set (`__loop_clr_fd()`).
    fn reset_params(&mut self) {
        self.offset = 0;
        self.sizelimit = 0;
        self.flags = 0;
        self.file_name = [0; LO_NAME_SIZE];
    }
}

/// A backing file and what its I/O runs with: the credentials and file size
/// limit of the task that bound it, so that the device gives its users
/// nothing they could not do with the file themselves.
struct Backing {
    file: FileRef,
    cred: Cred,
    fsize_limit: u64,
}

impl Backing {
    fn new(file: FileRef) -> Result<Arc<Self>> {
        Ok(Arc::new(
            Backing {
                file,
                cred: Cred::current()?,
                fsize_limit: sys::current_fsize_limit(),
            },
            GFP_KERNEL,
        )?)
    }
}

/// What the I/O path reads; under a spinlock so that requests never wait
/// for an ioctl. Changes that must not race with requests freeze the queue.
struct Io {
    backing: Option<Arc<Backing>>,
    offset: u64,
    read_only: bool,
    direct: bool,
}

impl Io {
    fn file(&self) -> Option<&FileRef> {
        self.backing.as_ref().map(|b| &b.file)
    }
}

/// What the sysfs `loop/` attributes show.
pub(crate) struct Info {
    pub(crate) file: Option<FileRef>,
    pub(crate) offset: u64,
    pub(crate) sizelimit: u64,
    pub(crate) flags: u32,
}

#[pin_data]
pub(crate) struct Device {
    /// Number within the instance: the node is `loop<number>`.
    pub(crate) number: u32,
    pub(crate) instance: Arc<Instance>,
    /// Set once the disk exists; cleared when it is destroyed.
    disk: AtomicPtr<bindings::gendisk>,
    /// Which `loopNpM` nodes exist (bit M - 1); changed under the
    /// instance's lock.
    part_nodes: AtomicU64,
    #[pin]
    ctl: Mutex<Ctl>,
    #[pin]
    io: SpinLock<Io>,
    #[pin]
    reap: Work<Device>,
    _slot: DeviceSlot,
}

impl_has_work! {
    impl HasWork<Self> for Device { self.reap }
}

/// Removes a device of a dead instance once it is idle, outside the release
/// path (which holds the disk's `open_mutex` that removal takes).
impl WorkItem for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        if this.mark_deleting(true).is_ok() {
            this.destroy_disk();
        }
    }
}

/// Size in sectors of `file` seen through `offset` and `sizelimit` (`get_size()`).
fn size_sectors(offset: u64, sizelimit: u64, file: &FileRef) -> u64 {
    let size = file.size().max(0) as u64;
    let mut bytes = size.saturating_sub(offset);
    if sizelimit > 0 && sizelimit < bytes {
        bytes = sizelimit;
    }
    bytes >> SECTOR_SHIFT
}

/// Filesystems whose files are kernel interfaces, not data: a write there is
/// a control operation (`include/uapi/linux/magic.h`).
const PSEUDO_FS_MAGICS: [u64; 14] = [
    0x62656572, // SYSFS_MAGIC
    0x9fa0,     // PROC_SUPER_MAGIC
    0x64626720, // DEBUGFS_MAGIC
    0x73636673, // SECURITYFS_MAGIC
    0x62656570, // CONFIGFS_MAGIC
    0x27e0eb,   // CGROUP_SUPER_MAGIC
    0x63677270, // CGROUP2_SUPER_MAGIC
    0xcafe4a11, // BPF_FS_MAGIC
    0x74726163, // TRACEFS_MAGIC
    0xde5e81e4, // EFIVARFS_MAGIC
    0x6165676c, // PSTOREFS_MAGIC
    0xf97cff8c, // SELINUX_MAGIC
    0x43415d53, // SMACK_MAGIC
    0x42494e4d, // BINFMTFS_MAGIC
];

/// `loop_check_backing_file()`, and what a device of an unprivileged
/// container must not be given: a file not open for reading (its data would
/// be readable through the device), or a kernel interface file.
fn check_backing_file(file: &FileRef) -> Result {
    if !file.opened_for_read() {
        return Err(EBADF);
    }
    if !file.can_read_iter() || (file.opened_for_write() && !file.can_write_iter()) {
        return Err(EINVAL);
    }
    if PSEUDO_FS_MAGICS.contains(&file.fs_magic()) {
        return Err(EINVAL);
    }
    Ok(())
}

/// Block sizes the block layer takes (`blk_validate_block_size()`), checked
/// before the queue is touched so that bad input is not logged.
fn valid_block_size(size: u32) -> bool {
    (512..=kernel::page::PAGE_SIZE as u32).contains(&size) && size.is_power_of_two()
}

/// Whether direct I/O can work (`lo_bdev_can_use_dio()`).
fn can_direct_io(file: &FileRef, offset: u64, block_size: u32) -> bool {
    if !file.can_odirect() {
        return false;
    }
    match file.bdev_block_size() {
        Some(bs) => block_size >= bs && offset % u64::from(bs) == 0,
        None => true,
    }
}

/// Discard support: hole punching on files that can do it.
fn discard_config(file: &FileRef) -> (u32, u32) {
    if file.is_regular() && file.can_fallocate() {
        (u32::MAX >> SECTOR_SHIFT, file.fs_block_size())
    } else {
        (0, 0)
    }
}

impl Device {
    pub(crate) fn new(number: u32, instance: Arc<Instance>) -> Result<Arc<Self>> {
        let slot = DeviceSlot::reserve(&instance.user_ns)?;
        Arc::pin_init(
            pin_init!(Device {
                number,
                instance,
                disk: AtomicPtr::new(core::ptr::null_mut()),
                part_nodes: AtomicU64::new(0),
                ctl <- new_mutex!(Ctl {
                    state: State::Unbound,
                    offset: 0,
                    sizelimit: 0,
                    flags: 0,
                    file_name: [0; LO_NAME_SIZE],
                    saved_gfp: 0,
                    sysfs: false,
                }),
                io <- new_spinlock!(Io {
                    backing: None,
                    offset: 0,
                    read_only: false,
                    direct: false,
                }),
                reap <- new_work!("loopfs::reap"),
                _slot: slot,
            }),
            GFP_KERNEL,
        )
    }

    /// Creates the gendisk; the disk holds a reference to the device.
    pub(crate) fn add_disk(self: &Arc<Self>) -> Result<bindings::dev_t> {
        let foreign = kernel::types::ForeignOwnable::into_foreign(self.clone());
        match Disk::create(foreign) {
            Ok(disk) => {
                self.disk.store(disk.as_raw(), Ordering::Release);
                Ok(disk.devt())
            }
            Err(err) => {
                // SAFETY: The disk did not take the reference made above.
                drop(unsafe {
                    <Arc<Device> as kernel::types::ForeignOwnable>::from_foreign(foreign)
                });
                Err(err)
            }
        }
    }

    /// The gendisk, while it exists.
    fn disk(&self) -> Result<Disk> {
        // SAFETY: The pointer was stored by `add_disk()` and is cleared by
        // `destroy_disk()` before the disk is deleted, which only happens with
        // no opener; every caller either holds the device open or is a
        // callback of the disk, which keeps it alive.
        unsafe { Disk::from_raw(self.disk.load(Ordering::Acquire)) }.ok_or(ENXIO)
    }

    /// Marks the device for removal if it is idle. `EBUSY` if it is bound or
    /// open (`loop_control_remove()`).
    pub(crate) fn mark_deleting(&self, bound_ok: bool) -> Result {
        let mut ctl = self.ctl.lock();
        let idle = match ctl.state {
            State::Unbound => true,
            State::Bound => bound_ok,
            _ => false,
        };
        let openers = self.disk().map(|d| d.openers()).unwrap_or(0);
        if !idle || openers > 0 {
            return Err(EBUSY);
        }
        if ctl.state == State::Bound {
            drop(ctl);
            self.clear(false);
            ctl = self.ctl.lock();
        }
        ctl.state = State::Deleting;
        Ok(())
    }

    /// Deletes the gendisk of a device marked `Deleting`.
    pub(crate) fn destroy_disk(&self) {
        let disk = self.disk.swap(core::ptr::null_mut(), Ordering::AcqRel);
        // SAFETY: Only one caller gets the non-NULL pointer; the device is
        // `Deleting`, so nothing else uses the disk any more.
        if let Some(disk) = unsafe { Disk::from_raw(disk) } {
            // SAFETY: As above; this is the one destroy of this disk.
            unsafe { disk.destroy() };
        }
    }

    /// Makes the instance's `loopNpM` nodes match the disk's partitions.
    fn sync_partition_nodes(&self) {
        let Ok(disk) = self.disk() else {
            return;
        };
        let devts = disk.partitions::<MAX_PART_NODES>();
        self.instance.with_sb(|sb| {
            let mut have = self.part_nodes.load(Ordering::Relaxed);
            for (i, &devt) in devts.iter().enumerate() {
                let bit = 1u64 << i;
                let Ok(name) = crate::node_name(self.number, i + 1) else {
                    continue;
                };
                if have & bit != 0 {
                    sb.remove_node(&name);
                    have &= !bit;
                }
                if devt != 0 && sb.add_node(&name, devt).is_ok() {
                    have |= bit;
                }
            }
            self.part_nodes.store(have, Ordering::Relaxed);
        });
    }

    /// Removes the device's nodes from the instance (its lock held).
    pub(crate) fn remove_nodes(&self, sb: &sys::SuperBlock) {
        let have = self.part_nodes.swap(0, Ordering::Relaxed);
        for i in 0..MAX_PART_NODES {
            if have & (1u64 << i) != 0 {
                if let Ok(name) = crate::node_name(self.number, i + 1) {
                    sb.remove_node(&name);
                }
            }
        }
        if let Ok(name) = crate::node_name(self.number, 0) {
            sb.remove_node(&name);
        }
    }

    pub(crate) fn is_free(&self) -> bool {
        self.ctl.lock().state == State::Unbound
    }

    /// Whether the current task may use the device: its user namespace is
    /// the instance's or below it, or it is privileged over the instance's
    /// (host root). Others see neither the device nor its backing file.
    pub(crate) fn visible(&self) -> bool {
        let ns = &self.instance.user_ns;
        ns.current_in() || ns.capable_sys_admin()
    }

    pub(crate) fn open(&self) -> Result {
        if !self.visible() {
            return Err(ENXIO);
        }
        match self.ctl.lock().state {
            State::Deleting | State::Rundown => Err(ENXIO),
            _ => Ok(()),
        }
    }

    /// The last opener closed the device (`lo_release()`); the disk's
    /// `open_mutex` is held.
    pub(crate) fn last_close(self: &Arc<Self>) {
        let need_clear = {
            let mut ctl = self.ctl.lock();
            if ctl.state == State::Bound && ctl.flags & LO_FLAGS_AUTOCLEAR != 0 {
                ctl.state = State::Rundown;
            }
            ctl.state == State::Rundown
        };
        if need_clear {
            self.clear(true);
        }
        if !self.instance.is_alive() {
            let _ = workqueue::system().enqueue(self.clone());
        }
    }

    /// Detaches the backing file (`__loop_clr_fd()`).
    fn clear(&self, open_mutex_held: bool) {
        let backing = self.io.lock().backing.take();
        let file = backing.as_ref().map(|b| &b.file);
        let (flags, gfp, sysfs) = {
            let mut ctl = self.ctl.lock();
            (ctl.flags, ctl.saved_gfp, core::mem::take(&mut ctl.sysfs))
        };
        if let Ok(disk) = self.disk() {
            let _ = disk.set_limits(512, 0, 0, false);
            disk.invalidate();
            if sysfs {
                disk.sysfs_remove();
            }
            disk.uevent_change();
            disk.force_media_change();
            if flags & LO_FLAGS_PARTSCAN != 0 {
                // The device is going away: a failed rescan changes nothing.
                let _ = disk.rescan(open_mutex_held);
            }
            disk.set_partscan(false);
        }
        if flags & LO_FLAGS_PARTSCAN != 0 {
            self.sync_partition_nodes();
        }
        if let Some(file) = file {
            file.restore_gfp(gfp);
        }
        {
            let mut ctl = self.ctl.lock();
            ctl.reset_params();
            ctl.state = State::Unbound;
        }
        // Dropped here, with no lock held: the last fput() may take locks.
        drop(backing);
    }

    /// Another reference to the backing file, if one is attached.
    fn backing_file(&self) -> Option<FileRef> {
        self.io.lock().file().map(FileRef::clone_ref)
    }

    pub(crate) fn info(&self) -> Info {
        let file = self.backing_file();
        let ctl = self.ctl.lock();
        Info {
            file,
            offset: ctl.offset,
            sizelimit: ctl.sizelimit,
            flags: ctl.flags,
        }
    }

    /// A block ioctl that the block layer passed on (`lo_ioctl()`).
    pub(crate) fn ioctl(&self, bdev: &Bdev, mode: u32, cmd: u32, arg: usize) -> Result<i32> {
        let user = |len| UserSlice::new(arg, len);
        match cmd {
            LOOP_GET_STATUS => {
                let old = self.status()?.to_old().ok_or_else(sys::eoverflow)?;
                if arg == 0 {
                    return Err(EINVAL);
                }
                user(core::mem::size_of::<LoopInfo>())
                    .writer()
                    .write(&old)?;
                return Ok(0);
            }
            LOOP_GET_STATUS64 => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.status()?;
                user(core::mem::size_of::<LoopInfo64>())
                    .writer()
                    .write(&info)?;
                return Ok(0);
            }
            _ => {}
        }

        // Everything else configures the device: root of the instance's
        // user namespace only, not of the initial one.
        if !self.instance.user_ns.capable_sys_admin() {
            return Err(EPERM);
        }
        match cmd {
            LOOP_SET_FD => self.configure(bdev, mode, &LoopConfig::with_fd(arg as u32)),
            LOOP_CONFIGURE => {
                let config: LoopConfig =
                    user(core::mem::size_of::<LoopConfig>()).reader().read()?;
                self.configure(bdev, mode, &config)
            }
            LOOP_CHANGE_FD => self.change_fd(arg as u32),
            LOOP_CLR_FD => self.clr_fd(),
            LOOP_SET_STATUS => {
                let old: LoopInfo = user(core::mem::size_of::<LoopInfo>()).reader().read()?;
                self.set_status(bdev, &LoopInfo64::from_old(&old))
            }
            LOOP_SET_STATUS64 => {
                let info: LoopInfo64 = user(core::mem::size_of::<LoopInfo64>()).reader().read()?;
                self.set_status(bdev, &info)
            }
            LOOP_SET_CAPACITY => self.set_capacity(),
            LOOP_SET_DIRECT_IO => self.set_direct_io(arg != 0),
            LOOP_SET_BLOCK_SIZE => self.set_block_size(bdev, mode, arg),
            _ => Err(EINVAL),
        }
        .map(|()| 0)
    }

    /// Rejects the device itself and other loopfs devices as backing files
    /// (`loop_validate_file()` without stacking).
    fn validate_file(&self, file: &FileRef, disk: &Disk) -> Result {
        if file.is_block() {
            if file.rdev() == disk.devt() {
                return Err(EBADF);
            }
            // Partitions included: no stacking, hence no cycle.
            if file.is_loopfs_bdev() {
                return Err(EINVAL);
            }
        } else if !file.is_regular() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// `loop_set_status_from_info()`: the parameters from `info`.
    fn params_from_info(ctl: &mut Ctl, info: &LoopInfo64) -> Result {
        if info.lo_encrypt_key_size > LO_KEY_SIZE || info.lo_encrypt_type != LO_CRYPT_NONE {
            return Err(EINVAL);
        }
        if info.lo_offset > i64::MAX as u64 || info.lo_sizelimit > i64::MAX as u64 {
            return Err(sys::eoverflow());
        }
        ctl.offset = info.lo_offset;
        ctl.sizelimit = info.lo_sizelimit;
        ctl.file_name = info.lo_file_name;
        ctl.file_name[LO_NAME_SIZE - 1] = 0;
        ctl.flags = info.lo_flags;
        Ok(())
    }

    /// `LOOP_SET_FD` and `LOOP_CONFIGURE` (`loop_configure()`).
    fn configure(&self, bdev: &Bdev, mode: u32, config: &LoopConfig) -> Result {
        let file = FileRef::fget(config.fd)?;
        check_backing_file(&file)?;
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let disk = self.disk()?;
        let partscan = {
            let mut ctl = self.ctl.lock();
            if ctl.state != State::Unbound {
                return Err(EBUSY);
            }
            self.validate_file(&file, &disk)?;
            if config.info.lo_flags & !CONFIGURE_SETTABLE_FLAGS != 0 {
                return Err(EINVAL);
            }
            if config.block_size != 0 && !valid_block_size(config.block_size) {
                return Err(EINVAL);
            }
            let result = Self::params_from_info(&mut ctl, &config.info)
                .and_then(|()| self.attach(&mut ctl, &disk, file, mode, config.block_size));
            if let Err(err) = result {
                ctl.reset_params();
                return Err(err);
            }
            ctl.flags & LO_FLAGS_PARTSCAN != 0
        };
        if partscan {
            self.rescan(&disk);
        }
        Ok(())
    }

    /// Rereads the partition table and shows its partitions in the instance.
    fn rescan(&self, disk: &Disk) {
        // As loop.c: a table that cannot be read leaves the device usable.
        let _ = disk.rescan(false);
        self.sync_partition_nodes();
    }

    /// The part of `loop_configure()` after validation, under the lock.
    fn attach(
        &self,
        ctl: &mut Ctl,
        disk: &Disk,
        file: FileRef,
        mode: u32,
        block_size: u32,
    ) -> Result {
        let backing = Backing::new(file)?;
        let file = &backing.file;
        if !file.opened_for_write() || mode & BLK_OPEN_WRITE == 0 || !file.can_write_iter() {
            ctl.flags |= LO_FLAGS_READ_ONLY;
        }
        let read_only = ctl.flags & LO_FLAGS_READ_ONLY != 0;
        let want_direct = ctl.flags & LO_FLAGS_DIRECT_IO != 0;
        let block_size = match block_size {
            0 if want_direct => file.bdev_block_size().unwrap_or(512),
            0 => 512,
            bs => bs,
        };
        let (max_discard, granularity) = discard_config(file);
        disk.set_limits(
            block_size,
            max_discard,
            granularity,
            file.can_fsync() && !read_only,
        )?;

        disk.force_media_change();
        disk.set_read_only(read_only);
        let direct = want_direct && can_direct_io(file, ctl.offset, block_size);
        if !direct {
            ctl.flags &= !LO_FLAGS_DIRECT_IO;
        }
        let sectors = size_sectors(ctl.offset, ctl.sizelimit, file);
        ctl.saved_gfp = file.set_nofs();
        *self.io.lock() = Io {
            backing: Some(backing),
            offset: ctl.offset,
            read_only,
            direct,
        };
        disk.set_capacity(sectors);
        ctl.state = State::Bound;
        // As loop.c: the device works without the attributes.
        ctl.sysfs = disk.sysfs_add().is_ok();
        if ctl.flags & LO_FLAGS_PARTSCAN != 0 {
            disk.set_partscan(true);
        }
        disk.uevent_change();
        Ok(())
    }

    /// `loop_clr_fd()`: detach on last close.
    fn clr_fd(&self) -> Result {
        let mut ctl = self.ctl.lock();
        if ctl.state != State::Bound {
            return Err(ENXIO);
        }
        ctl.flags |= LO_FLAGS_AUTOCLEAR;
        if self.disk()?.openers() == 1 {
            ctl.state = State::Rundown;
        }
        Ok(())
    }

    /// `loop_get_status()`.
    fn status(&self) -> Result<LoopInfo64> {
        let mut info = LoopInfo64::zeroed();
        let file = {
            let ctl = self.ctl.lock();
            if ctl.state != State::Bound {
                return Err(ENXIO);
            }
            info.lo_number = self.number;
            info.lo_offset = ctl.offset;
            info.lo_sizelimit = ctl.sizelimit;
            info.lo_flags = ctl.flags;
            info.lo_file_name = ctl.file_name;
            self.backing_file().ok_or(ENXIO)?
        };
        // Outside the lock: this calls into the backing filesystem.
        let ids = file.ids()?;
        info.lo_device = ids.dev;
        info.lo_inode = ids.ino;
        info.lo_rdevice = ids.rdev;
        Ok(info)
    }

    /// `loop_set_status()`.
    fn set_status(&self, bdev: &Bdev, info: &LoopInfo64) -> Result {
        let disk = self.disk()?;
        let partscan = {
            let mut ctl = self.ctl.lock();
            if ctl.state != State::Bound {
                return Err(ENXIO);
            }
            let size_changed = ctl.offset != info.lo_offset || ctl.sizelimit != info.lo_sizelimit;
            if size_changed {
                bdev.sync_and_invalidate();
            }
            let frozen = disk.freeze();
            let prev = (ctl.offset, ctl.sizelimit, ctl.flags, ctl.file_name);
            if let Err(err) = Self::params_from_info(&mut ctl, info) {
                (ctl.offset, ctl.sizelimit, ctl.flags, ctl.file_name) = prev;
                return Err(err);
            }
            let prev_flags = prev.2;
            ctl.flags &= SET_STATUS_SETTABLE_FLAGS;
            ctl.flags |= prev_flags & !SET_STATUS_SETTABLE_FLAGS;
            ctl.flags |= prev_flags & !SET_STATUS_CLEARABLE_FLAGS;

            let mut io = self.io.lock();
            io.offset = ctl.offset;
            let sectors = io
                .file()
                .map(|f| size_sectors(ctl.offset, ctl.sizelimit, f));
            drop(io);
            if let Some(sectors) = sectors.filter(|_| size_changed) {
                disk.set_capacity(sectors);
            }
            drop(frozen);
            let newly = ctl.flags & LO_FLAGS_PARTSCAN != 0 && prev_flags & LO_FLAGS_PARTSCAN == 0;
            if newly {
                disk.set_partscan(true);
            }
            newly
        };
        if partscan {
            self.rescan(&disk);
        }
        Ok(())
    }

    /// `loop_change_fd()`: swap the file of a read-only device.
    fn change_fd(&self, fd: u32) -> Result {
        let file = FileRef::fget(fd)?;
        check_backing_file(&file)?;
        let disk = self.disk()?;
        let (old, partscan) = {
            let mut ctl = self.ctl.lock();
            if ctl.state != State::Bound {
                return Err(ENXIO);
            }
            if ctl.flags & LO_FLAGS_READ_ONLY == 0 {
                return Err(EINVAL);
            }
            self.validate_file(&file, &disk)?;
            {
                let io = self.io.lock();
                let old = io.file().ok_or(ENXIO)?;
                if size_sectors(ctl.offset, ctl.sizelimit, &file)
                    != size_sectors(ctl.offset, ctl.sizelimit, old)
                {
                    return Err(EINVAL);
                }
            }
            let backing = Backing::new(file)?;
            disk.force_media_change();
            let frozen = disk.freeze();
            let gfp = backing.file.set_nofs();
            let direct = ctl.flags & LO_FLAGS_DIRECT_IO != 0
                && can_direct_io(&backing.file, ctl.offset, disk.block_size());
            let old = {
                let mut io = self.io.lock();
                io.direct = direct;
                io.backing.replace(backing)
            };
            if let Some(old) = &old {
                old.file.restore_gfp(ctl.saved_gfp);
            }
            ctl.saved_gfp = gfp;
            if !direct {
                ctl.flags &= !LO_FLAGS_DIRECT_IO;
            }
            drop(frozen);
            (old, ctl.flags & LO_FLAGS_PARTSCAN != 0)
        };
        drop(old);
        if partscan {
            self.rescan(&disk);
        }
        disk.uevent_change();
        Ok(())
    }

    /// `loop_set_capacity()`.
    fn set_capacity(&self) -> Result {
        let ctl = self.ctl.lock();
        if ctl.state != State::Bound {
            return Err(ENXIO);
        }
        let io = self.io.lock();
        let sectors = size_sectors(ctl.offset, ctl.sizelimit, io.file().ok_or(ENXIO)?);
        drop(io);
        self.disk()?.set_capacity(sectors);
        Ok(())
    }

    /// Switches direct I/O; returns whether it is now what was asked.
    fn update_direct_io(&self, ctl: &mut Ctl, disk: &Disk, want: bool) -> Result<bool> {
        let file = self.backing_file().ok_or(ENXIO)?;
        let direct = want && can_direct_io(&file, ctl.offset, disk.block_size());
        if self.io.lock().direct != direct {
            // Write back what buffered I/O left in the page cache first.
            let _ = file.fsync();
            let _frozen = disk.freeze();
            self.io.lock().direct = direct;
        }
        if direct {
            ctl.flags |= LO_FLAGS_DIRECT_IO;
        } else {
            ctl.flags &= !LO_FLAGS_DIRECT_IO;
        }
        Ok(direct == want)
    }

    /// `loop_set_dio()`.
    fn set_direct_io(&self, want: bool) -> Result {
        let disk = self.disk()?;
        let mut ctl = self.ctl.lock();
        if ctl.state != State::Bound {
            return Err(ENXIO);
        }
        if self.update_direct_io(&mut ctl, &disk, want)? {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// `loop_set_block_size()`.
    fn set_block_size(&self, bdev: &Bdev, mode: u32, arg: usize) -> Result {
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let disk = self.disk()?;
        let mut ctl = self.ctl.lock();
        if ctl.state != State::Bound {
            return Err(ENXIO);
        }
        let block_size = u32::try_from(arg).map_err(|_| EINVAL)?;
        if !valid_block_size(block_size) {
            return Err(EINVAL);
        }
        if disk.block_size() == block_size {
            return Ok(());
        }
        bdev.sync_and_invalidate();
        let (max_discard, granularity, write_cache) = {
            let io = self.io.lock();
            let file = io.file().ok_or(ENXIO)?;
            let (d, g) = discard_config(file);
            (d, g, file.can_fsync() && !io.read_only)
        };
        let result = {
            let _frozen = disk.freeze();
            disk.set_limits(block_size, max_discard, granularity, write_cache)
        };
        let want = ctl.flags & LO_FLAGS_DIRECT_IO != 0;
        self.update_direct_io(&mut ctl, &disk, want)?;
        result
    }

    /// Serves one request from the workqueue (`do_req_filebacked()`).
    /// Returns 0 or a negative errno for the block layer.
    pub(crate) fn do_request(&self, rq: &Request) -> i32 {
        let (backing, offset, read_only, direct) = {
            let io = self.io.lock();
            match &io.backing {
                Some(backing) => (backing.clone(), io.offset, io.read_only, io.direct),
                None => return EIO.to_errno(),
            }
        };
        let info = rq.info();
        let write = info.op != bindings::req_op_REQ_OP_READ;
        if write && read_only {
            return EIO.to_errno();
        }
        // Permission and capability checks in the backing filesystem see
        // the binder, not this kernel worker.
        let _creds = backing.cred.override_current();
        let file = &backing.file;
        // Flush requests carry no position (their sector is all ones).
        let pos = || info.pos.checked_add(offset).ok_or(EIO);
        let result = match info.op {
            bindings::req_op_REQ_OP_READ => {
                match pos().and_then(|p| rq.transfer(file, p, false, direct)) {
                    Ok(n) if n == info.bytes => Ok(()),
                    Ok(n) => {
                        // Past the end of the backing file.
                        rq.zero_from(n);
                        Err(EIO)
                    }
                    Err(err) => Err(err),
                }
            }
            bindings::req_op_REQ_OP_WRITE => {
                // The binder's RLIMIT_FSIZE (no SIGXFSZ: this is not its task).
                let within_limit = |p: u64| match p.checked_add(u64::from(info.bytes)) {
                    Some(end) if end <= backing.fsize_limit => Ok(p),
                    _ => Err(EIO),
                };
                match pos()
                    .and_then(within_limit)
                    .and_then(|p| rq.transfer(file, p, true, direct))
                {
                    Ok(n) if n == info.bytes => Ok(()),
                    Ok(_) => Err(EIO),
                    Err(err) => Err(err),
                }
            }
            bindings::req_op_REQ_OP_FLUSH => match file.fsync() {
                Err(err) if err != EINVAL => Err(EIO),
                _ => Ok(()),
            },
            bindings::req_op_REQ_OP_DISCARD | bindings::req_op_REQ_OP_WRITE_ZEROES => {
                let mode = if info.op == bindings::req_op_REQ_OP_WRITE_ZEROES && info.nounmap {
                    FALLOC_FL_ZERO_RANGE
                } else {
                    FALLOC_FL_PUNCH_HOLE
                };
                match pos().and_then(|p| {
                    file.fallocate(mode | FALLOC_FL_KEEP_SIZE, p, u64::from(info.bytes))
                }) {
                    Err(err) if err == sys::eopnotsupp() || err == EINVAL => Err(sys::eopnotsupp()),
                    Err(_) => Err(EIO),
                    Ok(()) => Ok(()),
                }
            }
            _ => Err(EIO),
        };
        match result {
            Ok(()) => 0,
            Err(err) => err.to_errno(),
        }
    }
}
