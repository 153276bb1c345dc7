// SPDX-License-Identifier: GPL-2.0
/*
 * devguard-run: start a command in a rootless container whose devices the
 * host guards.
 *
 *   devguard-run [-c CGROUP] [-a TYPE:MAJOR:MINOR]... -- COMMAND [ARG]...
 *
 * Creates /sys/fs/cgroup/CGROUP, attaches a device guard allowing the
 * default devices (null, zero, full, random, urandom, tty, ptmx, the pts,
 * loopfs's loop-control and disks) and the ones given with -a (TYPE c or b, MINOR a
 * number or '*'), and runs COMMAND as root of a new user and mount namespace
 * owned by user nobody, in that cgroup. Inside, mknod() of the allowed
 * devices works; of any other it fails with EPERM. The guard is detached
 * and the cgroup removed when COMMAND exits. Run as root.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include "devguard_prog.h"
#include "nsdev_helpers.h"

static int parse_rule(const char *s, struct devguard_rule *r)
{
	char type, minor[16];

	if (sscanf(s, "%c:%u:%15s", &type, &r->major, minor) != 3 ||
	    (type != 'c' && type != 'b'))
		return -1;
	r->type = type;
	r->minor = strcmp(minor, "*") ? atoi(minor) : -1;
	return 0;
}

/* The child: joins the cgroup, becomes nobody, then root of new namespaces. */
static void child(const char *cgroup, char **argv)
{
	if (nsdev_join_cgroup(cgroup)) {
		perror("joining the cgroup");
		_exit(126);
	}
	if (nsdev_become_userns_root()) {
		perror("entering the user namespace");
		_exit(126);
	}
	execvp(argv[0], argv);
	perror(argv[0]);
	_exit(127);
}

int main(int argc, char **argv)
{
	struct devguard_rule rules[DEVGUARD_MAX_RULES] = {
		{ 'c', 1, 3 }, { 'c', 1, 5 }, { 'c', 1, 7 }, { 'c', 1, 8 },
		{ 'c', 1, 9 }, { 'c', 5, 0 }, { 'c', 5, 2 }, { 'c', 136, -1 },
	};
	const char *name = "devguard-run";
	int n = 8, opt, prog, cg, status;
	char cgroup[256];
	pid_t pid;

	n = devguard_add_loopfs(rules, n);
	while ((opt = getopt(argc, argv, "+c:a:")) != -1) {
		if (opt == 'c') {
			name = optarg;
		} else if (opt == 'a' && n < DEVGUARD_MAX_RULES &&
			   !parse_rule(optarg, &rules[n])) {
			n++;
		} else {
			fprintf(stderr, "usage: %s [-c CGROUP] [-a c|b:MAJOR:MINOR|*]... %s\n",
				argv[0], "-- COMMAND...");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no command\n", argv[0]);
		return 2;
	}

	snprintf(cgroup, sizeof(cgroup), "/sys/fs/cgroup/%s", name);
	if (mkdir(cgroup, 0755) && errno != EEXIST) {
		perror(cgroup);
		return 1;
	}
	cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	prog = devguard_load(rules, n, BPF_F_CGROUP_DEVICE_GUARD, -1);
	if (cg < 0 || prog < 0 || devguard_attach(prog, cg, BPF_F_ALLOW_MULTI)) {
		perror("attaching the device guard");
		return 1;
	}

	pid = fork();
	if (pid == 0)
		child(cgroup, argv + optind);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		status = 1 << 8;

	devguard_detach(prog, cg);
	close(prog);
	close(cg);
	rmdir(cgroup);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
