// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs lifecycle stress: seeded random sequences of everything that
 * creates, configures, uses and tears down loopfs instances and devices,
 * from several processes at once, as init root and as root of a user
 * namespace owned by an unprivileged user:
 *
 *   mounts, lazy and normal umounts, remounts; LOOP_CTL_ADD/REMOVE/GET_FREE;
 *   LOOP_CONFIGURE/SET_FD/CLR_FD/CHANGE_FD/SET_STATUS64/GET_STATUS64/
 *   SET_CAPACITY/SET_BLOCK_SIZE/SET_DIRECT_IO; partition rescans; opens and
 *   closes, held across umounts, of devices and partitions; reads, writes,
 *   discards and flushes; rmmod attempts (and reloading the module when one
 *   succeeds).
 *
 * Where the kernel has failslab (CONFIG_FAILSLAB, debugfs), one operation in
 * eight, other than I/O, closes and rmmod, runs with one of its allocations
 * failed (/proc/thread-self/fail-nth), the first to the 512th, at random.
 *
 * Errors of single operations are expected (the sequences are random); what
 * must hold is that nothing crashes or hangs, the kernel log stays clean
 * (checked by the runner), and that afterwards no device, instance or
 * backing-file reference is left: every backing filesystem unmounts without
 * MNT_DETACH, no loopfs disk remains in /sys/block and the module unloads.
 *
 *   loopfs_stress_test [-s SEED] [-n OPERATIONS] [-w WORKERS PER GROUP]
 *
 * The defaults come from NSDEV_STRESS_SEED and NSDEV_STRESS_OPS, else a
 * seed from the clock and 3000 operations. The seed is printed first: the
 * same seed gives each worker the same sequence of operations.
 */

#define _GNU_SOURCE
#include <dirent.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>

#include "../nsdev_util.h"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define SLOTS		2	/* instance mount points per group */
#define FILES		4	/* backing files per group */
#define DEVS		4	/* device numbers used */
#define HELD		8	/* descriptors a worker holds at most */
#define FILE_SIZE	(8 << 20)
#define LOOPFS_MAGIC	0x6c706673
#define STRESS_RAMDISK	"/dev/ram0"

struct tgroup {
	const char *name;
	bool userns;
	char base[64];		/* tmpfs: files/ and the slot mount points */
};

struct held {
	int fd;			/* -1: free */
	bool ctl;
};

struct worker {
	struct tgroup *g;
	unsigned long long rng;
	long ops;
	struct held held[HELD];
	long done[16], failed[16], faulted;
	int last_errno[16];
};

/* Whether operations run with allocation failures (failslab is set up). */
static bool faults;

static const char *const op_names[] = {
	"mount", "umount", "remount", "open-ctl", "ctl-ioctl", "open-dev",
	"dev-ioctl", "io", "close", "rmmod", "rescan",
};
#define NR_OPS ARRAY_SIZE(op_names)

/* xorshift64*: reproducible from the seed. */
static unsigned int rnd(struct worker *w, unsigned int n)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (unsigned int)((w->rng * 2685821657736338717ULL) >> 32) % n;
}

static void slot_path(struct tgroup *g, int slot, char *buf, size_t size)
{
	snprintf(buf, size, "%s/slot%d", g->base, slot);
}

static void file_path(struct tgroup *g, int i, char *buf, size_t size)
{
	snprintf(buf, size, "%s/files/img%d", g->base, i);
}

static int hold(struct worker *w, int fd, bool ctl)
{
	int i;

	if (fd < 0)
		return -1;
	for (i = 0; i < HELD; i++) {
		if (w->held[i].fd < 0) {
			w->held[i] = (struct held){ fd, ctl };
			return 0;
		}
	}
	close(fd);
	return 0;
}

/* A held descriptor of the kind asked for, or -1. */
static int pick(struct worker *w, bool ctl)
{
	int i, start = rnd(w, HELD);

	for (i = 0; i < HELD; i++) {
		struct held *h = &w->held[(start + i) % HELD];

		if (h->fd >= 0 && h->ctl == ctl)
			return h->fd;
	}
	errno = EBADF;
	return -1;
}

static int dev_ioctl(struct worker *w, int fd)
{
	static const unsigned long bsizes[] = { 0, 512, 1024, 4096, 513, 8192 };
	struct loop_config config = { 0 };
	struct loop_info64 info = { 0 };
	char path[PATH_MAX];
	int file, ret, e;

	switch (rnd(w, 9)) {
	case 0:		/* LOOP_CONFIGURE */
	case 1:		/* LOOP_SET_FD */
		file_path(w->g, rnd(w, FILES), path, sizeof(path));
		file = open(path, (rnd(w, 3) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (file < 0)
			return -1;
		config.fd = file;
		config.block_size = bsizes[rnd(w, 5)];
		config.info.lo_flags = (rnd(w, 2) ? LO_FLAGS_PARTSCAN : 0) |
			(rnd(w, 4) ? 0 : LO_FLAGS_READ_ONLY) |
			(rnd(w, 3) ? 0 : LO_FLAGS_DIRECT_IO) |
			(rnd(w, 3) ? 0 : LO_FLAGS_AUTOCLEAR);
		config.info.lo_offset = rnd(w, 4) ? 0 : 4096 * rnd(w, 64);
		ret = rnd(w, 2) ? ioctl(fd, LOOP_CONFIGURE, &config) :
			ioctl(fd, LOOP_SET_FD, file);
		e = errno;
		close(file);
		errno = e;
		return ret;
	case 2:
		return ioctl(fd, LOOP_CLR_FD);
	case 3:
		file_path(w->g, rnd(w, FILES), path, sizeof(path));
		file = open(path, O_RDONLY | O_CLOEXEC);
		if (file < 0)
			return -1;
		ret = ioctl(fd, LOOP_CHANGE_FD, file);
		e = errno;
		close(file);
		errno = e;
		return ret;
	case 4:
		info.lo_offset = rnd(w, 2) ? 0 : 512 * rnd(w, 4096);
		info.lo_sizelimit = rnd(w, 2) ? 0 : 4096 * rnd(w, 2048);
		info.lo_flags = (rnd(w, 2) ? LO_FLAGS_PARTSCAN : 0) |
			(rnd(w, 2) ? LO_FLAGS_AUTOCLEAR : 0);
		return ioctl(fd, LOOP_SET_STATUS64, &info);
	case 5:
		return ioctl(fd, LOOP_GET_STATUS64, &info);
	case 6:
		return ioctl(fd, LOOP_SET_CAPACITY, 0);
	case 7:
		return ioctl(fd, LOOP_SET_BLOCK_SIZE, bsizes[rnd(w, 6)]);
	default:
		return ioctl(fd, LOOP_SET_DIRECT_IO, (unsigned long)rnd(w, 2));
	}
}

static int dev_io(struct worker *w, int fd)
{
	static char *buf;
	off_t pos = (off_t)4096 * rnd(w, FILE_SIZE / 4096);
	uint64_t range[2] = { (uint64_t)pos, 65536 };
	size_t len = 512 << rnd(w, 8);

	/* Aligned for O_DIRECT descriptors. */
	if (!buf) {
		buf = aligned_alloc(4096, 65536);
		if (!buf)
			return -1;
	}

	switch (rnd(w, 5)) {
	case 0:
		return pread(fd, buf, len, pos) < 0 ? -1 : 0;
	case 1:
		memset(buf, rnd(w, 256), len);
		return pwrite(fd, buf, len, pos) < 0 ? -1 : 0;
	case 2:
		return ioctl(fd, BLKDISCARD, range);
	case 3:
		return ioctl(fd, BLKZEROOUT, range);
	default:
		return fsync(fd);
	}
}

/*
 * rmmod; if it worked, load the module again at once. A module that was
 * unloaded and cannot be loaded again fails the test (every later test
 * would fail for it, not this one).
 */
static int rmmod_reload(void)
{
	const char *ko = getenv("LOOPFS_KO");
	int fd, ret;

	if (syscall(SYS_delete_module, "loopfs", O_NONBLOCK))
		return -1;
	fd = ko ? open(ko, O_RDONLY | O_CLOEXEC) : -1;
	ret = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
	if (ret) {
		fprintf(stderr, "# loopfs unloaded and not loaded again: %s\n",
			strerror(errno));
		exit(3);
	}
	close(fd);
	return 0;
}

static int one_op(struct worker *w, unsigned int op)
{
	char path[PATH_MAX + 16], dir[PATH_MAX];
	int slot = rnd(w, SLOTS), fd, i;
	struct statfs st;

	slot_path(w->g, slot, dir, sizeof(dir));
	switch (op) {
	case 0:
		snprintf(path, sizeof(path), "max=%u", 1 + rnd(w, 8));
		/* Mostly one instance per slot: stacked ones hide the devices. */
		if (!statfs(dir, &st) && st.f_type == LOOPFS_MAGIC && rnd(w, 8))
			return mount(NULL, dir, NULL, MS_REMOUNT, path);
		return mount("loop", dir, "loop", 0, rnd(w, 2) ? path : NULL);
	case 1:
		return umount2(dir, rnd(w, 2) ? MNT_DETACH : 0);
	case 2:
		snprintf(path, sizeof(path), "max=%u", 1 + rnd(w, 8));
		return mount(NULL, dir, NULL, MS_REMOUNT, path);
	case 3:
		snprintf(path, sizeof(path), "%s/loop-control", dir);
		return hold(w, open(path, O_RDWR | O_CLOEXEC), true);
	case 4:
		fd = pick(w, true);
		if (fd < 0) {
			snprintf(path, sizeof(path), "%s/loop-control", dir);
			return hold(w, open(path, O_RDWR | O_CLOEXEC), true);
		}
		switch (rnd(w, 4)) {
		case 0:
		case 1:
			return ioctl(fd, LOOP_CTL_ADD, (int)rnd(w, DEVS + 1) - 1);
		case 2:
			return ioctl(fd, LOOP_CTL_REMOVE, (int)rnd(w, DEVS));
		default:
			return ioctl(fd, LOOP_CTL_GET_FREE);
		}
	case 5:
open_dev:
		i = rnd(w, 4);
		if (i)
			snprintf(path, sizeof(path), "%s/loop%u", dir, rnd(w, DEVS));
		else
			snprintf(path, sizeof(path), "%s/loop%up%u", dir, rnd(w, DEVS),
				 1 + rnd(w, 2));
		return hold(w, open(path, (rnd(w, 3) ? O_RDWR : O_RDONLY) |
				   (rnd(w, 4) ? 0 : O_DIRECT) | O_CLOEXEC), false);
	case 6:
		fd = pick(w, false);
		if (fd < 0)
			goto open_dev;
		return dev_ioctl(w, fd);
	case 7:
		fd = pick(w, false);
		if (fd < 0)
			goto open_dev;
		return dev_io(w, fd);
	case 8:
		i = rnd(w, HELD);
		if (w->held[i].fd < 0)
			return 0;
		close(w->held[i].fd);
		w->held[i].fd = -1;
		return 0;
	case 9:
		return w->g->userns ? syscall(SYS_delete_module, "loopfs", O_NONBLOCK) :
			rmmod_reload();
	default:
		fd = pick(w, false);
		return fd < 0 ? -1 : ioctl(fd, BLKRRPART);
	}
}

/* Weights of the operations, in op_names order. */
static const unsigned int weights[] = { 4, 1, 2, 4, 12, 8, 16, 14, 6, 1, 2 };

static unsigned int choose(struct worker *w)
{
	unsigned int total = 0, i, r;

	for (i = 0; i < NR_OPS; i++)
		total += weights[i];
	r = rnd(w, total);
	for (i = 0; r >= weights[i]; i++)
		r -= weights[i];
	return i;
}

/* Operations that may run with an allocation failed: not io, close, rmmod. */
#define FAULT_OPS (~(1u << 7 | 1u << 8 | 1u << 9))

/* nsdev_fail_nth() on fd, if open, saying so if it fails. */
static void fail_nth(int fd, unsigned int n)
{
	if (fd >= 0 && nsdev_fail_nth(fd, n))
		fprintf(stderr, "# fail-nth: %s\n", strerror(errno));
}

static void run_worker(struct worker *w)
{
	int i, fail = -1;
	long n;

	if (faults)
		fail = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	for (i = 0; i < HELD; i++)
		w->held[i].fd = -1;
	for (n = 0; n < w->ops; n++) {
		unsigned int op = choose(w);
		/* Drawn on every kernel: a seed gives the same sequence. */
		unsigned int nth = 1 + rnd(w, 1u << rnd(w, 10));
		bool fault = !rnd(w, 8);
		int ret, err;

		fault = fault && fail >= 0 && (FAULT_OPS & (1u << op));
		if (fault) {
			fail_nth(fail, nth);
			w->faulted++;
		}
		ret = one_op(w, op);
		err = errno;
		if (fault)
			fail_nth(fail, 0);
		if (ret) {
			w->failed[op]++;
			w->last_errno[op] = err;
		}
		w->done[op]++;
	}
	if (fail >= 0)
		close(fail);
	for (i = 0; i < HELD; i++)
		if (w->held[i].fd >= 0)
			close(w->held[i].fd);
}

/* One line of failed/done counts per operation. */
static void report(struct worker *w, int index)
{
	char line[1024];
	size_t len = 0;
	unsigned int op;

	for (op = 0; op < NR_OPS; op++)
		len += snprintf(line + len, sizeof(line) - len, " %s %ld/%ld(%d)",
				op_names[op], w->failed[op], w->done[op],
				w->last_errno[op]);
	printf("# %s/%d failed/done(last errno):%s; %ld with an allocation failed\n",
	       w->g->name, index, line, w->faulted);
	fflush(stdout);
}

static int write_image(const char *path)
{
	/* A DOS label: partitions at 1 MiB (2 MiB) and 4 MiB (4 MiB). */
	static const unsigned int parts[2][2] = { { 2048, 4096 }, { 8192, 8192 } };
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, FILE_SIZE) || nsdev_write_dos_label(fd, parts, 2)) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/* Unmounts every stacked instance of the group's slots. */
static void umount_slots(struct tgroup *g)
{
	char dir[PATH_MAX];
	int slot;

	for (slot = 0; slot < SLOTS; slot++) {
		slot_path(g, slot, dir, sizeof(dir));
		while (!umount2(dir, MNT_DETACH))
			;
	}
}

/*
 * A group: its leader (init root, or root of a new user namespace) makes the
 * files and mount points, runs the workers and checks that nothing of loopfs
 * holds a backing file afterwards. Returns 0 if all went well.
 */
static int run_group(struct tgroup *g, int workers, long ops, unsigned long long seed,
		     int index)
{
	char path[PATH_MAX], files[PATH_MAX];
	struct worker *w;
	int i, status, bad = 0;
	pid_t pids[16];

	if (g->userns ? nsdev_become_userns_root() : unshare(CLONE_NEWNS)) {
		fprintf(stderr, "# %s: namespaces: %s\n", g->name, strerror(errno));
		return 1;
	}
	if (mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) ||
	    mount("tmpfs", g->base, "tmpfs", 0, "size=128m")) {
		fprintf(stderr, "# %s: tmpfs: %s\n", g->name, strerror(errno));
		return 1;
	}
	snprintf(files, sizeof(files), "%s/files", g->base);
	if (mkdir(files, 0755))
		return 1;
	/*
	 * Init root's files on ext4 where there is a RAM disk: a filesystem
	 * with IOCB_NOWAIT, so that requests are also served from queue_rq()
	 * and by asynchronous direct I/O. tmpfs otherwise, and for the user
	 * namespace, which cannot mount ext4.
	 */
	if (!g->userns && !access(STRESS_RAMDISK, F_OK)) {
		if (nsdev_sh("mkfs.ext4 -q -F %s", STRESS_RAMDISK) ||
		    mount(STRESS_RAMDISK, files, "ext4", 0, NULL))
			return 1;
		fprintf(stderr, "# %s: backing files on ext4 on %s\n", g->name,
			STRESS_RAMDISK);
	} else if (mount("tmpfs", files, "tmpfs", 0, "size=64m")) {
		return 1;
	}
	for (i = 0; i < FILES; i++) {
		file_path(g, i, path, sizeof(path));
		if (write_image(path))
			return 1;
	}
	for (i = 0; i < SLOTS; i++) {
		slot_path(g, i, path, sizeof(path));
		if (mkdir(path, 0755))
			return 1;
	}

	w = calloc(workers, sizeof(*w));
	if (!w)
		return 1;
	for (i = 0; i < workers; i++) {
		w[i].g = g;
		w[i].ops = ops;
		w[i].rng = seed * 0x9e3779b97f4a7c15ULL + index * 64 + i + 1;
		pids[i] = fork();
		if (pids[i] == 0) {
			run_worker(&w[i]);
			report(&w[i], i);
			_exit(0);
		}
	}
	for (i = 0; i < workers; i++) {
		status = nsdev_wait(pids[i]);
		if (status) {
			fprintf(stderr, "# %s worker %d: status %d\n", g->name, i, status);
			bad = 1;
		}
	}
	umount_slots(g);
	/*
	 * Devices of lazily unmounted instances go once idle: give the removal
	 * queue a moment, then the backing files must be free.
	 */
	for (i = 0; i < 50; i++) {
		if (!umount2(files, 0))
			break;
		usleep(100000);
	}
	if (i == 50) {
		fprintf(stderr, "# %s: backing files still referenced: %s\n", g->name,
			strerror(errno));
		bad = 1;
	}
	return bad;
}

static bool loopfs_disks_left(void)
{
	struct dirent *d;
	bool left = false;
	DIR *dir;
	int i;

	for (i = 0; i < 50; i++) {
		dir = opendir("/sys/block");
		if (!dir)
			return false;
		left = false;
		while ((d = readdir(dir)))
			if (!strncmp(d->d_name, "loopfs", 6)) {
				if (i == 49)
					fprintf(stderr, "# left: %s\n", d->d_name);
				left = true;
			}
		closedir(dir);
		if (!left)
			return false;
		usleep(100000);
	}
	return true;
}

int main(int argc, char **argv)
{
	struct tgroup groups[2] = {
		{ .name = "init-root", .userns = false },
		{ .name = "userns-root", .userns = true },
	};
	unsigned long long seed = nsdev_seed("NSDEV_STRESS_SEED");
	long ops = nsdev_env_count("NSDEV_STRESS_OPS", 3000);
	int workers = 2, opt, i, bad = 0;
	struct nsdev_failslab failslab;
	struct timespec t0, t1;
	pid_t pids[2];

	while ((opt = getopt(argc, argv, "s:n:w:")) != -1) {
		switch (opt) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			ops = strtol(optarg, NULL, 0);
			break;
		case 'w':
			workers = atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: %s [-s seed] [-n operations] [-w workers]\n",
				argv[0]);
			return 2;
		}
	}
	if (workers < 1 || workers > 16 || ops < 1)
		return 2;

	faults = !nsdev_failslab_on(&failslab);

	printf("TAP version 13\n1..1\n");
	printf("# seed %llu, %ld operations, %d workers in each of 2 groups%s\n",
	       seed, ops, workers, faults ? ", allocation failures" : "");
	fflush(stdout);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < 2; i++) {
		snprintf(groups[i].base, sizeof(groups[i].base), "/tmp/loopfs_stress.XXXXXX");
		if (!mkdtemp(groups[i].base) || chmod(groups[i].base, 0777))
			return 1;
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(run_group(&groups[i], workers, ops / (2 * workers), seed, i));
	}
	for (i = 0; i < 2; i++) {
		int status = nsdev_wait(pids[i]);

		if (status) {
			printf("# group %s failed (%d)\n", groups[i].name, status);
			bad = 1;
		}
		rmdir(groups[i].base);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (faults)
		nsdev_failslab_restore(&failslab);
	if (loopfs_disks_left()) {
		printf("# loopfs disks left behind\n");
		bad = 1;
	}
	printf("# %.1f s\n", (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	printf("%s 1 stress seed=%llu ops=%ld\n", bad ? "not ok" : "ok", seed, ops);
	return bad;
}
