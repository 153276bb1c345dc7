// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs: the filesystem type, its instances and mount options, driven as
 * init root and as an unprivileged user in a new user namespace.
 *
 * LOOPFS_KO names the module file; the rmmod test reloads it from there.
 * The test runner (scripts/guest.sh) sets it.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

#define LOOPFS_MAGIC 0x6c706673

static bool loopfs_registered(void)
{
	char buf[8192];

	if (nsdev_read_file("/proc/filesystems", buf, sizeof(buf)) < 0)
		return false;
	return strstr(buf, "nodev\tloop\n");
}

/* Entries in dir other than . and .., or -1. */
static int count_entries(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* The super options of the mount at dir, from /proc/self/mountinfo. */
static bool mount_options(const char *dir, char *opts, size_t size)
{
	char line[4096], mnt[PATH_MAX], fstype[64], sopts[1024];
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %s", mnt) != 1 ||
		    strcmp(mnt, dir))
			continue;
		if (sscanf(sep, " - %63s %*s %1023s", fstype, sopts) == 2 &&
		    !strcmp(fstype, "loop")) {
			snprintf(opts, size, "%s", sopts);
			found = true;	/* the last one is the top mount */
		}
	}
	fclose(f);
	return found;
}

FIXTURE(loopfs) {
	char dir[2][64];
};

FIXTURE_SETUP(loopfs)
{
	for (int i = 0; i < 2; i++) {
		snprintf(self->dir[i], sizeof(self->dir[i]), "/tmp/loopfs_test.XXXXXX");
		ASSERT_NE(NULL, mkdtemp(self->dir[i]));
		/* Reachable by the unprivileged user too. */
		ASSERT_EQ(0, chmod(self->dir[i], 0755));
	}
}

FIXTURE_TEARDOWN(loopfs)
{
	for (int i = 0; i < 2; i++) {
		umount2(self->dir[i], MNT_DETACH);
		rmdir(self->dir[i]);
	}
}

/* Both as init root and as root of a new user namespace. */
FIXTURE_VARIANT(loopfs) {
	bool userns;
};

FIXTURE_VARIANT_ADD(loopfs, init_root) {
	.userns = false,
};

FIXTURE_VARIANT_ADD(loopfs, userns_root) {
	.userns = true,
};

TEST(filesystem_registered)
{
	ASSERT_TRUE(loopfs_registered())
		TH_LOG("no 'loop' in /proc/filesystems: is loopfs.ko loaded?");
}

static int mount_empty_root(void *arg)
{
	const char *dir = arg;
	char sub[PATH_MAX];
	struct statfs sfs;
	struct stat st;

	CHILD_CHECK(mount("loop", dir, "loop", 0, NULL) == 0);
	CHILD_CHECK(statfs(dir, &sfs) == 0);
	CHILD_CHECK(sfs.f_type == LOOPFS_MAGIC);
	CHILD_CHECK(stat(dir, &st) == 0);
	CHILD_CHECK(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0755);
	/* Owned by root of the mounting user namespace. */
	CHILD_CHECK(st.st_uid == 0 && st.st_gid == 0);
	/* A new instance holds its loop-control and nothing else. */
	CHILD_CHECK(count_entries(dir) == 1);
	snprintf(sub, sizeof(sub), "%s/loop-control", dir);
	CHILD_CHECK(stat(sub, &st) == 0);
	CHILD_CHECK(S_ISCHR(st.st_mode) && (st.st_mode & 07777) == 0600);
	CHILD_CHECK(st.st_uid == 0 && st.st_gid == 0);
	/* Nothing but loopfs itself creates files in an instance. */
	snprintf(sub, sizeof(sub), "%s/d", dir);
	CHILD_CHECK(mkdir(sub, 0700) < 0);
	CHILD_CHECK(umount2(dir, 0) == 0);
	return 0;
}

TEST_F(loopfs, mount)
{
	ASSERT_EQ(0, nsdev_run_child(mount_empty_root, self->dir[0], variant->userns));
}

static int mount_as_plain_user(void *arg)
{
	CHILD_CHECK(setresuid(NSDEV_UID, NSDEV_UID, NSDEV_UID) == 0);
	CHILD_CHECK(mount("loop", arg, "loop", 0, NULL) < 0 && errno == EPERM);
	return 0;
}

TEST(unprivileged_without_userns_fails)
{
	ASSERT_EQ(0, nsdev_run_child(mount_as_plain_user, "/tmp", false));
}

static int mount_two_instances(void *arg)
{
	char (*dir)[64] = arg;
	struct stat a, b;

	CHILD_CHECK(mount("loop", dir[0], "loop", 0, NULL) == 0);
	CHILD_CHECK(mount("loop", dir[1], "loop", 0, NULL) == 0);
	CHILD_CHECK(stat(dir[0], &a) == 0 && stat(dir[1], &b) == 0);
	CHILD_CHECK(a.st_dev != b.st_dev);
	CHILD_CHECK(umount2(dir[0], 0) == 0);
	/* The other instance is not affected. */
	CHILD_CHECK(stat(dir[1], &b) == 0 && b.st_dev != a.st_dev);
	CHILD_CHECK(umount2(dir[1], 0) == 0);
	return 0;
}

TEST_F(loopfs, instances_are_distinct)
{
	ASSERT_EQ(0, nsdev_run_child(mount_two_instances, self->dir, variant->userns));
}

static int max_option(void *arg)
{
	const char *dir = arg;
	char opts[1024];

	CHILD_CHECK(mount("loop", dir, "loop", 0, NULL) == 0);
	CHILD_CHECK(mount_options(dir, opts, sizeof(opts)));
	CHILD_CHECK(!strstr(opts, "max="));
	CHILD_CHECK(umount2(dir, 0) == 0);

	CHILD_CHECK(mount("loop", dir, "loop", 0, "max=4") == 0);
	CHILD_CHECK(mount_options(dir, opts, sizeof(opts)));
	CHILD_CHECK(strstr(opts, ",max=4"));

	CHILD_CHECK(mount(NULL, dir, NULL, MS_REMOUNT, "max=8") == 0);
	CHILD_CHECK(mount_options(dir, opts, sizeof(opts)));
	CHILD_CHECK(strstr(opts, ",max=8"));

	/* A bad remount changes nothing. */
	CHILD_CHECK(mount(NULL, dir, NULL, MS_REMOUNT, "max=0") < 0 && errno == EINVAL);
	CHILD_CHECK(mount_options(dir, opts, sizeof(opts)));
	CHILD_CHECK(strstr(opts, ",max=8"));
	CHILD_CHECK(umount2(dir, 0) == 0);
	return 0;
}

TEST_F(loopfs, max_option_and_remount)
{
	ASSERT_EQ(0, nsdev_run_child(max_option, self->dir[0], variant->userns));
}

/* Sets key=value through the new mount API; returns the fs_context message. */
static int fsconfig_message(const char *key, const char *value, char *msg, size_t size)
{
	int fd, ret, err;
	ssize_t len;

	fd = fsopen("loop", FSOPEN_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = fsconfig(fd, FSCONFIG_SET_STRING, key, value, 0);
	err = errno;
	len = read(fd, msg, size - 1);
	msg[len > 0 ? len : 0] = '\0';
	close(fd);
	errno = err;
	return ret;
}

static int bad_options(void *arg)
{
	static const char * const bad[] = {
		"bogus=1", "max=0", "max=abc", "max=-1", "max=1048577",
		"max", "max=4,bogus",
	};
	const char *dir = arg;
	char msg[256];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		errno = 0;
		if (mount("loop", dir, "loop", 0, bad[i]) == 0 || errno != EINVAL) {
			fprintf(stderr, "# mount -o %s: %s\n", bad[i], strerror(errno));
			return 1;
		}
	}

	/* The reason reaches the caller through the fs_context log. */
	CHILD_CHECK(fsconfig_message("max", "0", msg, sizeof(msg)) < 0 && errno == EINVAL);
	CHILD_CHECK(strstr(msg, "Bad value for 'max'"));
	CHILD_CHECK(fsconfig_message("bogus", "1", msg, sizeof(msg)) < 0 && errno == EINVAL);
	CHILD_CHECK(strstr(msg, "Unknown parameter 'bogus'"));
	/* And a good value passes. */
	CHILD_CHECK(fsconfig_message("max", "1048576", msg, sizeof(msg)) == 0);
	return 0;
}

TEST_F(loopfs, bad_options_einval)
{
	ASSERT_EQ(0, nsdev_run_child(bad_options, self->dir[0], variant->userns));
}

/* Unloads and reloads the module: init root only. */
TEST(rmmod_refused_while_mounted)
{
	const char *ko = getenv("LOOPFS_KO");
	char dir[] = "/tmp/loopfs_test.XXXXXX";
	int fd;

	ASSERT_NE(NULL, ko) TH_LOG("LOOPFS_KO must name loopfs.ko");
	ASSERT_NE(NULL, mkdtemp(dir));

	ASSERT_EQ(0, mount("loop", dir, "loop", 0, NULL));
	ASSERT_EQ(-1, syscall(SYS_delete_module, "loopfs", O_NONBLOCK));
	ASSERT_EQ(EWOULDBLOCK, errno);
	ASSERT_TRUE(loopfs_registered());

	ASSERT_EQ(0, umount2(dir, 0));
	ASSERT_EQ(0, rmdir(dir));
	ASSERT_EQ(0, syscall(SYS_delete_module, "loopfs", O_NONBLOCK))
		TH_LOG("rmmod after umount: %s", strerror(errno));
	ASSERT_FALSE(loopfs_registered());

	fd = open(ko, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG("open %s: %s", ko, strerror(errno));
	ASSERT_EQ(0, syscall(SYS_finit_module, fd, "", 0))
		TH_LOG("reloading %s: %s", ko, strerror(errno));
	close(fd);
	ASSERT_TRUE(loopfs_registered());
}

TEST_HARNESS_MAIN
