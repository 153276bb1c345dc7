// SPDX-License-Identifier: GPL-2.0

//! The loop device UAPI (`include/uapi/linux/loop.h`), which the 6.12 Rust
//! bindings do not cover. The constants are bindgen's (see [`crate::sys::ffi`]);
//! the structures are written out here with their padding as fields, so that
//! they have no uninitialised bytes, and checked at build time against the
//! layouts bindgen found.

use kernel::{
    ffi::c_ulong,
    types::{AsBytes, FromBytes},
};

use crate::sys::ffi;
pub(crate) use crate::sys::ffi::{
    LOOP_CHANGE_FD, LOOP_CLR_FD, LOOP_CONFIGURE, LOOP_CTL_ADD, LOOP_CTL_GET_FREE, LOOP_CTL_REMOVE,
    LOOP_GET_STATUS, LOOP_GET_STATUS64, LOOP_SET_BLOCK_SIZE, LOOP_SET_CAPACITY, LOOP_SET_DIRECT_IO,
    LOOP_SET_FD, LOOP_SET_STATUS, LOOP_SET_STATUS64, LO_CRYPT_NONE, LO_FLAGS_AUTOCLEAR,
    LO_FLAGS_DIRECT_IO, LO_FLAGS_PARTSCAN, LO_FLAGS_READ_ONLY, LO_KEY_SIZE,
};

pub(crate) const LO_NAME_SIZE: usize = ffi::LO_NAME_SIZE as usize;

/// Flags `LOOP_SET_STATUS` may set, and may clear.
pub(crate) const SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
pub(crate) const SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
/// Flags `LOOP_CONFIGURE` accepts.
pub(crate) const CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;

/// `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopInfo64 {
    pub(crate) lo_device: u64,
    pub(crate) lo_inode: u64,
    pub(crate) lo_rdevice: u64,
    pub(crate) lo_offset: u64,
    pub(crate) lo_sizelimit: u64,
    pub(crate) lo_number: u32,
    pub(crate) lo_encrypt_type: u32,
    pub(crate) lo_encrypt_key_size: u32,
    pub(crate) lo_flags: u32,
    pub(crate) lo_file_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_crypt_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE as usize],
    pub(crate) lo_init: [u64; 2],
}

/// `struct loop_info`, the legacy layout.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopInfo {
    pub(crate) lo_number: i32,
    _pad0: u32,
    pub(crate) lo_device: c_ulong,
    pub(crate) lo_inode: c_ulong,
    pub(crate) lo_rdevice: c_ulong,
    pub(crate) lo_offset: i32,
    pub(crate) lo_encrypt_type: i32,
    pub(crate) lo_encrypt_key_size: i32,
    pub(crate) lo_flags: i32,
    pub(crate) lo_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_encrypt_key: [u8; 32],
    pub(crate) lo_init: [c_ulong; 2],
    reserved: [u8; 4],
    _pad1: [u8; 4],
}

/// `struct loop_config`, the argument of `LOOP_CONFIGURE`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct LoopConfig {
    pub(crate) fd: u32,
    pub(crate) block_size: u32,
    pub(crate) info: LoopInfo64,
    __reserved: [u64; 8],
}

/// The size of a field, from a projection (never called).
const fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// The Rust structure has the layout bindgen found for the C one: same size,
/// every named field at the same offset with the same size.
macro_rules! same_layout {
    ($rust:ty, $c:ty, $($field:ident),+ $(,)?) => {
        kernel::static_assert!(core::mem::size_of::<$rust>() == core::mem::size_of::<$c>());
        $(
            kernel::static_assert!(
                core::mem::offset_of!($rust, $field) == core::mem::offset_of!($c, $field)
            );
            kernel::static_assert!(
                field_size(|s: &$rust| &s.$field) == field_size(|s: &$c| &s.$field)
            );
        )+
    };
}

same_layout!(
    LoopInfo64,
    ffi::loop_info64,
    lo_device,
    lo_inode,
    lo_rdevice,
    lo_offset,
    lo_sizelimit,
    lo_number,
    lo_encrypt_type,
    lo_encrypt_key_size,
    lo_flags,
    lo_file_name,
    lo_crypt_name,
    lo_encrypt_key,
    lo_init,
);
same_layout!(
    LoopInfo,
    ffi::loop_info,
    lo_number,
    lo_device,
    lo_inode,
    lo_rdevice,
    lo_offset,
    lo_encrypt_type,
    lo_encrypt_key_size,
    lo_flags,
    lo_name,
    lo_encrypt_key,
    lo_init,
    reserved,
);
same_layout!(
    LoopConfig,
    ffi::loop_config,
    fd,
    block_size,
    info,
    __reserved
);

// SAFETY: Plain integers and byte arrays with no padding (checked by the size
// assertions above): every bit pattern is valid and no byte is uninitialised.
unsafe impl FromBytes for LoopInfo64 {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo64 {}
// SAFETY: As above; the padding is explicit fields.
unsafe impl FromBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl AsBytes for LoopInfo {}
// SAFETY: As above.
unsafe impl FromBytes for LoopConfig {}

impl LoopInfo64 {
    pub(crate) const fn zeroed() -> Self {
        LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: 0,
            lo_sizelimit: 0,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: 0,
            lo_file_name: [0; LO_NAME_SIZE],
            lo_crypt_name: [0; LO_NAME_SIZE],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        }
    }

    /// `loop_info64_from_old()`.
    pub(crate) fn from_old(old: &LoopInfo) -> Self {
        LoopInfo64 {
            lo_number: old.lo_number as u32,
            lo_device: old.lo_device as u64,
            lo_inode: old.lo_inode as u64,
            lo_rdevice: old.lo_rdevice as u64,
            lo_offset: old.lo_offset as u64,
            lo_flags: old.lo_flags as u32,
            lo_file_name: old.lo_name,
            ..Self::zeroed()
        }
    }

    /// `loop_info64_to_old()`: `None` when a value does not fit.
    pub(crate) fn to_old(self) -> Option<LoopInfo> {
        let old = LoopInfo {
            lo_number: self.lo_number as i32,
            _pad0: 0,
            lo_device: self.lo_device as c_ulong,
            lo_inode: self.lo_inode as c_ulong,
            lo_rdevice: self.lo_rdevice as c_ulong,
            lo_offset: self.lo_offset as i32,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: self.lo_flags as i32,
            lo_name: self.lo_file_name,
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
            reserved: [0; 4],
            _pad1: [0; 4],
        };
        (old.lo_offset as u64 == self.lo_offset).then_some(old)
    }
}

impl LoopConfig {
    /// What `LOOP_SET_FD` means: `LOOP_CONFIGURE` with only the file.
    pub(crate) fn with_fd(fd: u32) -> Self {
        LoopConfig {
            fd,
            block_size: 0,
            info: LoopInfo64::zeroed(),
            __reserved: [0; 8],
        }
    }
}

/// `struct compat_loop_info`, the 32-bit `struct loop_info`, with its
/// padding as fields.
#[cfg(CONFIG_COMPAT)]
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct CompatLoopInfo {
    pub(crate) lo_number: i32,
    pub(crate) lo_device: u16,
    _pad0: u16,
    pub(crate) lo_inode: u32,
    pub(crate) lo_rdevice: u16,
    _pad1: u16,
    pub(crate) lo_offset: i32,
    pub(crate) lo_encrypt_type: i32,
    pub(crate) lo_encrypt_key_size: i32,
    pub(crate) lo_flags: i32,
    pub(crate) lo_name: [u8; LO_NAME_SIZE],
    pub(crate) lo_encrypt_key: [u8; LO_KEY_SIZE as usize],
    pub(crate) lo_init: [u32; 2],
    reserved: [u8; 4],
}

#[cfg(CONFIG_COMPAT)]
same_layout!(
    CompatLoopInfo,
    ffi::loopfs_compat_loop_info,
    lo_number,
    lo_device,
    lo_inode,
    lo_rdevice,
    lo_offset,
    lo_encrypt_type,
    lo_encrypt_key_size,
    lo_flags,
    lo_name,
    lo_encrypt_key,
    lo_init,
    reserved,
);

// SAFETY: Plain integers and byte arrays, the padding spelled out as fields
// (the layout is checked above): every bit pattern is valid and no byte is
// uninitialised.
#[cfg(CONFIG_COMPAT)]
unsafe impl FromBytes for CompatLoopInfo {}
// SAFETY: As above.
#[cfg(CONFIG_COMPAT)]
unsafe impl AsBytes for CompatLoopInfo {}

#[cfg(CONFIG_COMPAT)]
impl CompatLoopInfo {
    /// `loop_info64_from_compat()`.
    pub(crate) fn to_info64(self) -> LoopInfo64 {
        LoopInfo64 {
            lo_number: self.lo_number as u32,
            lo_device: u64::from(self.lo_device),
            lo_inode: u64::from(self.lo_inode),
            lo_rdevice: u64::from(self.lo_rdevice),
            lo_offset: self.lo_offset as u64,
            lo_flags: self.lo_flags as u32,
            lo_file_name: self.lo_name,
            ..LoopInfo64::zeroed()
        }
    }

    /// `loop_info64_to_compat()`: `None` when a value does not fit.
    pub(crate) fn from_info64(info: &LoopInfo64) -> Option<Self> {
        let compat = CompatLoopInfo {
            lo_number: info.lo_number as i32,
            lo_device: info.lo_device as u16,
            _pad0: 0,
            lo_inode: info.lo_inode as u32,
            lo_rdevice: info.lo_rdevice as u16,
            _pad1: 0,
            lo_offset: info.lo_offset as i32,
            lo_encrypt_type: info.lo_encrypt_type as i32,
            lo_encrypt_key_size: info.lo_encrypt_key_size as i32,
            lo_flags: info.lo_flags as i32,
            lo_name: info.lo_file_name,
            lo_encrypt_key: [0; LO_KEY_SIZE as usize],
            lo_init: [0; 2],
            reserved: [0; 4],
        };
        let fits = u64::from(compat.lo_device) == info.lo_device
            && u64::from(compat.lo_rdevice) == info.lo_rdevice
            && u64::from(compat.lo_inode) == info.lo_inode
            && compat.lo_offset as u64 == info.lo_offset;
        fits.then_some(compat)
    }
}
