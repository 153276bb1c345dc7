/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the nsdev kselftests: run a function in a child that is
 * an unprivileged user made root of a new user and mount namespace, and
 * small file helpers.
 *
 * Children cannot use ASSERT_*: they report with CHILD_CHECK(), which prints
 * the failing line and errno and exits 1; the test asserts the child exited 0.
 */
#ifndef _NSDEV_UTIL_H
#define _NSDEV_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The unprivileged user the tests become: nobody. */
#define NSDEV_UID 65534
#define NSDEV_GID 65534

#define CHILD_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "# %s:%d: child check failed: %s (errno %d: %s)\n", \
			__FILE__, __LINE__, #cond, errno, strerror(errno)); \
		_exit(1);						\
	}								\
} while (0)

static inline int nsdev_write_file(const char *path, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	ssize_t len, ret;
	int fd;

	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = write(fd, buf, len);
	close(fd);
	return ret == len ? 0 : -1;
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

/*
 * Drops to NSDEV_UID/NSDEV_GID and makes the caller root of a new user
 * namespace (mapping 0 to that user) with its own mount namespace.
 * Returns 0 or -1 with errno set.
 */
static inline int nsdev_become_userns_root(void)
{
	if (setgroups(0, NULL) || setresgid(NSDEV_GID, NSDEV_GID, NSDEV_GID) ||
	    setresuid(NSDEV_UID, NSDEV_UID, NSDEV_UID))
		return -1;
	/* Changing credentials made us non-dumpable: /proc/self is root's. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0))
		return -1;
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS))
		return -1;
	if (nsdev_write_file("/proc/self/setgroups", "deny") ||
	    nsdev_write_file("/proc/self/uid_map", "0 %d 1", NSDEV_UID) ||
	    nsdev_write_file("/proc/self/gid_map", "0 %d 1", NSDEV_GID))
		return -1;
	return 0;
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

#endif /* _NSDEV_UTIL_H */
