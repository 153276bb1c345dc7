// SPDX-License-Identifier: GPL-2.0

//! The loop device UAPI (`include/uapi/linux/loop.h`), which the 6.12 Rust
//! bindings do not cover. Layouts are those of x86-64; the padding is spelled
//! out so that the structures have no uninitialised bytes.

use kernel::{
    ffi::c_ulong,
    types::{AsBytes, FromBytes},
};

pub(crate) const LO_NAME_SIZE: usize = 64;
pub(crate) const LO_KEY_SIZE: u32 = 32;
pub(crate) const LO_CRYPT_NONE: u32 = 0;

pub(crate) const LO_FLAGS_READ_ONLY: u32 = 1;
pub(crate) const LO_FLAGS_AUTOCLEAR: u32 = 4;
pub(crate) const LO_FLAGS_PARTSCAN: u32 = 8;
pub(crate) const LO_FLAGS_DIRECT_IO: u32 = 16;

/// Flags `LOOP_SET_STATUS` may set, and may clear.
pub(crate) const SET_STATUS_SETTABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN;
pub(crate) const SET_STATUS_CLEARABLE_FLAGS: u32 = LO_FLAGS_AUTOCLEAR;
/// Flags `LOOP_CONFIGURE` accepts.
pub(crate) const CONFIGURE_SETTABLE_FLAGS: u32 =
    LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_DIRECT_IO;

pub(crate) const LOOP_SET_FD: u32 = 0x4C00;
pub(crate) const LOOP_CLR_FD: u32 = 0x4C01;
pub(crate) const LOOP_SET_STATUS: u32 = 0x4C02;
pub(crate) const LOOP_GET_STATUS: u32 = 0x4C03;
pub(crate) const LOOP_SET_STATUS64: u32 = 0x4C04;
pub(crate) const LOOP_GET_STATUS64: u32 = 0x4C05;
pub(crate) const LOOP_CHANGE_FD: u32 = 0x4C06;
pub(crate) const LOOP_SET_CAPACITY: u32 = 0x4C07;
pub(crate) const LOOP_SET_DIRECT_IO: u32 = 0x4C08;
pub(crate) const LOOP_SET_BLOCK_SIZE: u32 = 0x4C09;
pub(crate) const LOOP_CONFIGURE: u32 = 0x4C0A;

pub(crate) const LOOP_CTL_ADD: u32 = 0x4C80;
pub(crate) const LOOP_CTL_REMOVE: u32 = 0x4C81;
pub(crate) const LOOP_CTL_GET_FREE: u32 = 0x4C82;

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
    pub(crate) lo_encrypt_key: [u8; 32],
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
    reserved: [u64; 8],
}

kernel::static_assert!(core::mem::size_of::<LoopInfo64>() == 232);
kernel::static_assert!(core::mem::size_of::<LoopInfo>() == 168);
kernel::static_assert!(core::mem::size_of::<LoopConfig>() == 304);

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
            reserved: [0; 8],
        }
    }
}
