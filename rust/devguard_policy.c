// SPDX-License-Identifier: GPL-2.0
/*
 * devguard's plumbing: the devnode_policy it registers, whose questions
 * devguard_main.rs answers.
 */

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
