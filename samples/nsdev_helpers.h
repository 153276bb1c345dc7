/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the samples and the kselftests all do to set up a container: write
 * small control files, join a cgroup, become root of a new user and mount
 * namespace as an unprivileged user, pass file descriptors.
 */
#ifndef _NSDEV_HELPERS_H
#define _NSDEV_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The unprivileged user containers run as: nobody. */
#define NSDEV_UID 65534
#define NSDEV_GID 65534

/* Writes a formatted string to path in one write(). Returns 0 or -1. */
static inline int nsdev_write_file(const char *path, const char *fmt, ...)
{
	char buf[4096];
	ssize_t len, ret;
	va_list ap;
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

/* The major number /proc/devices gives driver, or -1. */
static inline int nsdev_proc_major(const char *driver)
{
	char line[128], name[64];
	int major = -1, m;
	FILE *f = fopen("/proc/devices", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%d %63s", &m, name) == 2 && !strcmp(name, driver))
			major = m;
	fclose(f);
	return major;
}

/* Moves the caller into the cgroup at path. */
static inline int nsdev_join_cgroup(const char *cgroup)
{
	char procs[4096];

	snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
	return nsdev_write_file(procs, "0");
}

/*
 * Delegates the cgroup at path to uid/gid the way cgroup v2 delegation is
 * done: the directory and its cgroup.procs, cgroup.threads and
 * cgroup.subtree_control files. Returns 0 or -1 with errno set.
 */
static inline int nsdev_delegate_cgroup(const char *cgroup, uid_t uid, gid_t gid)
{
	static const char * const files[] = {
		"", "/cgroup.procs", "/cgroup.threads", "/cgroup.subtree_control", NULL,
	};
	char path[4096];

	for (const char * const *f = files; *f; f++) {
		snprintf(path, sizeof(path), "%s%s", cgroup, *f);
		if (chown(path, uid, gid))
			return -1;
	}
	return 0;
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

/* Sends n (at most 4) file descriptors over a unix socket. */
static inline int nsdev_send_fds(int sock, const int *fds, int n)
{
	char data = 'f', buf[CMSG_SPACE(4 * sizeof(int))] = { 0 };
	struct iovec iov = { &data, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = buf, .msg_controllen = CMSG_SPACE(n * sizeof(int)),
	};
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(cmsg), fds, n * sizeof(int));
	return sendmsg(sock, &msg, 0) == 1 ? 0 : -1;
}

/*
 * Receives exactly n (1 to 4) file descriptors from a unix socket. Returns
 * 0, or -1 (errno EPROTO where the message did not carry exactly n: any
 * that did arrive are closed) and fds untouched.
 */
static inline int nsdev_recv_fds(int sock, int *fds, int n)
{
	char data;
	union {
		/* Room for one more than asked: more than n shows as such. */
		char buf[CMSG_SPACE(5 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { &data, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = u.buf, .msg_controllen = sizeof(u.buf),
	};
	struct cmsghdr *cmsg;
	int got[5], i, m = 0;

	if (n < 1 || n > 4) {
		errno = EINVAL;
		return -1;
	}
	if (recvmsg(sock, &msg, 0) != 1)
		return -1;
	cmsg = CMSG_FIRSTHDR(&msg);
	if (cmsg && cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
	    cmsg->cmsg_len >= CMSG_LEN(0)) {
		m = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		if (m > 5)
			m = 5;
		memcpy(got, CMSG_DATA(cmsg), m * sizeof(int));
	}
	if (m != n || cmsg->cmsg_len != CMSG_LEN(n * sizeof(int)) ||
	    (msg.msg_flags & MSG_CTRUNC) || CMSG_NXTHDR(&msg, cmsg)) {
		for (i = 0; i < m; i++)
			close(got[i]);
		errno = EPROTO;
		return -1;
	}
	memcpy(fds, got, n * sizeof(int));
	return 0;
}

#endif /* _NSDEV_HELPERS_H */
