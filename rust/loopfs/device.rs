// SPDX-License-Identifier: GPL-2.0

//! One loop device of an instance: its lifecycle, the loop ioctls with
//! loop.c's semantics and errnos, and file-backed I/O.
//!
//! # Lifecycle
//!
//! A device's whole state is one [`State`] behind one mutex. The owner of
//! its gendisk ([`OwnedDisk`]) lives inside the states in which the disk
//! exists, so nothing reaches the disk once removal has begun, and every
//! transition that starts a teardown moves what it tears down out of the
//! state under the lock: a second teardown finds nothing to tear down. The
//! disk is deleted by dropping its owner, with no loopfs lock held.
//!
//! Callbacks of the disk (open, release, ioctls, requests, sysfs) borrow it
//! for their duration. Requests and sysfs readers see only [`Io`], a
//! snapshot under a spinlock that the state mutex's holder publishes, so
//! that they never wait for an ioctl.
//!
//! Lock order: the disk's `open_mutex`, then a device's state, or then the
//! instance's lock; a device's state and the instance's lock are never held
//! together; the I/O spinlock is innermost. `open_mutex` is never taken with
//! a state held: partition rescans run after it is dropped.
//!
//! Devices do not pin the module. Those of an unmounted instance that could
//! not be removed at once (open, or being detached) are *orphans*: the
//! [`Registry`] keeps them, their last close removes them from a work queue
//! that module exit drains, and module exit removes whatever is left.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use kernel::{
    bindings,
    error::code::*,
    new_spinlock, new_work,
    prelude::*,
    rbtree::{Entry, RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{Arc, Mutex, SpinLock},
    uaccess::UserSlice,
    workqueue::{impl_has_work, Work, WorkItem},
};

use crate::sys::{
    self, Bdev, Cred, Disk, FileRef, KillableMutex, Limits, OwnedDisk, Request, UserNs,
};
use crate::uapi::*;
use crate::Instance;

use crate::sys::ffi::{self, LOOPFS_BLK_OPEN_WRITE as BLK_OPEN_WRITE};
use ffi::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE};

const SECTOR_SHIFT: u32 = bindings::SECTOR_SHIFT;

/// Partitions that get a node in the instance: `loopNp1` to `loopNp64`.
pub(crate) const MAX_PART_NODES: usize = 64;

/// How many devices exist, in all and per user namespace, and the orphans.
pub(crate) struct Counts {
    total: u32,
    /// Devices of the instances of a namespace and its descendants, keyed by
    /// the namespace's address; only namespaces with devices are here.
    per_ns: RBTree<usize, u32>,
    /// Devices of the instances of all namespaces a host user other than
    /// root made (`container_user()`), keyed by the global uid;
    /// only users with devices are here.
    per_user: RBTree<u32, u32>,
    /// When the next partition scan of the devices of each container is
    /// due (`scan_turn()`); only containers with devices are here.
    scans: RBTree<ScanKey, u64>,
    /// Devices of unmounted instances not removed yet, by address.
    orphans: RBTree<usize, Arc<Device>>,
}

/// The module's registry, set while the module is loaded.
static COUNTS: core::sync::atomic::AtomicPtr<Mutex<Counts>> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Owns the registry; the module holds it from init to exit.
pub(crate) struct Registry {
    counts: Arc<Mutex<Counts>>,
}

impl Registry {
    pub(crate) fn new() -> Result<Self> {
        let counts = Arc::pin_init(
            kernel::new_mutex!(Counts {
                total: 0,
                per_ns: RBTree::new(),
                per_user: RBTree::new(),
                scans: RBTree::new(),
                orphans: RBTree::new(),
            }),
            GFP_KERNEL,
        )?;
        COUNTS.store(
            core::ptr::from_ref::<Mutex<Counts>>(&counts).cast_mut(),
            core::sync::atomic::Ordering::Release,
        );
        Ok(Registry { counts })
    }

    /// Module exit, once nothing else runs loopfs code: removes the orphans
    /// left. Returns how many devices still exist (none, if all is well).
    pub(crate) fn remove_orphans(&self) -> u32 {
        loop {
            let orphan = {
                let mut counts = self.counts.lock();
                let Some(cursor) = counts.orphans.cursor_front() else {
                    break;
                };
                let (_, node) = cursor.remove_current();
                node.to_key_value().1
            };
            // Outside the lock: the last reference may go here.
            orphan.reap();
        }
        self.counts.lock().total
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        COUNTS.store(core::ptr::null_mut(), core::sync::atomic::Ordering::Release);
    }
}

fn counts() -> Result<&'static Mutex<Counts>> {
    let counts = COUNTS.load(core::sync::atomic::Ordering::Acquire);
    // SAFETY: The pointer is set at module init, before the filesystem is
    // registered, and cleared at module exit, after it is unregistered, the
    // removal queue is drained and the orphans are removed: devices are made
    // and dropped only in between, while the `Registry` owns the counts.
    unsafe { counts.as_ref() }.ok_or(ENODEV)
}

/// Makes `dev`, which has left its instance, an orphan: its last close
/// removes it, and module exit does if nothing else did. An allocation
/// failure only loses the latter safety net.
pub(crate) fn orphan_add(dev: &Arc<Device>) {
    dev.orphan.store(true, Ordering::Release);
    let key = core::ptr::from_ref::<Device>(dev) as usize;
    if let Ok(node) = RBTreeNode::new(key, dev.clone(), GFP_KERNEL) {
        if let Ok(counts) = counts() {
            let old = counts.lock().orphans.insert(node);
            drop(old);
        }
    }
}

fn orphan_remove(dev: &Device) {
    let key = core::ptr::from_ref::<Device>(dev) as usize;
    let orphan = counts().ok().and_then(|c| c.lock().orphans.remove(&key));
    // Outside the lock: this may be the last reference.
    drop(orphan);
}

/// One device counted against `max_devices`, `max_devices_per_userns`,
/// `max_devices_per_user` and the reserve of the initial namespace.
pub(crate) struct DeviceSlot {
    /// The instance's namespace: the counts of it and its ancestors.
    ns: UserNs,
}

/// The host user whose containers' count an instance of `ns` adds to: the
/// owner of the outermost namespace of its lineage that root did not make.
/// None when root made them all: those containers are the host's to bound
/// (`max_devices_per_userns` each). Not the outermost one's owner alone: a
/// setuid-root helper makes namespaces owned by root for any user.
fn container_user(ns: &UserNs) -> Option<u32> {
    ns.owners().filter(|&uid| uid != 0).last()
}

/// Whose partition scans an instance's are, paced together: those of the
/// instances below one outermost namespace (below the initial one), keyed
/// by the host user who made it, whose namespaces are all paced together,
/// or, where root made it (a container manager), by that namespace. Not by
/// the owner of an inner namespace: inside a container whose namespace root
/// made, any of the container's users makes namespaces of its own. None
/// for the host's own instances.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ScanKey {
    User(u32),
    Ns(usize),
}

/// `ns`'s key; None for the initial namespace.
fn scan_key(ns: &UserNs) -> Option<ScanKey> {
    let outermost = ns.lineage().last()?;
    match ns.owners().last() {
        Some(uid) if uid != 0 => Some(ScanKey::User(uid)),
        _ => Some(ScanKey::Ns(outermost)),
    }
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
        // Every count is checked, and a node for it allocated, before any
        // is changed: a refusal or a failure leaves nothing behind.
        let mut ns_nodes = KVec::new();
        for key in ns.lineage() {
            if counts.per_ns.get(&key).copied().unwrap_or(0) >= per_ns {
                return Err(ENOSPC);
            }
            ns_nodes.push((key, RBTreeNodeReservation::new(GFP_KERNEL)?), GFP_KERNEL)?;
        }
        // One host user's containers share a bound: else each new user
        // namespace it makes would bring `max_devices_per_userns` more.
        let user_node = match container_user(ns) {
            Some(uid)
                if counts.per_user.get(&uid).copied().unwrap_or(0)
                    >= sys::max_devices_per_user() =>
            {
                return Err(ENOSPC)
            }
            Some(uid) => Some((uid, RBTreeNodeReservation::new(GFP_KERNEL)?)),
            None => None,
        };
        let scan_node = match scan_key(ns) {
            Some(key) => Some((key, RBTreeNodeReservation::new(GFP_KERNEL)?)),
            None => None,
        };
        for (key, node) in ns_nodes {
            count(&mut counts.per_ns, key, node);
        }
        if let Some((uid, node)) = user_node {
            count(&mut counts.per_user, uid, node);
        }
        if let Some((key, node)) = scan_node {
            if counts.scans.get(&key).is_none() {
                counts.scans.insert(node.into_node(key, 0));
            }
        }
        counts.total += 1;
        Ok(DeviceSlot { ns: ns.clone_ref() })
    }
}

/// The partition scans of a container (`ScanKey`): after a burst of
/// `SCAN_BURST`, one per `SCAN_INTERVAL_NS`. A scan logs through the block
/// layer, without a rate limit: a line per table, and a warning per entry
/// past the disk's end (up to 255 for a crafted table).
const SCAN_BURST: u64 = 16;
const SCAN_INTERVAL_NS: u64 = 50_000_000;

/// How long a scan may wait for its turn at most: a container that keeps
/// more scans waiting (tasks it killed keep theirs) gets `EAGAIN`.
const SCAN_WAIT_MAX_NS: u64 = 10_000_000_000;

/// Waits, killably (`EINTR`), for the turn of a partition scan of a device
/// of an instance of `ns`, holding nothing that others wait for; `EAGAIN`
/// if that turn is more than `SCAN_WAIT_MAX_NS` away. The host's own scans
/// do not wait, nor do the host administrator's of a container's device (a
/// container manager's `losetup -P`).
fn scan_turn(ns: &UserNs) -> Result {
    let Some(key) = scan_key(ns) else {
        return Ok(());
    };
    if sys::host_admin() {
        return Ok(());
    }
    let wait = {
        let mut counts = counts()?.lock();
        let Some(next) = counts.scans.get_mut(&key) else {
            return Ok(());
        };
        // When the scans so far would have ended one an interval; the
        // burst is how far ahead of now that may be.
        let now = sys::now_ns();
        let due = (*next).max(now) + SCAN_INTERVAL_NS;
        let wait = (due - now).saturating_sub(SCAN_BURST * SCAN_INTERVAL_NS);
        if wait > SCAN_WAIT_MAX_NS {
            return Err(EAGAIN);
        }
        *next = due;
        wait
    };
    if wait == 0 {
        return Ok(());
    }
    sys::sleep_killable(wait)
}

/// Adds one device to `key`'s count; `node` becomes the key's if it is new.
fn count<K: Ord>(tree: &mut RBTree<K, u32>, key: K, node: RBTreeNodeReservation<K, u32>) {
    match tree.entry(key) {
        Entry::Occupied(mut n) => *n.get_mut() += 1,
        Entry::Vacant(n) => {
            n.insert(1, node);
        }
    }
}

/// Takes one device off `key`'s count, and the key with its last.
fn uncount<K: Ord>(tree: &mut RBTree<K, u32>, key: K) {
    match tree.get_mut(&key) {
        Some(n) if *n > 1 => *n -= 1,
        _ => {
            tree.remove(&key);
        }
    }
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        if let Ok(counts) = counts() {
            let mut counts = counts.lock();
            counts.total -= 1;
            for key in self.ns.lineage() {
                uncount(&mut counts.per_ns, key);
            }
            if let Some(uid) = container_user(&self.ns) {
                uncount(&mut counts.per_user, uid);
            }
            // A key's pacing goes once it has neither devices nor turns
            // ahead: turns outlive the last device, so that removing and
            // adding devices gives no new burst.
            let now = sys::now_ns();
            let counts = &mut *counts;
            let mut cursor = counts.scans.cursor_front();
            while let Some(cur) = cursor {
                let (key, next) = cur.current();
                let idle = *next <= now
                    && match *key {
                        ScanKey::User(uid) => counts.per_user.get(&uid).is_none(),
                        ScanKey::Ns(ns) => counts.per_ns.get(&ns).is_none(),
                    };
                cursor = if idle {
                    cur.remove_current().0
                } else {
                    cur.move_next()
                };
            }
        }
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

/// What `loop_info64` configures.
#[derive(Clone, Copy)]
struct Params {
    offset: u64,
    sizelimit: u64,
    flags: u32,
    file_name: [u8; LO_NAME_SIZE],
}

impl Params {
    /// `loop_set_status_from_info()`.
    fn from_info(info: &LoopInfo64) -> Result<Self> {
        if info.lo_encrypt_key_size > LO_KEY_SIZE || info.lo_encrypt_type != LO_CRYPT_NONE {
            return Err(EINVAL);
        }
        if info.lo_offset > i64::MAX as u64 || info.lo_sizelimit > i64::MAX as u64 {
            return Err(sys::eoverflow());
        }
        let mut file_name = info.lo_file_name;
        file_name[LO_NAME_SIZE - 1] = 0;
        Ok(Params {
            offset: info.lo_offset,
            sizelimit: info.lo_sizelimit,
            flags: info.lo_flags,
            file_name,
        })
    }

    fn read_only(&self) -> bool {
        self.flags & LO_FLAGS_READ_ONLY != 0
    }

    fn direct(&self) -> bool {
        self.flags & LO_FLAGS_DIRECT_IO != 0
    }

    fn partscan(&self) -> bool {
        self.flags & LO_FLAGS_PARTSCAN != 0
    }
}

/// A bound device's configuration.
struct Binding {
    params: Params,
    backing: Arc<Backing>,
    /// The backing file's allocation mask before it was attached.
    saved_gfp: bindings::gfp_t,
    /// Whether the `loop/` sysfs attributes are there.
    sysfs: bool,
    /// `LOOP_CLR_FD` with one opener: detach on its close, open for nobody.
    rundown: bool,
}

type Owned = OwnedDisk<Arc<Device>>;

/// Everything a device is, under its one mutex.
enum State {
    /// The disk is being made.
    New,
    /// No backing file.
    Unbound(Owned),
    /// Serving a backing file.
    Bound(Owned, Binding),
    /// The one task that moved it here detaches the backing file.
    Rundown(Owned),
    /// Removal has begun: the disk is gone or going.
    Deleting,
}

impl State {
    fn owned(&self) -> Option<&Owned> {
        match self {
            State::Unbound(d) | State::Bound(d, _) | State::Rundown(d) => Some(d),
            State::New | State::Deleting => None,
        }
    }

    /// The configuration of a bound device that is not being detached.
    fn binding(&mut self) -> Result<&mut Binding> {
        match self {
            State::Bound(_, b) if !b.rundown => Ok(b),
            _ => Err(ENXIO),
        }
    }

    /// `Unbound` to `Bound`; gives the binding back in any other state.
    fn bind(&mut self, binding: Binding) -> core::result::Result<(), Binding> {
        match core::mem::replace(self, State::Deleting) {
            State::Unbound(disk) => {
                *self = State::Bound(disk, binding);
                Ok(())
            }
            other => {
                *self = other;
                Err(binding)
            }
        }
    }

    /// `Bound` to `Rundown` if `detach` says so: the caller gets the binding
    /// and must detach it, then call [`State::finish_rundown`].
    fn start_rundown(&mut self, detach: impl FnOnce(&Binding) -> bool) -> Option<Binding> {
        match core::mem::replace(self, State::Deleting) {
            State::Bound(disk, binding) if detach(&binding) => {
                *self = State::Rundown(disk);
                Some(binding)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    fn finish_rundown(&mut self) {
        match core::mem::replace(self, State::Deleting) {
            State::Rundown(disk) => *self = State::Unbound(disk),
            other => *self = other,
        }
    }

    /// To `Deleting` if nobody has the disk open and it is unbound (or
    /// bound, with `bound_ok`): `EBUSY` otherwise, `ENXIO` if there is no
    /// disk. The caller holds the disk's `open_mutex`.
    fn start_removal(&mut self, bound_ok: bool) -> Result<Removal> {
        let idle = |disk: &Owned| disk.disk().openers() == 0;
        match core::mem::replace(self, State::Deleting) {
            State::Unbound(disk) if idle(&disk) => Ok(Removal {
                disk,
                binding: None,
            }),
            State::Bound(disk, binding) if bound_ok && !binding.rundown && idle(&disk) => {
                Ok(Removal {
                    disk,
                    binding: Some(binding),
                })
            }
            other => {
                let err = match other {
                    State::New | State::Deleting => ENXIO,
                    _ => EBUSY,
                };
                *self = other;
                Err(err)
            }
        }
    }
}

/// A removal that [`State::start_removal`] started: [`Removal::finish`]
/// deletes the disk and then lets the backing file go.
pub(crate) struct Removal {
    disk: Owned,
    binding: Option<Binding>,
}

impl Removal {
    /// Call with no loopfs lock held.
    pub(crate) fn finish(self) {
        let Removal { disk, binding } = self;
        // Deletes the disk: drains its requests, which hold the file.
        drop(disk);
        if let Some(binding) = binding {
            binding.backing.file.restore_gfp(binding.saved_gfp);
        }
    }
}

/// What the I/O path and the sysfs attributes read; published by the holder
/// of the state mutex. Changes that must not race with requests freeze the
/// queue around the publication.
struct Io {
    backing: Option<Arc<Backing>>,
    offset: u64,
    sizelimit: u64,
    flags: u32,
    /// Detach pending (`LOOP_CLR_FD`): as loop.c, no more I/O.
    rundown: bool,
    /// Whether reads (0) and writes (1) are tried in `queue_rq()`.
    nowait: [bool; 2],
}

impl Io {
    const UNBOUND: Io = Io {
        backing: None,
        offset: 0,
        sizelimit: 0,
        flags: 0,
        rundown: false,
        nowait: [false; 2],
    };
}

/// The largest buffered read or write tried in the submitter.
const INLINE_COPY_MAX: u32 = 64 << 10;

/// Whether a read or write (`write`) is worth trying in the submitter with
/// `IOCB_NOWAIT`: the file must take it. Not for direct I/O on a device that
/// does its I/O in the submission (a RAM disk): there the submitter would do
/// all of the copying itself, where a worker does it beside the submitter.
fn try_nowait(file: &FileRef, write: bool, direct: bool) -> bool {
    file.nowait(write, direct) && !(direct && file.bdev_synchronous())
}

/// What the sysfs `loop/` attributes show.
pub(crate) struct Info {
    pub(crate) file: Option<FileRef>,
    pub(crate) offset: u64,
    pub(crate) sizelimit: u64,
    pub(crate) flags: u32,
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
/// a control operation, and one from the device's worker would resolve what
/// it names (a pid in resctrl's `tasks`) in the worker's namespaces, not the
/// container's.
const PSEUDO_FS_MAGICS: [u32; 15] = [
    ffi::SYSFS_MAGIC,
    ffi::PROC_SUPER_MAGIC,
    ffi::DEBUGFS_MAGIC,
    ffi::SECURITYFS_MAGIC,
    ffi::LOOPFS_CONFIGFS_MAGIC,
    ffi::CGROUP_SUPER_MAGIC,
    ffi::CGROUP2_SUPER_MAGIC,
    ffi::BPF_FS_MAGIC,
    ffi::TRACEFS_MAGIC,
    ffi::EFIVARFS_MAGIC,
    ffi::PSTOREFS_MAGIC,
    ffi::SELINUX_MAGIC,
    ffi::SMACK_MAGIC,
    ffi::BINFMTFS_MAGIC,
    ffi::RDTGROUP_SUPER_MAGIC,
];

/// `loop_check_backing_file()`, and what a device of an unprivileged
/// container must not be given: a file not open for reading (its data would
/// be readable through the device), an append-only file to write to, a kernel
/// interface file, or, outside the host's instances, a FUSE file.
fn check_backing_file(file: &FileRef, host: bool) -> Result {
    if !file.opened_for_read() {
        return Err(EBADF);
    }
    if !file.can_read_iter() || (file.opened_for_write() && !file.can_write_iter()) {
        return Err(EINVAL);
    }
    // An append-only file opened for writing (which needs O_APPEND): the
    // device would write anywhere in it.
    if file.opened_for_write() && file.append_only() {
        return Err(EPERM);
    }
    if PSEUDO_FS_MAGICS
        .iter()
        .any(|&m| u64::from(m) == file.fs_magic())
    {
        return Err(EINVAL);
    }
    // A filesystem an unprivileged user serves: its I/O can wait on that
    // user for ever, and with it the device's writeback, its removal and the
    // host's sync(2). FUSE in a user namespace is that; so is FUSE in the
    // initial one, which fusermount mounts for any user, whose daemon the
    // container may be or control.
    if file.on_untrusted_fs() || (!host && file.fs_magic() == u64::from(ffi::FUSE_SUPER_MAGIC)) {
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

/// Device ids: never reused, so a node of a removed device can never open
/// another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[pin_data]
pub(crate) struct Device {
    /// Unique among all devices ever made; the instance's nodes carry it.
    pub(crate) id: u64,
    /// Number within the instance: the node is `loop<number>`.
    pub(crate) number: u32,
    /// No longer in its instance: removed once idle.
    orphan: AtomicBool,
    pub(crate) instance: Arc<Instance>,
    #[pin]
    state: KillableMutex<State>,
    #[pin]
    io: SpinLock<Io>,
    #[pin]
    reap: Work<Device>,
    _slot: DeviceSlot,
}

impl_has_work! {
    impl HasWork<Self> for Device { self.reap }
}

/// Removes an orphan once it is idle, outside the release path (which holds
/// the disk's `open_mutex` that removal takes).
impl WorkItem for Device {
    type Pointer = Arc<Device>;

    fn run(this: Arc<Device>) {
        this.reap();
    }
}

impl Device {
    /// Makes device `number` of `instance` with its disk, unbound.
    pub(crate) fn new(number: u32, instance: Arc<Instance>) -> Result<Arc<Self>> {
        let slot = DeviceSlot::reserve(&instance.user_ns)?;
        let dev = Arc::pin_init(
            pin_init!(Device {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                number,
                orphan: AtomicBool::new(false),
                instance,
                state <- KillableMutex::new(
                    State::New,
                    kernel::c_str!("loopfs::Device::state"),
                    kernel::static_lock_class!(),
                ),
                io <- new_spinlock!(Io::UNBOUND),
                reap <- new_work!("loopfs::Device::reap"),
                _slot: slot,
            }),
            GFP_KERNEL,
        )?;
        let disk = OwnedDisk::new(dev.clone())?;
        *dev.state.lock_uninterruptible() = State::Unbound(disk);
        Ok(dev)
    }

    /// The device number of the disk, while there is one.
    pub(crate) fn devt(&self) -> Result<bindings::dev_t> {
        let state = self.state.lock_uninterruptible();
        state.owned().map(|d| d.disk().devt()).ok_or(ENXIO)
    }

    /// Starts removing the device if nobody has it open and it is unbound
    /// (or bound, with `bound_ok`; `loop_control_remove()`): `EBUSY`
    /// otherwise, `ENXIO` if removal has begun already.
    pub(crate) fn start_removal(&self, bound_ok: bool) -> Result<Removal> {
        // The open_mutex first (lock order), through a counted reference:
        // with it held, no opener can come between the check and the claim.
        let counted = {
            let state = self.state.lock_uninterruptible();
            state.owned().map(OwnedDisk::counted).ok_or(ENXIO)?
        };
        let _open = counted.lock_open();
        let removal = self.state.lock_uninterruptible().start_removal(bound_ok)?;
        // Requests in flight keep their own reference to the backing file.
        self.io.lock().backing = None;
        Ok(removal)
    }

    /// Removes an orphan if it is idle; a busy one is reaped on its next
    /// last close.
    pub(crate) fn reap(&self) {
        match self.start_removal(true) {
            Ok(removal) => {
                removal.finish();
                orphan_remove(self);
            }
            Err(err) if err == ENXIO => orphan_remove(self),
            Err(_) => {}
        }
    }

    /// Opens only for a task whose user namespace is the instance's or below
    /// it, or that is privileged over the instance's (host root). An
    /// instance of the initial namespace is the host's: below it are the
    /// containers, so its devices open only in the initial namespace. To
    /// others, whatever node they made for it, the device does not exist.
    pub(crate) fn visible(&self) -> bool {
        self.inside() || self.instance.user_ns.capable_sys_admin()
    }

    /// Whether the current task is in the instance's namespaces: the
    /// instance's or one below it; for the host's instance, the initial one.
    fn inside(&self) -> bool {
        let ns = &self.instance.user_ns;
        if ns.is_init() {
            ns.is_current()
        } else {
            ns.current_in()
        }
    }

    /// `lo_open()`, with `mode` (`BLK_OPEN_*`), through a node of an
    /// instance (`through_node`) or another. A container's devices open in
    /// its namespaces; from outside them, for tasks with `CAP_SYS_ADMIN`
    /// over them (host root), only through the instance's nodes or
    /// exclusively (`O_EXCL`): not for the host's udev handling the disk's
    /// add uevent, nor a scanner, opening the host's node. Those would
    /// read what the container bound meanwhile as host root (blkid, LVM and
    /// RAID auto-assembly of container data).
    pub(crate) fn open(&self, mode: u32, through_node: bool) -> Result {
        let exclusive = mode & sys::BLK_OPEN_EXCL != 0;
        if !self.inside()
            && !(self.instance.user_ns.capable_sys_admin() && (through_node || exclusive))
        {
            return Err(ENXIO);
        }
        match &*self.state.lock()? {
            State::Unbound(_) => Ok(()),
            State::Bound(_, binding) if !binding.rundown => Ok(()),
            _ => Err(ENXIO),
        }
    }

    /// The last opener closed the device (`lo_release()`); the disk's
    /// `open_mutex` is held.
    pub(crate) fn last_close(self: &Arc<Self>, disk: Disk<'_>) {
        let detach = self
            .state
            .lock_uninterruptible()
            .start_rundown(|b| b.rundown || b.params.flags & LO_FLAGS_AUTOCLEAR != 0);
        if let Some(binding) = detach {
            self.detach(disk, binding, true);
            self.state.lock_uninterruptible().finish_rundown();
        }
        if self.orphan.load(Ordering::Acquire) {
            // Removal takes open_mutex, so it runs elsewhere.
            let _ = sys::reap_queue().enqueue(self.clone());
        }
    }

    /// Publishes a binding's parameters to the I/O path.
    fn publish(&self, disk: Disk<'_>, binding: &Binding) {
        let file = &binding.backing.file;
        let direct = binding.params.direct();
        disk.set_buffered(!direct);
        let nowait = [
            try_nowait(file, false, direct),
            try_nowait(file, true, direct),
        ];
        let mut io = self.io.lock();
        io.nowait = nowait;
        io.backing = Some(binding.backing.clone());
        io.offset = binding.params.offset;
        io.sizelimit = binding.params.sizelimit;
        io.flags = binding.params.flags;
        io.rundown = binding.rundown;
    }

    /// Detaches the backing file (`__loop_clr_fd()`); the state is `Rundown`,
    /// owned by the caller.
    fn detach(&self, disk: Disk<'_>, binding: Binding, open_mutex_held: bool) {
        {
            let _frozen = disk.freeze();
            *self.io.lock() = Io::UNBOUND;
        }
        // As loop.c, only the block size goes back to its default.
        let _ = disk.reset_block_size();
        disk.invalidate();
        if binding.sysfs {
            disk.sysfs_remove();
        }
        disk.uevent_change();
        disk.force_media_change();
        let partscan = binding.params.partscan();
        if partscan {
            // The device is going away: a failed rescan changes nothing.
            let _ = disk.rescan(open_mutex_held);
        }
        disk.set_partscan(false);
        if partscan {
            self.instance.sync_partition_nodes(self, disk);
        }
        binding.backing.file.restore_gfp(binding.saved_gfp);
        // The file goes with the binding, with no lock held: the last
        // fput() may take locks.
    }

    pub(crate) fn info(&self) -> Info {
        let io = self.io.lock();
        Info {
            file: io.backing.as_ref().map(|b| b.file.clone_ref()),
            offset: io.offset,
            sizelimit: io.sizelimit,
            flags: io.flags,
        }
    }

    /// A block ioctl that the block layer passed on (`lo_ioctl()`).
    pub(crate) fn ioctl(&self, bdev: &Bdev, mode: u32, cmd: u32, arg: usize) -> Result<i32> {
        let user = |len| UserSlice::new(arg, len);
        match cmd {
            LOOP_GET_STATUS => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let old = self.status()?.to_old().ok_or_else(sys::eoverflow)?;
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
        let disk = bdev.disk()?;
        match cmd {
            LOOP_SET_FD => self.configure(bdev, disk, mode, &LoopConfig::with_fd(arg as u32)),
            LOOP_CONFIGURE => {
                let config: LoopConfig =
                    user(core::mem::size_of::<LoopConfig>()).reader().read()?;
                self.configure(bdev, disk, mode, &config)
            }
            LOOP_CHANGE_FD => self.change_fd(disk, arg as u32),
            LOOP_CLR_FD => self.clr_fd(disk),
            LOOP_SET_STATUS => {
                let old: LoopInfo = user(core::mem::size_of::<LoopInfo>()).reader().read()?;
                self.set_status(disk, &LoopInfo64::from_old(&old))
            }
            LOOP_SET_STATUS64 => {
                let info: LoopInfo64 = user(core::mem::size_of::<LoopInfo64>()).reader().read()?;
                self.set_status(disk, &info)
            }
            LOOP_SET_CAPACITY => self.set_capacity(disk),
            LOOP_SET_DIRECT_IO => self.set_direct_io(disk, arg != 0),
            LOOP_SET_BLOCK_SIZE => self.set_block_size(bdev, disk, mode, arg),
            _ => Err(EINVAL),
        }
        .map(|()| 0)
    }

    /// A block ioctl of a 32-bit program (`lo_compat_ioctl()`): the legacy
    /// status calls convert `struct compat_loop_info`, the pointer-taking
    /// ones get their pointer converted, the others are the same.
    #[cfg(CONFIG_COMPAT)]
    pub(crate) fn compat_ioctl(&self, bdev: &Bdev, mode: u32, cmd: u32, arg: usize) -> Result<i32> {
        let user = || UserSlice::new(arg, core::mem::size_of::<CompatLoopInfo>());
        match cmd {
            LOOP_SET_STATUS => {
                if !self.instance.user_ns.capable_sys_admin() {
                    return Err(EPERM);
                }
                let compat: CompatLoopInfo = user().reader().read()?;
                self.set_status(bdev.disk()?, &compat.to_info64())
                    .map(|()| 0)
            }
            LOOP_GET_STATUS => {
                if arg == 0 {
                    return Err(EINVAL);
                }
                let info = self.status()?;
                let compat = CompatLoopInfo::from_info64(&info).ok_or_else(sys::eoverflow)?;
                user().writer().write(&compat)?;
                Ok(0)
            }
            LOOP_SET_CAPACITY | LOOP_CLR_FD | LOOP_GET_STATUS64 | LOOP_SET_STATUS64
            | LOOP_CONFIGURE => self.ioctl(bdev, mode, cmd, sys::compat_ptr(arg)),
            LOOP_SET_FD | LOOP_CHANGE_FD | LOOP_SET_BLOCK_SIZE | LOOP_SET_DIRECT_IO => {
                self.ioctl(bdev, mode, cmd, arg)
            }
            _ => Err(sys::enoioctlcmd()),
        }
    }

    /// Rejects the device itself, loopfs disks and files on filesystems on
    /// them as backing files (`loop_validate_file()` without stacking).
    fn validate_file(file: &FileRef, disk: Disk<'_>) -> Result {
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
        // Nor through a filesystem on a loopfs disk (which the host may
        // mount for a container): a device backed by a file on a
        // filesystem on itself, directly or through others, would wait for
        // its own requests for ever.
        if file.on_loopfs_fs() {
            return Err(EINVAL);
        }
        Ok(())
    }

    /// `LOOP_SET_FD` and `LOOP_CONFIGURE` (`loop_configure()`).
    fn configure(&self, bdev: &Bdev, disk: Disk<'_>, mode: u32, config: &LoopConfig) -> Result {
        let file = FileRef::fget(config.fd)?;
        check_backing_file(&file, self.instance.user_ns.is_init())?;
        // A partition scan's turn is waited for before the device is
        // claimed: exclusive openers wait for the claim, uninterruptibly.
        self.scan_turn_if(config.info.lo_flags & LO_FLAGS_PARTSCAN != 0)?;
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let partscan = {
            let mut state = self.state.lock()?;
            match &*state {
                State::Unbound(_) => {}
                State::Bound(..) | State::Rundown(_) => return Err(EBUSY),
                State::New | State::Deleting => return Err(ENXIO),
            }
            Self::validate_file(&file, disk)?;
            if config.info.lo_flags & !CONFIGURE_SETTABLE_FLAGS != 0 {
                return Err(EINVAL);
            }
            if config.block_size != 0 && !valid_block_size(config.block_size) {
                return Err(EINVAL);
            }
            let params = Params::from_info(&config.info)?;
            let binding = self.attach(disk, file, params, mode, config.block_size)?;
            let partscan = binding.params.partscan();
            if state.bind(binding).is_err() {
                return Err(EBUSY);
            }
            partscan
        };
        if partscan {
            self.scan_partitions(disk);
        }
        Ok(())
    }

    /// Waits for the container's turn of a partition scan if `partscan`:
    /// before a call that scans changes anything, so that one refused
    /// (`EAGAIN`) or killed (`EINTR`) changes nothing.
    fn scan_turn_if(&self, partscan: bool) -> Result {
        if partscan {
            scan_turn(&self.instance.user_ns)?;
        }
        Ok(())
    }

    /// Rereads the partition table and shows its partitions in the instance;
    /// the caller had its turn.
    fn scan_partitions(&self, disk: Disk<'_>) {
        // As loop.c: a table that cannot be read leaves the device usable.
        let _ = disk.rescan(false);
        self.instance.sync_partition_nodes(self, disk);
    }

    /// The queue limits for a backing file (`loop_update_limits()`).
    fn limits(file: &FileRef, block_size: u32, read_only: bool) -> Limits {
        let (max_discard_sectors, discard_granularity) = discard_config(file);
        Limits {
            block_size,
            max_discard_sectors,
            discard_granularity,
            write_cache: file.can_fsync() && !read_only,
            rotational: file.bdev_rotational(),
        }
    }

    /// The part of `loop_configure()` after validation, under the state
    /// lock: sets the disk up and returns the binding to store.
    fn attach(
        &self,
        disk: Disk<'_>,
        file: FileRef,
        mut params: Params,
        mode: u32,
        block_size: u32,
    ) -> Result<Binding> {
        let backing = Backing::new(file)?;
        let file = &backing.file;
        if !file.opened_for_write() || mode & BLK_OPEN_WRITE == 0 || !file.can_write_iter() {
            params.flags |= LO_FLAGS_READ_ONLY;
        }
        // As loop.c's `loop_update_dio()`: a file opened with `O_DIRECT`
        // asks for direct I/O too.
        if file.opened_direct() {
            params.flags |= LO_FLAGS_DIRECT_IO;
        }
        // With direct I/O, the backing device's block size by default.
        let block_size = match block_size {
            0 if params.direct() => file.bdev_block_size().unwrap_or(512),
            0 => 512,
            bs => bs,
        };
        disk.set_limits(&Self::limits(file, block_size, params.read_only()))?;

        disk.force_media_change();
        disk.set_read_only(params.read_only());
        if !can_direct_io(file, params.offset, block_size) {
            params.flags &= !LO_FLAGS_DIRECT_IO;
        }
        let sectors = size_sectors(params.offset, params.sizelimit, file);
        let saved_gfp = file.set_nofs();
        let binding = Binding {
            params,
            backing,
            saved_gfp,
            // As loop.c: the device works without the attributes.
            sysfs: disk.sysfs_add().is_ok(),
            rundown: false,
        };
        self.publish(disk, &binding);
        disk.set_capacity(sectors);
        if binding.params.partscan() {
            disk.set_partscan(true);
        }
        disk.uevent_change();
        Ok(binding)
    }

    /// `loop_clr_fd()`: detach on last close.
    fn clr_fd(&self, disk: Disk<'_>) -> Result {
        let mut state = self.state.lock()?;
        let binding = state.binding()?;
        binding.params.flags |= LO_FLAGS_AUTOCLEAR;
        if disk.openers() == 1 {
            binding.rundown = true;
        }
        self.publish(disk, binding);
        Ok(())
    }

    /// `loop_get_status()`.
    fn status(&self) -> Result<LoopInfo64> {
        let mut info = LoopInfo64::zeroed();
        let file = {
            let mut state = self.state.lock()?;
            let binding = state.binding()?;
            info.lo_number = self.number;
            info.lo_offset = binding.params.offset;
            info.lo_sizelimit = binding.params.sizelimit;
            info.lo_flags = binding.params.flags;
            info.lo_file_name = binding.params.file_name;
            binding.backing.file.clone_ref()
        };
        // Outside the lock: this calls into the backing filesystem.
        let ids = file.ids()?;
        info.lo_device = ids.dev;
        info.lo_inode = ids.ino;
        info.lo_rdevice = ids.rdev;
        Ok(info)
    }

    /// `loop_set_status()`.
    fn set_status(&self, disk: Disk<'_>, info: &LoopInfo64) -> Result {
        // Only setting the flag scans (it cannot be cleared).
        let unset = self.io.lock().flags & LO_FLAGS_PARTSCAN == 0;
        self.scan_turn_if(unset && info.lo_flags & LO_FLAGS_PARTSCAN != 0)?;
        let partscan = {
            let mut state = self.state.lock()?;
            let binding = state.binding()?;
            let prev = binding.params;
            let mut params = Params::from_info(info)?;
            params.flags &= SET_STATUS_SETTABLE_FLAGS;
            params.flags |= prev.flags & !SET_STATUS_SETTABLE_FLAGS;
            params.flags |= prev.flags & !SET_STATUS_CLEARABLE_FLAGS;
            let size_changed = prev.offset != params.offset || prev.sizelimit != params.sizelimit;
            if size_changed {
                disk.sync_and_invalidate();
            }
            {
                let _frozen = disk.freeze();
                binding.params = params;
                self.publish(disk, binding);
                if size_changed {
                    let file = &binding.backing.file;
                    disk.set_capacity(size_sectors(params.offset, params.sizelimit, file));
                }
            }
            // The offset may rule direct I/O out now (`__loop_update_dio()`).
            let direct = binding.params.direct();
            self.update_direct_io(binding, disk, direct);
            let newly = params.partscan() && !prev.partscan();
            if newly {
                disk.set_partscan(true);
            }
            newly
        };
        if partscan {
            self.scan_partitions(disk);
        }
        Ok(())
    }

    /// `loop_change_fd()`: swap the file of a read-only device.
    fn change_fd(&self, disk: Disk<'_>, fd: u32) -> Result {
        let file = FileRef::fget(fd)?;
        check_backing_file(&file, self.instance.user_ns.is_init())?;
        let scans = self.io.lock().flags & LO_FLAGS_PARTSCAN != 0;
        self.scan_turn_if(scans)?;
        let (old, partscan) = {
            let mut state = self.state.lock()?;
            let binding = state.binding()?;
            if !binding.params.read_only() {
                return Err(EINVAL);
            }
            Self::validate_file(&file, disk)?;
            let (offset, sizelimit) = (binding.params.offset, binding.params.sizelimit);
            if size_sectors(offset, sizelimit, &file)
                != size_sectors(offset, sizelimit, &binding.backing.file)
            {
                return Err(EINVAL);
            }
            let backing = Backing::new(file)?;
            disk.force_media_change();
            let frozen = disk.freeze();
            if backing.file.opened_direct() {
                binding.params.flags |= LO_FLAGS_DIRECT_IO;
            }
            if !can_direct_io(&backing.file, offset, disk.block_size()) {
                binding.params.flags &= !LO_FLAGS_DIRECT_IO;
            }
            // As loop.c, the old file's mask goes back before the new
            // one's is saved: the two may share a mapping (the same file
            // opened again), whose mask would else stay without
            // __GFP_FS after the detach, and have it while bound.
            binding.backing.file.restore_gfp(binding.saved_gfp);
            binding.saved_gfp = backing.file.set_nofs();
            let old = core::mem::replace(&mut binding.backing, backing);
            self.publish(disk, binding);
            drop(frozen);
            (old, binding.params.partscan())
        };
        drop(old);
        if partscan {
            self.scan_partitions(disk);
        }
        disk.uevent_change();
        Ok(())
    }

    /// `loop_set_capacity()`.
    fn set_capacity(&self, disk: Disk<'_>) -> Result {
        let mut state = self.state.lock()?;
        let binding = state.binding()?;
        let params = &binding.params;
        disk.set_capacity(size_sectors(
            params.offset,
            params.sizelimit,
            &binding.backing.file,
        ));
        Ok(())
    }

    /// Switches direct I/O; returns whether it is now what was asked.
    fn update_direct_io(&self, binding: &mut Binding, disk: Disk<'_>, want: bool) -> bool {
        let file = &binding.backing.file;
        let direct = want && can_direct_io(file, binding.params.offset, disk.block_size());
        if binding.params.direct() != direct {
            // Write back what buffered I/O left in the page cache first.
            let _ = file.fsync();
            let _frozen = disk.freeze();
            binding.params.flags ^= LO_FLAGS_DIRECT_IO;
            self.publish(disk, binding);
        }
        direct == want
    }

    /// `loop_set_dio()`.
    fn set_direct_io(&self, disk: Disk<'_>, want: bool) -> Result {
        let mut state = self.state.lock()?;
        let binding = state.binding()?;
        if self.update_direct_io(binding, disk, want) {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// `loop_set_block_size()`.
    fn set_block_size(&self, bdev: &Bdev, disk: Disk<'_>, mode: u32, arg: usize) -> Result {
        let _claim = bdev.claim_unless_exclusive(mode)?;
        let mut state = self.state.lock()?;
        let binding = state.binding()?;
        if usize::try_from(disk.block_size()) == Ok(arg) {
            return Ok(());
        }
        disk.sync_and_invalidate();
        // As loop.c, a size the queue refuses still re-evaluates direct I/O
        // below (with the block size unchanged).
        let result = match u32::try_from(arg) {
            Ok(block_size) if valid_block_size(block_size) => {
                let limits = Self::limits(
                    &binding.backing.file,
                    block_size,
                    binding.params.read_only(),
                );
                let _frozen = disk.freeze();
                disk.set_limits(&limits)
            }
            _ => Err(EINVAL),
        };
        let want = binding.params.direct() || binding.backing.file.opened_direct();
        self.update_direct_io(binding, disk, want);
        result
    }

    /// Whether the device is unbound (`LOOP_CTL_GET_FREE`).
    pub(crate) fn is_free(&self) -> bool {
        matches!(&*self.state.lock_uninterruptible(), State::Unbound(_))
    }

    /// Serves a started request (`do_req_filebacked()`): from `queue_rq()`
    /// with `nowait`, only a read or write that needs no waiting, in the
    /// submitter's context (which the C side checked is in the request's
    /// cgroups); anything else from the request's worker.
    pub(crate) fn serve(&self, rq: &Request, nowait: bool) -> Served {
        let info = rq.info();
        // `op_is_write()`: a flush is not a write (loop.c serves it on a
        // read-only device).
        let write = info.op & 1 != 0;
        let rw = matches!(
            info.op,
            bindings::req_op_REQ_OP_READ | bindings::req_op_REQ_OP_WRITE
        );
        let (backing, offset, read_only, direct) = {
            let io = self.io.lock();
            let direct = io.flags & LO_FLAGS_DIRECT_IO != 0;
            // A large copy through the page cache goes to the worker, which
            // makes it on another CPU while the submitter goes on (as loop.c
            // does every request): only small ones gain from saving the
            // hand-off.
            if nowait
                && !(rw
                    && io.nowait[usize::from(write)]
                    && (direct || info.bytes <= INLINE_COPY_MAX))
            {
                return Served::Retry;
            }
            match &io.backing {
                Some(backing) if !io.rundown => (
                    backing.clone(),
                    io.offset,
                    io.flags & LO_FLAGS_READ_ONLY != 0,
                    direct,
                ),
                _ => return Served::Done(EIO.to_errno()),
            }
        };
        let file = &backing.file;
        // An append-only file (chattr +a, maybe set since binding) takes no
        // writes from a device, which writes anywhere in it.
        if write && (read_only || file.append_only()) {
            return Served::Done(EIO.to_errno());
        }
        // Where a request goes in the file. Flush requests carry no
        // position (their sector is all ones). Others end within the disk
        // as it is now: a partition kept from before an offset or size
        // change, or a bio checked against the size before one, may reach
        // past it. And within what a file position can be: the backing
        // filesystem is called without `rw_verify_area()`.
        let pos = || {
            let end = info.pos.checked_add(u64::from(info.bytes)).ok_or(EIO)?;
            let in_file = matches!(end.checked_add(offset), Some(e) if e <= i64::MAX as u64);
            if end > rq.disk().capacity() || !in_file {
                return Err(EIO);
            }
            Ok(info.pos + offset)
        };
        // The binder's RLIMIT_FSIZE (no SIGXFSZ: this is not its task).
        let end_within = |p: u64, limit: u64| match p.checked_add(u64::from(info.bytes)) {
            Some(end) => end <= limit,
            None => false,
        };
        // Where a read or write goes (pure arithmetic, unused for others).
        let rw_at = pos().and_then(|p| {
            if write && !end_within(p, backing.fsize_limit) {
                return Err(EIO);
            }
            Ok(p)
        });
        if nowait {
            match rw_at {
                // The VFS applies the current task's RLIMIT_FSIZE too, and
                // signals it: the submitter's must not stand in the way.
                Ok(p) if !write || end_within(p, sys::current_fsize_limit()) => {}
                _ => return Served::Retry,
            }
        }
        // Permission and capability checks in the backing filesystem see
        // the binder, not the submitter or a kernel worker.
        let _creds = backing.cred.override_current();
        let result = match info.op {
            bindings::req_op_REQ_OP_READ | bindings::req_op_REQ_OP_WRITE => match rw_at {
                Err(err) => Err(err),
                Ok(p) if direct => match rq.start_direct(file, p, write, nowait) {
                    Ok(()) => return Served::Queued,
                    Err(_) if nowait => return Served::Retry,
                    Err(err) => Err(err),
                },
                Ok(p) => {
                    let ret = rq.transfer(file, p, write, nowait);
                    return rw_served(rq, write, info.bytes, ret, nowait);
                }
            },
            bindings::req_op_REQ_OP_FLUSH => file.fsync().map_err(|_| EIO),
            bindings::req_op_REQ_OP_DISCARD | bindings::req_op_REQ_OP_WRITE_ZEROES => {
                let mode = if info.op == bindings::req_op_REQ_OP_WRITE_ZEROES && info.nounmap {
                    FALLOC_FL_ZERO_RANGE
                } else {
                    FALLOC_FL_PUNCH_HOLE
                };
                match pos().and_then(|p| {
                    file.fallocate(mode | FALLOC_FL_KEEP_SIZE, p, u64::from(info.bytes))
                }) {
                    Err(err) if err == sys::eopnotsupp() => {
                        // As loop.c: the queue stops offering what the file
                        // turned out not to do, so this fails (and is
                        // logged) once.
                        rq.disk().disable(mode == FALLOC_FL_ZERO_RANGE);
                        Err(err)
                    }
                    Err(_) => Err(EIO),
                    Ok(()) => Ok(()),
                }
            }
            _ => Err(EIO),
        };
        Served::Done(match result {
            Ok(()) => 0,
            Err(err) => err.to_errno(),
        })
    }

    /// The result `ret` of a transfer [`Request::start_direct()`] started,
    /// in any context: a transfer tried without waiting that fell short
    /// goes to the worker, which tries it again.
    pub(crate) fn direct_done(&self, rq: &Request, ret: isize, nowait: bool) -> Served {
        let info = rq.info();
        let write = info.op & 1 != 0;
        let ret = if ret < 0 {
            Err(Error::from_errno(ret as i32))
        } else {
            Ok(ret as u32)
        };
        rw_served(rq, write, info.bytes, ret, nowait)
    }
}

/// What serving a request came to.
pub(crate) enum Served {
    /// End it with this result: 0 or a negative errno.
    Done(i32),
    /// An asynchronous transfer started; its completion ends the request.
    Queued,
    /// Not possible without waiting: its worker serves it.
    Retry,
}

/// What a read or write that transferred `ret` of its `bytes` comes to: one
/// tried without waiting that fell short goes to the worker, which tries it
/// again.
fn rw_served(rq: &Request, write: bool, bytes: u32, ret: Result<u32>, nowait: bool) -> Served {
    if nowait && !matches!(ret, Ok(n) if n == bytes) {
        return Served::Retry;
    }
    Served::Done(rw_result(rq, write, bytes, ret))
}

/// The request's result for a read or write that transferred `ret` of its
/// `bytes`: a read past the end of the backing file reads zeroes and fails.
fn rw_result(rq: &Request, write: bool, bytes: u32, ret: Result<u32>) -> i32 {
    match ret {
        Ok(n) if n == bytes => 0,
        Ok(n) if !write => {
            rq.zero_from(n);
            EIO.to_errno()
        }
        Ok(_) => EIO.to_errno(),
        Err(err) => err.to_errno(),
    }
}
