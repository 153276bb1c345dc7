// SPDX-License-Identifier: GPL-2.0
/*
 * binfmt_misc in a container (Linux 6.7+): an unprivileged user's
 * user-namespace root mounts a private instance, registers a handler and
 * runs a file through it. The host's instance does not get the handler,
 * the host's handlers are not used inside, and umount removes it. Then the
 * seed's use case: a foreign-architecture binary, read from an ext4 image on
 * the container's own loopfs device, run through qemu-user by a handler the
 * container registered.
 */

#define _GNU_SOURCE
#include <linux/loop.h>
#include <sys/ioctl.h>
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

#define QEMU "/usr/bin/qemu-aarch64-static"

/* A static aarch64 program: write(1, "hello from aarch64\n"); exit(0). */
static int write_aarch64_hello(const char *path)
{
	static const unsigned char elf[] = {
		/* ELF header: 64-bit, little endian, EXEC, aarch64 (0xb7) */
		0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		2, 0, 0xb7, 0, 1, 0, 0, 0,
		0x78, 0, 0x40, 0, 0, 0, 0, 0,		/* entry 0x400078 */
		64, 0, 0, 0, 0, 0, 0, 0,		/* phoff */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,	/* shoff, flags */
		64, 0, 56, 0, 1, 0, 0, 0, 0, 0, 0, 0,
		/* one PT_LOAD, R+X, the whole file at 0x400000 */
		1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0,
		171, 0, 0, 0, 0, 0, 0, 0, 171, 0, 0, 0, 0, 0, 0, 0,
		0, 0x10, 0, 0, 0, 0, 0, 0,
		/* mov x0, #1; adr x1, msg; mov x2, #19; mov x8, #64; svc 0 */
		0x20, 0x00, 0x80, 0xd2, 0xe1, 0x00, 0x00, 0x10,
		0x62, 0x02, 0x80, 0xd2, 0x08, 0x08, 0x80, 0xd2,
		0x01, 0x00, 0x00, 0xd4,
		/* mov x0, #0; mov x8, #93; svc 0 */
		0x00, 0x00, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2,
		0x01, 0x00, 0x00, 0xd4,
		'h', 'e', 'l', 'l', 'o', ' ', 'f', 'r', 'o', 'm', ' ',
		'a', 'a', 'r', 'c', 'h', '6', '4', '\n',
	};
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	int ok;

	if (fd < 0)
		return -1;
	ok = write(fd, elf, sizeof(elf)) == sizeof(elf);
	close(fd);
	return ok ? 0 : -1;
}

#define AARCH64_HANDLER ":nsdev-aarch64:M::" \
	"\\x7fELF\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:" \
	"\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:" \
	QEMU ":"

struct foreign {
	char base[64];
	int up[2], down[2];
};

/* The container: its own image on its own loopfs device, its own handler. */
static int foreign_container(void *arg)
{
	struct foreign *f = arg;
	char path[256], out[64];
	int ctl, dev, img;

	snprintf(path, sizeof(path), "%s/ct/lfs", f->base);
	CHILD_CHECK(mkdir(path, 0755) == 0 && mount("loop", path, "loop", 0, NULL) == 0);
	snprintf(path, sizeof(path), "%s/ct/lfs/loop-control", f->base);
	ctl = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/ct/img", f->base);
	img = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHILD_CHECK(img >= 0 && ftruncate(img, 16 << 20) == 0);
	snprintf(path, sizeof(path), "%s/ct/lfs/loop0", f->base);
	dev = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(dev >= 0 && ioctl(dev, LOOP_SET_FD, img) == 0);
	snprintf(path, sizeof(path), "%s/ct/src", f->base);
	CHILD_CHECK(mkdir(path, 0755) == 0);
	snprintf(path, sizeof(path), "%s/ct/src/hello", f->base);
	CHILD_CHECK(write_aarch64_hello(path) == 0);
	CHILD_CHECK(nsdev_sh("mkfs.ext4 -q -d %s/ct/src %s/ct/lfs/loop0", f->base, f->base) == 0);

	snprintf(path, sizeof(path), "%s/ct/binfmt", f->base);
	CHILD_CHECK(mkdir(path, 0755) == 0);
	CHILD_CHECK(mount("binfmt_misc", path, "binfmt_misc", 0, NULL) == 0);
	snprintf(path, sizeof(path), "%s/ct/binfmt/register", f->base);
	CHILD_CHECK(nsdev_write_file(path, "%s", AARCH64_HANDLER) == 0);

	/* The host mounts the image where it propagates to us. */
	CHILD_CHECK(write(f->up[1], "r", 1) == 1);
	CHILD_CHECK(read(f->down[0], out, 1) == 1);
	snprintf(path, sizeof(path), "%s/mnt/hello", f->base);
	CHILD_CHECK(run_file(path, out, sizeof(out)) == 0);
	CHILD_CHECK(!strcmp(out, "hello from aarch64"));
	CHILD_CHECK(write(f->up[1], "d", 1) == 1);
	CHILD_CHECK(read(f->down[0], out, 1) == 1);
	close(dev);
	return 0;
}

TEST(foreign_binary_from_loopfs_ext4)
{
	char path[256], mnt[256], out[64], byte;
	struct foreign f;
	pid_t pid;

	if (access(QEMU, X_OK))
		SKIP(return, "%s is not installed", QEMU);
	ASSERT_EQ(0, unshare(CLONE_NEWNS));
	ASSERT_EQ(0, mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL));
	snprintf(f.base, sizeof(f.base), "/tmp/binfmt_foreign.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(f.base));
	ASSERT_EQ(0, mount("tmpfs", f.base, "tmpfs", 0, "mode=0755"));
	/* Shared here, a slave in the container: our mounts reach it. */
	ASSERT_EQ(0, mount(NULL, f.base, NULL, MS_SHARED, NULL));
	snprintf(path, sizeof(path), "%s/ct", f.base);
	ASSERT_EQ(0, mkdir(path, 0755));
	ASSERT_EQ(0, chown(path, NSDEV_UID, NSDEV_GID));
	snprintf(path, sizeof(path), "%s/mnt", f.base);
	ASSERT_EQ(0, mkdir(path, 0755));
	ASSERT_EQ(0, pipe(f.up));
	ASSERT_EQ(0, pipe(f.down));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		CHILD_CHECK(nsdev_become_userns_root() == 0);
		_exit(foreign_container(&f));
	}
	ASSERT_EQ(1, read(f.up[0], &byte, 1)) TH_LOG("the container failed");
	snprintf(path, sizeof(path), "/proc/%d/root%s/ct/lfs/loop0", pid, f.base);
	snprintf(mnt, sizeof(mnt), "%s/mnt", f.base);
	ASSERT_EQ(0, mount(path, mnt, "ext4", MS_RDONLY, NULL))
		TH_LOG("mount %s: %s", path, strerror(errno));
	ASSERT_EQ(1, write(f.down[1], "g", 1));
	EXPECT_EQ(1, read(f.up[0], &byte, 1));
	/* The host's own instance has no such handler. */
	snprintf(path, sizeof(path), "%s/mnt/hello", f.base);
	EXPECT_EQ(100, run_file(path, out, sizeof(out)));
	EXPECT_EQ(1, write(f.down[1], "x", 1));
	EXPECT_EQ(0, nsdev_wait(pid));
	umount2(mnt, MNT_DETACH);
	umount2(f.base, MNT_DETACH);
	rmdir(f.base);
}

TEST_HARNESS_MAIN
