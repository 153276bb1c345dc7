// SPDX-License-Identifier: GPL-2.0
/*
 * nsdev-container: an unprivileged container that uses everything nsdev
 * gives it, each step printed with what happened.
 *
 * The host side (this program, run as root with loopfs.ko and devguard.ko
 * loaded) creates a cgroup with a device guard, delegates BPF prog_load of
 * cgroup_device programs to the container through a bpffs of its user
 * namespace, and starts the container as root of a new user namespace
 * owned by user nobody. The container then
 *   1. mounts its own loopfs instance,
 *   2. attaches an image with unmodified losetup,
 *   3. makes a device node for that loop device itself, under the guard,
 *   4. loads a narrower device program of its own with a delegated token,
 *   5. registers its own binfmt_misc handler and runs a file through it.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devguard_prog.h"
#include "nsdev_helpers.h"

#define CG "/sys/fs/cgroup/nsdev-container"
#define WS "/tmp/nsdev-container"

static void step(const char *fmt, ...)
{
	va_list ap;

	printf("\n==> ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static int sh(const char *cmd)
{
	int status;

	printf("  (container) $ %s\n", cmd);
	fflush(stdout);
	status = system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int die(const char *what)
{
	fprintf(stderr, "  FAILED: %s: %m\n", what);
	return 1;
}

static int become_container(void)
{
	/* Its own cgroup namespace: its cgroup is all it sees, and delegated. */
	if (nsdev_join_cgroup(CG "/ct") || nsdev_become_userns_root() ||
	    unshare(CLONE_NEWCGROUP) || mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) ||
	    mount("tmpfs", WS, "tmpfs", 0, NULL))
		return -1;
	return 0;
}

static int run_container(int sock)
{
	struct devguard_rule narrower[DEVGUARD_MAX_RULES] = { { 'c', 1, 3 } };
	char cmd[512];
	struct stat st;
	int fs, mnt, token, prog, cg, n;

	if (become_container())
		return die("entering the container");
	printf("  (container) uid_map: 0 65534 1, cgroup " CG "/ct\n");

	step("1. the container mounts its own loopfs instance");
	if (sh("mkdir " WS "/loopfs && mount -t loop loopfs " WS "/loopfs && ls " WS "/loopfs"))
		return 1;

	step("2. unmodified losetup attaches an image, through /dev symlinks");
	if (sh("set -e; cd " WS "; mkdir dev; for n in null zero urandom; do touch dev/$n; "
	       "mount --bind /dev/$n dev/$n; done; ln -s " WS "/loopfs/loop-control dev/; "
	       "for i in 0 1 2 3; do ln -s " WS "/loopfs/loop$i dev/; done; "
	       "mount --rbind " WS "/dev /dev; truncate -s 32M disk.img") ||
	    sh("losetup -f --show " WS "/disk.img") || sh("losetup -l /dev/loop0"))
		return 1;

	step("3. under the host's guard it makes a node for that device itself");
	if (stat(WS "/loopfs/loop0", &st))
		return die("stat loop0");
	snprintf(cmd, sizeof(cmd), "mknod " WS "/mydisk b %u %u && mkfs.ext4 -q " WS
		 "/mydisk && blkid -o value -s TYPE " WS "/mydisk",
		 major(st.st_rdev), minor(st.st_rdev));
	if (sh(cmd))
		return 1;
	printf("  (container) $ mknod " WS "/mem c 1 1   # not on the guard's list\n");
	if (!mknod(WS "/mem", S_IFCHR | 0600, makedev(1, 1)))
		return die("mknod of /dev/mem passed");
	printf("  mknod: %m\n");

	step("4. with a token the host delegated, it narrows the guard for itself");
	fs = fsopen("bpf", FSOPEN_CLOEXEC);
	if (fs < 0 || nsdev_send_fds(sock, &fs, 1) || nsdev_recv_fds(sock, &fs, 1))
		return die("bpffs delegation");
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	mnt = mnt < 0 ? mnt : openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	{
		union bpf_attr attr = { .token_create.bpffs_fd = mnt };

		token = devguard_bpf(BPF_TOKEN_CREATE, &attr);
	}
	n = devguard_add_loopfs(narrower, 1);
	prog = devguard_load(narrower, n, 0, token);
	cg = open(CG "/ct", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (token < 0 || prog < 0 || cg < 0 || devguard_attach(prog, cg, BPF_F_ALLOW_MULTI))
		return die("loading its own device program");
	printf("  (container) token %d, its program allows null and loopfs only\n", token);
	if (sh("mknod " WS "/null c 1 3 && echo ok > " WS "/null && echo null: allowed"))
		return 1;
	printf("  (container) $ mknod " WS "/zero c 1 5   # guard: yes, its program: no\n");
	if (!mknod(WS "/zero", S_IFCHR | 0600, makedev(1, 5)))
		return die("mknod of zero passed");
	printf("  mknod: %m\n");
	if (devguard_load(narrower, n, BPF_F_CGROUP_DEVICE_GUARD, token) >= 0)
		return die("a token made a guard");
	printf("  (container) a guard through the token: %m\n");

	step("5. its own binfmt_misc instance and handler");
	if (sh("mkdir " WS "/binfmt && mount -t binfmt_misc binfmt_misc " WS "/binfmt && "
	       "echo ':nsdev:E::nsdev::/bin/sh:' > " WS "/binfmt/register && "
	       "printf 'echo hello from a .nsdev file' > " WS "/hello.nsdev && "
	       "chmod +x " WS "/hello.nsdev && " WS "/hello.nsdev"))
		return 1;

	step("the container leaves; its devices and handler go with it");
	return sh("losetup -d /dev/loop0");
}

int main(void)
{
	struct devguard_rule rules[DEVGUARD_MAX_RULES] = {
		{ 'c', 1, 3 }, { 'c', 1, 5 }, { 'c', 1, 9 },
	};
	int n = devguard_add_loopfs(rules, 3);
	int sk[2], cg, guard, fs, status;
	char mask[32];
	pid_t pid;

	step("host: cgroup " CG " with a device guard (null, zero, urandom, loopfs)");
	if ((mkdir(CG, 0755) && errno != EEXIST) || (mkdir(CG "/ct", 0755) && errno != EEXIST) ||
	    (mkdir(WS, 0755) && errno != EEXIST) || chmod(WS, 0755) ||
	    nsdev_delegate_cgroup(CG "/ct", NSDEV_UID, NSDEV_GID))	/* the container's own */
		return die(CG);
	cg = open(CG, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	guard = devguard_load(rules, n, BPF_F_CGROUP_DEVICE_GUARD, -1);
	if (cg < 0 || guard < 0 || devguard_attach(guard, cg, BPF_F_ALLOW_MULTI))
		return die("attaching the guard");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk))
		return die("socketpair");

	pid = fork();
	if (pid == 0)
		_exit(run_container(sk[1]));

	/* Delegate prog_load of cgroup_device programs through its bpffs. */
	if (nsdev_recv_fds(sk[0], &fs, 1))
		fs = -1;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_PROG_LOAD);
	if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "delegate_cmds", mask, 0))
		goto out;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_PROG_TYPE_CGROUP_DEVICE);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "delegate_progs", mask, 0))
		goto out;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_CGROUP_DEVICE);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "delegate_attachs", mask, 0) ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) || nsdev_send_fds(sk[0], &fs, 1))
		goto out;
out:
	waitpid(pid, &status, 0);
	devguard_detach(guard, cg);
	rmdir(CG "/ct");
	rmdir(CG);
	rmdir(WS);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "\nthe container failed\n");
		return 1;
	}
	printf("\nhost: guard detached, cgroup removed; nothing of the container is left\n");
	return 0;
}
