// SPDX-License-Identifier: GPL-2.0
/*
 * devguard's plumbing: the devnode_policy it registers, whose questions
 * devguard_main.rs answers, and the one predicate those answers need that
 * Rust cannot reach (current_user_ns() is a macro).
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/fs.h>

#include "devguard.h"

static const struct devnode_policy devguard_policy = {
	.may_mknod	= rust_devguard_may_mknod,
	.may_open_nodev	= rust_devguard_may_open_nodev,
};

int devguard_register(void)
{
	return devnode_policy_register(&devguard_policy);
}

void devguard_unregister(void)
{
	devnode_policy_unregister(&devguard_policy);
}

/* CAP_MKNOD in the caller's own user namespace. */
bool devguard_capable_mknod(void)
{
	return ns_capable(current_user_ns(), CAP_MKNOD);
}
