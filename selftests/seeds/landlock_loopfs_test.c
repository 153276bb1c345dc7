// SPDX-License-Identifier: GPL-2.0
/*
 * Landlock around loopfs, as an unprivileged user's user-namespace root:
 * a ruleset that handles LANDLOCK_ACCESS_FS_IOCTL_DEV (ABI 5) without
 * granting it denies the loop ioctls on the instance's nodes; granting it
 * beneath the instance allows them.
 */

#define _GNU_SOURCE
#include <linux/landlock.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/syscall.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

static int landlock_abi(void)
{
	return syscall(SYS_landlock_create_ruleset, NULL, 0,
		       LANDLOCK_CREATE_RULESET_VERSION);
}

/* Restricts the caller: IOCTL_DEV handled, granted beneath `grant` if set. */
static int restrict_ioctl_dev(const char *grant)
{
	struct landlock_ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_IOCTL_DEV,
	};
	int ruleset, ret;

	ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (ruleset < 0)
		return -1;
	if (grant) {
		struct landlock_path_beneath_attr rule = {
			.allowed_access = LANDLOCK_ACCESS_FS_IOCTL_DEV,
			.parent_fd = open(grant, O_PATH | O_CLOEXEC),
		};

		if (rule.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0))
			return -1;
		close(rule.parent_fd);
	}
	ret = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ?:
		syscall(SYS_landlock_restrict_self, ruleset, 0);
	close(ruleset);
	return ret;
}

struct scenario {
	char dir[64];
	bool grant;
};

static int loop_ioctls(void *arg)
{
	struct scenario *s = arg;
	struct loop_config config = { 0 };
	char lfs[128], path[160];
	int ctl, dev, ret_free, ret_configure, err_free, err_configure;

	CHILD_CHECK(mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0);
	CHILD_CHECK(mount("tmpfs", s->dir, "tmpfs", 0, NULL) == 0);
	snprintf(lfs, sizeof(lfs), "%s/lfs", s->dir);
	CHILD_CHECK(mkdir(lfs, 0755) == 0);
	CHILD_CHECK(mount("loop", lfs, "loop", 0, NULL) == 0);
	snprintf(path, sizeof(path), "%s/img", s->dir);
	config.fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHILD_CHECK(config.fd >= 0 && ftruncate(config.fd, 1 << 20) == 0);
	snprintf(path, sizeof(path), "%s/loop-control", lfs);
	ctl = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	close(ctl);

	CHILD_CHECK(restrict_ioctl_dev(s->grant ? lfs : NULL) == 0);

	/* Landlock decides when the node is opened. */
	ctl = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(ctl >= 0);
	ret_free = ioctl(ctl, LOOP_CTL_GET_FREE);
	err_free = errno;
	snprintf(path, sizeof(path), "%s/loop0", lfs);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	ret_configure = ioctl(dev, LOOP_CONFIGURE, &config);
	err_configure = errno;
	if (s->grant) {
		CHILD_CHECK(ret_free == 0);
		CHILD_CHECK(ret_configure == 0);
		CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	} else {
		CHILD_CHECK(ret_free < 0 && err_free == EACCES);
		CHILD_CHECK(ret_configure < 0 && err_configure == EACCES);
	}
	return 0;
}

static void run(struct __test_metadata *_metadata, bool grant)
{
	struct scenario s = { .grant = grant };
	int abi = landlock_abi();

	if (abi < 5)
		SKIP(return, "Landlock ABI %d has no IOCTL_DEV (needs 5)", abi);
	snprintf(s.dir, sizeof(s.dir), "/tmp/landlock_loopfs.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(s.dir));
	ASSERT_EQ(0, chmod(s.dir, 0755));
	EXPECT_EQ(0, nsdev_run_child(loop_ioctls, &s, true));
	rmdir(s.dir);
}

TEST(ioctl_dev_handled_denies_loop_ioctls)
{
	run(_metadata, false);
}

TEST(ioctl_dev_granted_allows_loop_ioctls)
{
	run(_metadata, true);
}

TEST_HARNESS_MAIN
