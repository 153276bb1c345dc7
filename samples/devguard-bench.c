// SPDX-License-Identifier: GPL-2.0
/*
 * devguard-bench: the cost of the guard check, as ratios within one run.
 *
 * Times a mknod + open + close + unlink loop of /dev/null's device number
 * on a tmpfs (1) as init root, where the stock capability check passes and
 * the hook is never asked, (2) as root of a user namespace in a guarded
 * cgroup, and (3) the same after 1000 other cgroups got device programs.
 * Each is the best of three runs. Run as root in the test guest with
 * devguard.ko loaded.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devguard_prog.h"
#include "nsdev_helpers.h"

#define LOOPS 20000
#define OTHERS 1000

/* Nanoseconds per mknod + open + close + unlink in dir. */
static double loop(const char *dir)
{
	struct timespec a, b;
	char path[256];

	snprintf(path, sizeof(path), "%s/n", dir);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < LOOPS; i++) {
		int fd;

		if (mknod(path, S_IFCHR | 0600, makedev(1, 3)))
			return -1;
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -1;
		close(fd);
		unlink(path);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	return ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / LOOPS;
}

/* The best of three runs: TCG timing is noisy. */
static double best(double (*run)(const char *, const char *), const char *cg,
		   const char *dir)
{
	double b = -1;

	for (int i = 0; i < 3; i++) {
		double ns = run(cg, dir);

		if (ns < 0)
			return -1;
		if (b < 0 || ns < b)
			b = ns;
	}
	return b;
}

/* Runs the loop as init root, on a tmpfs like the container's. */
static double host_root(const char *cg, const char *dir)
{
	double ns;

	if (mount("tmpfs", dir, "tmpfs", 0, NULL))
		return -1;
	ns = loop(dir);
	umount(dir);
	return ns;
}

/* Runs the loop in a child: in cgroup, as root of a new user namespace. */
static double contained(const char *cgroup, const char *dir)
{
	int pipefd[2];
	double ns = -1;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		if (nsdev_join_cgroup(cgroup) || nsdev_become_userns_root() ||
		    mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) ||
		    mount("tmpfs", dir, "tmpfs", 0, NULL))
			_exit(1);
		ns = loop(dir);
		_exit(write(pipefd[1], &ns, sizeof(ns)) == sizeof(ns) ? 0 : 1);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &ns, sizeof(ns)) != sizeof(ns))
		ns = -1;
	close(pipefd[0]);
	waitpid(pid, NULL, 0);
	return ns;
}

int main(void)
{
	struct devguard_rule rule = { 'c', 1, 3 };
	char dir[] = "/tmp/devguard-bench.XXXXXX", path[256];
	const char *cg = "/sys/fs/cgroup/devguard-bench";
	double host, one, many;
	int cgfd, guard, plain;

	if (!mkdtemp(dir) || chmod(dir, 0755) || mkdir(cg, 0755))
		return 1;
	cgfd = open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	guard = devguard_load(&rule, 1, BPF_F_CGROUP_DEVICE_GUARD, -1);
	plain = devguard_load(&rule, 1, 0, -1);
	if (cgfd < 0 || guard < 0 || plain < 0 ||
	    devguard_attach(guard, cgfd, BPF_F_ALLOW_MULTI)) {
		perror("setting up");
		return 1;
	}

	host = best(host_root, cg, dir);
	one = best(contained, cg, dir);
	for (int i = 0; i < OTHERS; i++) {
		int fd;

		snprintf(path, sizeof(path), "/sys/fs/cgroup/devguard-bench-%d", i);
		if (mkdir(path, 0755))
			return 1;
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || devguard_attach(plain, fd, BPF_F_ALLOW_MULTI))
			return 1;
		close(fd);
	}
	many = best(contained, cg, dir);

	printf("\nguard check, mknod+open+close+unlink of 1:3, %d loops (ns/loop)\n", LOOPS);
	printf("host root (stock path)                         %8.0f\n", host);
	printf("guarded container                              %8.0f  ratio %.2f\n",
	       one, one / host);
	printf("guarded container, %d cgroups with programs  %8.0f  ratio %.2f (vs 1: %.2f)\n",
	       OTHERS, many, many / host, many / one);

	for (int i = 0; i < OTHERS; i++) {
		int fd;

		snprintf(path, sizeof(path), "/sys/fs/cgroup/devguard-bench-%d", i);
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		devguard_detach(plain, fd);
		close(fd);
		rmdir(path);
	}
	devguard_detach(guard, cgfd);
	rmdir(cg);
	rmdir(dir);
	return host > 0 && one > 0 && many > 0 ? 0 : 1;
}
