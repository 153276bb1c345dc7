// SPDX-License-Identifier: GPL-2.0

//! The thin unsafe layer of loopfs: safe wrappers around the kernel objects
//! it touches (backing files, gendisks, requests, block devices) and the C
//! plumbing in `loopfs_fs.c` and `loopfs_blk.c`. Everything above this module
//! is safe Rust.

use core::{cell::UnsafeCell, marker::PhantomData, ptr::NonNull};
use kernel::{
    bindings,
    error::{to_result, Error},
    ffi::{c_char, c_int, c_uint, c_void},
    prelude::*,
    str::CStr,
    sync::LockClassKey,
    types::{ForeignOwnable, Opaque},
    workqueue::Queue,
};

pub(crate) mod ffi {
    use super::*;

    // Only pointers to these kernel structures cross the boundary, never the
    // structures themselves; some contain zero-sized members (lockdep keys,
    // arch data), as in the kernel's own bindings crate.
    #[allow(improper_ctypes)]
    extern "C" {
        pub(crate) fn loopfs_register_filesystem() -> c_int;
        pub(crate) fn loopfs_unregister_filesystem();
        pub(crate) fn loopfs_max_devices() -> u32;
        pub(crate) fn loopfs_max_devices_per_userns() -> u32;
        pub(crate) fn loopfs_reserved_devices() -> u32;
        pub(crate) fn loopfs_fs_add_node(
            sb: *mut bindings::super_block,
            name: *const c_char,
            devt: bindings::dev_t,
        ) -> c_int;
        pub(crate) fn loopfs_fs_remove_node(sb: *mut bindings::super_block, name: *const c_char);
        pub(crate) fn loopfs_get_user_ns(
            ns: *mut bindings::user_namespace,
        ) -> *mut bindings::user_namespace;
        pub(crate) fn loopfs_put_user_ns(ns: *mut bindings::user_namespace);

        pub(crate) fn loopfs_blk_init() -> c_int;
        pub(crate) fn loopfs_blk_exit();
        pub(crate) fn loopfs_blk_drain();
        pub(crate) fn loopfs_reap_queue() -> *mut bindings::workqueue_struct;
        pub(crate) fn loopfs_disk_create(dev: *mut c_void) -> *mut bindings::gendisk;
        pub(crate) fn loopfs_disk_destroy(disk: *mut bindings::gendisk) -> *mut c_void;
        pub(crate) fn loopfs_disk_get(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_disk_put(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_disk_lock_open(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_disk_unlock_open(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_bdev_disk(bdev: *mut bindings::block_device) -> *mut bindings::gendisk;
        pub(crate) fn loopfs_mutex_lock(lock: *mut bindings::mutex);
        pub(crate) fn loopfs_mutex_lock_killable(lock: *mut bindings::mutex) -> c_int;
        pub(crate) fn loopfs_mutex_unlock(lock: *mut bindings::mutex);
        pub(crate) fn loopfs_disk_devt(disk: *mut bindings::gendisk) -> bindings::dev_t;
        pub(crate) fn loopfs_disk_queue(
            disk: *mut bindings::gendisk,
        ) -> *mut bindings::request_queue;
        pub(crate) fn loopfs_disk_openers(disk: *mut bindings::gendisk) -> c_int;
        pub(crate) fn loopfs_disk_set_limits(
            disk: *mut bindings::gendisk,
            bsize: c_uint,
            max_discard_sectors: u32,
            discard_granularity: u32,
            write_cache: bool,
            rotational: bool,
        ) -> c_int;
        pub(crate) fn loopfs_disk_block_size(disk: *mut bindings::gendisk) -> c_uint;
        pub(crate) fn loopfs_disk_set_partscan(disk: *mut bindings::gendisk, on: bool);
        pub(crate) fn loopfs_disk_rescan(disk: *mut bindings::gendisk, locked: bool) -> c_int;
        pub(crate) fn loopfs_disk_uevent_change(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_disk_sysfs_add(disk: *mut bindings::gendisk) -> c_int;
        pub(crate) fn loopfs_disk_sysfs_remove(disk: *mut bindings::gendisk);
        pub(crate) fn loopfs_disk_partitions(
            disk: *mut bindings::gendisk,
            devts: *mut bindings::dev_t,
            max: c_uint,
        );
        pub(crate) fn loopfs_rq_info(
            rq: *mut bindings::request,
            op: *mut u32,
            pos: *mut u64,
            bytes: *mut u32,
            nounmap: *mut bool,
        );
        pub(crate) fn loopfs_rq_rw(
            rq: *mut bindings::request,
            file: *mut bindings::file,
            pos: i64,
            write: bool,
            direct: bool,
        ) -> isize;
        pub(crate) fn loopfs_rq_zero_from(rq: *mut bindings::request, done: u32);
        pub(crate) fn loopfs_get_file(file: *mut bindings::file) -> *mut bindings::file;
        pub(crate) fn loopfs_file_size(file: *mut bindings::file) -> i64;
        pub(crate) fn loopfs_file_bdev_block_size(file: *mut bindings::file) -> c_uint;
        pub(crate) fn loopfs_file_bdev_rotational(file: *mut bindings::file) -> bool;
        pub(crate) fn loopfs_file_set_nofs(file: *mut bindings::file) -> bindings::gfp_t;
        pub(crate) fn loopfs_file_restore_gfp(file: *mut bindings::file, gfp: bindings::gfp_t);
        pub(crate) fn loopfs_file_is_loopfs_bdev(file: *mut bindings::file) -> bool;
        pub(crate) fn loopfs_file_magic(file: *mut bindings::file) -> u64;
        pub(crate) fn loopfs_get_current_cred() -> *const bindings::cred;
        pub(crate) fn loopfs_put_cred(cred: *const bindings::cred);
        pub(crate) fn loopfs_current_fsize_limit() -> u64;
    }
}

/// `FMODE_READ`, `FMODE_WRITE` and `FMODE_CAN_ODIRECT`: casts bindgen cannot
/// evaluate.
const FMODE_READ: u32 = 1 << 0;
const FMODE_WRITE: u32 = 1 << 1;
const FMODE_CAN_ODIRECT: u32 = 1 << 22;

/// Errors `kernel::error::code` of Linux 6.12 does not name.
pub(crate) fn eoverflow() -> Error {
    Error::from_errno(-(bindings::EOVERFLOW as i32))
}

pub(crate) fn eopnotsupp() -> Error {
    Error::from_errno(-(bindings::EOPNOTSUPP as i32))
}

pub(crate) fn enosys() -> Error {
    Error::from_errno(-(bindings::ENOSYS as i32))
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const CAP_SYS_ADMIN: c_int = 21;

/// Encodes a `dev_t` as userspace sees it (`huge_encode_dev()`).
pub(crate) fn encode_dev(dev: bindings::dev_t) -> u64 {
    let (major, minor) = (dev >> 20, dev & 0xfffff);
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// A counted reference to a `struct file`, dropped with `fput()`.
pub(crate) struct FileRef(NonNull<bindings::file>);

// SAFETY: A file reference may be used and dropped from any thread: the
// reference count and `fput()` are thread-safe.
unsafe impl Send for FileRef {}
// SAFETY: The methods only read immutable fields or call thread-safe VFS
// functions.
unsafe impl Sync for FileRef {}

/// What `vfs_getattr()` says of a file, for `LOOP_GET_STATUS`.
pub(crate) struct FileIds {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) rdev: u64,
}

impl FileRef {
    /// Takes a reference to the file behind `fd` in the current task.
    pub(crate) fn fget(fd: u32) -> Result<Self> {
        // SAFETY: `fget()` may be called with any number; it returns NULL or a
        // new reference.
        let file = unsafe { bindings::fget(fd) };
        NonNull::new(file).map(FileRef).ok_or(EBADF)
    }

    fn as_ptr(&self) -> *mut bindings::file {
        self.0.as_ptr()
    }

    /// Another reference to the same file.
    pub(crate) fn clone_ref(&self) -> Self {
        // SAFETY: `self` holds a reference, so the file is alive.
        unsafe { ffi::loopfs_get_file(self.as_ptr()) };
        FileRef(self.0)
    }

    /// Gives the reference to C (for `struct loopfs_dev_info`).
    pub(crate) fn into_raw(self) -> *mut bindings::file {
        let file = self.as_ptr();
        core::mem::forget(self);
        file
    }

    fn f_mode(&self) -> u32 {
        // SAFETY: The file is alive; `f_mode` is set at open and only has
        // flags added that do not matter here.
        unsafe { (*self.as_ptr()).f_mode }
    }

    fn f_op(&self) -> &bindings::file_operations {
        // SAFETY: The file is alive and `f_op` points to a static table for its
        // whole life.
        unsafe { &*(*self.as_ptr()).f_op }
    }

    fn inode(&self) -> *mut bindings::inode {
        // SAFETY: The file is alive; its mapping and host inode live as long.
        unsafe { (*(*self.as_ptr()).f_mapping).host }
    }

    fn mode(&self) -> u32 {
        // SAFETY: See `inode()`; the type bits of `i_mode` never change.
        u32::from(unsafe { (*self.inode()).i_mode })
    }

    pub(crate) fn is_regular(&self) -> bool {
        self.mode() & S_IFMT == S_IFREG
    }

    pub(crate) fn is_block(&self) -> bool {
        self.mode() & S_IFMT == S_IFBLK
    }

    /// The device number of a block device file.
    pub(crate) fn rdev(&self) -> bindings::dev_t {
        // SAFETY: See `inode()`.
        unsafe { (*self.inode()).i_rdev }
    }

    pub(crate) fn opened_for_read(&self) -> bool {
        self.f_mode() & FMODE_READ != 0
    }

    /// Whether this is a loopfs disk or partition, of any instance.
    pub(crate) fn is_loopfs_bdev(&self) -> bool {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_is_loopfs_bdev(self.as_ptr()) }
    }

    /// The magic number of the filesystem the file is on.
    pub(crate) fn fs_magic(&self) -> u64 {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_magic(self.as_ptr()) }
    }

    pub(crate) fn opened_for_write(&self) -> bool {
        self.f_mode() & FMODE_WRITE != 0
    }

    pub(crate) fn can_read_iter(&self) -> bool {
        self.f_op().read_iter.is_some()
    }

    pub(crate) fn can_write_iter(&self) -> bool {
        self.f_op().write_iter.is_some()
    }

    pub(crate) fn can_odirect(&self) -> bool {
        self.f_mode() & FMODE_CAN_ODIRECT != 0
    }

    pub(crate) fn can_fsync(&self) -> bool {
        self.f_op().fsync.is_some()
    }

    pub(crate) fn can_fallocate(&self) -> bool {
        self.f_op().fallocate.is_some()
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> i64 {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_size(self.as_ptr()) }
    }

    /// Filesystem block size of the file's filesystem.
    pub(crate) fn fs_block_size(&self) -> u32 {
        // SAFETY: See `inode()`; the superblock outlives its inodes.
        unsafe { (*(*self.inode()).i_sb).s_blocksize as u32 }
    }

    /// Logical block size of the block device under the file, if any.
    pub(crate) fn bdev_block_size(&self) -> Option<u32> {
        // SAFETY: The file is alive.
        let size = unsafe { ffi::loopfs_file_bdev_block_size(self.as_ptr()) };
        (size != 0).then_some(size)
    }

    /// Whether the block device under the file, if any, is rotational.
    pub(crate) fn bdev_rotational(&self) -> bool {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_bdev_rotational(self.as_ptr()) }
    }

    pub(crate) fn fsync(&self) -> Result {
        // SAFETY: The file is alive.
        to_result(unsafe { bindings::vfs_fsync(self.as_ptr(), 0) })
    }

    pub(crate) fn fallocate(&self, mode: i32, pos: u64, len: u64) -> Result {
        // SAFETY: The file is alive; `vfs_fallocate()` checks its arguments.
        to_result(
            unsafe { bindings::vfs_fallocate(self.as_ptr(), mode, pos as i64, len as i64) }
                as c_int,
        )
    }

    /// Keeps page cache allocations of the file from recursing into I/O.
    /// Returns the mask to restore.
    pub(crate) fn set_nofs(&self) -> bindings::gfp_t {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_set_nofs(self.as_ptr()) }
    }

    pub(crate) fn restore_gfp(&self, gfp: bindings::gfp_t) {
        // SAFETY: The file is alive.
        unsafe { ffi::loopfs_file_restore_gfp(self.as_ptr(), gfp) }
    }

    pub(crate) fn ids(&self) -> Result<FileIds> {
        let mut stat = core::mem::MaybeUninit::<bindings::kstat>::zeroed();
        // SAFETY: The file is alive, so is its path; `stat` is writable.
        to_result(unsafe {
            bindings::vfs_getattr(
                &(*self.as_ptr()).f_path,
                stat.as_mut_ptr(),
                bindings::STATX_INO,
                bindings::AT_STATX_SYNC_AS_STAT,
            )
        })?;
        // SAFETY: `vfs_getattr()` succeeded; `kstat` is plain data that was
        // zero-initialised, so every field is initialised.
        let stat = unsafe { stat.assume_init() };
        Ok(FileIds {
            dev: encode_dev(stat.dev),
            ino: stat.ino,
            rdev: encode_dev(stat.rdev),
        })
    }
}

impl Drop for FileRef {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference.
        unsafe { bindings::fput(self.as_ptr()) };
    }
}

/// A counted reference to a task's credentials, put on drop.
pub(crate) struct Cred(NonNull<bindings::cred>);

// SAFETY: Credentials are immutable once committed; their reference count
// and `put_cred()` are thread-safe.
unsafe impl Send for Cred {}
// SAFETY: As above.
unsafe impl Sync for Cred {}

/// The current task runs with other credentials until this is dropped, on
/// the same task (hence not `Send`).
pub(crate) struct CredOverride<'a> {
    old: *const bindings::cred,
    _cred: core::marker::PhantomData<&'a Cred>,
}

impl Cred {
    /// The current task's credentials.
    pub(crate) fn current() -> Result<Self> {
        // SAFETY: Always callable in process context; returns a new reference.
        let cred = unsafe { ffi::loopfs_get_current_cred() };
        NonNull::new(cred.cast_mut()).map(Cred).ok_or(EINVAL)
    }

    /// Makes these the current task's credentials until the guard drops.
    pub(crate) fn override_current(&self) -> CredOverride<'_> {
        // SAFETY: `self` holds a reference to committed credentials;
        // `override_creds()` takes its own, which `revert_creds()` puts.
        let old = unsafe { bindings::override_creds(self.0.as_ptr()) };
        CredOverride {
            old,
            _cred: core::marker::PhantomData,
        }
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference.
        unsafe { ffi::loopfs_put_cred(self.0.as_ptr()) };
    }
}

impl Drop for CredOverride<'_> {
    fn drop(&mut self) {
        // SAFETY: `old` is what `override_creds()` returned on this task,
        // which is not `Send`; overrides are dropped in reverse order.
        unsafe { bindings::revert_creds(self.old) };
    }
}

/// The current task's `RLIMIT_FSIZE`.
pub(crate) fn current_fsize_limit() -> u64 {
    // SAFETY: Reads the current task's limit.
    unsafe { ffi::loopfs_current_fsize_limit() }
}

/// The owner of a loopfs gendisk: it exists, added, exactly as long as this
/// value. Dropping it deletes the disk (`del_gendisk()`, after which no
/// callback of the disk runs any more) and then gives back the reference to
/// `T` that the disk's callbacks used, as the kernel crate's `GenDisk` does.
/// It cannot be copied; other code borrows it as a [`Disk`].
pub(crate) struct OwnedDisk<T: ForeignOwnable> {
    disk: NonNull<bindings::gendisk>,
    _private: PhantomData<T>,
}

// SAFETY: The disk may be used and deleted from any thread; the private
// reference is dropped on the deleting thread, so `T` must be `Send`.
unsafe impl<T: ForeignOwnable + Send> Send for OwnedDisk<T> {}
// SAFETY: Shared access only borrows the disk as a `Disk`, whose functions
// synchronise internally.
unsafe impl<T: ForeignOwnable + Send> Sync for OwnedDisk<T> {}

impl<T: ForeignOwnable> OwnedDisk<T> {
    /// Creates and adds a disk whose callbacks get `private`. The disk
    /// holds it until it is deleted; on failure it is dropped.
    pub(crate) fn new(private: T) -> Result<Self> {
        let ptr = private.into_foreign();
        // SAFETY: `loopfs_disk_create()` keeps the pointer as an opaque value.
        let disk = unsafe { ffi::loopfs_disk_create(ptr.cast_mut()) };
        match kernel::error::from_err_ptr(disk) {
            Ok(disk) => Ok(OwnedDisk {
                // SAFETY: `from_err_ptr()` returned no error, and
                // `loopfs_disk_create()` never returns NULL.
                disk: unsafe { NonNull::new_unchecked(disk) },
                _private: PhantomData,
            }),
            Err(err) => {
                // SAFETY: The disk was not made, so the reference is ours.
                drop(unsafe { T::from_foreign(ptr) });
                Err(err)
            }
        }
    }

    pub(crate) fn disk(&self) -> Disk<'_> {
        Disk(self.disk, PhantomData)
    }

    /// A counted reference that keeps the gendisk structure (not the disk)
    /// alive, to take its `open_mutex` without the owner at hand.
    pub(crate) fn counted(&self) -> DiskRef {
        // SAFETY: The disk is alive; the reference is put by `DiskRef`.
        unsafe { ffi::loopfs_disk_get(self.disk.as_ptr()) };
        DiskRef(self.disk)
    }
}

impl<T: ForeignOwnable> Drop for OwnedDisk<T> {
    fn drop(&mut self) {
        // SAFETY: `self` owns the added disk; after this no callback runs and
        // the private pointer comes back, the one made by `new()`.
        let private = unsafe { ffi::loopfs_disk_destroy(self.disk.as_ptr()) };
        // SAFETY: As above: the disk gave back the reference `new()` gave it.
        drop(unsafe { T::from_foreign(private) });
    }
}

/// A counted reference to a loopfs gendisk structure, put on drop. It keeps
/// the memory, not the disk: only the `open_mutex` is used through it.
pub(crate) struct DiskRef(NonNull<bindings::gendisk>);

// SAFETY: The reference count is atomic; `put_disk()` may run anywhere.
unsafe impl Send for DiskRef {}
// SAFETY: Only `open_mutex` is used through a shared reference.
unsafe impl Sync for DiskRef {}

impl DiskRef {
    /// Holds the disk's `open_mutex`, which opens and releases hold around
    /// their callbacks: with it held, no opener comes or goes.
    pub(crate) fn lock_open(&self) -> OpenGuard<'_> {
        // SAFETY: The counted reference keeps the gendisk and its mutex.
        unsafe { ffi::loopfs_disk_lock_open(self.0.as_ptr()) };
        OpenGuard(self)
    }
}

impl Drop for DiskRef {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference.
        unsafe { ffi::loopfs_disk_put(self.0.as_ptr()) };
    }
}

/// A held `open_mutex`, released on drop.
pub(crate) struct OpenGuard<'a>(&'a DiskRef);

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: `lock_open()` took the mutex.
        unsafe { ffi::loopfs_disk_unlock_open(self.0 .0.as_ptr()) };
    }
}

/// A loopfs gendisk borrowed for `'a`: from its owner, or from a callback of
/// the disk (an ioctl's block device, the release of the last opener), for
/// which the block layer keeps the disk.
#[derive(Clone, Copy)]
pub(crate) struct Disk<'a>(NonNull<bindings::gendisk>, PhantomData<&'a ()>);

/// A frozen request queue, unfrozen on drop.
pub(crate) struct Frozen<'a>(Disk<'a>);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // SAFETY: `Disk::freeze()` froze the queue.
        unsafe { bindings::blk_mq_unfreeze_queue(self.0.queue()) };
    }
}

impl<'a> Disk<'a> {
    /// # Safety
    ///
    /// `disk` must be a loopfs gendisk that stays alive for `'a`.
    pub(crate) unsafe fn from_raw(disk: *mut bindings::gendisk) -> Option<Self> {
        NonNull::new(disk).map(|d| Disk(d, PhantomData))
    }

    fn as_ptr(&self) -> *mut bindings::gendisk {
        self.0.as_ptr()
    }

    fn queue(&self) -> *mut bindings::request_queue {
        // SAFETY: The disk is alive for `'a`.
        unsafe { ffi::loopfs_disk_queue(self.as_ptr()) }
    }

    pub(crate) fn devt(&self) -> bindings::dev_t {
        // SAFETY: The disk is alive.
        unsafe { ffi::loopfs_disk_devt(self.as_ptr()) }
    }

    pub(crate) fn openers(&self) -> i32 {
        // SAFETY: The disk is alive.
        unsafe { ffi::loopfs_disk_openers(self.as_ptr()) }
    }

    pub(crate) fn set_capacity(&self, sectors: u64) {
        // SAFETY: The disk is alive.
        if !unsafe { bindings::set_capacity_and_notify(self.as_ptr(), sectors) } {
            self.uevent_change();
        }
    }

    pub(crate) fn set_read_only(&self, ro: bool) {
        // SAFETY: The disk is alive.
        unsafe { bindings::set_disk_ro(self.as_ptr(), ro) };
    }

    pub(crate) fn force_media_change(&self) {
        // SAFETY: The disk is alive.
        unsafe { bindings::disk_force_media_change(self.as_ptr()) };
    }

    pub(crate) fn invalidate(&self) {
        // SAFETY: The disk is alive.
        unsafe { bindings::invalidate_disk(self.as_ptr()) };
    }

    /// Adds the `loop/` sysfs attributes.
    pub(crate) fn sysfs_add(&self) -> Result {
        // SAFETY: The disk is alive.
        to_result(unsafe { ffi::loopfs_disk_sysfs_add(self.as_ptr()) })
    }

    /// Removes what `sysfs_add()` added; waits for readers of the
    /// attributes, which take no lock of loopfs's but the I/O spinlock.
    pub(crate) fn sysfs_remove(&self) {
        // SAFETY: The disk is alive and `sysfs_add()` succeeded.
        unsafe { ffi::loopfs_disk_sysfs_remove(self.as_ptr()) };
    }

    pub(crate) fn uevent_change(&self) {
        // SAFETY: The disk is alive.
        unsafe { ffi::loopfs_disk_uevent_change(self.as_ptr()) };
    }

    /// Waits for requests in flight and holds new ones until the guard drops.
    pub(crate) fn freeze(&self) -> Frozen<'a> {
        // SAFETY: The disk and its queue are alive.
        unsafe { bindings::blk_mq_freeze_queue(self.queue()) };
        Frozen(*self)
    }

    pub(crate) fn set_limits(&self, limits: &Limits) -> Result {
        // SAFETY: The disk is alive; the limits were validated by the caller
        // and are validated again by the block layer.
        to_result(unsafe {
            ffi::loopfs_disk_set_limits(
                self.as_ptr(),
                limits.block_size,
                limits.max_discard_sectors,
                limits.discard_granularity,
                limits.write_cache,
                limits.rotational,
            )
        })
    }

    pub(crate) fn block_size(&self) -> u32 {
        // SAFETY: The disk is alive.
        unsafe { ffi::loopfs_disk_block_size(self.as_ptr()) }
    }

    pub(crate) fn set_partscan(&self, on: bool) {
        // SAFETY: The disk is alive.
        unsafe { ffi::loopfs_disk_set_partscan(self.as_ptr(), on) };
    }

    /// The device numbers of partitions 1 to `N` (0 where there is none).
    pub(crate) fn partitions<const N: usize>(&self) -> [bindings::dev_t; N] {
        let mut devts = [0; N];
        // SAFETY: The disk is alive; `devts` has room for `N` entries.
        unsafe { ffi::loopfs_disk_partitions(self.as_ptr(), devts.as_mut_ptr(), N as c_uint) };
        devts
    }

    /// Rereads the partition table. `open_mutex_held` is true in the release
    /// path, where the block layer holds the disk's `open_mutex`.
    pub(crate) fn rescan(&self, open_mutex_held: bool) -> Result {
        // SAFETY: The disk is alive; the caller states the lock.
        to_result(unsafe { ffi::loopfs_disk_rescan(self.as_ptr(), open_mutex_held) })
    }
}

/// The queue limits loopfs decides; `loopfs_disk_set_limits()` applies them.
pub(crate) struct Limits {
    pub(crate) block_size: u32,
    pub(crate) max_discard_sectors: u32,
    pub(crate) discard_granularity: u32,
    pub(crate) write_cache: bool,
    pub(crate) rotational: bool,
}

/// A mutex whose ioctl-side lock can be interrupted by a fatal signal, as
/// loop.c's `mutex_lock_killable()`; teardown paths lock it uninterruptibly.
#[pin_data]
pub(crate) struct KillableMutex<T> {
    #[pin]
    mutex: Opaque<bindings::mutex>,
    data: UnsafeCell<T>,
}

// SAFETY: The mutex hands out `&mut T` to one holder at a time.
unsafe impl<T: Send> Send for KillableMutex<T> {}
// SAFETY: As above.
unsafe impl<T: Send> Sync for KillableMutex<T> {}

/// A held [`KillableMutex`].
pub(crate) struct KillableGuard<'a, T>(&'a KillableMutex<T>);

impl<T> KillableMutex<T> {
    pub(crate) fn new(
        data: T,
        name: &'static CStr,
        key: &'static LockClassKey,
    ) -> impl PinInit<Self> {
        pin_init!(Self {
            data: UnsafeCell::new(data),
            // SAFETY: `slot` is valid for writing a mutex; the name and key
            // are static. `LockClassKey` is a transparent wrapper of an
            // opaque `lock_class_key`, so its address is the key's.
            mutex <- Opaque::ffi_init(|slot| unsafe {
                bindings::__mutex_init(
                    slot,
                    name.as_char_ptr(),
                    core::ptr::from_ref(key)
                        .cast_mut()
                        .cast::<bindings::lock_class_key>(),
                )
            }),
        })
    }

    /// Locks, or fails with `EINTR` if a fatal signal comes first.
    pub(crate) fn lock(&self) -> Result<KillableGuard<'_, T>> {
        // SAFETY: The mutex was initialised in `new()`.
        if unsafe { ffi::loopfs_mutex_lock_killable(self.mutex.get()) } != 0 {
            return Err(EINTR);
        }
        Ok(KillableGuard(self))
    }

    /// Locks whatever comes: for release and teardown paths.
    pub(crate) fn lock_uninterruptible(&self) -> KillableGuard<'_, T> {
        // SAFETY: The mutex was initialised in `new()`.
        unsafe { ffi::loopfs_mutex_lock(self.mutex.get()) };
        KillableGuard(self)
    }
}

impl<T> core::ops::Deref for KillableGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: The guard holds the mutex.
        unsafe { &*self.0.data.get() }
    }
}

impl<T> core::ops::DerefMut for KillableGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: The guard holds the mutex, and `&mut self` is unique.
        unsafe { &mut *self.0.data.get() }
    }
}

impl<T> Drop for KillableGuard<'_, T> {
    fn drop(&mut self) {
        // SAFETY: The guard holds the mutex.
        unsafe { ffi::loopfs_mutex_unlock(self.0.mutex.get()) };
    }
}

/// The block device an ioctl came in on, borrowed for the call.
pub(crate) struct Bdev(*mut bindings::block_device);

/// An exclusive claim on a block device, given up on drop.
pub(crate) struct Claim<'a>(&'a Bdev);

/// `BLK_OPEN_EXCL` (a cast bindgen cannot evaluate).
const BLK_OPEN_EXCL: u32 = 1 << 2;

/// The holder loopfs claims block devices with.
static CLAIM_HOLDER: u8 = 0;

impl Bdev {
    /// # Safety
    ///
    /// `bdev` must be valid for the lifetime of the returned value.
    pub(crate) unsafe fn from_raw(bdev: *mut bindings::block_device) -> Self {
        Bdev(bdev)
    }

    /// The disk the ioctl is for (the whole disk of a partition).
    pub(crate) fn disk(&self) -> Result<Disk<'_>> {
        // SAFETY: The block device is valid (see `from_raw`), and so is its
        // disk while the ioctl runs.
        unsafe { Disk::from_raw(ffi::loopfs_bdev_disk(self.0)) }.ok_or(ENXIO)
    }

    pub(crate) fn sync_and_invalidate(&self) {
        // SAFETY: The block device is valid (see `from_raw`).
        unsafe {
            bindings::sync_blockdev(self.0);
            bindings::invalidate_bdev(self.0);
        }
    }

    /// Claims the device exclusively for a configuration change, as loop.c
    /// does, unless its opener (`mode`) already holds it exclusively.
    pub(crate) fn claim_unless_exclusive(&self, mode: u32) -> Result<Option<Claim<'_>>> {
        if mode & BLK_OPEN_EXCL != 0 {
            return Ok(None);
        }
        // SAFETY: The block device is valid; the holder is a static address.
        to_result(unsafe {
            bindings::bd_prepare_to_claim(
                self.0,
                core::ptr::addr_of!(CLAIM_HOLDER).cast_mut().cast(),
                core::ptr::null(),
            )
        })?;
        Ok(Some(Claim(self)))
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        // SAFETY: `claim()` prepared this claim with this holder.
        unsafe {
            bindings::bd_abort_claiming(
                self.0 .0,
                core::ptr::addr_of!(CLAIM_HOLDER).cast_mut().cast(),
            )
        };
    }
}

/// A block request being served, borrowed for the call.
pub(crate) struct Request(*mut bindings::request);

/// What a request asks for.
pub(crate) struct RequestInfo {
    pub(crate) op: u32,
    pub(crate) pos: u64,
    pub(crate) bytes: u32,
    pub(crate) nounmap: bool,
}

impl Request {
    /// # Safety
    ///
    /// `rq` must be a started request of a loopfs disk that stays valid for
    /// the lifetime of the returned value.
    pub(crate) unsafe fn from_raw(rq: *mut bindings::request) -> Self {
        Request(rq)
    }

    pub(crate) fn info(&self) -> RequestInfo {
        let mut info = RequestInfo {
            op: 0,
            pos: 0,
            bytes: 0,
            nounmap: false,
        };
        // SAFETY: The request is valid; the outputs are writable.
        unsafe {
            ffi::loopfs_rq_info(
                self.0,
                &mut info.op,
                &mut info.pos,
                &mut info.bytes,
                &mut info.nounmap,
            )
        };
        info
    }

    /// Transfers the request's data from or to `file` at `pos`.
    pub(crate) fn transfer(
        &self,
        file: &FileRef,
        pos: u64,
        write: bool,
        direct: bool,
    ) -> Result<u32> {
        // SAFETY: The request is valid and `file` holds a reference.
        let ret = unsafe { ffi::loopfs_rq_rw(self.0, file.as_ptr(), pos as i64, write, direct) };
        if ret < 0 {
            Err(Error::from_errno(ret as i32))
        } else {
            Ok(ret as u32)
        }
    }

    /// Zeroes the request's buffers from byte `done` on.
    pub(crate) fn zero_from(&self, done: u32) {
        // SAFETY: The request is valid.
        unsafe { ffi::loopfs_rq_zero_from(self.0, done) };
    }
}

/// A user namespace reference, put on drop.
pub(crate) struct UserNs(NonNull<bindings::user_namespace>);

// SAFETY: User namespace references may be used and put from any thread.
unsafe impl Send for UserNs {}
// SAFETY: `ns_capable()` is thread-safe.
unsafe impl Sync for UserNs {}

impl UserNs {
    /// # Safety
    ///
    /// `ns` must be a reference the caller gives up.
    pub(crate) unsafe fn from_raw(ns: *mut bindings::user_namespace) -> Option<Self> {
        NonNull::new(ns).map(UserNs)
    }

    /// Another reference to the same namespace.
    pub(crate) fn clone_ref(&self) -> Self {
        // SAFETY: `self` holds a reference, so the namespace is alive.
        unsafe { ffi::loopfs_get_user_ns(self.0.as_ptr()) };
        UserNs(self.0)
    }

    /// Whether the current task's user namespace is this one or below it.
    pub(crate) fn current_in(&self) -> bool {
        // SAFETY: The namespace is alive while we hold a reference.
        unsafe { bindings::current_in_userns(self.0.as_ptr()) }
    }

    /// This namespace and its ancestors, the initial one left out, as
    /// addresses that identify them while this reference is held.
    pub(crate) fn lineage(&self) -> impl Iterator<Item = usize> + '_ {
        let init = core::ptr::addr_of_mut!(bindings::init_user_ns);
        let mut ns = self.0.as_ptr();
        core::iter::from_fn(move || {
            if ns.is_null() || ns == init {
                return None;
            }
            let key = ns as usize;
            // SAFETY: `self` holds a reference on the first namespace, and
            // each namespace holds one on its parent, which never changes.
            ns = unsafe { (*ns).parent };
            Some(key)
        })
    }

    /// Whether the current task has `CAP_SYS_ADMIN` in this namespace.
    pub(crate) fn capable_sys_admin(&self) -> bool {
        // SAFETY: The namespace is alive while we hold a reference.
        unsafe { bindings::ns_capable(self.0.as_ptr(), CAP_SYS_ADMIN) }
    }
}

impl Drop for UserNs {
    fn drop(&mut self) {
        // SAFETY: `self` owns one reference.
        unsafe { ffi::loopfs_put_user_ns(self.0.as_ptr()) };
    }
}

/// The superblock of a live instance.
pub(crate) struct SuperBlock(NonNull<bindings::super_block>);

// SAFETY: The node functions lock the root inode themselves.
unsafe impl Send for SuperBlock {}
// SAFETY: As above.
unsafe impl Sync for SuperBlock {}

impl SuperBlock {
    /// # Safety
    ///
    /// `sb` must stay valid until the instance is shut down, and the instance
    /// must stop using it then.
    pub(crate) unsafe fn from_raw(sb: *mut bindings::super_block) -> Option<Self> {
        NonNull::new(sb).map(SuperBlock)
    }

    pub(crate) fn add_node(&self, name: &CStr, devt: bindings::dev_t) -> Result {
        // SAFETY: The superblock is alive (see `from_raw`); `name` is a C string.
        to_result(unsafe { ffi::loopfs_fs_add_node(self.0.as_ptr(), name.as_char_ptr(), devt) })
    }

    pub(crate) fn remove_node(&self, name: &CStr) {
        // SAFETY: As above.
        unsafe { ffi::loopfs_fs_remove_node(self.0.as_ptr(), name.as_char_ptr()) };
    }
}

/// The most devices all instances may hold together (module parameter).
pub(crate) fn max_devices() -> u32 {
    // SAFETY: Reads a module parameter.
    unsafe { ffi::loopfs_max_devices() }
}

/// The most devices the instances of one user namespace and its descendants
/// may hold together (module parameter).
pub(crate) fn max_devices_per_userns() -> u32 {
    // SAFETY: Reads a module parameter.
    unsafe { ffi::loopfs_max_devices_per_userns() }
}

/// How many of `max_devices()` only the initial namespace may use (module
/// parameter).
pub(crate) fn reserved_devices() -> u32 {
    // SAFETY: Reads a module parameter.
    unsafe { ffi::loopfs_reserved_devices() }
}

/// The queue device removals of unmounted instances run on; drained at
/// module exit.
pub(crate) fn reap_queue() -> &'static Queue {
    // SAFETY: The queue is allocated at module init and destroyed at module
    // exit, after the last user of loopfs code is gone; `'static` stands for
    // that span, in which all callers run.
    unsafe { Queue::from_raw(ffi::loopfs_reap_queue()) }
}

/// Registers the filesystem type and the block major.
pub(crate) fn register() -> Result {
    // SAFETY: Called once from module init.
    to_result(unsafe { ffi::loopfs_blk_init() })?;
    // SAFETY: As above.
    if let Err(err) = to_result(unsafe { ffi::loopfs_register_filesystem() }) {
        // SAFETY: `loopfs_blk_init()` succeeded above.
        unsafe { ffi::loopfs_blk_exit() };
        return Err(err);
    }
    Ok(())
}

/// Unregisters the filesystem type and waits for pending device removals:
/// afterwards no loopfs code runs but what module exit calls.
pub(crate) fn unregister_and_drain() {
    // SAFETY: `register()` succeeded. No instance exists (each pins the
    // module through its filesystem type), nor an opener of a disk (each
    // pins it through the disk's operations); draining runs what is queued.
    unsafe {
        ffi::loopfs_unregister_filesystem();
        ffi::loopfs_blk_drain();
    }
}

/// Unregisters the block major, once every disk is deleted.
pub(crate) fn unregister_blk() {
    // SAFETY: `register()` succeeded; the caller deleted every disk.
    unsafe { ffi::loopfs_blk_exit() };
}
