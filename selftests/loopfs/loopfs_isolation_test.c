// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs isolation: what a hostile container (root of a user namespace owned
 * by an unprivileged host user) tries against other containers and the host,
 * and the safe result. Each test performs the attack.
 *
 * A "tenant" is a child that becomes such a container, mounts its own loopfs
 * instance, binds loop0 to an image holding a partition table and a secret,
 * reports the device numbers of loop0 and loop0p1 and waits to be told to go.
 */

#define _GNU_SOURCE
#include <linux/fs.h>
#include <linux/fuse.h>
#include <linux/loop.h>
#include <limits.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

#define IMG_SIZE (8 << 20)
#define SECRET "TENANT-SECRET-0123456789"
#define SECRET_AT (1 << 20)
#define PARAM(name) "/sys/module/loopfs/parameters/" name

/* A DOS label with one partition: sectors 2048 to 6143. */
static const unsigned int label[1][2] = { { 2048, 4096 } };

/* Mounts a tmpfs on dir and a loopfs instance on dir/lfs; returns loop-control. */
static int private_instance(const char *dir)
{
	char path[PATH_MAX];

	if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) ||
	    mount("tmpfs", dir, "tmpfs", 0, "size=64m"))
		return -1;
	snprintf(path, sizeof(path), "%s/lfs", dir);
	if (mkdir(path, 0755) || mount("loop", path, "loop", 0, NULL))
		return -1;
	snprintf(path, sizeof(path), "%s/lfs/loop-control", dir);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Binds dir/lfs/loop<n> to file (opened with oflags); returns the device fd. */
static int bind_dev(const char *dir, int n, const char *file, int oflags,
		    __u32 flags)
{
	struct loop_config config = { .info.lo_flags = flags };
	char path[PATH_MAX];
	int dev, fd;

	snprintf(path, sizeof(path), "%s/lfs/loop%d", dir, n);
	dev = open(path, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -1;
	fd = open(file, oflags | O_CLOEXEC);
	if (fd < 0) {
		close(dev);
		return -1;
	}
	config.fd = fd;
	if (ioctl(dev, LOOP_CONFIGURE, &config)) {
		int err = errno;

		close(fd);
		close(dev);
		errno = err;
		return -1;
	}
	close(fd);
	return dev;
}

/*
 * In a container child: root of a new user namespace, mounts a private
 * instance at dir/lfs, adds loop0 and opens it with oflags. Returns its fd;
 * exits the child on failure.
 */
static int container_loop0(const char *dir, int oflags)
{
	char path[PATH_MAX];
	int ctl, dev;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", dir);
	dev = open(path, oflags | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	return dev;
}

/*
 * In a container child: as container_loop0(), then binds loop0 to file
 * (opened with oflags) with lo_flags. Returns its fd; exits the child on
 * failure.
 */
static int container_bound_loop0(const char *dir, const char *file, int oflags,
				 unsigned int flags)
{
	int ctl, dev;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	dev = bind_dev(dir, 0, file, oflags, flags);
	CHILD_CHECK(dev >= 0);
	return dev;
}

/* An image with a label and the secret. */
static int make_image(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret = -1;

	if (fd < 0)
		return -1;
	if (!ftruncate(fd, size) && !nsdev_write_dos_label(fd, label, 1) &&
	    pwrite(fd, SECRET, strlen(SECRET), SECRET_AT) == (ssize_t)strlen(SECRET))
		ret = 0;
	close(fd);
	return ret;
}

struct tenant {
	pid_t pid;
	int go;			/* write end: closing it ends the tenant */
	dev_t disk, part;
	char dir[64];
};

/* Starts a tenant; cgroup, if given, is the cgroup it runs in. */
static int tenant_start(struct tenant *t, const char *cgroup)
{
	int ready[2], go[2];
	char path[PATH_MAX];
	dev_t devs[2];
	struct stat st;

	snprintf(t->dir, sizeof(t->dir), "/tmp/loopfs_iso.XXXXXX");
	if (!mkdtemp(t->dir) || chmod(t->dir, 0777) || pipe2(ready, O_CLOEXEC) ||
	    pipe2(go, O_CLOEXEC))
		return -1;
	t->pid = fork();
	if (t->pid < 0)
		return -1;
	if (t->pid == 0) {
		int ctl, dev;
		char c;

		close(ready[0]);
		close(go[1]);
		CHILD_CHECK(!cgroup || !nsdev_join_cgroup(cgroup));
		CHILD_CHECK(!nsdev_become_userns_root());
		ctl = private_instance(t->dir);
		CHILD_CHECK(ctl >= 0);
		CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
		snprintf(path, sizeof(path), "%s/img", t->dir);
		CHILD_CHECK(!make_image(path, IMG_SIZE));
		dev = bind_dev(t->dir, 0, path, O_RDWR, LO_FLAGS_PARTSCAN);
		CHILD_CHECK(dev >= 0);
		snprintf(path, sizeof(path), "%s/lfs/loop0", t->dir);
		CHILD_CHECK(!stat(path, &st));
		devs[0] = st.st_rdev;
		snprintf(path, sizeof(path), "%s/lfs/loop0p1", t->dir);
		CHILD_CHECK(!stat(path, &st));
		devs[1] = st.st_rdev;
		CHILD_CHECK(write(ready[1], devs, sizeof(devs)) == sizeof(devs));
		/* Until the test closes its end. */
		CHILD_CHECK(read(go[0], &c, 1) == 0);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	t->go = go[1];
	if (read(ready[0], devs, sizeof(devs)) != sizeof(devs)) {
		close(ready[0]);
		return -1;
	}
	close(ready[0]);
	t->disk = devs[0];
	t->part = devs[1];
	return 0;
}

/* Ends the tenant; returns its exit status (0: all its checks passed). */
static int tenant_stop(struct tenant *t)
{
	int status;

	close(t->go);
	status = nsdev_wait(t->pid);
	rmdir(t->dir);
	return status;
}

/* The byte at the secret's place through a node, or -errno. */
static int read_secret(const char *node, char *buf, size_t size)
{
	int fd = open(node, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = pread(fd, buf, size, SECRET_AT);
	close(fd);
	return n < 0 ? -errno : (int)n;
}

/*
 * Runs fn(dir) in a child (as root of a new user namespace with userns),
 * dir a new directory under /tmp that anyone may write to, removed after.
 * Returns what nsdev_run_child() returns, or -1.
 */
static int run_in_scratch_dir(const char *prefix, int (*fn)(void *), bool userns)
{
	char dir[64];
	int ret;

	snprintf(dir, sizeof(dir), "/tmp/%s.XXXXXX", prefix);
	if (!mkdtemp(dir) || chmod(dir, 0777))
		return -1;
	ret = nsdev_run_child(fn, dir, userns);
	nsdev_sh("rm -rf %s", dir);
	return ret;
}

/*
 * A host user other than the one owning the containers' namespaces: that
 * one is privileged over them (it may enter them) without loopfs too.
 */
#define OTHER_UID (NSDEV_UID - 1)

struct probe {
	const char *path;
	bool userns;		/* else: OTHER_UID on the host */
};

/* Becomes the prober: another container's root, or OTHER_UID on the host. */
static int probe_become(const struct probe *p)
{
	if (p->userns)
		return nsdev_become_userns_root();
	if (setgroups(0, NULL) || setresgid(OTHER_UID, OTHER_UID, OTHER_UID) ||
	    setresuid(OTHER_UID, OTHER_UID, OTHER_UID))
		return -1;
	return 0;
}

/* Tries to open probe->path; exits with the errno (0: it opened). */
static int probe_open(void *arg)
{
	struct probe *p = arg;
	int fd;

	if (probe_become(p))
		return 99;
	fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno;
}

/* Reads probe->path; exits with the read's errno (0: it read something). */
static int probe_read(void *arg)
{
	struct probe *p = arg;
	char buf[4096];
	ssize_t n;
	int fd;

	if (probe_become(p))
		return 99;
	fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 98;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n > 0 ? 0 : n == 0 ? 97 : errno;
}

/*
 * Another container, or a host user, with a node for a container's disk or
 * partition (made by mknod where the filesystem allows it) cannot open it.
 * Nor can they read its backing file's path in sysfs. Host root opens it
 * through the instance's node, or exclusively (O_EXCL) through another;
 * a plain open of another node is what the host's udev makes on the
 * disk's add uevent, by which time the container may have bound an image
 * (blkid, LVM and RAID auto-assembly would parse it as host root): ENXIO.
 */
TEST(foreign_nodes_do_not_open)
{
	char dir[] = "/tmp/loopfs_nodes.XXXXXX", disk[64], part[64], ctl[64];
	char buf[64], sysfs[128], path[PATH_MAX];
	struct probe p;
	struct tenant t;
	int major, fd;

	ASSERT_EQ(0, tenant_start(&t, NULL));
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, chmod(dir, 0755));
	snprintf(disk, sizeof(disk), "%s/disk", dir);
	snprintf(part, sizeof(part), "%s/part", dir);
	snprintf(ctl, sizeof(ctl), "%s/ctl", dir);
	ASSERT_EQ(0, mknod(disk, S_IFBLK | 0666, t.disk));
	ASSERT_EQ(0, mknod(part, S_IFBLK | 0666, t.part));
	ASSERT_EQ(0, chmod(disk, 0666));
	ASSERT_EQ(0, chmod(part, 0666));

	/* Host root reaches the container's data through its instance... */
	snprintf(path, sizeof(path), "/proc/%d/root%s/lfs/loop0", t.pid, t.dir);
	ASSERT_EQ(strlen(SECRET), read_secret(path, buf, strlen(SECRET)));
	EXPECT_EQ(0, memcmp(buf, SECRET, strlen(SECRET)));
	/* (BLKRRPART there opens the disk again, as through that node) */
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, ioctl(fd, BLKRRPART)) TH_LOG("BLKRRPART: %s", strerror(errno));
	close(fd);
	/* ... or exclusively, */
	fd = open(disk, O_RDONLY | O_EXCL | O_CLOEXEC);
	ASSERT_LE(0, fd);
	memset(buf, 0, sizeof(buf));
	EXPECT_EQ(strlen(SECRET), pread(fd, buf, strlen(SECRET), SECRET_AT));
	EXPECT_EQ(0, memcmp(buf, SECRET, strlen(SECRET)));
	close(fd);
	/* not as udev and scanners open its other nodes. */
	EXPECT_EQ(-ENXIO, read_secret(disk, buf, strlen(SECRET)));
	EXPECT_EQ(-ENXIO, read_secret(part, buf, strlen(SECRET)));
	snprintf(path, sizeof(path), "/dev/loopfs/%u", minor(t.disk));
	EXPECT_EQ(-ENXIO, read_secret(path, buf, strlen(SECRET)));

	/* Another container and a plain host user do not. */
	p = (struct probe){ disk, true };
	EXPECT_EQ(ENXIO, nsdev_run_child(probe_open, &p, false));
	p = (struct probe){ part, true };
	EXPECT_EQ(ENXIO, nsdev_run_child(probe_open, &p, false));
	p = (struct probe){ disk, false };
	EXPECT_EQ(ENXIO, nsdev_run_child(probe_open, &p, false));
	p = (struct probe){ part, false };
	EXPECT_EQ(ENXIO, nsdev_run_child(probe_open, &p, false));

	/* The backing file's path is the instance's business. */
	snprintf(sysfs, sizeof(sysfs), "/sys/dev/block/%u:%u/loop/backing_file",
		 major(t.disk), minor(t.disk));
	ASSERT_LT(0, nsdev_read_file(sysfs, buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "/img"));
	p = (struct probe){ sysfs, true };
	EXPECT_EQ(EACCES, nsdev_run_child(probe_read, &p, false));
	p = (struct probe){ sysfs, false };
	EXPECT_EQ(EACCES, nsdev_run_child(probe_read, &p, false));

	/* A loop-control node made by mknod is nobody's loop-control. */
	major = nsdev_proc_major("loopfs-control");
	ASSERT_LT(0, major);
	ASSERT_EQ(0, mknod(ctl, S_IFCHR | 0666, makedev(major, 0)));
	EXPECT_EQ(-1, open(ctl, O_RDWR | O_CLOEXEC));
	EXPECT_EQ(ENXIO, errno);

	unlink(disk);
	unlink(part);
	unlink(ctl);
	rmdir(dir);
	EXPECT_EQ(0, tenant_stop(&t));
}

/* A host instance's device: no container opens it through a node either. */
TEST(host_instance_devices_stay_the_hosts)
{
	char dir[] = "/tmp/loopfs_hostdev.XXXXXX", lfs[128], node[160];
	struct probe p;
	struct stat st;
	int ctl;

	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, chmod(dir, 0755));
	snprintf(lfs, sizeof(lfs), "%s/lfs", dir);
	ASSERT_EQ(0, mkdir(lfs, 0755));
	ASSERT_EQ(0, mount("loop", lfs, "loop", 0, NULL));
	snprintf(node, sizeof(node), "%s/loop-control", lfs);
	ctl = open(node, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl);
	ASSERT_EQ(0, ioctl(ctl, LOOP_CTL_ADD, 0));
	snprintf(node, sizeof(node), "%s/loop0", lfs);
	ASSERT_EQ(0, stat(node, &st));
	snprintf(node, sizeof(node), "%s/node", dir);
	ASSERT_EQ(0, mknod(node, S_IFBLK | 0666, st.st_rdev));
	ASSERT_EQ(0, chmod(node, 0666));

	p = (struct probe){ node, true };
	EXPECT_EQ(ENXIO, nsdev_run_child(probe_open, &p, false));
	/* In the initial namespace, the node's mode decides, as for loop.c. */
	p = (struct probe){ node, false };
	EXPECT_EQ(0, nsdev_run_child(probe_open, &p, false));

	unlink(node);
	EXPECT_EQ(0, ioctl(ctl, LOOP_CTL_REMOVE, 0));
	close(ctl);
	EXPECT_EQ(0, umount2(lfs, 0));
	rmdir(lfs);
	rmdir(dir);
}

struct stale_arg {
	char dir[64];
};

/*
 * A node kept past its device's removal (O_PATH) opens nothing, even once its
 * device number belongs to another device: here the container's own, so that
 * only the node's check can refuse.
 */
static int stale_node(void *arg)
{
	struct stale_arg *a = arg;
	char path[PATH_MAX], other[128];
	struct stat before, after;
	int ctl, ctl2, node, fd;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(a->dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", a->dir);
	node = open(path, O_PATH | O_CLOEXEC);
	CHILD_CHECK(node >= 0);
	CHILD_CHECK(!fstat(node, &before));
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);

	/* Another instance's device takes the freed number. */
	snprintf(other, sizeof(other), "%s/other", a->dir);
	CHILD_CHECK(!mkdir(other, 0755) && !mount("loop", other, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", other);
	ctl2 = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(ctl2 >= 0);
	CHILD_CHECK(ioctl(ctl2, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/loop0", other);
	CHILD_CHECK(!stat(path, &after));
	if (after.st_rdev != before.st_rdev) {
		fprintf(stderr, "# the number was not reused: nothing to try\n");
		_exit(2);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", node);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(fd == -1 && errno == ENXIO);
	/* The new device's own node works. */
	snprintf(path, sizeof(path), "%s/loop0", other);
	fd = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	close(fd);
	return 0;
}

TEST(stale_node_opens_nothing)
{
	struct stale_arg a;

	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_stale.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	EXPECT_EQ(0, nsdev_run_child(stale_node, &a, false));
	rmdir(a.dir);
}

struct bad_fd_arg {
	char dir[64];
	bool userns;
};

/*
 * The filesystems of PSEUDO_FS_MAGICS (rust/loopfs/device.rs), each with
 * the file of it tried as a backing file: one with read_iter where there is
 * one (then only the magic check refuses it), else what any instance has
 * ("." where there is no file without objects made first: configfs without
 * a subsystem, bpffs, whose pinned objects open(2) mostly refuses, pstore
 * without records, efivarfs, whose variables vary, smackfs). Such a file or
 * directory is refused by an earlier check too: the test asserts that every
 * one is refused, not which check refuses it.
 */
static const struct pseudo_fs {
	const char *type;	/* as in /proc/filesystems */
	const char *data;	/* mount options */
	const char *file;	/* relative to its root */
} pseudo_fs[] = {
	{ "sysfs", NULL, "module/loopfs/parameters/max_devices" },
	{ "proc", NULL, "sys/kernel/hostname" },
	{ "debugfs", NULL, "fault_around_bytes" },
	{ "securityfs", NULL, "lsm" },
	{ "configfs", NULL, "." },
	/* A named v1 hierarchy of no controller, gone with its last user. */
	{ "cgroup", "none,name=loopfs_bad_fd", "cgroup.procs" },
	{ "cgroup2", NULL, "cgroup.procs" },
	{ "bpf", NULL, "." },
	{ "tracefs", NULL, "trace" },
	{ "efivarfs", NULL, "." },
	{ "pstore", NULL, "." },
	{ "selinuxfs", NULL, "enforce" },
	{ "smackfs", NULL, "." },
	{ "binfmt_misc", NULL, "status" },
	{ "resctrl", NULL, "tasks" },
};

/* Whether /proc/filesystems lists type. */
static bool fs_registered(const char *type)
{
	char line[128], *name;
	bool found = false;
	FILE *f = fopen("/proc/filesystems", "re");

	CHILD_CHECK(f);
	while (!found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		name = strrchr(line, '\t');
		found = !strcmp(name ? name + 1 : line, type);
	}
	fclose(f);
	return found;
}

/*
 * As host root, before the caller may become a container: mounts each
 * pseudo filesystem of this kernel on a scratch tmpfs on dir and opens its
 * file read-only into fds[] (-1: not in this kernel). Every one this kernel
 * has must mount and open: one not tried fails the child. The mounts are
 * detached again, the files staying open. A container gets such fds from
 * its own mounts (proc, sysfs, cgroup2, bpf, binfmt_misc) or from anyone
 * who passes it one.
 */
static void open_pseudo_files(const char *dir, int *fds)
{
	char path[PATH_MAX];
	unsigned int i;

	CHILD_CHECK(!unshare(CLONE_NEWNS));
	CHILD_CHECK(!mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	CHILD_CHECK(!mount("tmpfs", dir, "tmpfs", 0, "size=1m"));
	for (i = 0; i < ARRAY_SIZE(pseudo_fs); i++) {
		const struct pseudo_fs *p = &pseudo_fs[i];

		fds[i] = -1;
		if (!fs_registered(p->type)) {
			printf("# %s: not in this kernel\n", p->type);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s", dir, p->type);
		CHILD_CHECK(!mkdir(path, 0755));
		if (mount(p->type, path, p->type, 0, p->data)) {
			fprintf(stderr, "# %s: mount: %s, not tried\n", p->type, strerror(errno));
			_exit(1);
		}
		snprintf(path, sizeof(path), "%s/%s/%s", dir, p->type, p->file);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			fprintf(stderr, "# %s: %s, not tried\n", path, strerror(errno));
			_exit(1);
		}
	}
	CHILD_CHECK(!umount2(dir, MNT_DETACH));
}

/*
 * A backing fd must be open for reading (EBADF), must not be a kernel
 * interface file (EINVAL), and loopfs disks and partitions of any instance
 * cannot back a device (EINVAL): no stacking, no cycle.
 */
static int bad_backing_files(void *arg)
{
	struct bad_fd_arg *a = arg;
	int pseudo[ARRAY_SIZE(pseudo_fs)];
	struct loop_config config = { 0 };
	char img[PATH_MAX], path[PATH_MAX];
	int ctl, dev0, dev1, fd;
	unsigned int i;

	open_pseudo_files(a->dir, pseudo);
	if (a->userns)
		CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(a->dir);
	CHILD_CHECK(ctl >= 0);
	snprintf(img, sizeof(img), "%s/img", a->dir);
	CHILD_CHECK(!make_image(img, IMG_SIZE));
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 1) == 1);
	snprintf(path, sizeof(path), "%s/lfs/loop1", a->dir);
	dev1 = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev1 >= 0);

	/* Write-only: the device would read what the fd cannot. */
	fd = open(img, O_WRONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	config.fd = fd;
	CHILD_CHECK(ioctl(dev1, LOOP_CONFIGURE, &config) == -1 && errno == EBADF);
	CHILD_CHECK(ioctl(dev1, LOOP_SET_FD, fd) == -1 && errno == EBADF);
	close(fd);
	fd = open(img, O_PATH | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(ioctl(dev1, LOOP_SET_FD, fd) == -1 && errno == EBADF);
	close(fd);

	/* Kernel interfaces are not data. */
	for (i = 0; i < ARRAY_SIZE(pseudo_fs); i++) {
		if (pseudo[i] < 0)
			continue;
		config.fd = pseudo[i];
		errno = 0;
		if (ioctl(dev1, LOOP_CONFIGURE, &config) != -1 || errno != EINVAL) {
			fprintf(stderr, "# %s/%s accepted as a backing file (errno %d)\n",
				pseudo_fs[i].type, pseudo_fs[i].file, errno);
			_exit(1);
		}
		errno = 0;
		if (ioctl(dev1, LOOP_SET_FD, pseudo[i]) != -1 || errno != EINVAL) {
			fprintf(stderr, "# %s/%s accepted by LOOP_SET_FD (errno %d)\n",
				pseudo_fs[i].type, pseudo_fs[i].file, errno);
			_exit(1);
		}
		printf("# %s/%s refused\n", pseudo_fs[i].type, pseudo_fs[i].file);
		close(pseudo[i]);
	}

	/* loop0 and its partition cannot back loop1. */
	dev0 = bind_dev(a->dir, 0, img, O_RDONLY, LO_FLAGS_PARTSCAN | LO_FLAGS_READ_ONLY);
	CHILD_CHECK(dev0 >= 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0p1", a->dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	config.fd = fd;
	CHILD_CHECK(ioctl(dev1, LOOP_CONFIGURE, &config) == -1 && errno == EINVAL);
	/* Nor replace loop0's own file: that cycle deadlocked. */
	CHILD_CHECK(ioctl(dev0, LOOP_CHANGE_FD, fd) == -1 && errno == EINVAL);
	close(fd);
	config.fd = dev0;
	CHILD_CHECK(ioctl(dev1, LOOP_CONFIGURE, &config) == -1 && errno == EINVAL);
	CHILD_CHECK(ioctl(dev0, LOOP_CHANGE_FD, dev0) == -1 && errno == EBADF);

	/* A write-only replacement for a read-only device's file. */
	fd = open(img, O_WRONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(ioctl(dev0, LOOP_CHANGE_FD, fd) == -1 && errno == EBADF);
	close(fd);
	/* A good one still works. */
	fd = open(img, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(ioctl(dev0, LOOP_CHANGE_FD, fd) == 0);
	close(fd);
	CHILD_CHECK(ioctl(dev0, LOOP_CLR_FD) == 0);
	close(dev0);
	close(dev1);
	return 0;
}

static void run_bad_backing_files(struct __test_metadata *_metadata, bool userns)
{
	struct bad_fd_arg a = { .userns = userns };

	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_fd.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	EXPECT_EQ(0, nsdev_run_child(bad_backing_files, &a, false));
	rmdir(a.dir);
}

TEST(bad_backing_files_init_root)
{
	run_bad_backing_files(_metadata, false);
}

TEST(bad_backing_files_userns_root)
{
	run_bad_backing_files(_metadata, true);
}

struct cred_arg {
	char dir[64];
	char file[64];
};

/*
 * Backing I/O runs with the binder's credentials and file size limit, not
 * with the kernel worker's: a write through the device clears the set-user-ID
 * bit of a file the container does not own (the kernel's credentials would
 * keep it), and a write past the binder's RLIMIT_FSIZE fails.
 */
static int binder_credentials(void *arg)
{
	struct cred_arg *a = arg;
	char path[PATH_MAX];
	struct rlimit rl;
	struct stat st;
	char *buf;
	int ctl, dev;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(a->dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	CHILD_CHECK(!getrlimit(RLIMIT_FSIZE, &rl));
	rl.rlim_cur = 1 << 20;
	CHILD_CHECK(!setrlimit(RLIMIT_FSIZE, &rl));
	dev = bind_dev(a->dir, 0, a->file, O_RDWR, 0);
	CHILD_CHECK(dev >= 0);
	/* The limit counts as it was at binding time. */
	rl.rlim_cur = RLIM_INFINITY;
	CHILD_CHECK(!setrlimit(RLIMIT_FSIZE, &rl));
	close(dev);

	buf = aligned_alloc(4096, 4096);
	CHILD_CHECK(buf);
	memset(buf, 'w', 4096);
	snprintf(path, sizeof(path), "%s/lfs/loop0", a->dir);
	dev = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	CHILD_CHECK(pwrite(dev, buf, 4096, 0) == 4096);
	CHILD_CHECK(fsync(dev) == 0);
	CHILD_CHECK(!stat(a->file, &st));
	if (st.st_mode & S_ISUID) {
		fprintf(stderr, "# set-user-ID bit kept: I/O ran with other credentials\n");
		_exit(1);
	}
	/* Past the 1 MiB limit. */
	CHILD_CHECK(pwrite(dev, buf, 4096, 4 << 20) == -1 && errno == EIO);
	CHILD_CHECK(pwrite(dev, buf, 4096, (1 << 20) - 4096) == 4096);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	return 0;
}

TEST(backing_io_with_binder_credentials)
{
	char host[] = "/tmp/loopfs_cred.XXXXXX";
	struct cred_arg a;
	struct stat st;
	int fd;

	/* Root's set-user-ID file, writable by all: the container owns nothing. */
	ASSERT_NE(NULL, mkdtemp(host));
	ASSERT_EQ(0, chmod(host, 0755));
	snprintf(a.file, sizeof(a.file), "%s/suid", host);
	fd = open(a.file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, IMG_SIZE));
	ASSERT_EQ(0, fchmod(fd, 04666));
	close(fd);
	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_cdir.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));

	EXPECT_EQ(0, nsdev_run_child(binder_credentials, &a, false));
	ASSERT_EQ(0, stat(a.file, &st));
	EXPECT_EQ(0, st.st_mode & S_ISUID);

	unlink(a.file);
	rmdir(host);
	rmdir(a.dir);
}

/*
 * The device writes where its requests say, whatever the binder makes of
 * its backing file's flags afterwards: with O_APPEND set by fcntl(), a write
 * would otherwise land at the end of the file and grow it past the size
 * limit checked at the request's position.
 */
static int append_backing(void *arg)
{
	struct loop_config config = { 0 };
	const char *dir = arg;
	char path[PATH_MAX], *buf, back[4096];
	struct rlimit rl;
	struct stat st;
	int ctl, dev, file;

	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/img", dir);
	file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHILD_CHECK(file >= 0);
	CHILD_CHECK(!ftruncate(file, 1 << 20));
	CHILD_CHECK(!getrlimit(RLIMIT_FSIZE, &rl));
	rl.rlim_cur = 1 << 20;
	CHILD_CHECK(!setrlimit(RLIMIT_FSIZE, &rl));
	snprintf(path, sizeof(path), "%s/lfs/loop0", dir);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	config.fd = file;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == 0);
	CHILD_CHECK(!fcntl(file, F_SETFL, O_APPEND));

	buf = aligned_alloc(4096, 4096);
	CHILD_CHECK(buf);
	memset(buf, 'a', 4096);
	CHILD_CHECK(pwrite(dev, buf, 4096, 8192) == 4096);
	CHILD_CHECK(fsync(dev) == 0);
	CHILD_CHECK(!fstat(file, &st));
	if (st.st_size != 1 << 20) {
		fprintf(stderr, "# the backing file grew to %lld bytes\n",
			(long long)st.st_size);
		_exit(1);
	}
	CHILD_CHECK(pread(file, back, sizeof(back), 8192) == sizeof(back));
	CHILD_CHECK(!memcmp(back, buf, sizeof(back)));
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	close(file);
	return 0;
}

TEST(backing_file_o_append_ignored)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_append", append_backing, true));
}

/* Sets or clears the append-only attribute (chattr +a / -a) of path. */
static int set_append_only(const char *path, bool on)
{
	int fd, flags, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = ioctl(fd, FS_IOC_GETFLAGS, &flags);
	if (!ret) {
		flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
		ret = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
	return ret;
}

struct append_only_arg {
	char dir[64];
	char file[64];
	int go[2];		/* the container to the host, then back */
	int back[2];
};

/*
 * An append-only file (chattr +a, which only the host can set) can be
 * opened for writing with O_APPEND, but a device writes anywhere: it cannot
 * back a writable device (EPERM), only a read-only one; and a device bound
 * before the host made the file append-only writes nothing to it any more
 * (EIO).
 */
static int append_only_backing(void *arg)
{
	struct append_only_arg *a = arg;
	struct loop_config config = { 0 };
	char path[PATH_MAX], *buf, back[4096], c = 0;
	const char *dir = a->dir;
	int dev, file;

	dev = container_loop0(dir, O_RDWR);
	snprintf(path, sizeof(path), "%s/lfs/loop0", dir);

	CHILD_CHECK(open(a->file, O_RDWR | O_CLOEXEC) == -1 && errno == EPERM);
	file = open(a->file, O_RDWR | O_APPEND | O_CLOEXEC);
	CHILD_CHECK(file >= 0);
	config.fd = file;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == -1 && errno == EPERM);
	CHILD_CHECK(ioctl(dev, LOOP_SET_FD, file) == -1 && errno == EPERM);
	close(file);
	file = open(a->file, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(file >= 0);
	config.fd = file;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == 0);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(file);
	close(dev);

	/* The host lifts the attribute; the container binds for writing. */
	CHILD_CHECK(write(a->go[1], &c, 1) == 1 && read(a->back[0], &c, 1) == 1);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	file = open(a->file, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(file >= 0);
	config.fd = file;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == 0);
	close(dev);
	snprintf(path, sizeof(path), "%s/lfs/loop0", dir);
	dev = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	buf = aligned_alloc(4096, 4096);
	CHILD_CHECK(buf);
	memset(buf, 'w', 4096);
	CHILD_CHECK(pwrite(dev, buf, 4096, 0) == 4096);
	/* The host sets it again. */
	CHILD_CHECK(write(a->go[1], &c, 1) == 1 && read(a->back[0], &c, 1) == 1);
	memset(buf, 'x', 4096);
	CHILD_CHECK(pwrite(dev, buf, 4096, 0) == -1 && errno == EIO);
	CHILD_CHECK(pread(file, back, sizeof(back), 0) == sizeof(back));
	CHILD_CHECK(back[0] == 'w' && back[4095] == 'w');
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	close(file);
	return 0;
}

TEST(append_only_backing_file_eperm)
{
	char host[] = "/tmp/loopfs_aohost.XXXXXX";
	struct append_only_arg a;
	char c = 0;
	pid_t pid;
	int fd;

	ASSERT_NE(NULL, mkdtemp(host));
	/* A filesystem with chattr: ext4 on the RAM disk. */
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_EQ(0, nsdev_sh("mkfs.ext4 -q -F /dev/ram0"));
	ASSERT_EQ(0, mount("/dev/ram0", host, "ext4", 0, NULL));
	ASSERT_EQ(0, chmod(host, 0755));
	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_aonly.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	snprintf(a.file, sizeof(a.file), "%s/log", host);
	fd = open(a.file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ftruncate(fd, 1 << 20));
	ASSERT_EQ(0, fchmod(fd, 0666));
	close(fd);
	ASSERT_EQ(0, set_append_only(a.file, true)) TH_LOG("chattr +a: %s", strerror(errno));
	ASSERT_EQ(0, pipe2(a.go, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(a.back, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(append_only_backing(&a));
	close(a.go[1]);
	close(a.back[0]);
	if (read(a.go[0], &c, 1) == 1) {
		EXPECT_EQ(0, set_append_only(a.file, false));
		EXPECT_EQ(1, write(a.back[1], &c, 1));
	}
	if (read(a.go[0], &c, 1) == 1) {
		EXPECT_EQ(0, set_append_only(a.file, true));
		EXPECT_EQ(1, write(a.back[1], &c, 1));
	}
	close(a.back[1]);
	EXPECT_EQ(0, nsdev_wait(pid));
	close(a.go[0]);
	set_append_only(a.file, false);
	unlink(a.file);
	umount2(host, MNT_DETACH);
	rmdir(host);
	rmdir(a.dir);
}

/* A FUSE server with one 1 MiB regular file, "f", enough to open it. */
static void fuse_reply(int fd, const struct fuse_in_header *in, int error,
		       const void *out, size_t len)
{
	char buf[sizeof(struct fuse_out_header) + 256];
	struct fuse_out_header *hdr = (void *)buf;

	hdr->len = sizeof(*hdr) + (error ? 0 : len);
	hdr->error = error;
	hdr->unique = in->unique;
	if (!error)
		memcpy(buf + sizeof(*hdr), out, len);
	if (write(fd, buf, hdr->len) < 0)
		return;
}

static void fuse_attr(struct fuse_attr *attr, __u64 ino)
{
	memset(attr, 0, sizeof(*attr));
	attr->ino = ino;
	attr->nlink = 1;
	attr->blksize = 4096;
	if (ino == FUSE_ROOT_ID) {
		attr->mode = S_IFDIR | 0755;
	} else {
		attr->mode = S_IFREG | 0666;
		attr->size = 1 << 20;
		attr->blocks = (1 << 20) / 512;
	}
}

static void fuse_serve(int fd)
{
	static char buf[FUSE_MIN_READ_BUFFER + 65536];
	struct fuse_in_header *in = (void *)buf;
	struct fuse_init_out init = {
		.major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
		.max_write = 4096, .max_pages = 1, .time_gran = 1,
	};
	struct fuse_entry_out entry = { .nodeid = 2 };
	struct fuse_attr_out attr = { 0 };
	struct fuse_open_out open_out = { .fh = 1 };

	fuse_attr(&entry.attr, 2);
	while (read(fd, buf, sizeof(buf)) > 0) {
		switch (in->opcode) {
		case FUSE_INIT:
			fuse_reply(fd, in, 0, &init, sizeof(init));
			break;
		case FUSE_LOOKUP:
			fuse_reply(fd, in, 0, &entry, sizeof(entry));
			break;
		case FUSE_GETATTR:
			fuse_attr(&attr.attr, in->nodeid);
			fuse_reply(fd, in, 0, &attr, sizeof(attr));
			break;
		case FUSE_OPEN:
		case FUSE_OPENDIR:
			fuse_reply(fd, in, 0, &open_out, sizeof(open_out));
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
			break;
		case FUSE_FLUSH:
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
			fuse_reply(fd, in, 0, NULL, 0);
			break;
		default:
			fuse_reply(fd, in, -ENOSYS, NULL, 0);
		}
	}
}

struct fuse_arg {
	char dir[64];
	char fuse[64];
	bool host;		/* mounted in the initial namespaces */
};

/* Mounts the FUSE server's filesystem on dir; returns the server's pid. */
static pid_t fuse_mount(const char *dir, const char *opts)
{
	char all[160];
	pid_t server;
	int fuse;

	fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fuse < 0)
		return -1;
	snprintf(all, sizeof(all), "fd=%d,rootmode=40000,%s", fuse, opts);
	if (mkdir(dir, 0755) || mount("nsdev", dir, "fuse", 0, all))
		return -1;
	server = fork();
	if (server == 0) {
		/* Whoever mounted may no longer be allowed to kill it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		fuse_serve(fuse);
		_exit(0);
	}
	close(fuse);
	return server;
}

/*
 * A file of a FUSE filesystem cannot back a container's device: I/O on it
 * could wait on its daemon for ever, and with it the device's removal and
 * the host's sync(2). Neither when the container serves and mounts it
 * itself, nor when it is an unprivileged user's FUSE mount in the initial
 * namespaces (fusermount's), whose daemon the container may be.
 */
static int fuse_backing(void *arg)
{
	struct loop_config config = { 0 };
	struct fuse_arg *a = arg;
	char path[PATH_MAX];
	int ctl, dev, file;
	pid_t server;

	if (a->host) {
		/* As fusermount mounts for that user, who opens the file. */
		snprintf(path, sizeof(path), "user_id=%d,group_id=%d,allow_other",
			 NSDEV_UID, NSDEV_GID);
		CHILD_CHECK(!unshare(CLONE_NEWNS));
		CHILD_CHECK(!mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
		server = fuse_mount(a->fuse, path);
		CHILD_CHECK(server > 0);
		snprintf(path, sizeof(path), "%s/f", a->fuse);
		file = open(path, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(file >= 0);
		CHILD_CHECK(!nsdev_become_userns_root());
		ctl = private_instance(a->dir);
		CHILD_CHECK(ctl >= 0);
	} else {
		/* Opened in the namespace that mounts: FUSE insists. */
		CHILD_CHECK(!nsdev_become_userns_root());
		ctl = private_instance(a->dir);
		CHILD_CHECK(ctl >= 0);
		snprintf(path, sizeof(path), "%s/fuse", a->dir);
		server = fuse_mount(path, "user_id=0,group_id=0");
		CHILD_CHECK(server > 0);
		snprintf(path, sizeof(path), "%s/fuse/f", a->dir);
		file = open(path, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(file >= 0);
	}
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", a->dir);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	config.fd = file;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == -1 && errno == EINVAL);
	CHILD_CHECK(ioctl(dev, LOOP_SET_FD, file) == -1 && errno == EINVAL);
	close(file);
	close(dev);
	if (a->host)
		return 0;	/* The server dies with this task. */
	snprintf(path, sizeof(path), "%s/fuse", a->dir);
	umount2(path, MNT_DETACH);
	kill(server, SIGKILL);
	nsdev_wait(server);
	return 0;
}

static void fuse_backing_test(struct __test_metadata *_metadata, bool host)
{
	struct fuse_arg a = { .host = host };
	struct stat st;

	/* As distributions ship it: any user may open /dev/fuse. */
	ASSERT_EQ(0, stat("/dev/fuse", &st));
	ASSERT_EQ(0, chmod("/dev/fuse", 0666));
	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_fuse.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	snprintf(a.fuse, sizeof(a.fuse), "%s.host", a.dir);
	EXPECT_EQ(0, nsdev_run_child(fuse_backing, &a, false));
	rmdir(a.fuse);
	rmdir(a.dir);
	chmod("/dev/fuse", st.st_mode & 07777);
}

TEST(fuse_backing_file_einval)
{
	fuse_backing_test(_metadata, false);
}

TEST(host_fuse_backing_file_einval)
{
	fuse_backing_test(_metadata, true);
}

static unsigned int param(const char *path)
{
	char buf[32];

	return nsdev_read_file(path, buf, sizeof(buf)) > 0 ? strtoul(buf, NULL, 10) : 0;
}

struct count_arg {
	char dir[64];
	int want;		/* devices it must get */
	bool nested;		/* then one more in a nested namespace: ENOSPC */
	bool root_made;		/* its user namespace made by root, not the user */
	bool user_inside;	/* the user makes one inside one root made for it */
	bool holds;		/* says so on ready, holds them until hold closes */
	int ready, hold;
};

/*
 * As a setuid helper does for a user: root makes the caller a user namespace
 * whose root is the user. Root's, so owned by root; a process outside it,
 * with root's capabilities there, writes the maps. Returns 0 or -1.
 */
static int root_maps_to_user(void)
{
	char path[64], c = 'x';
	pid_t parent = getpid(), helper;
	int p[2];

	if (pipe(p))
		return -1;
	helper = fork();
	if (helper < 0)
		return -1;
	if (helper == 0) {
		CHILD_CHECK(read(p[0], &c, 1) == 1);
		snprintf(path, sizeof(path), "/proc/%d/setgroups", parent);
		CHILD_CHECK(!nsdev_write_file(path, "deny"));
		snprintf(path, sizeof(path), "/proc/%d/uid_map", parent);
		CHILD_CHECK(!nsdev_write_file(path, "0 %d 1", NSDEV_UID));
		snprintf(path, sizeof(path), "/proc/%d/gid_map", parent);
		CHILD_CHECK(!nsdev_write_file(path, "0 %d 1", NSDEV_GID));
		_exit(0);
	}
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) || write(p[1], &c, 1) != 1)
		return -1;
	close(p[0]);
	close(p[1]);
	return nsdev_wait(helper) ? -1 : 0;
}

/* Adds devices over two instances until ENOSPC; exits 0 if it got want. */
static int fill_devices(void *arg)
{
	struct count_arg *a = arg;
	char sub[128], path[PATH_MAX];
	int ctl[2], got = 0, i;

	if (a->user_inside) {
		CHILD_CHECK(!root_maps_to_user());
		CHILD_CHECK(!setresgid(0, 0, 0) && !setresuid(0, 0, 0));
		CHILD_CHECK(!prctl(PR_SET_DUMPABLE, 1, 0, 0, 0));
		CHILD_CHECK(!nsdev_become_userns_root_of_self());
	} else if (a->root_made) {
		CHILD_CHECK(!nsdev_become_userns_root_of_self());
	} else {
		CHILD_CHECK(!nsdev_become_userns_root());
	}
	CHILD_CHECK(!mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	CHILD_CHECK(!mount("tmpfs", a->dir, "tmpfs", 0, "size=1m"));
	for (i = 0; i < 2; i++) {
		snprintf(sub, sizeof(sub), "%s/%d", a->dir, i);
		CHILD_CHECK(!mkdir(sub, 0755) && !mount("loop", sub, "loop", 0, NULL));
		snprintf(path, sizeof(path), "%s/loop-control", sub);
		ctl[i] = open(path, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(ctl[i] >= 0);
	}
	while (got < 64 && ioctl(ctl[got % 2], LOOP_CTL_ADD, -1) >= 0)
		got++;
	CHILD_CHECK(errno == ENOSPC);
	if (got != a->want) {
		fprintf(stderr, "# got %d devices, want %d\n", got, a->want);
		_exit(1);
	}
	if (a->holds) {
		char c = 'y';

		CHILD_CHECK(write(a->ready, &c, 1) == 1);
		CHILD_CHECK(read(a->hold, &c, 1) == 0);
	}
	if (a->nested) {
		/* A namespace of its own does not escape the bound. */
		CHILD_CHECK(!nsdev_become_userns_root_of_self());
		snprintf(sub, sizeof(sub), "%s/nested", a->dir);
		CHILD_CHECK(!mkdir(sub, 0755) && !mount("loop", sub, "loop", 0, NULL));
		snprintf(path, sizeof(path), "%s/loop-control", sub);
		i = open(path, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(i >= 0);
		CHILD_CHECK(ioctl(i, LOOP_CTL_ADD, -1) == -1 && errno == ENOSPC);
	}
	return 0;
}

/*
 * max_devices_per_userns bounds a container, however many instances and
 * nested namespaces it makes; reserved_devices keeps room for the host.
 */
TEST(per_userns_bound_and_host_reserve)
{
	unsigned int max = param(PARAM("max_devices"));
	unsigned int per = param(PARAM("max_devices_per_userns"));
	unsigned int reserve = param(PARAM("reserved_devices"));
	struct count_arg a = { .want = 3, .nested = true };
	char host[] = "/tmp/loopfs_host.XXXXXX", path[PATH_MAX];
	int ctl;

	ASSERT_LT(0, max);
	ASSERT_LT(0, per);
	ASSERT_LT(0, reserve);
	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_cnt.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));

	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_userns"), "3"));
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &a, false));
	/* A sibling container has its own bound. */
	a.nested = false;
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &a, false));
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_userns"), "%u", per));

	/* Containers leave the reserve to the host. */
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices"), "%u", reserve + 2));
	a.want = 2;
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &a, false));
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_NE(NULL, mkdtemp(host));
	ASSERT_EQ(0, mount("loop", host, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", host);
	ctl = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl);
	EXPECT_EQ(0, ioctl(ctl, LOOP_CTL_ADD, -1));
	close(ctl);
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices"), "%u", max));
	EXPECT_EQ(0, umount2(host, 0));
	rmdir(host);
	rmdir(a.dir);
}

/*
 * max_devices_per_user bounds the containers of one host user together: a
 * second user namespace of the same user brings no more devices, nor one it
 * makes inside a namespace root made for it (a setuid helper's). A user
 * namespace root made is bounded by max_devices_per_userns alone.
 */
TEST(per_user_bound_across_containers)
{
	unsigned int per = param(PARAM("max_devices_per_userns"));
	unsigned int user = param(PARAM("max_devices_per_user"));
	struct count_arg a = { .want = 3, .holds = true }, b;
	int ready[2], hold[2];
	pid_t pid;
	char c;

	ASSERT_LT(0, per);
	ASSERT_LT(0, user);
	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_user.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	ASSERT_EQ(0, pipe2(ready, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(hold, O_CLOEXEC));
	a.ready = ready[1];
	a.hold = hold[0];
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_userns"), "3"));
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_user"), "5"));

	/* The first container of the user takes 3, and keeps them. */
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(hold[1]);
		_exit(fill_devices(&a));
	}
	close(ready[1]);
	close(hold[0]);
	EXPECT_EQ(1, read(ready[0], &c, 1));
	/* Its second gets what is left of the user's 5, not 3 of its own. */
	b = (struct count_arg){ .want = 2 };
	memcpy(b.dir, a.dir, sizeof(b.dir));
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &b, false));
	/* Namespaces root made do not count against any user's. */
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_user"), "1"));
	b = (struct count_arg){ .want = 3, .root_made = true };
	memcpy(b.dir, a.dir, sizeof(b.dir));
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &b, false));
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_user"), "5"));
	/* But one the user makes inside one of root's does. */
	b = (struct count_arg){ .want = 2, .user_inside = true };
	memcpy(b.dir, a.dir, sizeof(b.dir));
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &b, false));
	close(hold[1]);
	EXPECT_EQ(0, nsdev_wait(pid));
	close(ready[0]);
	/* The first container's devices went with it: 3 for the next. */
	b = (struct count_arg){ .want = 3 };
	memcpy(b.dir, a.dir, sizeof(b.dir));
	EXPECT_EQ(0, nsdev_run_child(fill_devices, &b, false));

	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_user"), "%u", user));
	ASSERT_EQ(0, nsdev_write_file(PARAM("max_devices_per_userns"), "%u", per));
	rmdir(a.dir);
}

/*
 * Counts the uevents for devpaths containing name, by action: adds and
 * changes (which make udev probe the device) and removes.
 */
static void uevents_for(int sock, const char *name, int *probes, int *removes,
			char *seen, size_t size)
{
	char msg[4096];
	ssize_t n;

	*probes = *removes = 0;
	seen[0] = '\0';
	for (;;) {
		struct pollfd pfd = { sock, POLLIN, 0 };

		if (poll(&pfd, 1, 1000) <= 0)
			break;
		n = recv(sock, msg, sizeof(msg) - 1, 0);
		if (n <= 0)
			break;
		msg[n] = '\0';
		/* The header is "action@devpath". */
		if (!strstr(msg, name))
			continue;
		if (!strncmp(msg, "remove@", 7))
			(*removes)++;
		else
			(*probes)++;
		if (strlen(seen) + strlen(msg) + 2 < size) {
			strcat(seen, msg);
			strcat(seen, " ");
		}
	}
}

/*
 * The host's udev is not told to probe container data: no add or change
 * uevent for a bound device, its partitions or its changes; only the add of
 * the empty disk and its removal. The partitions, never announced, are not
 * announced gone either.
 */
TEST(no_uevents_for_container_data)
{
	struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	char name[32], disk_add[64], seen[2048];
	int probes, removes, sock;
	struct tenant t;

	sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
	ASSERT_LE(0, sock);
	ASSERT_EQ(0, bind(sock, (struct sockaddr *)&addr, sizeof(addr)));
	ASSERT_EQ(0, tenant_start(&t, NULL));
	snprintf(name, sizeof(name), "/loopfs%u", minor(t.disk));
	snprintf(disk_add, sizeof(disk_add), "add@/devices/virtual/block%s ", name);
	uevents_for(sock, name, &probes, &removes, seen, sizeof(seen));
	EXPECT_EQ(1, probes) TH_LOG("%s", seen);
	EXPECT_EQ(0, strncmp(seen, disk_add, strlen(disk_add))) TH_LOG("%s", seen);
	EXPECT_EQ(0, tenant_stop(&t));
	uevents_for(sock, name, &probes, &removes, seen, sizeof(seen));
	EXPECT_EQ(0, probes) TH_LOG("%s", seen);
	EXPECT_EQ(1, removes) TH_LOG("%s", seen);
	close(sock);
}

/*
 * Host loop tools do not take containers' devices for the host's own:
 * losetup -a does not list them and losetup -D does not detach them. The
 * host's node for them is not where those tools look.
 */
TEST(host_losetup_leaves_container_devices)
{
	char sysfs[128], buf[256], node[64];
	struct tenant t;
	FILE *f;

	ASSERT_EQ(0, tenant_start(&t, NULL));
	snprintf(sysfs, sizeof(sysfs), "/sys/dev/block/%u:%u/loop/backing_file",
		 major(t.disk), minor(t.disk));
	ASSERT_LT(0, nsdev_read_file(sysfs, buf, sizeof(buf)));
	f = popen("losetup -a 2>&1", "r");
	ASSERT_NE(NULL, f);
	while (fgets(buf, sizeof(buf), f))
		EXPECT_EQ(NULL, strstr(buf, "/img")) TH_LOG("host lists %s", buf);
	pclose(f);
	snprintf(node, sizeof(node), "/dev/loopfs/%u", minor(t.disk));
	EXPECT_EQ(0, access(node, F_OK));
	snprintf(node, sizeof(node), "/dev/loopfs%u", minor(t.disk));
	EXPECT_EQ(-1, access(node, F_OK));
	EXPECT_EQ(0, nsdev_sh("losetup -D"));
	/* Still bound. */
	EXPECT_LT(0, nsdev_read_file(sysfs, buf, sizeof(buf)));
	EXPECT_EQ(0, tenant_stop(&t));
}

/*
 * A mark in the kernel log: /dev/kmsg opened and moved past the last record.
 * Returns its fd, or -1.
 */
static int klog_mark(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0 && lseek(fd, 0, SEEK_END) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * How many of the records logged after the mark contain needle; -1 if they
 * cannot all be read (EPIPE: some were overwritten before they were read).
 * Closes the mark.
 */
static int klog_count_since(int mark, const char *needle)
{
	char rec[8192];	/* a record, CONSOLE_EXT_LOG_MAX at most */
	int count = 0;
	ssize_t n;

	for (;;) {
		n = read(mark, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		if (strstr(rec, needle)) {
			fprintf(stderr, "# logged: %s", rec);
			count++;
		}
	}
	if (n < 0 && errno != EAGAIN) {
		fprintf(stderr, "# /dev/kmsg: %s\n", strerror(errno));
		count = -1;
	}
	close(mark);
	return count;
}

struct bsize_arg {
	char dir[64];
};

static int bad_block_sizes(void *arg)
{
	static const unsigned long bad[] = { 0, 1, 256, 513, 3072, 8192, 1UL << 40 };
	struct bsize_arg *a = arg;
	struct loop_config config = { 0 };
	char img[PATH_MAX], path[PATH_MAX];
	unsigned int i;
	int ctl, dev, fd;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(a->dir);
	CHILD_CHECK(ctl >= 0);
	snprintf(img, sizeof(img), "%s/img", a->dir);
	CHILD_CHECK(!make_image(img, IMG_SIZE));
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", a->dir);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	fd = open(img, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);	/* not config.fd: a __u32 is never < 0 */
	config.fd = fd;
	config.block_size = 1000;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == -1 && errno == EINVAL);
	config.block_size = 0;
	CHILD_CHECK(ioctl(dev, LOOP_CONFIGURE, &config) == 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		if (ioctl(dev, LOOP_SET_BLOCK_SIZE, bad[i]) != -1 || errno != EINVAL) {
			fprintf(stderr, "# block size %lu not refused with EINVAL\n", bad[i]);
			_exit(1);
		}
	}
	CHILD_CHECK(ioctl(dev, LOOP_SET_BLOCK_SIZE, 4096UL) == 0);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	return 0;
}

/* Bad block sizes fail with EINVAL before the block layer logs them. */
TEST(bad_block_size_einval_unlogged)
{
	struct bsize_arg a;
	int mark;

	snprintf(a.dir, sizeof(a.dir), "/tmp/loopfs_bs.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(a.dir));
	ASSERT_EQ(0, chmod(a.dir, 0777));
	/* Only what is logged from here on: blk_validate_limits()'s warning. */
	mark = klog_mark();
	ASSERT_LE(0, mark) TH_LOG("/dev/kmsg: %s", strerror(errno));
	EXPECT_EQ(0, nsdev_run_child(bad_block_sizes, &a, false));
	EXPECT_EQ(0, klog_count_since(mark, "Invalid logical block size"));
	rmdir(a.dir);
}

/* The cgroup tests: a backing file on ext4 on an in-kernel loop device. */
FIXTURE(cg) {
	char tmp[64];		/* tmpfs holding the ext4 image */
	char ext4[96];		/* where the ext4 is mounted */
	char cgroup[64];
	int loop_nr;
	int loop_fd;
	dev_t loop_devt;
};

FIXTURE_SETUP(cg)
{
	struct loop_config config = { 0 };
	char path[PATH_MAX];
	struct stat st;
	int ctl, fd;

	self->loop_fd = -1;
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	snprintf(self->tmp, sizeof(self->tmp), "/tmp/loopfs_cg.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->tmp));
	ASSERT_EQ(0, chmod(self->tmp, 0755));
	ASSERT_EQ(0, mount("tmpfs", self->tmp, "tmpfs", 0, "size=160m"));
	snprintf(path, sizeof(path), "%s/ext4.img", self->tmp);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd);
	/*
	 * The disk's memory, allocated now, in this cgroup: as a real disk's,
	 * its writes allocate nothing. Allocated by loop.c's worker, which
	 * takes on the writer's memory cgroup, tmpfs pages that nothing can
	 * reclaim would be charged to the container's cgroup and fill it.
	 */
	ASSERT_EQ(0, fallocate(fd, 0, 0, 128 << 20));

	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl) TH_LOG("/dev/loop-control: %s", strerror(errno));
	self->loop_nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	ASSERT_LE(0, self->loop_nr);
	snprintf(path, sizeof(path), "/dev/loop%d", self->loop_nr);
	self->loop_fd = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->loop_fd);
	config.fd = fd;
	ASSERT_EQ(0, ioctl(self->loop_fd, LOOP_CONFIGURE, &config));
	close(fd);
	ASSERT_EQ(0, fstat(self->loop_fd, &st));
	self->loop_devt = st.st_rdev;
	/*
	 * No discard: loop.c would punch the whole image back out of the
	 * tmpfs and the allocation above would be undone.
	 */
	ASSERT_EQ(0, nsdev_sh("mkfs.ext4 -q -F -E nodiscard %s", path));
	snprintf(self->ext4, sizeof(self->ext4), "%s/ext4", self->tmp);
	ASSERT_EQ(0, mkdir(self->ext4, 0755));
	ASSERT_EQ(0, mount(path, self->ext4, "ext4", 0, NULL));
	ASSERT_EQ(0, chmod(self->ext4, 0755));

	/* A container's cgroup, with the io and memory controllers. */
	ASSERT_EQ(0, nsdev_write_file("/sys/fs/cgroup/cgroup.subtree_control",
				      "+io +memory"));
	snprintf(self->cgroup, sizeof(self->cgroup), "/sys/fs/cgroup/loopfs_cg%d",
		 getpid());
	ASSERT_EQ(0, mkdir(self->cgroup, 0755));
}

FIXTURE_TEARDOWN(cg)
{
	char path[PATH_MAX];

	umount2(self->ext4, MNT_DETACH);
	if (self->loop_fd >= 0) {
		ioctl(self->loop_fd, LOOP_CLR_FD);
		close(self->loop_fd);
	}
	umount2(self->tmp, MNT_DETACH);
	rmdir(self->tmp);
	rmdir(self->cgroup);
	/* A second container's, for tests that have one. */
	snprintf(path, sizeof(path), "%s_b", self->cgroup);
	rmdir(path);
}

struct backing_file {
	const char *cgroup;	/* made from this cgroup, if set */
	const char *path;
	off_t len;
};

static int make_backing_file(void *arg)
{
	struct backing_file *b = arg;
	int fd;

	if (b->cgroup && nsdev_join_cgroup(b->cgroup))
		return -1;
	fd = open(b->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0666) || fallocate(fd, 0, 0, b->len)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * A world-writable, preallocated backing file on the ext4. Made from cgroup,
 * if given: the file's writeback is then that cgroup's.
 */
static int cg_backing_file(const char *ext4, const char *cgroup, char *path,
			   size_t size, off_t len)
{
	struct backing_file b = { .cgroup = cgroup, .path = path, .len = len };

	snprintf(path, size, "%s/backing", ext4);
	if (cgroup)
		return nsdev_run_child(make_backing_file, &b, false);
	return make_backing_file(&b);
}

static long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

struct cg_writer {
	char dir[64];
	char file[128];
	char cgroup[64];
	__u32 flags;		/* LO_FLAGS_DIRECT_IO: direct backing I/O */
	int mib;		/* how much to write */
	int fsync_every;	/* MiB between fsyncs of the device */
	int result;		/* pipe: elapsed milliseconds */
};

/* A container in its cgroup writes through its loopfs device. */
static int cg_write(void *arg)
{
	struct cg_writer *w = arg;
	struct loop_info64 info;
	char path[PATH_MAX];
	int ctl, dev, i;
	long ms;
	char *buf;

	CHILD_CHECK(!nsdev_join_cgroup(w->cgroup));
	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(w->dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	dev = bind_dev(w->dir, 0, w->file, O_RDWR, w->flags);
	CHILD_CHECK(dev >= 0);
	CHILD_CHECK(ioctl(dev, LOOP_GET_STATUS64, &info) == 0);
	CHILD_CHECK((info.lo_flags & LO_FLAGS_DIRECT_IO) == (w->flags & LO_FLAGS_DIRECT_IO));
	close(dev);
	snprintf(path, sizeof(path), "%s/lfs/loop0", w->dir);
	dev = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	buf = aligned_alloc(4096, 1 << 20);
	CHILD_CHECK(buf);
	memset(buf, 'c', 1 << 20);
	ms = now_ms();
	for (i = 0; i < w->mib; i++) {
		CHILD_CHECK(pwrite(dev, buf, 1 << 20, (off_t)i << 20) == 1 << 20);
		if (w->fsync_every && (i + 1) % w->fsync_every == 0)
			CHILD_CHECK(fsync(dev) == 0);
	}
	CHILD_CHECK(fsync(dev) == 0);
	ms = now_ms() - ms;
	CHILD_CHECK(write(w->result, &ms, sizeof(ms)) == sizeof(ms));
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	return 0;
}

static long run_cg_writer(struct __test_metadata *_metadata, struct cg_writer *w)
{
	int result[2];
	long ms = -1;

	snprintf(w->dir, sizeof(w->dir), "/tmp/loopfs_cgw.XXXXXX");
	if (!mkdtemp(w->dir) || chmod(w->dir, 0777) || pipe2(result, O_CLOEXEC))
		return -1;
	w->result = result[1];
	EXPECT_EQ(0, nsdev_run_child(cg_write, w, false));
	close(result[1]);
	if (read(result[0], &ms, sizeof(ms)) != sizeof(ms))
		ms = -1;
	close(result[0]);
	rmdir(w->dir);
	return ms;
}

/* io.max of the container's cgroup throttles its device's backing I/O. */
TEST_F(cg, io_max_throttles_backing_io)
{
	struct cg_writer w = { .flags = LO_FLAGS_DIRECT_IO, .mib = 4 };
	char path[PATH_MAX];
	long ms;

	ASSERT_EQ(0, cg_backing_file(self->ext4, NULL, w.file, sizeof(w.file), 8 << 20));
	snprintf(w.cgroup, sizeof(w.cgroup), "%s", self->cgroup);
	snprintf(path, sizeof(path), "%s/io.max", self->cgroup);
	/* 1 MiB/s on the disk under the backing file. */
	ASSERT_EQ(0, nsdev_write_file(path, "%u:%u wbps=1048576",
				      major(self->loop_devt), minor(self->loop_devt)));
	ms = run_cg_writer(_metadata, &w);
	ASSERT_LE(0, ms);
	TH_LOG("4 MiB at 1 MiB/s: %ld ms", ms);
	EXPECT_LE(2500, ms);
}

struct cg_user {
	const char *dev;	/* the shared device's node */
	char cgroup[80];
	bool flush;		/* write 1 MiB and fsync it, else read 1 MiB */
	int started;		/* pipe: written to before the fsync */
	int result;		/* pipe: start and end, milliseconds */
};

/* One of two containers using the same device from different cgroups. */
static int cg_use(void *arg)
{
	struct cg_user *u = arg;
	long times[2];
	char *buf;
	int dev;

	CHILD_CHECK(!nsdev_join_cgroup(u->cgroup));
	dev = open(u->dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	buf = aligned_alloc(4096, 1 << 20);
	CHILD_CHECK(buf);
	memset(buf, 'u', 1 << 20);
	times[0] = now_ms();
	if (u->flush) {
		CHILD_CHECK(pwrite(dev, buf, 1 << 20, 0) == 1 << 20);
		CHILD_CHECK(write(u->started, "", 1) == 1);
		CHILD_CHECK(fsync(dev) == 0);
	} else {
		/* Never cached: served by a worker. */
		CHILD_CHECK(pread(dev, buf, 1 << 20, 4 << 20) == 1 << 20);
	}
	times[1] = now_ms();
	CHILD_CHECK(write(u->result, times, sizeof(times)) == sizeof(times));
	close(dev);
	return 0;
}

static pid_t cg_user_start(struct cg_user *u, int result[2])
{
	pid_t pid;

	if (pipe2(result, O_CLOEXEC))
		return -1;
	u->result = result[1];
	pid = fork();
	if (pid == 0)
		_exit(cg_use(u));
	close(result[1]);
	return pid;
}

/*
 * One cgroup's throttled backing I/O holds up no other cgroup's requests
 * on the same device: the flush of a container limited to 256 KiB/s takes
 * seconds, another container's read meanwhile does not wait for it.
 */
TEST_F(cg, throttled_cgroup_holds_up_no_other)
{
	struct cg_user a = { .flush = true }, b = { 0 };
	long ta[2] = { -1, -1 }, tb[2] = { -1, -1 };
	char dir[64], file[128], path[PATH_MAX], node[PATH_MAX];
	int ctl, dev, started[2], ra[2], rb[2];
	pid_t pa, pb;
	char c;

	snprintf(dir, sizeof(dir), "/tmp/loopfs_cgs.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(dir));
	ctl = private_instance(dir);
	ASSERT_LE(0, ctl);
	ASSERT_EQ(0, ioctl(ctl, LOOP_CTL_ADD, 0));
	snprintf(a.cgroup, sizeof(a.cgroup), "%s", self->cgroup);
	/* A's file: its writeback is A's, and throttled. */
	ASSERT_EQ(0, cg_backing_file(self->ext4, a.cgroup, file, sizeof(file), 8 << 20));
	dev = bind_dev(dir, 0, file, O_RDWR, 0);
	ASSERT_LE(0, dev);
	snprintf(node, sizeof(node), "%s/lfs/loop0", dir);

	snprintf(path, sizeof(path), "%s/io.max", a.cgroup);
	ASSERT_EQ(0, nsdev_write_file(path, "%u:%u wbps=262144",
				      major(self->loop_devt), minor(self->loop_devt)));
	snprintf(b.cgroup, sizeof(b.cgroup), "%s_b", self->cgroup);
	ASSERT_EQ(0, mkdir(b.cgroup, 0755));
	a.dev = b.dev = node;

	ASSERT_EQ(0, pipe2(started, O_CLOEXEC));
	a.started = started[1];
	pa = cg_user_start(&a, ra);
	ASSERT_LT(0, pa);
	close(started[1]);
	ASSERT_EQ(1, read(started[0], &c, 1));
	close(started[0]);
	usleep(300000);
	pb = cg_user_start(&b, rb);
	ASSERT_LT(0, pb);

	EXPECT_EQ(0, nsdev_wait(pb));
	EXPECT_EQ(0, nsdev_wait(pa));
	EXPECT_EQ(sizeof(tb), read(rb[0], tb, sizeof(tb)));
	EXPECT_EQ(sizeof(ta), read(ra[0], ta, sizeof(ta)));
	close(ra[0]);
	close(rb[0]);
	TH_LOG("throttled write+fsync %ld ms; other cgroup's read %ld ms, done %ld ms before it",
	       ta[1] - ta[0], tb[1] - tb[0], ta[1] - tb[1]);
	/* 1 MiB at 256 KiB/s: the throttle held... */
	EXPECT_LE(2500, ta[1] - ta[0]);
	/* ...and the other read did not wait for it. */
	EXPECT_LT(tb[1], ta[1]);
	EXPECT_GT(1500, tb[1] - tb[0]);

	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	close(ctl);
	snprintf(path, sizeof(path), "%s/lfs", dir);
	umount2(path, MNT_DETACH);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
}

static long cg_value(const char *cgroup, const char *file, const char *key)
{
	char path[PATH_MAX], buf[8192], *p;

	snprintf(path, sizeof(path), "%s/%s", cgroup, file);
	if (nsdev_read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	if (!key)
		return strtol(buf, NULL, 10);
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (!strncmp(p, key, strlen(key)) && p[strlen(key)] == ' ')
			return strtol(p + strlen(key) + 1, NULL, 10);
	}
	return -1;
}

/*
 * The backing file's page cache is charged to the container's cgroup, and
 * its memory.max holds for it.
 */
TEST_F(cg, memory_max_holds_for_backing_page_cache)
{
	struct cg_writer w = { .flags = 0, .mib = 48, .fsync_every = 4 };
	char path[PATH_MAX];
	long limit = 24 << 20, peak, file, max_events;

	ASSERT_EQ(0, cg_backing_file(self->ext4, NULL, w.file, sizeof(w.file), 48 << 20));
	snprintf(w.cgroup, sizeof(w.cgroup), "%s", self->cgroup);
	snprintf(path, sizeof(path), "%s/memory.max", self->cgroup);
	ASSERT_EQ(0, nsdev_write_file(path, "%ld", limit));
	ASSERT_LE(0, run_cg_writer(_metadata, &w));
	peak = cg_value(self->cgroup, "memory.peak", NULL);
	file = cg_value(self->cgroup, "memory.stat", "file");
	max_events = cg_value(self->cgroup, "memory.events", "max");
	TH_LOG("memory.peak %ld, file %ld, max events %ld", peak, file, max_events);
	/* -1: the value could not be read; no comparison may pass on it. */
	ASSERT_LE(0, peak);
	ASSERT_LE(0, file);
	ASSERT_LE(0, max_events);
	/* 48 MiB went through a 24 MiB limit: it was reached and held. */
	EXPECT_LE(1, max_events);
	EXPECT_GE(limit, peak);
	EXPECT_LE(8 << 20, file);
}

/* ext4 on the RAM disk: a filesystem with IOCB_NOWAIT on a synchronous disk. */
#define RAMDISK "/dev/ram0"

FIXTURE(ram) {
	char dir[64];
};

FIXTURE_SETUP(ram)
{
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	snprintf(self->dir, sizeof(self->dir), "/tmp/loopfs_ram.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	ASSERT_EQ(0, nsdev_sh("mkfs.ext4 -q -F %s", RAMDISK));
	ASSERT_EQ(0, mount(RAMDISK, self->dir, "ext4", 0, NULL));
	ASSERT_EQ(0, chmod(self->dir, 0755));
}

FIXTURE_TEARDOWN(ram)
{
	umount2(self->dir, MNT_DETACH);
	rmdir(self->dir);
}

/* A container's scratch directory, and a backing file on the RAM disk. */
struct ram_arg {
	char dir[64];
	char file[128];
};

/*
 * Makes a->file, a backing file of size bytes anyone may write in ramdir,
 * and a->dir, a new directory under /tmp named after prefix that anyone
 * may write to. Returns the file's fd, or -1.
 */
static int ram_arg_init(struct ram_arg *a, const char *ramdir, const char *prefix,
			off_t size)
{
	int fd;

	snprintf(a->file, sizeof(a->file), "%s/backing", ramdir);
	snprintf(a->dir, sizeof(a->dir), "/tmp/%s.XXXXXX", prefix);
	fd = open(a->file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0666) || ftruncate(fd, size) || !mkdtemp(a->dir) ||
	    chmod(a->dir, 0777)) {
		close(fd);
		return -1;
	}
	return fd;
}

static long voluntary_switches(void)
{
	struct rusage ru;

	return getrusage(RUSAGE_SELF, &ru) ? -1 : ru.ru_nvcsw;
}

/*
 * On a backing filesystem that can do I/O without waiting, requests flushed
 * from their submitter's plug are served in its own context. The VFS
 * applies the current task's RLIMIT_FSIZE (with SIGXFSZ): a submitter with a
 * small limit must still write wherever the binder's limit allows, and
 * nothing signals it. That the fast path is taken is checked, not assumed:
 * the device's own page cache dropped, buffered reads of data in the
 * backing file's page cache (readahead plugs its bios) complete without the
 * reader ever sleeping, where handing them to a worker makes it wait for
 * each. Synchronous direct reads, submitted without a plug of their own,
 * are not served there (inside submit_bio()): they go to the worker.
 */
static int submitter_context(void *arg)
{
	struct ram_arg *a = arg;
	struct loop_info64 info;
	char path[PATH_MAX];
	char *buf, *back;
	struct rlimit rl;
	int dev, rd, file, i;
	long switches;

	dev = container_bound_loop0(a->dir, a->file, O_RDWR, LO_FLAGS_DIRECT_IO);
	CHILD_CHECK(ioctl(dev, LOOP_GET_STATUS64, &info) == 0);
	CHILD_CHECK(info.lo_flags & LO_FLAGS_DIRECT_IO);
	close(dev);
	snprintf(path, sizeof(path), "%s/lfs/loop0", a->dir);
	dev = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(dev >= 0);
	buf = aligned_alloc(4096, 1 << 20);
	back = aligned_alloc(4096, 1 << 20);
	CHILD_CHECK(buf && back);

	CHILD_CHECK(!getrlimit(RLIMIT_FSIZE, &rl));
	rl.rlim_cur = 4096;
	CHILD_CHECK(!setrlimit(RLIMIT_FSIZE, &rl));
	/* Direct backing I/O, then buffered; twice: allocating, overwriting. */
	for (i = 0; i < 4; i++) {
		off_t at = (off_t)(i < 2 ? 2 : 5) << 20;

		if (i == 2)
			CHILD_CHECK(ioctl(dev, LOOP_SET_DIRECT_IO, 0) == 0);
		memset(buf, 'a' + i, 1 << 20);
		CHILD_CHECK(pwrite(dev, buf, 1 << 20, at) == 1 << 20);
		CHILD_CHECK(pread(dev, back, 1 << 20, at) == 1 << 20);
		CHILD_CHECK(!memcmp(buf, back, 1 << 20));
	}
	/* Cached in the backing file's page cache by the writes above. */
	switches = voluntary_switches();
	for (i = 0; i < 64; i++)
		CHILD_CHECK(pread(dev, back, 4096, (5 << 20) + i * 4096) == 4096);
	switches = voluntary_switches() - switches;
	if (switches < 32) {
		fprintf(stderr, "# 64 direct reads slept %ld times only\n", switches);
		_exit(1);
	}
	/* The whole backing file in its page cache, not yet in the device's. */
	file = open(a->file, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(file >= 0);
	for (i = 0; i < 8; i++)
		CHILD_CHECK(pread(file, buf, 1 << 20, (off_t)i << 20) == 1 << 20);
	rd = open(path, O_RDONLY | O_CLOEXEC);
	CHILD_CHECK(rd >= 0);
	/* 128 KiB apart: each read, and its readahead, a request of its own. */
	switches = voluntary_switches();
	for (i = 0; i < 64; i++)
		CHILD_CHECK(pread(rd, back + (i << 12), 4096, (off_t)i << 17) == 4096);
	switches = voluntary_switches() - switches;
	if (switches >= 16) {
		fprintf(stderr, "# 64 cached buffered reads slept %ld times\n", switches);
		_exit(1);
	}
	for (i = 0; i < 64; i++) {
		CHILD_CHECK(pread(file, buf, 4096, (off_t)i << 17) == 4096);
		CHILD_CHECK(!memcmp(buf, back + (i << 12), 4096));
	}
	close(rd);
	close(file);
	CHILD_CHECK(fsync(dev) == 0);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	return 0;
}

TEST_F(ram, requests_served_in_submitter_context)
{
	struct ram_arg a;
	char buf[4096];
	int fd, i;

	fd = ram_arg_init(&a, self->dir, "loopfs_sub", 8 << 20);
	ASSERT_LE(0, fd);
	close(fd);
	EXPECT_EQ(0, nsdev_run_child(submitter_context, &a, false));
	rmdir(a.dir);

	/* What the device wrote last is in the file. */
	fd = open(a.file, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	for (i = 1; i < 4; i += 2) {
		off_t at = ((off_t)(i < 2 ? 3 : 6) << 20) - sizeof(buf);

		ASSERT_EQ(sizeof(buf), pread(fd, buf, sizeof(buf), at));
		EXPECT_EQ('a' + i, buf[0]);
		EXPECT_EQ('a' + i, buf[sizeof(buf) - 1]);
	}
	close(fd);
}

/*
 * Reads and writes through p1, whose sectors the disk no longer has,
 * through its page cache (p1 is O_SYNC) and direct, each 4 KiB at a place
 * of its own from at on (nothing of it is cached): each must fail with EIO.
 */
static int past_end_io(int p1, int p1_direct, char *buf, off_t at)
{
	ssize_t n;
	int i;

	for (i = 0; i < 4; i++) {
		int fd = i & 2 ? p1_direct : p1;
		off_t pos = at + i * 4096;

		errno = 0;
		n = i & 1 ? pwrite(fd, buf, 4096, pos) : pread(fd, buf, 4096, pos);
		if (n != -1 || errno != EIO) {
			fprintf(stderr, "# %s %s: %zd (%s), not EIO\n", i & 1 ? "write" : "read",
				i & 2 ? "direct" : "buffered", n, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/*
 * The container binds its image with a partition, keeps the partition
 * open, then moves the device's window (LOOP_SET_STATUS64) so that the
 * partition lies past the disk's end: the partition keeps its size, and
 * the block layer checks its I/O against that size only. First the window
 * moves to where the partition's first byte is 2^63 in the file, a
 * position no file has (negative as a loff_t: ext4's direct I/O WARNs),
 * then it is cut short instead (a size limit of 1 MiB, the partition's
 * start). Both ways each read and write of the
 * partition, buffered and direct, fails with EIO, whether the device's own
 * I/O goes through the backing file's page cache or not, and the backing
 * file is unchanged.
 */
static int past_end(void *arg)
{
	struct ram_arg *a = arg;
	struct loop_info64 info;
	char path[PATH_MAX];
	int dev, p1, p1_direct, step;
	char *buf;

	dev = container_bound_loop0(a->dir, a->file, O_RDWR, LO_FLAGS_PARTSCAN);
	snprintf(path, sizeof(path), "%s/lfs/loop0p1", a->dir);
	p1 = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	p1_direct = open(path, O_RDWR | O_DIRECT | O_CLOEXEC);
	CHILD_CHECK(p1 >= 0 && p1_direct >= 0);
	buf = aligned_alloc(4096, 4096);
	CHILD_CHECK(buf);
	CHILD_CHECK(pread(p1_direct, buf, 4096, 0) == 4096);
	memset(buf, 'x', 4096);
	for (step = 0; step < 2; step++) {
		CHILD_CHECK(ioctl(dev, LOOP_GET_STATUS64, &info) == 0);
		info.lo_offset = step ? 0 : (1ULL << 63) - (2048 << 9);
		info.lo_sizelimit = step ? 2048 << 9 : 0;
		CHILD_CHECK(ioctl(dev, LOOP_SET_STATUS64, &info) == 0);
		if (past_end_io(p1, p1_direct, buf, step << 15)) {
			fprintf(stderr, "# step %d\n", step);
			_exit(1);
		}
		/* The same with the device's own I/O direct. */
		if (ioctl(dev, LOOP_SET_DIRECT_IO, 1) == 0 &&
		    past_end_io(p1, p1_direct, buf, (step << 15) + (1 << 14))) {
			fprintf(stderr, "# step %d, the device's I/O direct\n", step);
			_exit(1);
		}
		CHILD_CHECK(ioctl(dev, LOOP_SET_DIRECT_IO, 0) == 0);
	}
	close(p1);
	close(p1_direct);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	return 0;
}

TEST_F(ram, partition_past_the_disk_end_eio)
{
	struct ram_arg a;
	char buf[4096], zero[4096] = { 0 };
	struct stat st;
	off_t at;
	int fd;

	fd = ram_arg_init(&a, self->dir, "loopfs_end", IMG_SIZE);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, nsdev_write_dos_label(fd, label, 1));
	close(fd);
	EXPECT_EQ(0, nsdev_run_child(past_end, &a, false));
	rmdir(a.dir);

	/* Nothing was written, the file did not grow. */
	ASSERT_EQ(0, nsdev_sh("echo 3 > /proc/sys/vm/drop_caches"));
	fd = open(a.file, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fstat(fd, &st));
	EXPECT_EQ(IMG_SIZE, st.st_size);
	for (at = 2048 << 9; at < IMG_SIZE; at += sizeof(buf)) {
		ASSERT_EQ(sizeof(buf), pread(fd, buf, sizeof(buf), at));
		if (memcmp(buf, zero, sizeof(buf))) {
			TH_LOG("data written at %lld", (long long)at);
			EXPECT_TRUE(false);
			break;
		}
	}
	close(fd);
}

/*
 * blktrace's ioctls check no capability in 6.12: on a node of a container's
 * instance they would let it allocate relay buffers of its choosing, per
 * CPU and charged to no one, and turn tracepoints on host-wide. They are
 * refused with EPERM, through the 64-bit and the 32-bit (compat) entry
 * alike; other block ioctls still work.
 */
struct blktrace_setup {		/* struct blk_user_trace_setup */
	char name[32];
	__u16 act_mask;
	__u32 buf_size;
	__u32 buf_nr;
	__u64 start_lba;
	__u64 end_lba;
	__u32 pid;
};

static int blktrace_refused(void *arg)
{
	struct blktrace_setup b = { .act_mask = 0xffff, .buf_size = 4096, .buf_nr = 2 };
	unsigned long long size;
	int dev;

	dev = container_loop0(arg, O_RDONLY);
	errno = 0;
	CHILD_CHECK(ioctl(dev, _IOWR(0x12, 115, struct blktrace_setup), &b) == -1 &&
		    errno == EPERM);
	errno = 0;
	CHILD_CHECK(ioctl(dev, _IO(0x12, 116)) == -1 && errno == EPERM);
	errno = 0;
	CHILD_CHECK(ioctl(dev, _IO(0x12, 117)) == -1 && errno == EPERM);
	errno = 0;
	CHILD_CHECK(ioctl(dev, _IO(0x12, 118)) == -1 && errno == EPERM);
	CHILD_CHECK(ioctl(dev, BLKGETSIZE64, &size) == 0 && size == 0);
	close(dev);
	return 0;
}

TEST(blktrace_refused_in_container)
{
	/* The test kernel has blktrace: without it the ioctls are ENOTTY. */
	ASSERT_EQ(0, access("/sys/block/loop0/trace/enable", F_OK))
		TH_LOG("kernel without CONFIG_BLK_DEV_IO_TRACE");
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_blktrace", blktrace_refused, false));
}

/*
 * Partition scans are paced per host user: each logs through the block
 * layer without a rate limit (a warning per table entry past the disk's
 * end, up to 255), and a container could rescan as fast as it can change
 * the file of a read-only device. After a burst of 16, one scan per 50 ms:
 * 96 LOOP_CHANGE_FDs take at least 80 intervals, and each still rescans.
 */
#define SCANS 96

/*
 * Makes dir/img, binds dir/lfs/loop0 to it read-only with partition
 * scanning and returns the device's fd; *fd gets another descriptor of the
 * image, for LOOP_CHANGE_FD.
 */
static int bound_partscan_dev(const char *dir, int *fd)
{
	char img[PATH_MAX];
	int dev;

	snprintf(img, sizeof(img), "%s/img", dir);
	if (make_image(img, IMG_SIZE))
		return -1;
	dev = bind_dev(dir, 0, img, O_RDONLY, LO_FLAGS_PARTSCAN | LO_FLAGS_READ_ONLY);
	*fd = open(img, O_RDONLY | O_CLOEXEC);
	return dev >= 0 && *fd >= 0 ? dev : -1;
}

static int change_fd_rescans(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;
	long t0, ms;
	int ctl, dev, fd, i;

	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	dev = bound_partscan_dev(dir, &fd);
	CHILD_CHECK(dev >= 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0p1", dir);
	t0 = now_ms();
	for (i = 0; i < SCANS; i++) {
		CHILD_CHECK(ioctl(dev, LOOP_CHANGE_FD, fd) == 0);
		CHILD_CHECK(!stat(path, &st));
	}
	ms = now_ms() - t0;
	fprintf(stderr, "# %d rescans in %ld ms\n", SCANS, ms);
	CHILD_CHECK(ms >= (SCANS - 16) * 50 * 9 / 10);
	close(fd);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	return 0;
}

/* In a container of an unprivileged host user. */
static int user_rescans(void *dir)
{
	CHILD_CHECK(!nsdev_become_userns_root());
	return change_fd_rescans(dir);
}

TEST(rescans_paced_per_user)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_scans", user_rescans, false));
}

/*
 * In a namespace host root made (as a setuid-root helper or a root-run
 * container manager does): no host user's, so paced per namespace.
 */
static int root_made_rescans(void *dir)
{
	CHILD_CHECK(!nsdev_become_userns_root_of_self());
	return change_fd_rescans(dir);
}

TEST(rescans_paced_in_root_made_namespace)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_scans", root_made_rescans, false));
}

/* Rescans dev n times (LOOP_CHANGE_FD to fd); returns how long that took, in ms. */
static long rescans_ms(int dev, int fd, int n)
{
	long t0 = now_ms();
	int i;

	for (i = 0; i < n; i++)
		CHILD_CHECK(ioctl(dev, LOOP_CHANGE_FD, fd) == 0);
	return now_ms() - t0;
}

/*
 * In a container whose namespace root made, with more than one user, a
 * user other than root makes a namespace of its own: its scans are paced
 * with the container's, not apart. Both rescan 48 times at once: 96 turns
 * after a burst of 16 take at least 4 s (apart: about 1.6 s each, side by
 * side).
 */
static int container_rescans(const char *dir)
{
	char sub[PATH_MAX], c;
	int ctl, dev, fd, go[2];
	pid_t pid;
	long t0, ms;

	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	dev = bound_partscan_dev(dir, &fd);
	CHILD_CHECK(dev >= 0);
	snprintf(sub, sizeof(sub), "%s/user", dir);
	CHILD_CHECK(!mkdir(sub, 0777) && !chmod(sub, 0777));
	CHILD_CHECK(!pipe2(go, O_CLOEXEC));
	pid = fork();
	CHILD_CHECK(pid >= 0);
	if (pid == 0) {
		close(dev);
		close(fd);
		CHILD_CHECK(!setgroups(0, NULL) && !setresgid(1000, 1000, 1000) &&
			    !setresuid(1000, 1000, 1000));
		/* Its own /proc/self/uid_map, which the uid change took from it. */
		CHILD_CHECK(!prctl(PR_SET_DUMPABLE, 1));
		CHILD_CHECK(!unshare(CLONE_NEWUSER | CLONE_NEWNS));
		CHILD_CHECK(!nsdev_write_file("/proc/self/setgroups", "deny"));
		CHILD_CHECK(!nsdev_write_file("/proc/self/uid_map", "0 1000 1"));
		CHILD_CHECK(!nsdev_write_file("/proc/self/gid_map", "0 1000 1"));
		ctl = private_instance(sub);
		CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
		dev = bound_partscan_dev(sub, &fd);
		CHILD_CHECK(dev >= 0);
		CHILD_CHECK(read(go[0], &c, 1) == 1);
		rescans_ms(dev, fd, 48);
		CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
		_exit(0);
	}
	close(go[0]);
	/* Its devices made, with whatever turns that took, both go. */
	sleep(2);
	t0 = now_ms();
	CHILD_CHECK(write(go[1], "g", 1) == 1);
	rescans_ms(dev, fd, 48);
	CHILD_CHECK(nsdev_wait(pid) == 0);
	ms = now_ms() - t0;
	fprintf(stderr, "# 2 x 48 rescans in a container and a user's namespace in it: %ld ms\n", ms);
	CHILD_CHECK(ms >= (96 - 16) * 50 * 9 / 10);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	return 0;
}

/* Host root makes the container's namespace, mapping its root and uid 1000. */
static int nested_user_rescans(void *arg)
{
	char path[64], c;
	int made[2], mapped[2];
	pid_t pid;

	CHILD_CHECK(!pipe2(made, O_CLOEXEC) && !pipe2(mapped, O_CLOEXEC));
	pid = fork();
	CHILD_CHECK(pid >= 0);
	if (pid == 0) {
		CHILD_CHECK(!unshare(CLONE_NEWUSER | CLONE_NEWNS));
		CHILD_CHECK(write(made[1], "m", 1) == 1);
		CHILD_CHECK(read(mapped[0], &c, 1) == 1);
		_exit(container_rescans(arg));
	}
	CHILD_CHECK(read(made[0], &c, 1) == 1);
	snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
	CHILD_CHECK(!nsdev_write_file(path, "0 0 1\n1000 1000 1"));
	snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
	CHILD_CHECK(!nsdev_write_file(path, "0 0 1\n1000 1000 1"));
	CHILD_CHECK(write(mapped[1], "m", 1) == 1);
	return nsdev_wait(pid);
}

TEST(rescans_paced_with_nested_user_namespaces)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_scans", nested_user_rescans, false));
}

/*
 * A herd: a process of threads, each about to take a scan turn by a
 * LOOP_CHANGE_FD of the bound read-only dev to fd (which waits for the turn
 * before anything else), all let go at once, so that the turns are taken
 * faster than they pass however slow the machine. It counts the changes
 * refused for a turn too far away (EAGAIN), and dies with its parent.
 */
struct herd {
	int dev, fd;
	int ready[2], go[2], ask[2], report[2];
	atomic_int refused;
	pid_t pid;
};

static void *herd_member(void *arg)
{
	struct herd *h = arg;
	char c;

	if (read(h->go[0], &c, 1) == 1 && ioctl(h->dev, LOOP_CHANGE_FD, h->fd) &&
	    errno == EAGAIN)
		atomic_fetch_add(&h->refused, 1);
	return NULL;
}

/* Starts a herd of n, ready to go (herd_go()). */
static void herd_start(struct herd *h, int n, int dev, int fd)
{
	pthread_attr_t attr;
	pthread_t t;
	int i, refused;
	char c;

	h->dev = dev;
	h->fd = fd;
	atomic_init(&h->refused, 0);
	CHILD_CHECK(!pipe2(h->ready, O_CLOEXEC) && !pipe2(h->go, O_CLOEXEC) &&
		    !pipe2(h->ask, O_CLOEXEC) && !pipe2(h->report, O_CLOEXEC));
	h->pid = fork();
	CHILD_CHECK(h->pid >= 0);
	if (h->pid == 0) {
		CHILD_CHECK(!prctl(PR_SET_PDEATHSIG, SIGKILL));
		CHILD_CHECK(!pthread_attr_init(&attr) &&
			    !pthread_attr_setstacksize(&attr, 64 << 10) &&
			    !pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
		for (i = 0; i < n; i++)
			CHILD_CHECK(!pthread_create(&t, &attr, herd_member, h));
		CHILD_CHECK(write(h->ready[1], "r", 1) == 1);
		CHILD_CHECK(read(h->ask[0], &c, 1) == 1);
		refused = atomic_load(&h->refused);
		CHILD_CHECK(write(h->report[1], &refused, sizeof(refused)) == sizeof(refused));
		for (;;)
			pause();
	}
	CHILD_CHECK(read(h->ready[0], &c, 1) == 1);
	for (i = 0; i < n; i++)
		CHILD_CHECK(write(h->go[1], "g", 1) == 1);
}

/* How many of the herd's changes were refused so far. */
static int herd_refused(struct herd *h)
{
	int refused;

	CHILD_CHECK(write(h->ask[1], "a", 1) == 1);
	CHILD_CHECK(read(h->report[0], &refused, sizeof(refused)) == sizeof(refused));
	return refused;
}

/* Kills the herd; the turns it took stay taken. */
static void herd_kill(struct herd *h)
{
	kill(h->pid, SIGKILL);
	CHILD_CHECK(waitpid(h->pid, NULL, 0) == h->pid);
	close(h->ready[0]);
	close(h->ready[1]);
	close(h->go[0]);
	close(h->go[1]);
	close(h->ask[0]);
	close(h->ask[1]);
	close(h->report[0]);
	close(h->report[1]);
}

/*
 * Removing a container's last device and adding one gives no new burst:
 * its turns outlive its devices until their time has passed. A herd takes
 * 40 turns at once, with the bind before, the new device's bind and 16
 * rescans 58 from a full burst of 16: the last ends 2.1 s after the first
 * bind at the earliest, whatever the removal and the new bind take.
 */
static int readd_rescans(void *arg)
{
	const char *dir = arg;
	static struct herd herd;
	int ctl, dev, fd;
	long t0, ms;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	t0 = now_ms();
	dev = bound_partscan_dev(dir, &fd);
	CHILD_CHECK(dev >= 0);
	herd_start(&herd, 40, dev, fd);
	usleep(300000);
	herd_kill(&herd);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	close(fd);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	dev = bound_partscan_dev(dir, &fd);
	CHILD_CHECK(dev >= 0);
	rescans_ms(dev, fd, 16);
	ms = now_ms() - t0;
	fprintf(stderr, "# 40 turns, removal, new device, its bind and 16 rescans: %ld ms\n", ms);
	CHILD_CHECK(ms >= (58 - 16) * 50 * 9 / 10);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	close(fd);
	return 0;
}

TEST(rescans_paced_across_removal)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_scans", readd_rescans, false));
}

FIXTURE(scans) {};
FIXTURE_SETUP(scans) {}
FIXTURE_TEARDOWN(scans) {}

/*
 * A container's scan turn can lie seconds ahead: it takes as many tasks
 * waiting for theirs. The wait holds nothing others wait for: an exclusive
 * opener waits for a claim uninterruptibly, so a LOOP_CONFIGURE with
 * LO_FLAGS_PARTSCAN waits for its turn before it claims the device (and
 * then finds it claimed: EBUSY); before, it waited holding the claim. A
 * turn more than 10 s away is not waited for (EAGAIN), and turns taken stay
 * taken when their tasks are killed, until their time has passed.
 */
static int scan_wait_unclaimed(void *arg)
{
	const char *dir = arg;
	char path[PATH_MAX];
	struct loop_config config = {
		.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_PARTSCAN,
	};
	int ctl, dev, dev1, fd, excl, i, refused;
	static struct herd herd;
	pid_t configurer;
	long t0, ms;

	CHILD_CHECK(!nsdev_become_userns_root());
	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0 && ioctl(ctl, LOOP_CTL_ADD, 1) == 1);
	dev = bound_partscan_dev(dir, &fd);
	CHILD_CHECK(dev >= 0);
	/* The burst. */
	for (i = 0; i < 16; i++)
		CHILD_CHECK(ioctl(dev, LOOP_CHANGE_FD, fd) == 0);

	/* 100 turns: 5 s ahead. */
	herd_start(&herd, 100, dev, fd);
	usleep(500000);
	configurer = fork();
	CHILD_CHECK(configurer >= 0);
	if (configurer == 0) {
		snprintf(path, sizeof(path), "%s/lfs/loop1", dir);
		dev1 = open(path, O_RDONLY | O_CLOEXEC);
		config.fd = fd;
		errno = 0;
		_exit(dev1 >= 0 && ioctl(dev1, LOOP_CONFIGURE, &config) && errno == EBUSY ? 0 : 1);
	}
	usleep(500000);
	snprintf(path, sizeof(path), "%s/lfs/loop1", dir);
	t0 = now_ms();
	excl = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
	ms = now_ms() - t0;
	fprintf(stderr, "# exclusive open beside a configuration waiting to scan: %ld ms\n", ms);
	CHILD_CHECK(excl >= 0 && ms < 1000);
	CHILD_CHECK(nsdev_wait(configurer) == 0);
	close(excl);
	herd_kill(&herd);

	/* 300 more: more than 10 s ahead, the last ones refused. */
	herd_start(&herd, 300, dev, fd);
	sleep(2);
	refused = herd_refused(&herd);
	fprintf(stderr, "# of 300 more scans, %d refused\n", refused);
	CHILD_CHECK(refused > 0);
	herd_kill(&herd);
	/* Their turns pass; then one is served at once. */
	sleep(11);
	t0 = now_ms();
	CHILD_CHECK(ioctl(dev, LOOP_CHANGE_FD, fd) == 0);
	ms = now_ms() - t0;
	fprintf(stderr, "# a rescan 11 s later: %ld ms\n", ms);
	CHILD_CHECK(ms < 1000);
	close(fd);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 1) == 0);
	return 0;
}

TEST_F_TIMEOUT(scans, scan_wait_holds_no_claim, 120)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_scanwait", scan_wait_unclaimed, false));
}

/*
 * The root of the instance is its owner's to chmod, and a task may lack the
 * capabilities that override its mode: the nodes are loopfs's to add and
 * remove all the same. A node left behind by a removal would keep its
 * device id (an open of it reaching whatever disk gets its number next)
 * and its name.
 */
static int root_mode_nodes(void *arg)
{
	const char *dir = arg;
	char lfs[256], path[PATH_MAX];
	struct stat st;
	int ctl;

	ctl = private_instance(dir);
	CHILD_CHECK(ctl >= 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(lfs, sizeof(lfs), "%s/lfs", dir);
	CHILD_CHECK(!chmod(lfs, 0));
	CHILD_CHECK(!nsdev_cap_effective(CAP_DAC_OVERRIDE, false));
	CHILD_CHECK(!nsdev_cap_effective(CAP_DAC_READ_SEARCH, false));
	snprintf(path, sizeof(path), "%s/loop0", lfs);
	errno = 0;
	CHILD_CHECK(stat(path, &st) && errno == EACCES);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 1) == 1);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
	CHILD_CHECK(!nsdev_cap_effective(CAP_DAC_OVERRIDE, true));
	CHILD_CHECK(!nsdev_cap_effective(CAP_DAC_READ_SEARCH, true));
	CHILD_CHECK(!chmod(lfs, 0755));
	errno = 0;
	CHILD_CHECK(stat(path, &st) && errno == ENOENT);
	snprintf(path, sizeof(path), "%s/loop1", lfs);
	CHILD_CHECK(!stat(path, &st) && S_ISBLK(st.st_mode));
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 1) == 0);
	return 0;
}

TEST(nodes_despite_root_mode)
{
	EXPECT_EQ(0, run_in_scratch_dir("loopfs_rootmode", root_mode_nodes, true));
}

struct stale {
	int sync[2], go[2];
	char dir[64];
};

/* The container: keeps an O_PATH fd of loop0, removes it, reopens it. */
static int stale_reopener(struct stale *s)
{
	char path[PATH_MAX], c;
	struct stat st;
	int ctl, node;

	ctl = private_instance(s->dir);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", s->dir);
	node = open(path, O_PATH | O_CLOEXEC);
	CHILD_CHECK(node >= 0 && !fstat(node, &st));
	CHILD_CHECK(ioctl(ctl, LOOP_CTL_REMOVE, 0) == 0);
	CHILD_CHECK(write(s->sync[1], &st.st_rdev, sizeof(st.st_rdev)) == sizeof(st.st_rdev));
	CHILD_CHECK(read(s->go[0], &c, 1) == 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", node);
	errno = 0;
	CHILD_CHECK(open(path, O_RDONLY | O_EXCL | O_CLOEXEC) < 0 && errno == ENXIO);
	return 0;
}

/*
 * The attack: a container keeps an O_PATH descriptor of its node, removes
 * the device, and reopens the node through /proc/self/fd once another disk
 * has its number, here one of the host's, opened exclusively. The reopen
 * must not reach that disk at all: ENXIO. An open that went through the
 * block layer first would run that disk's open and meet the exclusive claim
 * (EBUSY: the container learns the disk is in use), as a claim of its own
 * would make the host's exclusive open (a mount, mkfs) fail meanwhile.
 */
TEST(removed_node_reaches_no_other_disk)
{
	char host[] = "/tmp/loopfs_stale_host.XXXXXX", path[PATH_MAX];
	int ctl, excl, n, found = -1;
	struct stale s;
	struct stat st;
	dev_t rdev;
	pid_t pid;

	/* The host instance goes with this test's mount namespace. */
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	snprintf(s.dir, sizeof(s.dir), "/tmp/loopfs_stale.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(s.dir));
	ASSERT_EQ(0, chmod(s.dir, 0777));
	ASSERT_NE(NULL, mkdtemp(host));
	ASSERT_EQ(0, pipe2(s.sync, O_CLOEXEC));
	ASSERT_EQ(0, pipe2(s.go, O_CLOEXEC));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(!nsdev_become_userns_root());
		_exit(stale_reopener(&s));
	}
	close(s.go[0]);
	close(s.sync[1]);
	ASSERT_EQ(sizeof(rdev), read(s.sync[0], &rdev, sizeof(rdev)));

	/* A host device with the number the container's had. */
	ASSERT_EQ(0, mount("loop", host, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", host);
	ctl = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl);
	for (n = 0; n < 16 && found < 0; n++) {
		ASSERT_EQ(n, ioctl(ctl, LOOP_CTL_ADD, n));
		snprintf(path, sizeof(path), "%s/loop%d", host, n);
		ASSERT_EQ(0, stat(path, &st));
		if (st.st_rdev == rdev)
			found = n;
	}
	ASSERT_LE(0, found) TH_LOG("no new device got %u:%u", major(rdev), minor(rdev));
	snprintf(path, sizeof(path), "%s/loop%d", host, found);
	excl = open(path, O_RDONLY | O_EXCL | O_CLOEXEC);
	ASSERT_LE(0, excl);
	ASSERT_EQ(1, write(s.go[1], "g", 1));
	EXPECT_EQ(0, nsdev_wait(pid));

	close(excl);
	while (n--)
		EXPECT_EQ(0, ioctl(ctl, LOOP_CTL_REMOVE, n));
	close(ctl);
	EXPECT_EQ(0, umount2(host, 0));
	rmdir(host);
	rmdir(s.dir);
}

TEST_HARNESS_MAIN
