/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between devguard's Rust policy (devguard_main.rs) and its C
 * plumbing (devguard_policy.c).
 */
#ifndef _NSDEV_DEVGUARD_H
#define _NSDEV_DEVGUARD_H

#include <linux/types.h>

struct inode;
struct path;

/* C side, called from Rust. */
int devguard_register(void);
void devguard_unregister(void);

/* Rust side: the policy's answers. */
bool rust_devguard_may_mknod(const struct inode *dir, umode_t mode, dev_t dev);
bool rust_devguard_may_open_nodev(const struct path *path, int mask);

#endif /* _NSDEV_DEVGUARD_H */
