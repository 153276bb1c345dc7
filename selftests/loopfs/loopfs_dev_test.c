// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs devices: loop-control, the loop ioctls and I/O of an instance's
 * devices, as init root and as root of a new user namespace made by an
 * unprivileged user. Each test runs in its own mount namespace with a
 * private tmpfs holding the instance and the backing files.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

#define IMG_SIZE (16 << 20)

FIXTURE(dev) {
	char base[64];		/* private tmpfs */
	char lfs[96];		/* the instance */
	char img[96];		/* a backing file */
	int ctl;		/* the instance's loop-control */
};

FIXTURE_VARIANT(dev) {
	bool userns;
};

FIXTURE_VARIANT_ADD(dev, init_root) {
	.userns = false,
};

FIXTURE_VARIANT_ADD(dev, userns_root) {
	.userns = true,
};

static int make_file(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, size)) {
		close(fd);
		return -1;
	}
	return fd;
}

FIXTURE_SETUP(dev)
{
	char path[PATH_MAX];
	int fd;

	snprintf(self->base, sizeof(self->base), "/tmp/loopfs_dev.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->base));
	ASSERT_EQ(0, chmod(self->base, 0755));
	if (variant->userns) {
		ASSERT_EQ(0, nsdev_become_userns_root())
			TH_LOG("userns: %s", strerror(errno));
	} else {
		ASSERT_EQ(0, unshare(CLONE_NEWNS));
	}
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_EQ(0, mount("tmpfs", self->base, "tmpfs", 0, "size=256m"));
	snprintf(self->lfs, sizeof(self->lfs), "%s/lfs", self->base);
	snprintf(self->img, sizeof(self->img), "%s/img", self->base);
	ASSERT_EQ(0, mkdir(self->lfs, 0755));
	ASSERT_EQ(0, mount("loop", self->lfs, "loop", 0, NULL));
	fd = make_file(self->img, IMG_SIZE);
	ASSERT_LE(0, fd);
	close(fd);
	snprintf(path, sizeof(path), "%s/loop-control", self->lfs);
	self->ctl = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->ctl) TH_LOG("loop-control: %s", strerror(errno));
}

FIXTURE_TEARDOWN(dev)
{
	/* The mount namespace goes with the test process. */
	if (self->ctl >= 0)
		close(self->ctl);
}

static int open_dev(const char *lfs, int n, int flags)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/loop%d", lfs, n);
	return open(path, flags | O_CLOEXEC);
}

static bool node_exists(const char *lfs, int n)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/loop%d", lfs, n);
	return stat(path, &st) == 0 && S_ISBLK(st.st_mode);
}

static int attach(const char *lfs, int n, const char *img, __u64 offset,
		  __u64 sizelimit, __u32 flags, __u32 block_size)
{
	struct loop_config config = {
		.block_size = block_size,
		.info.lo_offset = offset,
		.info.lo_sizelimit = sizelimit,
		.info.lo_flags = flags,
	};
	int dev, file, ret;

	dev = open_dev(lfs, n, O_RDWR);
	if (dev < 0)
		return -1;
	file = open(img, ((flags & LO_FLAGS_READ_ONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (file < 0) {
		close(dev);
		return -1;
	}
	config.fd = file;
	snprintf((char *)config.info.lo_file_name, LO_NAME_SIZE, "%s", img);
	ret = ioctl(dev, LOOP_CONFIGURE, &config);
	close(file);
	if (ret) {
		close(dev);
		return -1;
	}
	return dev;
}

static __u64 dev_size(int dev)
{
	__u64 size = 0;

	return ioctl(dev, BLKGETSIZE64, &size) ? (__u64)-1 : size;
}

static void fill(char *buf, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (char)(seed * 131 + i * 7 + (i >> 9));
}

TEST_F(dev, control_add_remove_get_free)
{
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_GET_FREE));
	EXPECT_TRUE(node_exists(self->lfs, 0));
	/* An unbound device is what GET_FREE hands out again. */
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_GET_FREE));

	ASSERT_EQ(5, ioctl(self->ctl, LOOP_CTL_ADD, 5));
	EXPECT_TRUE(node_exists(self->lfs, 5));
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_ADD, 5));
	EXPECT_EQ(EEXIST, errno);
	/* A negative number asks for the first free one. */
	ASSERT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, -1));

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 5));
	EXPECT_FALSE(node_exists(self->lfs, 5));
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_REMOVE, 5));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_REMOVE, -1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(self->ctl, 0x4C8F, 0));
	EXPECT_EQ(ENOSYS, errno);

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 0));
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 1));
	EXPECT_FALSE(node_exists(self->lfs, 0));
}

TEST_F(dev, remove_busy_device_ebusy)
{
	int dev;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_REMOVE, 0));
	EXPECT_EQ(EBUSY, errno);
	/* A bound device is not free. */
	EXPECT_EQ(1, ioctl(self->ctl, LOOP_CTL_GET_FREE));
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	/* Still open: removal must wait for the last close. */
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_REMOVE, 0));
	EXPECT_EQ(EBUSY, errno);
	close(dev);
	EXPECT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 0));
}

TEST_F(dev, status_roundtrip)
{
	struct loop_info64 info;
	struct loop_info old;
	struct stat st;
	int dev;

	ASSERT_EQ(3, ioctl(self->ctl, LOOP_CTL_ADD, 3));
	dev = open_dev(self->lfs, 3, O_RDWR);
	ASSERT_LE(0, dev);
	/* Unbound. */
	EXPECT_EQ(-1, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ(ENXIO, errno);
	EXPECT_EQ(-1, ioctl(dev, LOOP_CLR_FD));
	EXPECT_EQ(ENXIO, errno);
	close(dev);

	dev = attach(self->lfs, 3, self->img, 4096, 1 << 20, LO_FLAGS_AUTOCLEAR, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	ASSERT_EQ(0, stat(self->img, &st));
	EXPECT_EQ(3, info.lo_number);
	EXPECT_EQ(4096, info.lo_offset);
	EXPECT_EQ(1 << 20, info.lo_sizelimit);
	EXPECT_EQ(LO_FLAGS_AUTOCLEAR, info.lo_flags);
	EXPECT_EQ(st.st_ino, info.lo_inode);
	EXPECT_EQ(makedev(major(st.st_dev), minor(st.st_dev)), info.lo_device);
	EXPECT_STREQ(self->img, (char *)info.lo_file_name);
	EXPECT_EQ(1 << 20, dev_size(dev));

	/* The legacy form sees the same. */
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS, &old));
	EXPECT_EQ(3, old.lo_number);
	EXPECT_EQ(4096, old.lo_offset);
	EXPECT_STREQ(self->img, old.lo_name);

	/* SET_STATUS: the size follows offset and sizelimit. */
	info.lo_offset = 0;
	info.lo_sizelimit = 0;
	info.lo_flags = 0;	/* clears AUTOCLEAR */
	ASSERT_EQ(0, ioctl(dev, LOOP_SET_STATUS64, &info));
	EXPECT_EQ(IMG_SIZE, dev_size(dev));
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ(0, info.lo_flags & LO_FLAGS_AUTOCLEAR);

	/* Bad values change nothing. */
	info.lo_encrypt_type = 1;
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_STATUS64, &info));
	EXPECT_EQ(EINVAL, errno);
	info.lo_encrypt_type = 0;
	info.lo_offset = 1ULL << 63;
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_STATUS64, &info));
	EXPECT_EQ(EOVERFLOW, errno);
	EXPECT_EQ(IMG_SIZE, dev_size(dev));

	/* A bound device refuses a second file. */
	EXPECT_EQ(-1, attach(self->lfs, 3, self->img, 0, 0, 0, 0));
	EXPECT_EQ(EBUSY, errno);

	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	/* Detached on last close. */
	dev = open_dev(self->lfs, 3, O_RDONLY);
	ASSERT_LE(0, dev);
	EXPECT_EQ(-1, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ(ENXIO, errno);
	close(dev);
}

TEST_F(dev, configure_rejects_bad_input)
{
	struct loop_config config = { .fd = 1000 };
	int dev, dir;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = open_dev(self->lfs, 0, O_RDWR);
	ASSERT_LE(0, dev);
	EXPECT_EQ(-1, ioctl(dev, LOOP_CONFIGURE, &config));
	EXPECT_EQ(EBADF, errno);
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_FD, 1000));
	EXPECT_EQ(EBADF, errno);

	/* A directory cannot back a device. */
	dir = open(self->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, dir);
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_FD, dir));
	EXPECT_EQ(EINVAL, errno);
	close(dir);

	/* Nor can the device itself. */
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_FD, dev));
	EXPECT_EQ(EBADF, errno);

	/* Unknown flags. */
	config.fd = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, config.fd);
	config.info.lo_flags = 0x8000;
	EXPECT_EQ(-1, ioctl(dev, LOOP_CONFIGURE, &config));
	EXPECT_EQ(EINVAL, errno);
	/* Unknown ioctl. */
	EXPECT_EQ(-1, ioctl(dev, 0x4CFF, 0));
	EXPECT_EQ(EINVAL, errno);
	close(config.fd);
	close(dev);
}

TEST_F(dev, read_only_device_refuses_writes)
{
	struct loop_info64 info;
	char buf[4096], other[128];
	int dev, fd;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, LO_FLAGS_READ_ONLY, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_TRUE(info.lo_flags & LO_FLAGS_READ_ONLY);
	memset(buf, 0xa5, sizeof(buf));
	EXPECT_EQ(-1, pwrite(dev, buf, sizeof(buf), 0));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(sizeof(buf), pread(dev, buf, sizeof(buf), 0));

	/* CHANGE_FD works on read-only devices only, with the same size. */
	snprintf(other, sizeof(other), "%s/other", self->base);
	fd = make_file(other, IMG_SIZE);
	ASSERT_LE(0, fd);
	EXPECT_EQ(0, ioctl(dev, LOOP_CHANGE_FD, fd));
	close(fd);
	/* A file of another size is refused. */
	snprintf(other, sizeof(other), "%s/small", self->base);
	fd = make_file(other, IMG_SIZE / 2);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(dev, LOOP_CHANGE_FD, fd));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);

	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	fd = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, ioctl(dev, LOOP_CHANGE_FD, fd));
	EXPECT_EQ(EINVAL, errno);
	close(fd);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
}

/* Data written through the device lands in the file at the right place. */
static void roundtrip(struct __test_metadata *_metadata, int ctl, const char *lfs,
		      const char *img, __u32 flags, int dev_oflags)
{
	const off_t offset = 8192, at = 65536;
	int dev, file, direct;
	char *a, *b;

	a = aligned_alloc(4096, 1 << 20);
	b = aligned_alloc(4096, 1 << 20);
	ASSERT_NE(NULL, a);
	ASSERT_NE(NULL, b);
	ASSERT_EQ(7, ioctl(ctl, LOOP_CTL_ADD, 7));
	dev = attach(lfs, 7, img, offset, 0, flags, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));
	close(dev);
	dev = open_dev(lfs, 7, O_RDWR | dev_oflags);
	ASSERT_LE(0, dev);
	file = open(img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, file);

	/* Device to file. */
	fill(a, 1 << 20, 1);
	ASSERT_EQ(1 << 20, pwrite(dev, a, 1 << 20, at));
	ASSERT_EQ(0, fsync(dev));
	ASSERT_EQ(1 << 20, pread(file, b, 1 << 20, offset + at));
	EXPECT_EQ(0, memcmp(a, b, 1 << 20));

	/* File to device. */
	fill(a, 1 << 20, 2);
	ASSERT_EQ(1 << 20, pwrite(file, a, 1 << 20, offset + 3 * at));
	ASSERT_EQ(0, fsync(file));
	/*
	 * Read past the device's page cache (BLKFLSBUF would need
	 * CAP_SYS_ADMIN in the initial namespace).
	 */
	direct = open_dev(lfs, 7, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, direct);
	memset(b, 0, 1 << 20);
	ASSERT_EQ(1 << 20, pread(direct, b, 1 << 20, 3 * at));
	EXPECT_EQ(0, memcmp(a, b, 1 << 20));
	close(direct);

	close(file);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	free(a);
	free(b);
}

TEST_F(dev, data_roundtrip_buffered)
{
	roundtrip(_metadata, self->ctl, self->lfs, self->img, 0, 0);
}

TEST_F(dev, data_roundtrip_direct_io)
{
	struct loop_info64 info;
	int dev;

	roundtrip(_metadata, self->ctl, self->lfs, self->img, LO_FLAGS_DIRECT_IO, O_DIRECT);

	/* The backing tmpfs does direct I/O, so the flag sticks. */
	dev = attach(self->lfs, 7, self->img, 0, 0, LO_FLAGS_DIRECT_IO, 0);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_TRUE(info.lo_flags & LO_FLAGS_DIRECT_IO);
	ASSERT_EQ(0, ioctl(dev, LOOP_SET_DIRECT_IO, 0));
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_FALSE(info.lo_flags & LO_FLAGS_DIRECT_IO);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
}

struct writer_arg {
	int dev;
	int index;
	int errors;
};

#define WRITERS		4
#define READERS		2
#define WRITER_ROUNDS	16

/* Rewrites its own MiB of the device, a new pattern each round. */
static void *writer_thread(void *p)
{
	struct writer_arg *a = p;
	void *buf;

	if (posix_memalign(&buf, 4096, 1 << 20)) {
		a->errors++;
		return NULL;
	}
	for (int r = 0; r < WRITER_ROUNDS; r++) {
		fill(buf, 1 << 20, a->index * 100 + r);
		if (pwrite(a->dev, buf, 1 << 20, (off_t)a->index << 20) != 1 << 20)
			a->errors++;
	}
	free(buf);
	return NULL;
}

/* Reads its own MiB of the device again and again, checking what it holds. */
static void *reader_thread(void *p)
{
	struct writer_arg *a = p;
	char *want, *got;

	want = malloc(1 << 20);
	if (!want || posix_memalign((void **)&got, 4096, 1 << 20)) {
		free(want);
		a->errors++;
		return NULL;
	}
	fill(want, 1 << 20, 1000 + a->index);
	for (int r = 0; r < 2 * WRITER_ROUNDS; r++) {
		off_t at = (off_t)(WRITERS + a->index) << 20;

		if (pread(a->dev, got, 1 << 20, at) != 1 << 20 ||
		    memcmp(want, got, 1 << 20))
			a->errors++;
	}
	free(want);
	free(got);
	return NULL;
}

/*
 * Large writes from several submitters at once are served by two work items,
 * one at a time writing through the backing file's page cache, while other
 * submitters read, their requests queued behind the writes; direct I/O is
 * switched on and off meanwhile. Every MiB holds its writer's last round, and
 * every read found what was there.
 */
TEST_F(dev, concurrent_large_writes_with_direct_io_switched)
{
	struct writer_arg args[WRITERS + READERS];
	pthread_t threads[WRITERS + READERS];
	int dev, direct, file, flips = 0;
	char *want, *got;

	ASSERT_LE((WRITERS + READERS) << 20, IMG_SIZE);
	ASSERT_EQ(7, ioctl(self->ctl, LOOP_CTL_ADD, 7));
	dev = attach(self->lfs, 7, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	direct = open_dev(self->lfs, 7, O_RDWR | O_DIRECT);
	ASSERT_LE(0, direct);
	want = malloc(1 << 20);
	ASSERT_NE(NULL, want);
	for (int i = 0; i < READERS; i++) {
		fill(want, 1 << 20, 1000 + i);
		ASSERT_EQ(1 << 20, pwrite(dev, want, 1 << 20, (off_t)(WRITERS + i) << 20));
	}
	ASSERT_EQ(0, fsync(dev));
	for (int i = 0; i < WRITERS + READERS; i++) {
		bool reader = i >= WRITERS;

		args[i] = (struct writer_arg){
			.dev = direct,
			.index = reader ? i - WRITERS : i,
		};
		ASSERT_EQ(0, pthread_create(&threads[i], NULL,
					    reader ? reader_thread : writer_thread,
					    &args[i]));
	}
	for (int i = 0; i < 64; i++)
		flips += !ioctl(dev, LOOP_SET_DIRECT_IO, (unsigned long)(i & 1));
	for (int i = 0; i < WRITERS + READERS; i++)
		ASSERT_EQ(0, pthread_join(threads[i], NULL));
	for (int i = WRITERS; i < WRITERS + READERS; i++) {
		EXPECT_EQ(0, args[i].errors) {
			TH_LOG("reader %d", i - WRITERS);
		}
	}
	EXPECT_LT(0, flips);
	ASSERT_EQ(0, ioctl(dev, LOOP_SET_DIRECT_IO, 0));
	ASSERT_EQ(0, fsync(direct));

	file = open(self->img, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, file);
	got = malloc(1 << 20);
	ASSERT_NE(NULL, got);
	for (int i = 0; i < WRITERS; i++) {
		EXPECT_EQ(0, args[i].errors);
		fill(want, 1 << 20, i * 100 + WRITER_ROUNDS - 1);
		ASSERT_EQ(1 << 20, pread(file, got, 1 << 20, (off_t)i << 20));
		EXPECT_EQ(0, memcmp(want, got, 1 << 20)) TH_LOG("MiB %d", i);
	}
	free(want);
	free(got);
	close(file);
	close(direct);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
}

TEST_F(dev, capacity_and_block_size)
{
	int dev, file, bs = 0;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	EXPECT_EQ(IMG_SIZE, dev_size(dev));

	/* The file grows: SET_CAPACITY picks it up. */
	file = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, ftruncate(file, 2 * IMG_SIZE));
	close(file);
	EXPECT_EQ(IMG_SIZE, dev_size(dev));
	ASSERT_EQ(0, ioctl(dev, LOOP_SET_CAPACITY, 0));
	EXPECT_EQ(2 * IMG_SIZE, dev_size(dev));

	ASSERT_EQ(0, ioctl(dev, BLKSSZGET, &bs));
	EXPECT_EQ(512, bs);
	ASSERT_EQ(0, ioctl(dev, LOOP_SET_BLOCK_SIZE, 4096));
	ASSERT_EQ(0, ioctl(dev, BLKSSZGET, &bs));
	EXPECT_EQ(4096, bs);
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_BLOCK_SIZE, 1000));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
}

/* Discard and write-zeroes punch holes in the backing file. */
TEST_F(dev, discard_punches_holes)
{
	__u64 range[2] = { 1 << 20, 4 << 20 };
	struct stat before, after;
	char *buf, *zero;
	int dev, file;

	buf = malloc(8 << 20);
	zero = calloc(1, 4 << 20);
	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, zero);
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	fill(buf, 8 << 20, 5);
	ASSERT_EQ(8 << 20, pwrite(dev, buf, 8 << 20, 0));
	ASSERT_EQ(0, fsync(dev));
	ASSERT_EQ(0, stat(self->img, &before));

	ASSERT_EQ(0, ioctl(dev, BLKDISCARD, range)) TH_LOG("BLKDISCARD: %s", strerror(errno));
	ASSERT_EQ(0, stat(self->img, &after));
	EXPECT_LE(after.st_blocks, before.st_blocks - (4 << 20) / 512);
	file = open(self->img, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, file);
	ASSERT_EQ(4 << 20, pread(file, buf, 4 << 20, 1 << 20));
	EXPECT_EQ(0, memcmp(buf, zero, 4 << 20));

	/* Write-zeroes, and the data around it stays. */
	range[0] = 6 << 20;
	range[1] = 1 << 20;
	ASSERT_EQ(0, ioctl(dev, BLKZEROOUT, range)) TH_LOG("BLKZEROOUT: %s", strerror(errno));
	ASSERT_EQ(1 << 20, pread(file, buf, 1 << 20, 6 << 20));
	EXPECT_EQ(0, memcmp(buf, zero, 1 << 20));
	fill(zero, 4 << 20, 5);
	ASSERT_EQ(4096, pread(file, buf, 4096, 0));
	EXPECT_EQ(0, memcmp(buf, zero, 4096));
	close(file);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	free(buf);
	free(zero);
}

/* A read the backing file cannot satisfy fails; it never returns stale data. */
TEST_F(dev, backing_file_errors_reach_submitter)
{
	char *buf;
	int dev, direct, file;

	buf = aligned_alloc(4096, 4096);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	file = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, file);
	/* The file shrinks under the device. */
	ASSERT_EQ(0, ftruncate(file, 1 << 20));
	close(file);
	direct = open_dev(self->lfs, 0, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, direct);
	EXPECT_EQ(4096, pread(direct, buf, 4096, 4096));
	EXPECT_EQ(-1, pread(direct, buf, 4096, 8 << 20));
	EXPECT_EQ(EIO, errno);
	close(direct);
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	free(buf);
}

TEST_F(dev, max_option_limits_and_remount_raises)
{
	ASSERT_EQ(0, mount(NULL, self->lfs, NULL, MS_REMOUNT, "max=2"));
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, -1));
	ASSERT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, -1));
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_ADD, -1));
	EXPECT_EQ(ENOSPC, errno);
	/* GET_FREE hands out an existing free device without adding. */
	EXPECT_EQ(0, ioctl(self->ctl, LOOP_CTL_GET_FREE));
	EXPECT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 1));
	EXPECT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, 1));

	ASSERT_EQ(0, mount(NULL, self->lfs, NULL, MS_REMOUNT, "max=3"));
	EXPECT_EQ(2, ioctl(self->ctl, LOOP_CTL_ADD, -1));
	/* Lowering refuses new devices but removes none. */
	ASSERT_EQ(0, mount(NULL, self->lfs, NULL, MS_REMOUNT, "max=1"));
	EXPECT_TRUE(node_exists(self->lfs, 2));
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_ADD, -1));
	EXPECT_EQ(ENOSPC, errno);
}

TEST_F(dev, instances_do_not_share_devices)
{
	char other[128], path[PATH_MAX];
	struct stat a, b;
	int ctl2;

	snprintf(other, sizeof(other), "%s/other", self->base);
	ASSERT_EQ(0, mkdir(other, 0755));
	ASSERT_EQ(0, mount("loop", other, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", other);
	ctl2 = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl2);

	ASSERT_EQ(4, ioctl(self->ctl, LOOP_CTL_ADD, 4));
	EXPECT_FALSE(node_exists(other, 4));
	/* Numbers are per instance: both may have a loop4. */
	ASSERT_EQ(4, ioctl(ctl2, LOOP_CTL_ADD, 4));
	snprintf(path, sizeof(path), "%s/loop4", self->lfs);
	ASSERT_EQ(0, stat(path, &a));
	snprintf(path, sizeof(path), "%s/loop4", other);
	ASSERT_EQ(0, stat(path, &b));
	EXPECT_NE(a.st_rdev, b.st_rdev);
	/* Removing one leaves the other. */
	ASSERT_EQ(0, ioctl(ctl2, LOOP_CTL_REMOVE, 4));
	EXPECT_TRUE(node_exists(self->lfs, 4));
	close(ctl2);
	ASSERT_EQ(0, umount2(other, 0));
}

TEST_F(dev, nodes_belong_to_instance_root)
{
	char path[PATH_MAX];
	struct stat st;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	snprintf(path, sizeof(path), "%s/loop0", self->lfs);
	ASSERT_EQ(0, stat(path, &st));
	EXPECT_TRUE(S_ISBLK(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
	EXPECT_EQ(0, st.st_uid);
	EXPECT_EQ(0, st.st_gid);
	/* Nobody else makes or removes nodes here. */
	EXPECT_EQ(-1, unlink(path));
	snprintf(path, sizeof(path), "%s/x", self->lfs);
	EXPECT_EQ(-1, mknod(path, S_IFBLK | 0600, st.st_rdev));
}

TEST_F(dev, umount_keeps_open_device_working)
{
	char buf[4096];
	int dev;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	ASSERT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, 1));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	close(self->ctl);
	self->ctl = -1;
	ASSERT_EQ(0, umount2(self->lfs, MNT_DETACH));

	fill(buf, sizeof(buf), 3);
	EXPECT_EQ(sizeof(buf), pwrite(dev, buf, sizeof(buf), 0));
	EXPECT_EQ(0, fsync(dev));
	EXPECT_EQ(sizeof(buf), pread(dev, buf, sizeof(buf), 4096));
	/* An open device of a gone instance pins the module (its opener does). */
	if (!variant->userns) {
		EXPECT_EQ(-1, syscall(SYS_delete_module, "loopfs", O_NONBLOCK));
		EXPECT_EQ(EWOULDBLOCK, errno);
	}
	close(dev);
}

/* No backing file reference survives the device. */
TEST_F(dev, backing_file_released)
{
	struct statvfs before, after;
	char *buf;
	int dev;

	buf = calloc(1, 8 << 20);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, statvfs(self->base, &before));
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	fill(buf, 8 << 20, 4);
	ASSERT_EQ(8 << 20, pwrite(dev, buf, 8 << 20, 0));
	ASSERT_EQ(0, fsync(dev));
	ASSERT_EQ(0, unlink(self->img));
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_REMOVE, 0));
	/* tmpfs frees the blocks once the last reference is gone. */
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(0, statvfs(self->base, &after));
		if (after.f_bfree >= before.f_bfree)
			break;
		usleep(100000);
	}
	EXPECT_GE(after.f_bfree, before.f_bfree);
	free(buf);
}

/* Configuration needs CAP_SYS_ADMIN in the instance's user namespace. */
TEST_F(dev, config_needs_cap_sys_admin)
{
	struct loop_info64 info;
	int dev, file;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	ASSERT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, 1));
	dev = attach(self->lfs, 1, self->img, 0, 0, 0, 0);
	ASSERT_LE(0, dev);
	close(dev);
	dev = open_dev(self->lfs, 0, O_RDWR);
	ASSERT_LE(0, dev);
	file = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, file);

	ASSERT_EQ(0, nsdev_cap_effective(CAP_SYS_ADMIN, false));

	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_ADD, 2));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(-1, ioctl(self->ctl, LOOP_CTL_GET_FREE));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(-1, ioctl(dev, LOOP_SET_FD, file));
	EXPECT_EQ(EPERM, errno);
	close(dev);
	/* Reading the status is not configuration. */
	dev = open_dev(self->lfs, 1, O_RDONLY);
	ASSERT_LE(0, dev);
	EXPECT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ(-1, ioctl(dev, LOOP_CLR_FD));
	EXPECT_EQ(EPERM, errno);
	close(dev);
	close(file);
}

/*
 * Unmodified util-linux losetup, as in the loopfs RFC's session: a private
 * /dev whose loop-control and loopN are symlinks into the instance. Some
 * twenty processes: more than the default 30 s on a debug kernel.
 */
TEST_F_TIMEOUT(dev, losetup, 120)
{
	const char *b = self->base;
	struct loop_info64 info;
	char zero[4096] = { 0 };
	int dev, ro = 0;

	ASSERT_EQ(0, nsdev_sh("set -e; mkdir %s/dev; for n in null zero urandom; do "
			"touch %s/dev/$n; mount --bind /dev/$n %s/dev/$n; done; "
			"ln -s %s/loop-control %s/dev/loop-control; "
			"for i in 0 1 2 3 4 5 6 7; do ln -s %s/loop$i %s/dev/loop$i; done; "
			"mount --rbind %s/dev /dev", b, b, b, self->lfs, b, self->lfs, b, b));
	ASSERT_EQ(0, nsdev_sh("test \"$(losetup -f --show %s)\" = /dev/loop0", self->img));
	EXPECT_EQ(0, nsdev_sh("losetup -l -n -O NAME,BACK-FILE /dev/loop0 | grep -q '^/dev/loop0 *%s$'",
			self->img));
	EXPECT_EQ(0, nsdev_sh("test \"$(cat /sys/dev/block/$(stat -L -c '%%t:%%T' /dev/loop0 | "
			"awk -F: '{printf \"%%d:%%d\", \"0x\"$1, \"0x\"$2}')/loop/backing_file)\" = %s",
			self->img));
	EXPECT_EQ(0, nsdev_sh("losetup -d /dev/loop0"));
	/*
	 * Unbound: the device's status is ENXIO, and losetup says why it
	 * shows nothing and exits 1 (util-linux 2.38 reads the status from
	 * sysfs, whose loop/ directory goes with the binding as in loop.c:
	 * ENOENT; other versions use the ioctl: ENXIO). Not any failure: 127
	 * (no losetup) or a crash must not pass.
	 */
	dev = open("/dev/loop0", O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, dev) TH_LOG("/dev/loop0: %s", strerror(errno));
	EXPECT_EQ(-1, ioctl(dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ(ENXIO, errno);
	close(dev);
	EXPECT_EQ(0, nsdev_sh("out=$(LC_ALL=C losetup /dev/loop0 2>&1); rc=$?; "
			"echo \"$out\" | sed 's/^/# /'; test $rc = 1 && "
			"echo \"$out\" | grep -qxE 'losetup: /dev/loop0: "
			"(No such file or directory|No such device or address)'"));

	/* Offset, size limit, read-only. */
	ASSERT_EQ(0, nsdev_sh("test \"$(losetup -f --show -r -o 1048576 --sizelimit 2097152 %s)\" = /dev/loop0",
			self->img));
	EXPECT_EQ(0, nsdev_sh("test \"$(losetup -l -n -O OFFSET,SIZELIMIT,RO /dev/loop0 | xargs)\" = "
			"'1048576 2097152 1'"));
	EXPECT_EQ(0, nsdev_sh("test $(blockdev --getsize64 /dev/loop0) = 2097152"));
	/* It opens for writing, as loop.c's, but refuses the write. */
	dev = open("/dev/loop0", O_WRONLY | O_CLOEXEC);
	ASSERT_LE(0, dev) TH_LOG("/dev/loop0: %s", strerror(errno));
	EXPECT_EQ(0, ioctl(dev, BLKROGET, &ro));
	EXPECT_EQ(1, ro);
	EXPECT_EQ(-1, pwrite(dev, zero, sizeof(zero), 0));
	EXPECT_EQ(EPERM, errno);
	close(dev);

	/* Direct I/O and 4096-byte sectors. */
	ASSERT_EQ(0, nsdev_sh("test \"$(losetup -f --show --direct-io=on --sector-size 4096 %s)\" = /dev/loop1",
			self->img));
	EXPECT_EQ(0, nsdev_sh("test \"$(losetup -l -n -O DIO,LOG-SEC /dev/loop1 | xargs)\" = '1 4096'"));
	EXPECT_EQ(0, nsdev_sh("test $(blockdev --getss /dev/loop1) = 4096"));

	/* Capacity follows the file with -c. */
	EXPECT_EQ(0, nsdev_sh("truncate -s 32M %s && losetup -c /dev/loop1 && "
			"test $(blockdev --getsize64 /dev/loop1) = 33554432", self->img));
	EXPECT_EQ(0, nsdev_sh("losetup -d /dev/loop0 /dev/loop1"));

	/* Partition scanning, what image builders need. */
	ASSERT_EQ(0, nsdev_sh("printf 'label: gpt\\nsize=2MiB\\nsize=4MiB\\n' | sfdisk -q %s", self->img));
	ASSERT_EQ(0, nsdev_sh("test \"$(losetup -f --show -P %s)\" = /dev/loop0", self->img));
	EXPECT_EQ(0, nsdev_sh("test -b %s/loop0p1 && test -b %s/loop0p2 && ! test -e %s/loop0p3",
			self->lfs, self->lfs, self->lfs));
	EXPECT_EQ(0, nsdev_sh("test $(losetup -l -n -O PARTSCAN /dev/loop0) = 1"));
	EXPECT_EQ(0, nsdev_sh("losetup -d /dev/loop0"));
	EXPECT_EQ(0, nsdev_sh("! test -e %s/loop0p1", self->lfs));
}

TEST_F(dev, partitions)
{
	char path[PATH_MAX], *buf, *back;
	struct stat st;
	int dev, part, file;

	/* Two partitions: 1 MiB at 1 MiB, 4 MiB at 4 MiB. */
	ASSERT_EQ(0, nsdev_sh("printf 'label: dos\\nstart=2048, size=2048, type=83\\n"
			"start=8192, size=8192, type=83\\n' | sfdisk -q %s", self->img));
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, LO_FLAGS_PARTSCAN, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));

	snprintf(path, sizeof(path), "%s/loop0p1", self->lfs);
	ASSERT_EQ(0, stat(path, &st)) TH_LOG("no %s", path);
	EXPECT_TRUE(S_ISBLK(st.st_mode));
	EXPECT_EQ(0600, st.st_mode & 07777);
	snprintf(path, sizeof(path), "%s/loop0p2", self->lfs);
	ASSERT_EQ(0, stat(path, &st));
	snprintf(path, sizeof(path), "%s/loop0p3", self->lfs);
	EXPECT_EQ(-1, stat(path, &st));

	/* Partition 2 is the file from 4 MiB on. */
	snprintf(path, sizeof(path), "%s/loop0p2", self->lfs);
	part = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, part);
	EXPECT_EQ(4 << 20, dev_size(part));
	buf = malloc(65536);
	back = malloc(65536);
	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, back);
	fill(buf, 65536, 9);
	ASSERT_EQ(65536, pwrite(part, buf, 65536, 4096));
	ASSERT_EQ(0, fsync(part));
	close(part);
	file = open(self->img, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, file);
	ASSERT_EQ(65536, pread(file, back, 65536, (4 << 20) + 4096));
	EXPECT_EQ(0, memcmp(buf, back, 65536));
	close(file);

	/* Detaching takes the partitions away. */
	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	snprintf(path, sizeof(path), "%s/loop0p1", self->lfs);
	EXPECT_EQ(-1, stat(path, &st));
	free(buf);
	free(back);
}

/*
 * A status change through a partition writes back and drops the page cache
 * of the whole disk, as loop.c does (lo->lo_device): a reader of the disk
 * then sees the data at the new offset, not what it cached at the old one.
 */
TEST_F(dev, set_status_on_partition_drops_disk_cache)
{
	char path[PATH_MAX], *buf, *back;
	struct loop_info64 info;
	int dev, part, file;

	ASSERT_EQ(0, nsdev_sh("printf 'label: dos\\nstart=2048, size=2048, type=83\\n' | sfdisk -q %s",
			      self->img));
	buf = malloc(2 * 4096);
	back = malloc(4096);
	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, back);
	fill(buf, 4096, 1);
	fill(buf + 4096, 4096, 2);
	file = open(self->img, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, file);
	ASSERT_EQ(4096, pwrite(file, buf, 4096, 8 << 20));
	ASSERT_EQ(4096, pwrite(file, buf + 4096, 4096, 9 << 20));
	close(file);
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, self->img, 0, 0, LO_FLAGS_PARTSCAN, 0);
	ASSERT_LE(0, dev) TH_LOG("attach: %s", strerror(errno));

	/* Read, so cached, through the disk at offset 0. */
	ASSERT_EQ(4096, pread(dev, back, 4096, 8 << 20));
	EXPECT_EQ(0, memcmp(buf, back, 4096));
	snprintf(path, sizeof(path), "%s/loop0p1", self->lfs);
	part = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, part) TH_LOG("%s: %s", path, strerror(errno));
	ASSERT_EQ(0, ioctl(part, LOOP_GET_STATUS64, &info));
	info.lo_offset = 1 << 20;
	ASSERT_EQ(0, ioctl(part, LOOP_SET_STATUS64, &info));
	close(part);
	/* The disk's 8 MiB are the file's 9 MiB now. */
	ASSERT_EQ(4096, pread(dev, back, 4096, 8 << 20));
	EXPECT_EQ(0, memcmp(buf + 4096, back, 4096));

	ASSERT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	free(buf);
	free(back);
}

struct stress_arg {
	char lfs[96];
	char img[96];
	int ctl;
	int errors;
	/* Successes, so that a run that did nothing does not pass. */
	int attached, written, removed;
};

static void stress_error(struct stress_arg *a, const char *what, int err)
{
	fprintf(stderr, "# %s: %s\n", what, strerror(err));
	__atomic_add_fetch(&a->errors, 1, __ATOMIC_RELAXED);
}

/* Adds, attaches, detaches and removes devices, racing with the others. */
static void *stress_thread(void *p)
{
	struct stress_arg *a = p;

	for (int i = 0; i < 40; i++) {
		int n = ioctl(a->ctl, LOOP_CTL_GET_FREE);
		int dev;

		if (n < 0) {
			if (errno != ENOSPC)
				stress_error(a, "get_free", errno);
			continue;
		}
		dev = attach(a->lfs, n, a->img, 0, 0, LO_FLAGS_AUTOCLEAR, 0);
		if (dev >= 0) {
			char buf[512] = { 1 };

			__atomic_add_fetch(&a->attached, 1, __ATOMIC_RELAXED);
			if (pwrite(dev, buf, sizeof(buf), 512 * i) != sizeof(buf))
				stress_error(a, "pwrite", errno);
			else
				__atomic_add_fetch(&a->written, 1, __ATOMIC_RELAXED);
			close(dev);	/* autoclear */
		} else if (errno != EBUSY && errno != ENXIO && errno != ENOENT) {
			/* ENOENT: another thread removed it meanwhile. */
			stress_error(a, "attach", errno);
		}
		if (!ioctl(a->ctl, LOOP_CTL_REMOVE, n))
			__atomic_add_fetch(&a->removed, 1, __ATOMIC_RELAXED);
		else if (errno != EBUSY && errno != ENODEV)
			stress_error(a, "remove", errno);
	}
	return NULL;
}

TEST_F(dev, concurrent_add_remove_attach_detach)
{
	struct stress_arg args[4];
	pthread_t threads[8];
	struct statvfs before, after;
	int fd;

	ASSERT_EQ(0, statvfs(self->base, &before));
	for (int i = 0; i < 2; i++) {
		char path[PATH_MAX];

		snprintf(args[i].lfs, sizeof(args[i].lfs), "%s/s%d", self->base, i);
		snprintf(args[i].img, sizeof(args[i].img), "%s/s%d.img", self->base, i);
		ASSERT_EQ(0, mkdir(args[i].lfs, 0755));
		ASSERT_EQ(0, mount("loop", args[i].lfs, "loop", 0, "max=3"));
		fd = make_file(args[i].img, 1 << 20);
		ASSERT_LE(0, fd) TH_LOG("%s: %s", args[i].img, strerror(errno));
		close(fd);
		snprintf(path, sizeof(path), "%s/loop-control", args[i].lfs);
		args[i].ctl = open(path, O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, args[i].ctl);
		args[i].errors = 0;
		args[i].attached = args[i].written = args[i].removed = 0;
	}
	for (int t = 0; t < 8; t++)
		ASSERT_EQ(0, pthread_create(&threads[t], NULL, stress_thread, &args[t % 2]));
	for (int t = 0; t < 8; t++)
		ASSERT_EQ(0, pthread_join(threads[t], NULL));
	for (int i = 0; i < 2; i++) {
		EXPECT_EQ(0, args[i].errors);
		/*
		 * The errnos stress_thread() tolerates come from losing a race:
		 * each instance must also have won some of each.
		 */
		TH_LOG("instance %d: %d attaches, %d writes, %d removals", i,
		       args[i].attached, args[i].written, args[i].removed);
		EXPECT_LT(0, args[i].attached);
		EXPECT_LT(0, args[i].written);
		EXPECT_LT(0, args[i].removed);
		close(args[i].ctl);
		ASSERT_EQ(0, umount2(args[i].lfs, 0));
		/* Nothing holds the backing files any more. */
		ASSERT_EQ(0, unlink(args[i].img));
	}
	ASSERT_EQ(0, statvfs(self->base, &after));
	EXPECT_GE(after.f_bfree, before.f_bfree);
}

#define MAX_DEVICES_PARAM "/sys/module/loopfs/parameters/max_devices"

/* The module parameter caps all instances together: ENOSPC beyond it. */
TEST(module_cap_enospc)
{
	char a[] = "/tmp/loopfs_cap.XXXXXX", b[] = "/tmp/loopfs_cap.XXXXXX";
	char saved[32], path[PATH_MAX];
	int ctl_a, ctl_b;

	ASSERT_LT(0, nsdev_read_file(MAX_DEVICES_PARAM, saved, sizeof(saved)));
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_NE(NULL, mkdtemp(a));
	ASSERT_NE(NULL, mkdtemp(b));
	ASSERT_EQ(0, mount("loop", a, "loop", 0, NULL));
	ASSERT_EQ(0, mount("loop", b, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", a);
	ctl_a = open(path, O_RDWR | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/loop-control", b);
	ctl_b = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl_a);
	ASSERT_LE(0, ctl_b);

	ASSERT_EQ(0, nsdev_write_file(MAX_DEVICES_PARAM, "2"));
	EXPECT_EQ(0, ioctl(ctl_a, LOOP_CTL_ADD, -1));
	EXPECT_EQ(0, ioctl(ctl_b, LOOP_CTL_ADD, -1));
	EXPECT_EQ(-1, ioctl(ctl_b, LOOP_CTL_ADD, -1));
	EXPECT_EQ(ENOSPC, errno);
	EXPECT_EQ(-1, ioctl(ctl_a, LOOP_CTL_ADD, 7));
	EXPECT_EQ(ENOSPC, errno);
	/* Removing one makes room again. */
	EXPECT_EQ(0, ioctl(ctl_a, LOOP_CTL_REMOVE, 0));
	EXPECT_EQ(1, ioctl(ctl_b, LOOP_CTL_ADD, -1));
	ASSERT_EQ(0, nsdev_write_file(MAX_DEVICES_PARAM, "%s", saved));

	close(ctl_a);
	close(ctl_b);
	EXPECT_EQ(0, umount2(a, 0));
	EXPECT_EQ(0, umount2(b, 0));
	rmdir(a);
	rmdir(b);
}

/*
 * A container makes and checks an ext4 filesystem on its own device; init
 * root mounts that device from the initial namespace and reads it.
 */
TEST(ext4_from_container_mounted_by_host)
{
	char base[] = "/tmp/loopfs_ext4.XXXXXX", mnt[] = "/tmp/loopfs_mnt.XXXXXX";
	char path[PATH_MAX], buf[64] = "";
	int up[2], down[2], fd;
	pid_t pid;

	ASSERT_NE(NULL, mkdtemp(base));
	ASSERT_EQ(0, chmod(base, 0755));
	ASSERT_NE(NULL, mkdtemp(mnt));
	ASSERT_EQ(0, pipe(up));
	ASSERT_EQ(0, pipe(down));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char c;

		CHILD_CHECK(nsdev_become_userns_root() == 0);
		CHILD_CHECK(mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0);
		CHILD_CHECK(mount("tmpfs", base, "tmpfs", 0, NULL) == 0);
		CHILD_CHECK(nsdev_sh("set -e; cd %s; mkdir lfs src; mount -t loop loop lfs; "
			       "echo 'hello from the container' > src/hello; "
			       "truncate -s 64M img", base) == 0);
		snprintf(path, sizeof(path), "%s/lfs/loop-control", base);
		fd = open(path, O_RDWR | O_CLOEXEC);
		CHILD_CHECK(fd >= 0 && ioctl(fd, LOOP_CTL_ADD, 0) == 0);
		snprintf(path, sizeof(path), "%s/lfs", base);
		snprintf(buf, sizeof(buf), "%s/img", base);
		CHILD_CHECK(attach(path, 0, buf, 0, 0, 0, 0) >= 0);
		CHILD_CHECK(nsdev_sh("mkfs.ext4 -q -F -d %s/src %s/lfs/loop0", base, base) == 0);
		CHILD_CHECK(nsdev_sh("e2fsck -fn %s/lfs/loop0 >/dev/null", base) == 0);
		CHILD_CHECK(write(up[1], "r", 1) == 1);
		CHILD_CHECK(read(down[0], &c, 1) == 1);
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	ASSERT_EQ(1, read(up[0], buf, 1)) TH_LOG("the container failed");
	snprintf(path, sizeof(path), "/proc/%d/root%s/lfs/loop0", pid, base);
	EXPECT_EQ(0, mount(path, mnt, "ext4", MS_RDONLY, NULL))
		TH_LOG("mount %s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/hello", mnt);
	memset(buf, 0, sizeof(buf));
	EXPECT_LT(0, nsdev_read_file(path, buf, sizeof(buf)));
	EXPECT_STREQ("hello from the container\n", buf);
	umount2(mnt, 0);
	ASSERT_EQ(1, write(down[1], "d", 1));
	EXPECT_EQ(0, nsdev_wait(pid));
	rmdir(mnt);
	rmdir(base);
}

/*
 * ext4 on a loop.c device, as a host's disk would be (not a RAM disk, where
 * loopfs serves no direct I/O in the submitter), mounted on <base>/x, and a
 * loopfs instance on <base>/lfs; <base>/y for a filesystem on its devices.
 */
FIXTURE(disk) {
	char base[32];
	char lfs[64];
	int ctl;
};

FIXTURE_SETUP(disk)
{
	char path[PATH_MAX];

	snprintf(self->base, sizeof(self->base), "/tmp/loopfs_disk.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->base));
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_EQ(0, mount("tmpfs", self->base, "tmpfs", 0, NULL));
	ASSERT_EQ(0, nsdev_sh("set -e; cd %s; truncate -s 96M disk; mkdir x y lfs; "
			      "losetup -f --show disk > disk.dev; "
			      "mkfs.ext4 -q -F $(cat disk.dev); mount $(cat disk.dev) x",
			      self->base));
	snprintf(self->lfs, sizeof(self->lfs), "%s/lfs", self->base);
	ASSERT_EQ(0, mount("loop", self->lfs, "loop", 0, NULL));
	snprintf(path, sizeof(path), "%s/loop-control", self->lfs);
	self->ctl = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->ctl);
}

FIXTURE_TEARDOWN(disk)
{
	if (self->ctl >= 0)
		close(self->ctl);
	umount2(self->lfs, MNT_DETACH);
	EXPECT_EQ(0, nsdev_sh("cd %s; umount x && losetup -d $(cat disk.dev)", self->base));
	umount2(self->base, MNT_DETACH);
	rmdir(self->base);
}

/*
 * A read whose direct I/O needs the backing filesystem to read its block
 * map first. An O_DIRECT read of 4 KiB is submitted without a plug, so
 * queue_rq() runs inside submit_bio(), which holds back every bio submitted
 * meanwhile until it returns: unless loopfs submits the backing
 * filesystem's bios there and then, ext4's read of its extent tree
 * (IOCB_NOWAIT does not stop it) is never issued and the reader waits for
 * ever.
 */
TEST_F(disk, direct_io_read_of_cold_block_map)
{
	struct loop_info64 info;
	char path[PATH_MAX];
	int dev, fd, i, status = -1;
	pid_t pid;

	/* 400 extents of 4 KiB: the map needs blocks of its own. */
	snprintf(path, sizeof(path), "%s/x/img", self->base);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd);
	for (i = 0; i < 400; i++) {
		char block[4096];

		memset(block, i % 251 + 1, sizeof(block));
		ASSERT_EQ(sizeof(block), pwrite(fd, block, sizeof(block), i * 8192L));
	}
	ASSERT_EQ(0, fsync(fd));
	close(fd);
	/* Forget the map: a fresh mount of the filesystem has it on disk only. */
	ASSERT_EQ(0, nsdev_sh("set -e; cd %s; umount x; "
			      "echo 3 > /proc/sys/vm/drop_caches; "
			      "mount $(cat disk.dev) x", self->base));

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	dev = attach(self->lfs, 0, path, 0, 0, LO_FLAGS_DIRECT_IO, 0);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	ASSERT_TRUE(info.lo_flags & LO_FLAGS_DIRECT_IO);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		void *buf;
		int rd;

		CHILD_CHECK(posix_memalign(&buf, 4096, 4096) == 0);
		rd = open_dev(self->lfs, 0, O_RDONLY | O_DIRECT);
		CHILD_CHECK(rd >= 0);
		CHILD_CHECK(pread(rd, buf, 4096, 300 * 8192L) == 4096);
		CHILD_CHECK(((unsigned char *)buf)[0] == 300 % 251 + 1);
		_exit(0);
	}
	/* A reader that waits for ever cannot be reaped: give up on it. */
	for (i = 0; i < 600 && waitpid(pid, &status, WNOHANG) == 0; i++)
		usleep(100000);
	ASSERT_TRUE(i < 600) TH_LOG("the read did not complete in 60 s");
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	EXPECT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
}

/*
 * Plugged direct I/O: an O_DIRECT read of 2 MiB is two requests in the
 * reader's plug, so queue_rq() runs from the flush of that plug, and the
 * backing filesystem's bios, which go to another blk-mq disk, must not land
 * in the plug being flushed (blk-mq's list of it is half taken: a NULL
 * dereference in 6.12).
 */
TEST_F(disk, plugged_direct_io)
{
	static char want[2 << 20];
	const size_t len = sizeof(want);
	struct loop_info64 info;
	char path[PATH_MAX];
	int dev, fd, i;
	char *buf;

	ASSERT_EQ(0, posix_memalign((void **)&buf, 4096, len));
	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	snprintf(path, sizeof(path), "%s/x/img", self->base);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ASSERT_LE(0, fd);
	for (i = 0; i < 4; i++) {
		fill(buf, len, i);
		ASSERT_EQ(len, pwrite(fd, buf, len, (off_t)i << 21));
	}
	ASSERT_EQ(0, fsync(fd));
	close(fd);
	dev = attach(self->lfs, 0, path, 0, 0, LO_FLAGS_DIRECT_IO, 0);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, ioctl(dev, LOOP_GET_STATUS64, &info));
	ASSERT_TRUE(info.lo_flags & LO_FLAGS_DIRECT_IO);

	fd = open_dev(self->lfs, 0, O_RDWR | O_DIRECT);
	ASSERT_LE(0, fd);
	for (i = 0; i < 4; i++) {
		fill(want, len, i);
		memset(buf, 0, len);
		ASSERT_EQ(len, pread(fd, buf, len, (off_t)i << 21));
		ASSERT_EQ(0, memcmp(buf, want, len)) TH_LOG("at %d MiB", 2 * i);
	}
	/* And writes, read back the same way. */
	fill(buf, len, 42);
	ASSERT_EQ(len, pwrite(fd, buf, len, 2 << 21));
	memset(buf, 0, len);
	ASSERT_EQ(len, pread(fd, buf, len, 2 << 21));
	fill(want, len, 42);
	EXPECT_EQ(0, memcmp(buf, want, len));
	close(fd);

	EXPECT_EQ(0, ioctl(dev, LOOP_CLR_FD));
	close(dev);
	free(buf);
}

/*
 * No device below itself through a filesystem: the host mounts a filesystem
 * of a container's device (as it may, to use the container's image), and
 * the container backs a device with a file on it. Were that allowed, a
 * device could be switched to a file on the filesystem on itself
 * (LOOP_CHANGE_FD on a read-only device), and its reads would wait for
 * themselves for ever, in D state, with the host's umount. Any file on a
 * filesystem on a loopfs disk is refused, as loopfs disks are.
 */
TEST_F(disk, stacking_through_filesystem_einval)
{
	struct loop_config config = { 0 };
	char path[PATH_MAX];
	int lower, other, fd;

	ASSERT_EQ(0, ioctl(self->ctl, LOOP_CTL_ADD, 0));
	ASSERT_EQ(1, ioctl(self->ctl, LOOP_CTL_ADD, 1));
	/* An image with a 64 MiB file in it, as large as the image. */
	ASSERT_EQ(0, nsdev_sh("set -e; cd %s; truncate -s 64M x/lower.img; "
			      "mkfs.ext4 -q -F x/lower.img; mount x/lower.img y; "
			      "truncate -s 64M y/inner.img; umount y", self->base));
	snprintf(path, sizeof(path), "%s/x/lower.img", self->base);
	lower = attach(self->lfs, 0, path, 0, 0, LO_FLAGS_READ_ONLY, 0);
	ASSERT_LE(0, lower);
	ASSERT_EQ(0, nsdev_sh("mount -o ro,noload %s/lfs/loop0 %s/y",
			      self->base, self->base));

	snprintf(path, sizeof(path), "%s/y/inner.img", self->base);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	ASSERT_LE(0, fd);
	/* The cycle: the device onto a file on its own filesystem. */
	EXPECT_EQ(-1, ioctl(lower, LOOP_CHANGE_FD, fd));
	EXPECT_EQ(EINVAL, errno);
	/* And any stacking, which a later change could close into a cycle. */
	snprintf(path, sizeof(path), "%s/loop1", self->lfs);
	other = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, other);
	config.fd = fd;
	EXPECT_EQ(-1, ioctl(other, LOOP_CONFIGURE, &config));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, ioctl(other, LOOP_SET_FD, fd));
	EXPECT_EQ(EINVAL, errno);
	close(other);
	close(fd);

	/* The device still reads its own image. */
	EXPECT_EQ(0, nsdev_sh("set -e; umount %s/y; dd if=%s/lfs/loop0 of=/dev/null "
			      "bs=1M count=4 status=none", self->base, self->base));
	EXPECT_EQ(0, ioctl(lower, LOOP_CLR_FD));
	close(lower);
}

TEST_HARNESS_MAIN
