// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs under allocation failures. Every operation a container can make on
 * an instance is run with its first allocation failed, then its second, and
 * so on, until it runs without a failure injected
 * (/proc/thread-self/fail-nth, with failslab told to fail allocations that
 * may sleep too). Each run that failed must return ENOMEM and leave the
 * instance as it was: no device, node, partition, binding, open count,
 * device count or backing-file reference left behind; each run that
 * succeeded despite the failure (a failure the kernel tolerates) must have
 * done all it reports. An operation must have had at least a minimum
 * number of its allocations failed, so that an injection that does not
 * reach it fails the test; the two that make no allocation must succeed
 * with a failure armed. The runner fails the test on any kernel splat, and
 * kmemleak (FLAVOUR=debug) on any leak.
 *
 * All of it runs as root of a user namespace owned by an unprivileged user,
 * with max_devices_per_user lowered so that a device count lost or leaked
 * by a failure shows at the end.
 */

#define _GNU_SOURCE
#include <linux/fs.h>
#include <linux/loop.h>
#include <limits.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

#define PER_USER "/sys/module/loopfs/parameters/max_devices_per_user"
#define LOOPFS_MAGIC 0x6c706673
#define IMG_SIZE (8 << 20)
#define DATA_AT (1 << 20)
/* More allocations than any one operation makes. */
#define MAX_ROUNDS 5000
/* Devices the container may have at the end (max_devices_per_user). */
#define PER_USER_MAX 2

/* A DOS label with one partition: sectors 2048 to 6143. */
static const unsigned int label[1][2] = { { 2048, 4096 } };

struct ctx {
	char dir[64];		/* tmpfs: images, and the instance on lfs/ */
	char lfs[80];
	int ctl;		/* the instance's loop-control */
	int img[2];		/* two images of one size, O_RDWR */
	int fail;		/* /proc/thread-self/fail-nth */
};

/* Whether the armed failure was injected; disarms it. Keeps errno. */
static bool fail_injected(struct ctx *c)
{
	int err = errno;
	char buf[16] = "";
	bool injected;

	if (pread(c->fail, buf, sizeof(buf) - 1, 0) <= 0) {
		fprintf(stderr, "# fail-nth: %s\n", strerror(errno));
		_exit(1);
	}
	injected = !strtoul(buf, NULL, 10);
	if (!injected)
		CHILD_CHECK(!nsdev_fail_nth(c->fail, 0));
	errno = err;
	return injected;
}

static void node_path(struct ctx *c, const char *name, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", c->lfs, name);
}

static bool node_exists(struct ctx *c, const char *name)
{
	char path[PATH_MAX];
	struct stat st;

	node_path(c, name, path, sizeof(path));
	return !stat(path, &st);
}

static int open_node(struct ctx *c, const char *name, int flags)
{
	char path[PATH_MAX];

	node_path(c, name, path, sizeof(path));
	return open(path, flags | O_CLOEXEC);
}

/* The first byte of the images' data, read through the O_DIRECT dev. */
static char first_byte(int dev)
{
	char *buf, c;

	CHILD_CHECK(!posix_memalign((void **)&buf, 4096, 4096));
	CHILD_CHECK(pread(dev, buf, 4096, DATA_AT) == 4096);
	c = buf[0];
	free(buf);
	return c;
}

/*
 * Checks loop0's first partition: want 1, its block device and its node in
 * the instance; 0, neither; -1 (after a failure), also the block device
 * alone (its node could not be made), never the node alone: a node left
 * for a partition that is gone would open whatever disk gets its number.
 */
static void check_part(struct ctx *c, int want)
{
	char path[PATH_MAX], link[PATH_MAX], *name;
	struct stat st;
	ssize_t len;
	bool node, disk;

	node_path(c, "loop0", path, sizeof(path));
	CHILD_CHECK(!stat(path, &st));
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", major(st.st_rdev),
		 minor(st.st_rdev));
	len = readlink(path, link, sizeof(link) - 1);
	CHILD_CHECK(len > 0);
	link[len] = '\0';
	name = strrchr(link, '/');
	CHILD_CHECK(name);
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/%sp1", name + 1);
	disk = !access(path, F_OK);
	node = node_exists(c, "loop0p1");
	if ((node && !disk) || (want >= 0 && (node != want || disk != want))) {
		fprintf(stderr, "# partition: block device %d, node %d, wanted %d\n",
			disk, node, want);
		_exit(1);
	}
}

/*
 * Runs op(c) with its first, second, ... allocation failed, and once without
 * a failure, calling check(c, ret, injected) after each run with errno as op
 * left it. A failed run must fail with ENOMEM, or with also if not 0.
 * At least min allocations must have been failed in turn: fewer means the
 * injection did not reach op (a failslab cache-filter or other setting left
 * behind, the allocations moved to a worker, GFP flags failslab skips), and
 * its failure paths went untested.
 * Returns 0, or exits the child where a check fails.
 *
 * The minimums are about a quarter of what the normal flavour fails
 * (FLAVOUR=debug fails about twice as many), rounded down and at least 1:
 * a floor that holds whatever the config or the number of CPUs, not an
 * exact count. Each call notes the normal flavour's count of the last run.
 */
static int each_failure(struct ctx *c, const char *what, int (*op)(struct ctx *),
			void (*check)(struct ctx *, int, bool), int also,
			unsigned int min)
{
	unsigned int n;

	for (n = 1; n < MAX_ROUNDS; n++) {
		bool injected;
		int ret;

		CHILD_CHECK(!nsdev_fail_nth(c->fail, n));
		ret = op(c);
		injected = fail_injected(c);
		if (injected && ret < 0 && errno != ENOMEM && (!also || errno != also)) {
			fprintf(stderr, "# %s, allocation %u failed: errno %d (%s), not ENOMEM\n",
				what, n, errno, strerror(errno));
			_exit(1);
		}
		if (!injected && ret < 0) {
			fprintf(stderr, "# %s without a failure: %s\n", what, strerror(errno));
			_exit(1);
		}
		check(c, ret, injected);
		if (!injected) {
			printf("# %s: %u allocations failed in turn\n", what, n - 1);
			if (n - 1 < min) {
				fprintf(stderr, "# %s: only %u allocations failed, at least %u expected: the injection did not reach it\n",
					what, n - 1, min);
				_exit(1);
			}
			return 0;
		}
	}
	fprintf(stderr, "# %s: more than %d allocations\n", what, MAX_ROUNDS);
	_exit(1);
}

/*
 * For an operation that makes no allocation in the calling task: runs op(c)
 * once with its first allocation armed to fail, which must not be used, and
 * op must succeed; then check(c, ret, false). Fails the child if op
 * allocated (it then belongs in each_failure(), with a minimum).
 */
static void no_allocation(struct ctx *c, const char *what, int (*op)(struct ctx *),
			  void (*check)(struct ctx *, int, bool))
{
	bool injected;
	int ret;

	CHILD_CHECK(!nsdev_fail_nth(c->fail, 1));
	ret = op(c);
	injected = fail_injected(c);
	if (injected) {
		fprintf(stderr, "# %s now allocates (ret %d, errno %d): test its failures with each_failure()\n",
			what, ret, ret < 0 ? errno : 0);
		_exit(1);
	}
	if (ret < 0) {
		fprintf(stderr, "# %s with failslab armed: %s\n", what, strerror(errno));
		_exit(1);
	}
	printf("# %s: no allocation, succeeded with a failure armed\n", what);
	check(c, ret, false);
}

static int write_image(struct ctx *c, int i, char fill)
{
	char path[PATH_MAX], data[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/img%d", c->dir, i);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	memset(data, fill, sizeof(data));
	if (ftruncate(fd, IMG_SIZE) || nsdev_write_dos_label(fd, label, 1) ||
	    pwrite(fd, data, sizeof(data), DATA_AT) != sizeof(data)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A tmpfs with two images and an instance on it, as the container. */
static void ctx_init(struct ctx *c)
{
	CHILD_CHECK(!mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	CHILD_CHECK(!mount("tmpfs", c->dir, "tmpfs", 0, "size=64m"));
	snprintf(c->lfs, sizeof(c->lfs), "%s/lfs", c->dir);
	CHILD_CHECK(!mkdir(c->lfs, 0755));
	c->img[0] = write_image(c, 0, 'A');
	c->img[1] = write_image(c, 1, 'B');
	CHILD_CHECK(c->img[0] >= 0 && c->img[1] >= 0);
	c->fail = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	CHILD_CHECK(c->fail >= 0);
	c->ctl = -1;
}

static void instance_mount(struct ctx *c)
{
	CHILD_CHECK(!mount("loop", c->lfs, "loop", 0, NULL));
	c->ctl = open_node(c, "loop-control", O_RDWR);
	CHILD_CHECK(c->ctl >= 0);
}

/* ctx_init(), an instance, and loop0 in it. */
static void ctx_init_loop0(struct ctx *c)
{
	ctx_init(c);
	instance_mount(c);
	CHILD_CHECK(ioctl(c->ctl, LOOP_CTL_ADD, 0) == 0);
}

/* The status of loop0, waiting for a detach at last close to end. */
static int status_settled(struct ctx *c, struct loop_info64 *info, bool bound)
{
	int i, dev, ret = -1;

	for (i = 0; i < 500; i++) {
		dev = open_node(c, "loop0", O_RDONLY);
		CHILD_CHECK(dev >= 0);
		ret = ioctl(dev, LOOP_GET_STATUS64, info);
		close(dev);
		if (bound ? !ret : (ret && errno == ENXIO))
			return 0;
		usleep(20000);
	}
	return -1;
}

/* Binds loop0 to img[i] (without a failure); returns the device. */
static int bind0(struct ctx *c, int i, __u32 flags)
{
	struct loop_config config = { .fd = c->img[i], .info.lo_flags = flags };
	int dev = open_node(c, "loop0", O_RDWR);

	CHILD_CHECK(dev >= 0);
	CHILD_CHECK(!ioctl(dev, LOOP_CONFIGURE, &config));
	return dev;
}

/* Unbinds loop0 through dev, closing it, and waits until it is unbound. */
static void unbind0(struct ctx *c, int dev)
{
	struct loop_info64 info;

	CHILD_CHECK(!ioctl(dev, LOOP_CLR_FD));
	close(dev);
	CHILD_CHECK(!status_settled(c, &info, false));
}

/*
 * The end of every test: the container can still have exactly
 * PER_USER_MAX devices (no count leaked or lost), every device goes, and
 * nothing holds the images (their tmpfs unmounts without MNT_DETACH).
 */
static void ctx_fini(struct ctx *c)
{
	int i, n;

	if (c->ctl < 0)
		instance_mount(c);
	for (n = 0; n < PER_USER_MAX; n++)
		CHILD_CHECK(ioctl(c->ctl, LOOP_CTL_ADD, n) == n);
	errno = 0;
	CHILD_CHECK(ioctl(c->ctl, LOOP_CTL_ADD, n) < 0 && errno == ENOSPC);
	for (n = 0; n < PER_USER_MAX; n++)
		CHILD_CHECK(!ioctl(c->ctl, LOOP_CTL_REMOVE, n));
	close(c->ctl);
	CHILD_CHECK(!umount2(c->lfs, 0));
	close(c->img[0]);
	close(c->img[1]);
	/* A device's last reference may go from a work queue. */
	for (i = 0; i < 500 && umount2(c->dir, 0); i++)
		usleep(20000);
	CHILD_CHECK(i < 500);
}

/* mount */

static int op_mount(struct ctx *c)
{
	return mount("loop", c->lfs, "loop", 0, "max=4");
}

/* A mount made is a working instance; else there is none. */
static void check_mount(struct ctx *c, int ret, bool injected)
{
	struct statfs st;
	int ctl;

	if (!ret) {
		ctl = open_node(c, "loop-control", O_RDWR);
		CHILD_CHECK(ctl >= 0);
		CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
		CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
		close(ctl);
		CHILD_CHECK(!umount2(c->lfs, 0));
	}
	CHILD_CHECK(!statfs(c->lfs, &st) && st.f_type != LOOPFS_MAGIC);
}

static int mount_child(void *arg)
{
	struct ctx *c = arg;

	ctx_init(c);
	each_failure(c, "mount", op_mount, check_mount, 0, 6);	/* 24 */
	ctx_fini(c);
	return 0;
}

/* LOOP_CTL_ADD and LOOP_CTL_GET_FREE */

static int op_ctl_add(struct ctx *c)
{
	return ioctl(c->ctl, LOOP_CTL_ADD, 0);
}

static int op_ctl_get_free(struct ctx *c)
{
	return ioctl(c->ctl, LOOP_CTL_GET_FREE);
}

/* A device made is whole: its node opens and it can be bound; else none. */
static void check_added(struct ctx *c, int ret, bool injected)
{
	if (ret >= 0) {
		CHILD_CHECK(ret == 0);
		unbind0(c, bind0(c, 0, 0));
		CHILD_CHECK(!ioctl(c->ctl, LOOP_CTL_REMOVE, 0));
	} else {
		CHILD_CHECK(!node_exists(c, "loop0"));
		errno = 0;
		CHILD_CHECK(ioctl(c->ctl, LOOP_CTL_REMOVE, 0) < 0 && errno == ENODEV);
	}
}

static int ctl_add_child(void *arg)
{
	struct ctx *c = arg;

	ctx_init(c);
	instance_mount(c);
	/*
	 * add_disk() turns a failure to allocate the disk's name into EINVAL
	 * (device_add() of a device without a name); loop.c's LOOP_CTL_ADD
	 * returns the same.
	 */
	each_failure(c, "LOOP_CTL_ADD", op_ctl_add, check_added, EINVAL, 64);	/* 256 */
	each_failure(c, "LOOP_CTL_GET_FREE", op_ctl_get_free, check_added, EINVAL,
		     64);	/* 256 */
	ctx_fini(c);
	return 0;
}

/* LOOP_CTL_REMOVE */

static int op_ctl_remove(struct ctx *c)
{
	return ioctl(c->ctl, LOOP_CTL_REMOVE, 0);
}

/* A device not removed is still whole, and goes on a second try. */
static void check_removed(struct ctx *c, int ret, bool injected)
{
	if (ret < 0) {
		unbind0(c, bind0(c, 0, 0));
		CHILD_CHECK(!ioctl(c->ctl, LOOP_CTL_REMOVE, 0));
	}
	CHILD_CHECK(!node_exists(c, "loop0"));
	if (injected)
		CHILD_CHECK(ioctl(c->ctl, LOOP_CTL_ADD, 0) == 0);
}

static int ctl_remove_child(void *arg)
{
	struct ctx *c = arg;

	ctx_init_loop0(c);
	each_failure(c, "LOOP_CTL_REMOVE", op_ctl_remove, check_removed, 0, 1);	/* 6 */
	ctx_fini(c);
	return 0;
}

/* LOOP_CONFIGURE with a partition scan */

static int op_configure(struct ctx *c)
{
	struct loop_config config = {
		.fd = c->img[0], .info.lo_flags = LO_FLAGS_PARTSCAN,
	};
	int dev = open_node(c, "loop0", O_RDWR), ret, err;

	if (dev < 0)
		return -1;
	ret = ioctl(dev, LOOP_CONFIGURE, &config);
	err = errno;
	if (ret)
		close(dev);
	errno = err;
	return ret ? -1 : dev;
}

/*
 * A bound device reads its file and has its partition (unless the scan
 * failed: loop.c ignores that too); an unbound one has neither.
 */
static void check_configured(struct ctx *c, int ret, bool injected)
{
	struct loop_info64 info;
	int dev;

	if (ret >= 0) {
		check_part(c, injected ? -1 : 1);
		dev = open_node(c, "loop0", O_RDONLY | O_DIRECT);
		CHILD_CHECK(dev >= 0);
		CHILD_CHECK(first_byte(dev) == 'A');
		close(dev);
		unbind0(c, ret);
	} else {
		CHILD_CHECK(!status_settled(c, &info, false));
	}
	check_part(c, 0);
}

static int configure_child(void *arg)
{
	struct ctx *c = arg;

	ctx_init_loop0(c);
	each_failure(c, "LOOP_CONFIGURE", op_configure, check_configured, 0, 12);	/* 54 */
	CHILD_CHECK(!ioctl(c->ctl, LOOP_CTL_REMOVE, 0));
	ctx_fini(c);
	return 0;
}

/* Operations on a bound device: one device, bound to img0 read-only. */

static int bound_dev = -1;

static int op_set_status(struct ctx *c)
{
	struct loop_info64 info = {
		.lo_offset = 4096, .lo_sizelimit = 1 << 20,
		.lo_flags = LO_FLAGS_AUTOCLEAR,
	};

	return ioctl(bound_dev, LOOP_SET_STATUS64, &info);
}

/* The status and size are the new ones if it succeeded, else the old. */
static void check_status(struct ctx *c, int ret, bool injected)
{
	struct loop_info64 info = { 0 };
	__u64 size;

	CHILD_CHECK(!ioctl(bound_dev, LOOP_GET_STATUS64, &info));
	CHILD_CHECK(!ioctl(bound_dev, BLKGETSIZE64, &size));
	if (!ret) {
		CHILD_CHECK(info.lo_offset == 4096 && info.lo_sizelimit == 1 << 20);
		CHILD_CHECK(info.lo_flags & LO_FLAGS_AUTOCLEAR);
		CHILD_CHECK(size == 1 << 20);
		memset(&info, 0, sizeof(info));
		CHILD_CHECK(!ioctl(bound_dev, LOOP_SET_STATUS64, &info));
	} else {
		CHILD_CHECK(info.lo_offset == 0 && info.lo_sizelimit == 0);
		CHILD_CHECK(!(info.lo_flags & LO_FLAGS_AUTOCLEAR));
		CHILD_CHECK(size == IMG_SIZE);
	}
}

static int op_change_fd(struct ctx *c)
{
	return ioctl(bound_dev, LOOP_CHANGE_FD, c->img[1]);
}

/* The device reads the new file if it succeeded, else the old one. */
static void check_change_fd(struct ctx *c, int ret, bool injected)
{
	struct loop_info64 info;
	struct stat st;

	CHILD_CHECK(!ioctl(bound_dev, LOOP_GET_STATUS64, &info));
	CHILD_CHECK(!fstat(c->img[ret ? 0 : 1], &st));
	CHILD_CHECK(info.lo_inode == st.st_ino);
	CHILD_CHECK(first_byte(bound_dev) == (ret ? 'A' : 'B'));
	if (!ret)
		CHILD_CHECK(!ioctl(bound_dev, LOOP_CHANGE_FD, c->img[0]));
}

static int op_block_size(struct ctx *c)
{
	return ioctl(bound_dev, LOOP_SET_BLOCK_SIZE, 4096);
}

static void check_block_size(struct ctx *c, int ret, bool injected)
{
	int bs;

	CHILD_CHECK(!ioctl(bound_dev, BLKSSZGET, &bs));
	CHILD_CHECK(bs == (ret ? 512 : 4096));
	if (!ret)
		CHILD_CHECK(!ioctl(bound_dev, LOOP_SET_BLOCK_SIZE, 512));
}

static int op_partscan(struct ctx *c)
{
	struct loop_info64 info = { .lo_flags = LO_FLAGS_PARTSCAN };

	return ioctl(bound_dev, LOOP_SET_STATUS64, &info);
}

/*
 * Setting LO_FLAGS_PARTSCAN scans (a failed scan leaves no partition, as
 * in loop.c); a failure to set it leaves neither flag nor partition. The
 * flag cannot be cleared: the device is bound again without it.
 */
static void check_partscan(struct ctx *c, int ret, bool injected)
{
	struct loop_info64 info;

	CHILD_CHECK(!ioctl(bound_dev, LOOP_GET_STATUS64, &info));
	CHILD_CHECK(!(info.lo_flags & LO_FLAGS_PARTSCAN) == !!ret);
	check_part(c, ret ? 0 : injected ? -1 : 1);
	if (!ret) {
		unbind0(c, bound_dev);
		bound_dev = bind0(c, 0, LO_FLAGS_READ_ONLY);
		check_part(c, 0);
	}
}

static int op_open(struct ctx *c)
{
	return open_node(c, "loop0p1", O_RDONLY);
}

static void check_open(struct ctx *c, int ret, bool injected)
{
	if (ret >= 0)
		close(ret);
}

static int bound_child(void *arg)
{
	struct ctx *c = arg;

	ctx_init_loop0(c);
	bound_dev = bind0(c, 0, LO_FLAGS_READ_ONLY | LO_FLAGS_PARTSCAN);
	close(bound_dev);
	bound_dev = open_node(c, "loop0", O_RDONLY | O_DIRECT);
	CHILD_CHECK(bound_dev >= 0);
	/*
	 * LOOP_SET_STATUS64 (offset and size limit, no new partition scan)
	 * and LOOP_SET_BLOCK_SIZE make no allocation in the calling task:
	 * they change the binding under the device's lock, write back and
	 * drop the page cache (nothing dirty: the device is read-only),
	 * freeze the queue and set the capacity or the queue limits, and the
	 * capacity change's uevent is suppressed (loopfs_disk_create())
	 * before it allocates. They have no allocation failure to test: they
	 * must succeed with one armed, and no_allocation() fails if either
	 * starts to allocate.
	 */
	no_allocation(c, "LOOP_SET_STATUS64", op_set_status, check_status);
	each_failure(c, "LOOP_CHANGE_FD", op_change_fd, check_change_fd, 0, 8);	/* 39 */
	no_allocation(c, "LOOP_SET_BLOCK_SIZE", op_block_size, check_block_size);
	each_failure(c, "open of a partition", op_open, check_open, 0, 1);	/* 3 */
	unbind0(c, bound_dev);
	bound_dev = bind0(c, 0, LO_FLAGS_READ_ONLY);
	each_failure(c, "LOOP_SET_STATUS64 partition scan", op_partscan, check_partscan, 0,
		     8);	/* 35 */
	/* No open count left behind: the device unbinds and goes at once. */
	unbind0(c, bound_dev);
	CHILD_CHECK(!ioctl(c->ctl, LOOP_CTL_REMOVE, 0));
	ctx_fini(c);
	return 0;
}

FIXTURE(fault) {
	struct ctx c;
	struct nsdev_failslab failslab;
	char per_user[16];
	bool on;		/* failslab set up: the teardown restores */
};

FIXTURE_SETUP(fault)
{
	memset(&self->c, 0, sizeof(self->c));
	self->on = false;
	ASSERT_LT(0, nsdev_read_file(PER_USER, self->per_user, sizeof(self->per_user)));
	snprintf(self->c.dir, sizeof(self->c.dir), "/tmp/loopfs_fault.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->c.dir));
	ASSERT_EQ(0, chmod(self->c.dir, 0777));
	/*
	 * Last: the teardown restores them, and runs only after a setup that
	 * completed.
	 */
	if (nsdev_failslab_on(&self->failslab)) {
		rmdir(self->c.dir);
		SKIP(return, "no failslab fault injection (CONFIG_FAILSLAB, debugfs)");
	}
	self->on = true;
	ASSERT_EQ(0, nsdev_write_file(PER_USER, "%d", PER_USER_MAX));
}

FIXTURE_TEARDOWN(fault)
{
	if (!self->on)
		return;
	nsdev_failslab_restore(&self->failslab);
	if (nsdev_write_file(PER_USER, "%s", self->per_user))
		fprintf(stderr, "# cannot restore %s: %s\n", PER_USER, strerror(errno));
	rmdir(self->c.dir);
}

TEST_F_TIMEOUT(fault, mount, 300)
{
	ASSERT_EQ(0, nsdev_run_child(mount_child, &self->c, true));
}

TEST_F_TIMEOUT(fault, ctl_add_and_get_free, 300)
{
	ASSERT_EQ(0, nsdev_run_child(ctl_add_child, &self->c, true));
}

TEST_F_TIMEOUT(fault, ctl_remove, 300)
{
	ASSERT_EQ(0, nsdev_run_child(ctl_remove_child, &self->c, true));
}

TEST_F_TIMEOUT(fault, configure, 300)
{
	ASSERT_EQ(0, nsdev_run_child(configure_child, &self->c, true));
}

TEST_F_TIMEOUT(fault, bound_device_ioctls_and_open, 300)
{
	ASSERT_EQ(0, nsdev_run_child(bound_child, &self->c, true));
}

TEST_HARNESS_MAIN
