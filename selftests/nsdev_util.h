/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the nsdev kselftests: run a function in a child that is
 * an unprivileged user made root of a new user and mount namespace, small
 * file and shell helpers. The container setup itself is in
 * samples/nsdev_helpers.h, shared with the samples.
 *
 * Children cannot use ASSERT_*: they report with CHILD_CHECK(), which prints
 * the failing line and errno and exits 1; the test asserts the child exited 0.
 */
#ifndef _NSDEV_UTIL_H
#define _NSDEV_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../samples/nsdev_helpers.h"

#define CHILD_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "# %s:%d: child check failed: %s (errno %d: %s)\n", \
			__FILE__, __LINE__, #cond, errno, strerror(errno)); \
		_exit(1);						\
	}								\
} while (0)

/* Raises or lowers cap in the effective set (it stays permitted). */
static inline int nsdev_cap_effective(int cap, bool on)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -1;
	if (on)
		data[CAP_TO_INDEX(cap)].effective |= CAP_TO_MASK(cap);
	else
		data[CAP_TO_INDEX(cap)].effective &= ~CAP_TO_MASK(cap);
	return syscall(SYS_capset, &hdr, data);
}

/* Reads a whole small file into buf (NUL-terminated). Returns length or -1. */
static inline ssize_t nsdev_read_file(const char *path, char *buf, size_t size)
{
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, size - 1);
	close(fd);
	if (len >= 0)
		buf[len] = '\0';
	return len;
}

/* Waits for pid; returns its exit status, or 128 + signal. */
static inline int nsdev_wait(pid_t pid)
{
	int status;

	if (waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/*
 * Root of a new user and mount namespace of the caller's own: its ids map
 * to themselves (0 to 0 for host root, whose namespace it then is).
 * Returns 0 or -1.
 */
static inline int nsdev_become_userns_root_of_self(void)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) ||
	    nsdev_write_file("/proc/self/setgroups", "deny") ||
	    nsdev_write_file("/proc/self/uid_map", "0 0 1") ||
	    nsdev_write_file("/proc/self/gid_map", "0 0 1"))
		return -1;
	return 0;
}

/*
 * Runs fn(arg) in a child. With userns set, the child first becomes root of
 * a new user and mount namespace as an unprivileged user. Returns what
 * nsdev_wait() returns: 0 when fn returned 0.
 */
static inline int nsdev_run_child(int (*fn)(void *), void *arg, bool userns)
{
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (userns && nsdev_become_userns_root()) {
			fprintf(stderr, "# cannot enter a user namespace: %s\n",
				strerror(errno));
			_exit(99);
		}
		_exit(fn(arg));
	}
	return nsdev_wait(pid);
}

/* The seed a random test runs with: from the environment, else the clock. */
static inline unsigned long long nsdev_seed(const char *env)
{
	const char *value = getenv(env);
	struct timespec ts;

	if (value && *value)
		return strtoull(value, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000000007ULL + ts.tv_nsec;
}

/* A count from the environment, else dflt. */
static inline long nsdev_env_count(const char *env, long dflt)
{
	const char *value = getenv(env);

	return value && *value ? strtol(value, NULL, 0) : dflt;
}

#define NSDEV_FAILSLAB "/sys/kernel/debug/failslab/"

/* failslab's settings, as nsdev_failslab_on() found them. */
struct nsdev_failslab {
	char gfp_wait[8], verbose[8];
};

/*
 * Has failslab fail allocations that may sleep too, with no report of each
 * failure, where the kernel has it (CONFIG_FAILSLAB, debugfs) and
 * /proc/thread-self/fail-nth: the tests' failures come from fail-nth.
 * Returns 0, keeping the old settings in *old, or -1.
 */
static inline int nsdev_failslab_on(struct nsdev_failslab *old)
{
	if (access("/proc/thread-self/fail-nth", W_OK) ||
	    nsdev_read_file(NSDEV_FAILSLAB "ignore-gfp-wait", old->gfp_wait,
			    sizeof(old->gfp_wait)) <= 0 ||
	    nsdev_read_file(NSDEV_FAILSLAB "verbose", old->verbose, sizeof(old->verbose)) <= 0)
		return -1;
	if (nsdev_write_file(NSDEV_FAILSLAB "ignore-gfp-wait", "N") ||
	    nsdev_write_file(NSDEV_FAILSLAB "verbose", "0")) {
		nsdev_write_file(NSDEV_FAILSLAB "ignore-gfp-wait", "%s", old->gfp_wait);
		return -1;
	}
	return 0;
}

static inline void nsdev_failslab_restore(const struct nsdev_failslab *old)
{
	if (nsdev_write_file(NSDEV_FAILSLAB "ignore-gfp-wait", "%s", old->gfp_wait) ||
	    nsdev_write_file(NSDEV_FAILSLAB "verbose", "%s", old->verbose))
		fprintf(stderr, "# cannot restore failslab: %s\n", strerror(errno));
}

/*
 * Fails the n-th allocation the calling thread makes from now on (0: none),
 * through its /proc/thread-self/fail-nth open at fd. Returns 0 or -1.
 */
static inline int nsdev_fail_nth(int fd, unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	return pwrite(fd, buf, len, 0) == len ? 0 : -1;
}

/*
 * Writes a DOS partition table to fd: n primary Linux partitions, each
 * { first sector, sectors }. Returns 0 or -1.
 */
static inline int nsdev_write_dos_label(int fd, const unsigned int (*parts)[2], int n)
{
	unsigned char mbr[512] = { 0 };
	int i;

	for (i = 0; i < n && i < 4; i++) {
		mbr[446 + 16 * i + 4] = 0x83;
		memcpy(mbr + 446 + 16 * i + 8, &parts[i][0], 4);
		memcpy(mbr + 446 + 16 * i + 12, &parts[i][1], 4);
	}
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	return pwrite(fd, mbr, sizeof(mbr), 0) == sizeof(mbr) ? 0 : -1;
}

/* Runs a formatted shell command; returns its exit status. */
static inline int nsdev_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

#endif /* _NSDEV_UTIL_H */
