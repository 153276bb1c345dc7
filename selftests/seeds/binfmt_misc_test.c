// SPDX-License-Identifier: GPL-2.0
/*
 * binfmt_misc in a container (Linux 6.7+): an unprivileged user's
 * user-namespace root mounts a private instance, registers a handler and
 * runs a file through it. The host's instance does not get the handler,
 * the host's handlers are not used inside, and umount removes it.
 */

#define _GNU_SOURCE
#include <sys/mount.h>

#include "../nsdev_util.h"
#include "kselftest_harness.h"

/* Runs path with no arguments; returns its first output line, or "". */
static int run_file(const char *path, char *out, size_t size)
{
	int pipefd[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		execl(path, path, (char *)NULL);
		/* 100: no handler (ENOEXEC); 101 + errno otherwise. */
		_exit(errno == ENOEXEC ? 100 : 101 + errno);
	}
	close(pipefd[1]);
	n = read(pipefd[0], out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	if (n > 0 && out[n - 1] == '\n')
		out[n - 1] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A script with no #! line, run through /bin/sh by the handler for ext. */
static int make_script(const char *dir, const char *ext, const char *says, char *path,
		       size_t size)
{
	char text[128];
	int fd;

	snprintf(path, size, "%s/prog.%s", dir, ext);
	snprintf(text, sizeof(text), "echo %s\n", says);
	fd = creat(path, 0755);
	if (fd < 0)
		return -1;
	close(fd);
	return nsdev_write_file(path, "%s", text);
}

struct binfmt {
	char dir[64];
};

static int in_container(void *arg)
{
	struct binfmt *b = arg;
	char mnt[128], reg[160], entry[160], prog[192], out[64];

	CHILD_CHECK(mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0);
	CHILD_CHECK(mount("tmpfs", b->dir, "tmpfs", 0, NULL) == 0);
	snprintf(mnt, sizeof(mnt), "%s/binfmt", b->dir);
	CHILD_CHECK(mkdir(mnt, 0755) == 0);
	CHILD_CHECK(mount("binfmt_misc", mnt, "binfmt_misc", 0, NULL) == 0);

	/* The host's handler for .nsdevhost is not used in here. */
	CHILD_CHECK(make_script(b->dir, "nsdevhost", "host-handler", prog, sizeof(prog)) == 0);
	CHILD_CHECK(run_file(prog, out, sizeof(out)) == 100);

	/* Its own handler works. */
	CHILD_CHECK(make_script(b->dir, "nsdevct", "container-handler", prog, sizeof(prog)) == 0);
	CHILD_CHECK(run_file(prog, out, sizeof(out)) == 100);
	snprintf(reg, sizeof(reg), "%s/register", mnt);
	CHILD_CHECK(nsdev_write_file(reg, ":nsdevct:E::nsdevct::/bin/sh:") == 0);
	snprintf(entry, sizeof(entry), "%s/nsdevct", mnt);
	CHILD_CHECK(access(entry, F_OK) == 0);
	CHILD_CHECK(run_file(prog, out, sizeof(out)) == 0);
	CHILD_CHECK(!strcmp(out, "container-handler"));

	/* Gone with the instance. */
	CHILD_CHECK(umount2(mnt, 0) == 0);
	CHILD_CHECK(mount("binfmt_misc", mnt, "binfmt_misc", 0, NULL) == 0);
	CHILD_CHECK(access(entry, F_OK) < 0 && errno == ENOENT);
	return 0;
}

TEST(private_instance_in_a_container)
{
	char host[] = "/tmp/binfmt_host.XXXXXX", reg[64], entry[64], prog[128], out[64];
	struct binfmt b;

	/* The host's own instance, with a handler of its own. */
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	ASSERT_NE(NULL, mkdtemp(host));
	ASSERT_EQ(0, mount("binfmt_misc", host, "binfmt_misc", 0, NULL));
	snprintf(reg, sizeof(reg), "%s/register", host);
	ASSERT_EQ(0, nsdev_write_file(reg, ":nsdevhost:E::nsdevhost::/bin/sh:"));

	snprintf(b.dir, sizeof(b.dir), "/tmp/binfmt_ct.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(b.dir));
	ASSERT_EQ(0, chmod(b.dir, 0755));
	EXPECT_EQ(0, nsdev_run_child(in_container, &b, true));

	/* The host does not see the container's handler; its own works. */
	snprintf(entry, sizeof(entry), "%s/nsdevct", host);
	EXPECT_EQ(-1, access(entry, F_OK));
	ASSERT_EQ(0, make_script("/tmp", "nsdevhost", "host-handler", prog, sizeof(prog)));
	EXPECT_EQ(0, run_file(prog, out, sizeof(out)));
	EXPECT_STREQ("host-handler", out);
	unlink(prog);

	snprintf(entry, sizeof(entry), "%s/nsdevhost", host);
	EXPECT_EQ(0, nsdev_write_file(entry, "-1"));
	umount2(host, 0);
	rmdir(host);
	rmdir(b.dir);
}

TEST_HARNESS_MAIN
