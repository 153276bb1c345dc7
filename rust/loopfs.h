/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between loopfs's Rust logic (loopfs_main.rs) and its C
 * filesystem plumbing (loopfs_fs.c). An instance is a Rust Arc handed to C
 * as an opaque pointer: C owns that one reference from
 * rust_loopfs_instance_new() until it passes it to
 * rust_loopfs_instance_free(), and keeps it in sb->s_fs_info in between.
 */
#ifndef _NSDEV_LOOPFS_H
#define _NSDEV_LOOPFS_H

#include <linux/types.h>

/* C side, called by the Rust module init and exit. */
int loopfs_register_filesystem(void);
void loopfs_unregister_filesystem(void);

/* Rust side. */
void *rust_loopfs_instance_new(u32 max);
void rust_loopfs_instance_free(void *instance);
bool rust_loopfs_max_valid(u32 max);
void rust_loopfs_instance_set_max(void *instance, u32 max);
u32 rust_loopfs_instance_max(void *instance);

#endif /* _NSDEV_LOOPFS_H */
