// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs against loop.c, measured: the same sequences of loop-control and
 * loop device operations run against the in-kernel loop driver and against
 * a loopfs instance in the same kernel, each on its own copy of the same
 * backing files, and everything observable is compared after every step:
 * return values and errnos, loop_info64/loop_info contents, sizes, block
 * sizes, read-only state, data read back, partition nodes and the loop/
 * sysfs values.
 *
 * Differences listed in known_differences[] (and in Documentation/loopfs.rst)
 * are reported and allowed; any other fails the test. Scripted sequences come
 * first, then seeded random ones; the seed is printed (NSDEV_DIFF_SEED
 * repeats a run, NSDEV_DIFF_STEPS sets the number of random steps).
 *
 * Runs as init root: loop.c's devices need it.
 */

#define _GNU_SOURCE
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

#define SLOTS		3
#define FILES		3
#define FILE_SIZE	(4 << 20)
#define BASE		200	/* loop.c numbers: BASE + slot */

enum op_kind {
	OP_ADD, OP_REMOVE, OP_OPEN, OP_CLOSE, OP_CONFIGURE, OP_SET_FD,
	OP_CLR_FD, OP_CHANGE_FD, OP_SET_STATUS64, OP_SET_STATUS, OP_GET_STATUS64,
	OP_GET_STATUS, OP_SET_CAPACITY, OP_SET_BLOCK_SIZE, OP_SET_DIO, OP_READ,
	OP_WRITE, OP_FLUSH, OP_DISCARD, OP_ZEROOUT, OP_TRUNCATE, NR_OP_KINDS,
};

static const char *const op_names[] = {
	"add", "remove", "open", "close", "configure", "set_fd", "clr_fd",
	"change_fd", "set_status64", "set_status", "get_status64", "get_status",
	"set_capacity", "set_block_size", "set_dio", "read", "write", "flush",
	"discard", "zeroout", "truncate",
};

struct op {
	enum op_kind kind;
	int slot;
	int file;		/* backing file index */
	int fmode;		/* O_RDONLY, O_RDWR, or with O_DIRECT */
	int dmode;		/* the device's open mode */
	__u32 flags;
	__u64 offset, sizelimit, arg;
	off_t pos;
	size_t len;
};

struct side {
	const char *name;
	char nodes[PATH_MAX];	/* directory of loop-control and loopN */
	char files[PATH_MAX];	/* directory of the backing files */
	int base;		/* device number of slot 0 */
	int ctl;
	int fd[SLOTS];
};

/* Everything one operation shows on one side. */
struct result {
	int ret, err;
	struct loop_info64 info;
	struct loop_info old;
	unsigned char data[8192];
	/* The slot's state afterwards. */
	bool open;
	unsigned long long size;
	int bsize, ro;
	bool part1, part2;
	char sysfs[9][32];
};

/* Under /sys/dev/block/M:m/. */
static const char *const sysfs_attrs[9] = {
	"loop/offset", "loop/sizelimit", "loop/autoclear", "loop/partscan",
	"loop/dio", "queue/discard_max_bytes", "queue/write_zeroes_max_bytes",
	"queue/rotational", "queue/write_cache",
};
#define SYSFS_DIO 4	/* sysfs_attrs[]: "loop/dio" */

static unsigned long long rng_state;

static unsigned int rnd(unsigned int n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (unsigned int)((rng_state * 2685821657736338717ULL) >> 32) % n;
}

static void node_path(struct side *s, int slot, int part, char *buf, size_t size)
{
	if (part)
		snprintf(buf, size, "%s/loop%dp%d", s->nodes, s->base + slot, part);
	else
		snprintf(buf, size, "%s/loop%d", s->nodes, s->base + slot);
}

static int open_file(struct side *s, const struct op *op)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/img%d", s->files, op->file);
	return open(path, op->fmode | O_CLOEXEC);
}

static void fill_info(const struct op *op, struct loop_info64 *info)
{
	memset(info, 0, sizeof(*info));
	info->lo_offset = op->offset;
	info->lo_sizelimit = op->sizelimit;
	info->lo_flags = op->flags;
	snprintf((char *)info->lo_file_name, LO_NAME_SIZE, "img%d", op->file);
}

/* Runs op on side s; the slot's state is sampled afterwards. */
static void run(struct side *s, const struct op *op, struct result *r)
{
	struct loop_config config;
	char path[PATH_MAX + 16];
	int fd = s->fd[op->slot], file;
	struct stat st;
	__u64 range[2];
	void *buf;
	int i;

	memset(r, 0, sizeof(*r));
	errno = 0;
	switch (op->kind) {
	case OP_ADD:
		r->ret = ioctl(s->ctl, LOOP_CTL_ADD, s->base + op->slot);
		if (r->ret >= 0)
			r->ret -= s->base;
		break;
	case OP_REMOVE:
		r->ret = ioctl(s->ctl, LOOP_CTL_REMOVE, s->base + op->slot);
		break;
	case OP_OPEN:
		if (fd >= 0)
			close(fd);
		node_path(s, op->slot, 0, path, sizeof(path));
		s->fd[op->slot] = open(path, op->dmode | O_CLOEXEC);
		r->ret = s->fd[op->slot] < 0 ? -1 : 0;
		break;
	case OP_CLOSE:
		if (fd >= 0)
			close(fd);
		s->fd[op->slot] = -1;
		r->ret = 0;
		break;
	case OP_CONFIGURE:
	case OP_SET_FD:
	case OP_CHANGE_FD:
		file = open_file(s, op);
		if (file < 0) {
			r->ret = -1;
			break;
		}
		if (op->kind == OP_CONFIGURE) {
			memset(&config, 0, sizeof(config));
			config.fd = file;
			config.block_size = op->arg;
			fill_info(op, &config.info);
			r->ret = ioctl(fd, LOOP_CONFIGURE, &config);
		} else {
			r->ret = ioctl(fd, op->kind == OP_SET_FD ? LOOP_SET_FD : LOOP_CHANGE_FD,
				       file);
		}
		i = errno;
		close(file);
		errno = i;
		break;
	case OP_CLR_FD:
		r->ret = ioctl(fd, LOOP_CLR_FD);
		break;
	case OP_SET_STATUS64:
		fill_info(op, &r->info);
		r->ret = ioctl(fd, LOOP_SET_STATUS64, &r->info);
		break;
	case OP_SET_STATUS:
		r->old.lo_offset = op->offset;
		r->old.lo_flags = op->flags;
		snprintf(r->old.lo_name, LO_NAME_SIZE, "img%d", op->file);
		r->ret = ioctl(fd, LOOP_SET_STATUS, &r->old);
		break;
	case OP_GET_STATUS64:
		r->ret = ioctl(fd, LOOP_GET_STATUS64, &r->info);
		break;
	case OP_GET_STATUS:
		r->ret = ioctl(fd, LOOP_GET_STATUS, &r->old);
		break;
	case OP_SET_CAPACITY:
		r->ret = ioctl(fd, LOOP_SET_CAPACITY, 0);
		break;
	case OP_SET_BLOCK_SIZE:
		r->ret = ioctl(fd, LOOP_SET_BLOCK_SIZE, (unsigned long)op->arg);
		break;
	case OP_SET_DIO:
		r->ret = ioctl(fd, LOOP_SET_DIRECT_IO, (unsigned long)op->arg);
		break;
	case OP_READ:
	case OP_WRITE:
		buf = aligned_alloc(4096, sizeof(r->data));
		if (!buf) {
			r->ret = -1;
			break;
		}
		memset(buf, op->kind == OP_WRITE ? (int)op->arg : 0, op->len);
		if (op->kind == OP_READ)
			r->ret = pread(fd, buf, op->len, op->pos);
		else
			r->ret = pwrite(fd, buf, op->len, op->pos);
		if (op->kind == OP_READ && r->ret > 0)
			memcpy(r->data, buf, r->ret);
		free(buf);
		break;
	case OP_FLUSH:
		r->ret = fsync(fd);
		break;
	case OP_DISCARD:
	case OP_ZEROOUT:
		range[0] = op->pos;
		range[1] = op->len;
		r->ret = ioctl(fd, op->kind == OP_DISCARD ? BLKDISCARD : BLKZEROOUT, range);
		break;
	case OP_TRUNCATE:
		snprintf(path, sizeof(path), "%s/img%d", s->files, op->file);
		r->ret = truncate(path, op->arg);
		break;
	default:
		r->ret = -1;
	}
	r->err = r->ret < 0 ? errno : 0;

	/* The slot afterwards. */
	fd = s->fd[op->slot];
	r->open = fd >= 0;
	if (fd >= 0) {
		if (ioctl(fd, BLKGETSIZE64, &r->size))
			r->size = ~0ULL;
		if (ioctl(fd, BLKSSZGET, &r->bsize))
			r->bsize = -1;
		if (ioctl(fd, BLKROGET, &r->ro))
			r->ro = -1;
		if (!fstat(fd, &st)) {
			for (i = 0; i < (int)ARRAY_SIZE(sysfs_attrs); i++) {
				snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/%s",
					 major(st.st_rdev), minor(st.st_rdev), sysfs_attrs[i]);
				if (nsdev_read_file(path, r->sysfs[i], sizeof(r->sysfs[i])) < 0)
					snprintf(r->sysfs[i], sizeof(r->sysfs[i]), "-");
			}
		}
	}
	node_path(s, op->slot, 1, path, sizeof(path));
	r->part1 = !access(path, F_OK);
	node_path(s, op->slot, 2, path, sizeof(path));
	r->part2 = !access(path, F_OK);
}

/*
 * The differences loopfs has on purpose, each with its reason (see
 * Documentation/loopfs.rst). A mismatch they explain is reported, not failed.
 */
struct known_difference {
	const char *reason;
	bool (*explains)(const struct op *op, const struct result *loop,
			 const struct result *lfs);
};

static int compare(const struct op *op, const struct result *a, const struct result *b,
		   char *why, size_t size);

/* Whether loop's result and lfs's, with what is excused copied over, agree. */
static bool agree_but_excused(const struct op *op, const struct result *loop,
			      const struct result *excused)
{
	char why[256];

	return !compare(op, loop, excused, why, sizeof(why));
}

/*
 * loopfs refuses the size with EINVAL; loop.c returns 0, having set its
 * default size (512 on these files, which have no block device under them)
 * and re-evaluated direct I/O with it. Only these may differ: the return,
 * and, where the sizes then differ, the size and loop/dio.
 */
static bool block_size_zero(const struct op *op, const struct result *loop,
			    const struct result *lfs)
{
	static struct result excused;

	if (op->kind != OP_SET_BLOCK_SIZE || op->arg != 0 || loop->ret != 0 ||
	    lfs->ret != -1 || lfs->err != EINVAL)
		return false;
	excused = *lfs;
	excused.ret = loop->ret;
	excused.err = loop->err;
	if (loop->bsize == 512 && lfs->bsize != 512) {
		excused.bsize = loop->bsize;
		memcpy(excused.sysfs[SYSFS_DIO], loop->sysfs[SYSFS_DIO],
		       sizeof(excused.sysfs[SYSFS_DIO]));
	}
	return agree_but_excused(op, loop, &excused);
}

/*
 * Both refuse the size with EINVAL; loop.c has made the disk read-only
 * before (set_disk_ro() in loop_configure()), loopfs has not. Only the
 * read-only state may differ.
 */
static bool configure_bad_block_size(const struct op *op, const struct result *loop,
				     const struct result *lfs)
{
	static struct result excused;

	if (op->kind != OP_CONFIGURE || !op->arg || op->arg == 512 || op->arg == 1024 ||
	    op->arg == 2048 || op->arg == 4096 || loop->ret != -1 || loop->err != EINVAL ||
	    lfs->ret != -1 || lfs->err != EINVAL || loop->ro != 1 || lfs->ro != 0)
		return false;
	excused = *lfs;
	excused.ro = loop->ro;
	return agree_but_excused(op, loop, &excused);
}

static const struct known_difference known_differences[] = {
	{ "LOOP_SET_BLOCK_SIZE 0 is EINVAL; Linux 6.12's loop.c takes 0 as its default size",
	  block_size_zero },
	{ "LOOP_CONFIGURE refused for its block size leaves the disk as it was; loop.c leaves it read-only if that was asked",
	  configure_bad_block_size },
};

static int compare(const struct op *op, const struct result *a, const struct result *b,
		   char *why, size_t size)
{
	int i;

	why[0] = '\0';
	if (a->ret != b->ret || a->err != b->err)
		snprintf(why, size, "ret %d/%d errno %d/%d", a->ret, b->ret, a->err, b->err);
	else if ((op->kind == OP_GET_STATUS64 && !a->ret) &&
		 (a->info.lo_offset != b->info.lo_offset ||
		  a->info.lo_sizelimit != b->info.lo_sizelimit ||
		  a->info.lo_flags != b->info.lo_flags ||
		  a->info.lo_number - BASE != b->info.lo_number ||
		  memcmp(a->info.lo_file_name, b->info.lo_file_name, LO_NAME_SIZE) ||
		  a->info.lo_encrypt_type != b->info.lo_encrypt_type))
		snprintf(why, size, "loop_info64: offset %llu/%llu sizelimit %llu/%llu flags %#x/%#x number %u/%u",
			 (unsigned long long)a->info.lo_offset,
			 (unsigned long long)b->info.lo_offset,
			 (unsigned long long)a->info.lo_sizelimit,
			 (unsigned long long)b->info.lo_sizelimit,
			 a->info.lo_flags, b->info.lo_flags, a->info.lo_number,
			 b->info.lo_number);
	else if ((op->kind == OP_GET_STATUS && !a->ret) &&
		 (a->old.lo_offset != b->old.lo_offset ||
		  a->old.lo_flags != b->old.lo_flags ||
		  a->old.lo_number - BASE != b->old.lo_number ||
		  memcmp(a->old.lo_name, b->old.lo_name, LO_NAME_SIZE)))
		snprintf(why, size, "loop_info: offset %d/%d flags %#x/%#x",
			 a->old.lo_offset, b->old.lo_offset, a->old.lo_flags,
			 b->old.lo_flags);
	else if (op->kind == OP_READ && a->ret > 0 && memcmp(a->data, b->data, a->ret))
		snprintf(why, size, "data read back");
	else if (a->open != b->open || a->size != b->size || a->bsize != b->bsize ||
		 a->ro != b->ro)
		snprintf(why, size, "size %llu/%llu block size %d/%d ro %d/%d",
			 a->size, b->size, a->bsize, b->bsize, a->ro, b->ro);
	else if (a->part1 != b->part1 || a->part2 != b->part2)
		snprintf(why, size, "partition nodes %d%d/%d%d", a->part1, a->part2,
			 b->part1, b->part2);
	for (i = 0; !why[0] && i < (int)ARRAY_SIZE(sysfs_attrs); i++)
		if (strcmp(a->sysfs[i], b->sysfs[i]))
			snprintf(why, size, "sysfs %s %s/%s", sysfs_attrs[i],
				 a->sysfs[i], b->sysfs[i]);
	return why[0] ? -1 : 0;
}

static void describe(const struct op *op, char *buf, size_t size)
{
	snprintf(buf, size, "%s slot %d file %d fmode %#x dmode %#x flags %#x offset %llu sizelimit %llu arg %llu pos %lld len %zu",
		 op_names[op->kind], op->slot, op->file, op->fmode, op->dmode, op->flags,
		 (unsigned long long)op->offset, (unsigned long long)op->sizelimit,
		 (unsigned long long)op->arg, (long long)op->pos, op->len);
}

static const char *explained(const struct op *op, const struct result *a,
			     const struct result *b)
{
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(known_differences); i++)
		if (known_differences[i].explains(op, a, b))
			return known_differences[i].reason;
	return NULL;
}

FIXTURE(diff) {
	char base[64];
	struct side loop, lfs;
	int known, steps;
};

static int make_files(const char *dir)
{
	static const unsigned int part[2][2] = { { 2048, 2048 }, { 4096, 2048 } };
	char path[PATH_MAX + 16];
	int i, fd;

	if (mkdir(dir, 0755))
		return -1;
	for (i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/img%d", dir, i);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || ftruncate(fd, FILE_SIZE) ||
		    (i == 0 && nsdev_write_dos_label(fd, part, 2)))
			return -1;
		close(fd);
	}
	return 0;
}

/* Detaches and removes the side's devices, closing what the test holds. */
static void side_reset(struct side *s)
{
	char path[PATH_MAX + 16];
	int i, fd;

	for (i = 0; i < SLOTS; i++) {
		if (s->fd[i] >= 0)
			close(s->fd[i]);
		s->fd[i] = -1;
		node_path(s, i, 0, path, sizeof(path));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			ioctl(fd, LOOP_CLR_FD);
			close(fd);
		}
		ioctl(s->ctl, LOOP_CTL_REMOVE, s->base + i);
	}
}

FIXTURE_SETUP(diff)
{
	char path[PATH_MAX + 16];
	int i;

	snprintf(self->base, sizeof(self->base), "/tmp/loopfs_diff.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->base));
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_EQ(0, mount("tmpfs", self->base, "tmpfs", 0, "size=64m"));

	self->loop = (struct side){ .name = "loop.c", .base = BASE };
	snprintf(self->loop.nodes, sizeof(self->loop.nodes), "/dev");
	snprintf(self->loop.files, sizeof(self->loop.files), "%s/loop", self->base);
	self->lfs = (struct side){ .name = "loopfs", .base = 0 };
	snprintf(self->lfs.nodes, sizeof(self->lfs.nodes), "%s/lfs", self->base);
	snprintf(self->lfs.files, sizeof(self->lfs.files), "%s/files", self->base);
	ASSERT_EQ(0, make_files(self->loop.files));
	ASSERT_EQ(0, make_files(self->lfs.files));
	ASSERT_EQ(0, mkdir(self->lfs.nodes, 0755));
	ASSERT_EQ(0, mount("loop", self->lfs.nodes, "loop", 0, NULL));

	self->loop.ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->loop.ctl);
	snprintf(path, sizeof(path), "%s/loop-control", self->lfs.nodes);
	self->lfs.ctl = open(path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->lfs.ctl);
	for (i = 0; i < SLOTS; i++)
		self->loop.fd[i] = self->lfs.fd[i] = -1;
	/* Nothing of an earlier run, even one killed before its teardown. */
	side_reset(&self->loop);
}

FIXTURE_TEARDOWN(diff)
{
	side_reset(&self->loop);
	side_reset(&self->lfs);
	close(self->loop.ctl);
	close(self->lfs.ctl);
	umount2(self->lfs.nodes, MNT_DETACH);
	umount2(self->base, MNT_DETACH);
	rmdir(self->base);
}


/* One step on both sides; returns 0 if they agree or differ as known. */
static int compare_step(struct __test_metadata *_metadata, struct _test_data_diff *self,
			const struct op *op)
{
	static struct result a, b;
	char why[256], what[256];
	const char *reason;

	run(&self->loop, op, &a);
	run(&self->lfs, op, &b);
	self->steps++;
	if (getenv("NSDEV_DIFF_VERBOSE")) {
		describe(op, what, sizeof(what));
		fprintf(stderr, "# %d: %s: %d/%d %d/%d size %llu bs %d ro %d dio %s\n",
			self->steps, what, a.ret, b.ret, a.err, b.err, a.size, a.bsize,
			a.ro, a.sysfs[4]);
	}
	if (!compare(op, &a, &b, why, sizeof(why)))
		return 0;
	describe(op, what, sizeof(what));
	reason = explained(op, &a, &b);
	if (reason) {
		self->known++;
		TH_LOG("known difference: %s: %s (%s)", what, why, reason);
		return 0;
	}
	TH_LOG("loop.c/loopfs differ after step %d: %s: %s", self->steps, what, why);
	return -1;
}

#define S(...) ((struct op){ __VA_ARGS__ })

/* Scripted: the cases known to be delicate. */
TEST_F(diff, scripted)
{
	const struct op script[] = {
		S(OP_ADD, 0), S(OP_ADD, 0), S(OP_OPEN, 0, .dmode = O_RDWR),
		S(OP_GET_STATUS64, 0), S(OP_CLR_FD, 0), S(OP_SET_CAPACITY, 0),
		S(OP_CONFIGURE, 0, 0, O_RDWR, .flags = LO_FLAGS_PARTSCAN),
		S(OP_GET_STATUS64, 0), S(OP_GET_STATUS, 0),
		S(OP_CONFIGURE, 0, 1, O_RDWR), /* bound: EBUSY */
		S(OP_WRITE, 0, .pos = 4096, .len = 4096, .arg = 0x5a),
		S(OP_READ, 0, .pos = 4096, .len = 8192), S(OP_FLUSH, 0),
		S(OP_CHANGE_FD, 0, 1, O_RDONLY), /* not read-only: EINVAL */
		S(OP_SET_STATUS64, 0, 0, .offset = 512, .flags = LO_FLAGS_AUTOCLEAR),
		S(OP_GET_STATUS64, 0), S(OP_READ, 0, .pos = 0, .len = 4096),
		S(OP_SET_STATUS64, 0, 0, .offset = 0, .sizelimit = 1 << 20),
		S(OP_GET_STATUS64, 0), S(OP_SET_BLOCK_SIZE, 0, .arg = 4096),
		S(OP_SET_BLOCK_SIZE, 0, .arg = 4096), S(OP_SET_BLOCK_SIZE, 0, .arg = 1000),
		S(OP_SET_BLOCK_SIZE, 0, .arg = 512), S(OP_SET_DIO, 0, .arg = 1),
		S(OP_GET_STATUS64, 0), S(OP_SET_DIO, 0, .arg = 0),
		S(OP_DISCARD, 0, .pos = 0, .len = 65536),
		S(OP_ZEROOUT, 0, .pos = 65536, .len = 65536), S(OP_ZEROOUT, 0, .pos = 0, .len = 4096),
		S(OP_CLR_FD, 0), S(OP_GET_STATUS64, 0), S(OP_CLOSE, 0),
		/* Read-only device: flush works, writes do not. */
		S(OP_OPEN, 0, .dmode = O_RDWR),
		S(OP_CONFIGURE, 0, 2, O_RDONLY, .flags = LO_FLAGS_READ_ONLY),
		S(OP_FLUSH, 0), S(OP_WRITE, 0, .pos = 0, .len = 512, .arg = 1),
		S(OP_CHANGE_FD, 0, 1, O_RDONLY), S(OP_GET_STATUS64, 0),
		S(OP_TRUNCATE, 0, 1, .arg = 2 << 20), S(OP_CHANGE_FD, 0, 2, O_RDONLY),
		S(OP_SET_CAPACITY, 0), S(OP_REMOVE, 0), S(OP_CLR_FD, 0), S(OP_CLOSE, 0),
		S(OP_REMOVE, 0), S(OP_REMOVE, 0),
		/* Direct I/O and an offset that rules it out. */
		S(OP_ADD, 1), S(OP_OPEN, 1, .dmode = O_RDWR),
		S(OP_CONFIGURE, 1, 0, O_RDWR | O_DIRECT, .flags = LO_FLAGS_DIRECT_IO),
		S(OP_GET_STATUS64, 1), S(OP_SET_STATUS64, 1, 0, .offset = 256),
		S(OP_GET_STATUS64, 1), S(OP_SET_BLOCK_SIZE, 1, .arg = 0),
		S(OP_SET_FD, 1, 0, O_RDWR), S(OP_CLR_FD, 1), S(OP_CLOSE, 1),
		S(OP_OPEN, 1, .dmode = O_RDWR), S(OP_SET_FD, 1, 1, O_RDWR),
		S(OP_GET_STATUS64, 1), S(OP_CLR_FD, 1), S(OP_CLOSE, 1), S(OP_REMOVE, 1),
		/* A refused configuration; LOOP_CLR_FD with one opener: no I/O. */
		S(OP_ADD, 2), S(OP_OPEN, 2, .dmode = O_RDWR),
		S(OP_CONFIGURE, 2, 0, O_RDWR, .flags = LO_FLAGS_READ_ONLY, .arg = 1000),
		S(OP_CLOSE, 2), S(OP_REMOVE, 2), S(OP_ADD, 2), S(OP_OPEN, 2, .dmode = O_RDWR),
		S(OP_CONFIGURE, 2, 0, O_RDWR, .arg = 4096), S(OP_CLR_FD, 2),
		S(OP_READ, 2, .pos = 0, .len = 4096), S(OP_GET_STATUS64, 2),
		S(OP_CLOSE, 2), S(OP_GET_STATUS64, 2), S(OP_REMOVE, 2),
	};
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(script); i++)
		ASSERT_EQ(0, compare_step(_metadata, self, &script[i]));
	TH_LOG("%d steps, %d known differences", self->steps, self->known);
}

/* A random operation with random arguments, the same for both sides. */
static struct op random_op(void)
{
	static const int fmodes[] = { O_RDWR, O_RDONLY, O_RDWR | O_DIRECT };
	static const __u64 bsizes[] = { 0, 512, 1024, 2048, 4096, 1000 };
	struct op op = {
		.kind = rnd(NR_OP_KINDS),
		.slot = rnd(SLOTS),
		.file = rnd(FILES),
		.fmode = fmodes[rnd(3)],
		.dmode = rnd(4) ? O_RDWR : O_RDONLY,
		.flags = (rnd(3) ? 0 : LO_FLAGS_READ_ONLY) |
			(rnd(3) ? 0 : LO_FLAGS_AUTOCLEAR) |
			(rnd(3) ? 0 : LO_FLAGS_PARTSCAN) |
			(rnd(3) ? 0 : LO_FLAGS_DIRECT_IO),
		.offset = rnd(3) ? 0 : 512ULL * rnd(16),
		.sizelimit = rnd(3) ? 0 : 4096ULL * rnd(1024),
		.pos = 512LL * rnd(FILE_SIZE / 512),
		.len = 512 << rnd(5),
	};

	switch (op.kind) {
	case OP_SET_BLOCK_SIZE:
		/* Not 0, a known difference after which the sides would differ. */
		op.arg = bsizes[1 + rnd(ARRAY_SIZE(bsizes) - 1)];
		break;
	case OP_CONFIGURE:
		/* Valid ones: a refused one leaves loop.c's disk changed. */
		op.arg = bsizes[rnd(ARRAY_SIZE(bsizes) - 1)];
		break;
	case OP_TRUNCATE:
		op.arg = (FILE_SIZE / 4) * (1 + rnd(4));
		break;
	default:
		op.arg = rnd(2);
	}
	return op;
}

/* Long runs (NSDEV_DIFF_STEPS) have until scripts/guest.sh stops them. */
TEST_F_TIMEOUT(diff, random, 580)
{
	unsigned long long seed = nsdev_seed("NSDEV_DIFF_SEED");
	long steps = nsdev_env_count("NSDEV_DIFF_STEPS", 2000), i;

	rng_state = seed | 1;
	TH_LOG("seed %llu, %ld steps (NSDEV_DIFF_SEED=%llu repeats it)", seed, steps, seed);
	for (i = 0; i < steps; i++) {
		struct op op = random_op();

		ASSERT_EQ(0, compare_step(_metadata, self, &op)) TH_LOG("seed %llu", seed);
	}
	TH_LOG("%d steps, %d known differences", self->steps, self->known);
}

TEST_HARNESS_MAIN
