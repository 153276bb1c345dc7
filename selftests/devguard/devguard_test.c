// SPDX-License-Identifier: GPL-2.0
/*
 * devguard: mknod and device nodes in user namespaces under a host-attached
 * cgroup device guard, and stock behaviour everywhere else.
 *
 * DEVGUARD_KO names the module file (the unload tests reload it); loopfs.ko
 * is loaded too.
 */

#define _GNU_SOURCE
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/loop.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>

#include "../nsdev_util.h"
#include "../../samples/devguard_prog.h"
#include "kselftest_harness.h"

#define CG_ROOT "/sys/fs/cgroup"

/* What the test guard allows: null, zero, urandom and loopfs. */
static int guard_rules(struct devguard_rule *r)
{
	int n = 0;

	r[n++] = (struct devguard_rule){ 'c', 1, 3 };
	r[n++] = (struct devguard_rule){ 'c', 1, 5 };
	r[n++] = (struct devguard_rule){ 'c', 1, 9 };
	return devguard_add_loopfs(r, n);
}

static int load_guard(__u32 flags)
{
	struct devguard_rule r[8];

	return devguard_load(r, guard_rules(r), flags, -1);
}

TEST(guard_flag_only_for_device_programs)
{
	struct bpf_insn insn[2] = {
		devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0),
		devguard_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
	};
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	attr.insns = (__u64)(unsigned long)insn;
	attr.insn_cnt = 2;
	attr.license = (__u64)(unsigned long)"GPL";
	attr.prog_flags = BPF_F_CGROUP_DEVICE_GUARD;
	EXPECT_EQ(-1, devguard_bpf(BPF_PROG_LOAD, &attr));
	EXPECT_EQ(EINVAL, errno);
	attr.prog_flags = 0;
	EXPECT_LE(0, devguard_bpf(BPF_PROG_LOAD, &attr));
}

TEST(prog_info_reports_guard)
{
	struct bpf_prog_info info;
	union bpf_attr attr;
	int guard, plain;

	guard = load_guard(BPF_F_CGROUP_DEVICE_GUARD);
	plain = load_guard(0);
	ASSERT_LE(0, guard) TH_LOG("load guard: %s", strerror(errno));
	ASSERT_LE(0, plain);
	for (int i = 0; i < 2; i++) {
		memset(&info, 0, sizeof(info));
		memset(&attr, 0, sizeof(attr));
		attr.info.bpf_fd = i ? plain : guard;
		attr.info.info_len = sizeof(info);
		attr.info.info = (__u64)(unsigned long)&info;
		ASSERT_EQ(0, devguard_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr));
		EXPECT_EQ(i ? 0 : 1, info.cgroup_device_guard);
	}
}

static int load_without_sys_admin(void *arg)
{
	CHILD_CHECK(nsdev_cap_effective(CAP_SYS_ADMIN, false) == 0);
	CHILD_CHECK(load_guard(BPF_F_CGROUP_DEVICE_GUARD) < 0 && errno == EPERM);
	/* CAP_BPF is enough for a plain device program. */
	CHILD_CHECK(load_guard(0) >= 0);
	return 0;
}

TEST(guard_needs_init_cap_sys_admin)
{
	ASSERT_EQ(0, nsdev_run_child(load_without_sys_admin, NULL, false));
	/* Even full root cannot make a guard through a BPF token. */
	EXPECT_EQ(-1, devguard_load(NULL, 0, BPF_F_CGROUP_DEVICE_GUARD, 0));
	EXPECT_EQ(EPERM, errno);
}

/*
 * The attack: a guard attached by a link goes with the link's last close or
 * a BPF_LINK_DETACH, which need no capability: a container handed the
 * link's fd (or closing the runtime's copy it inherited) would remove the
 * guard. A guard is attached by program only, and no link is updated to
 * one; what links do hold, plain device programs, still attaches.
 */
TEST(guard_is_never_a_link)
{
	int guard, plain, cg, link;
	char path[128];

	snprintf(path, sizeof(path), CG_ROOT "/devguard_link.%d", getpid());
	ASSERT_EQ(0, mkdir(path, 0755));
	cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, cg);
	guard = load_guard(BPF_F_CGROUP_DEVICE_GUARD);
	plain = load_guard(0);
	ASSERT_LE(0, guard);
	ASSERT_LE(0, plain);
	EXPECT_EQ(-1, devguard_link(guard, cg));
	EXPECT_EQ(EINVAL, errno);
	link = devguard_link(plain, cg);
	ASSERT_LE(0, link) TH_LOG("link: %s", strerror(errno));
	EXPECT_EQ(-1, devguard_link_update(link, guard));
	EXPECT_EQ(EINVAL, errno);
	close(link);
	close(cg);
	EXPECT_EQ(0, rmdir(path));
}

FIXTURE(guarded) {
	char cgroup[128];
	char work[64];
	int cg;
	int guard;
};

FIXTURE_SETUP(guarded)
{
	snprintf(self->cgroup, sizeof(self->cgroup), CG_ROOT "/devguard_test.%d", getpid());
	ASSERT_EQ(0, mkdir(self->cgroup, 0755)) TH_LOG("%s: %s", self->cgroup, strerror(errno));
	self->cg = open(self->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, self->cg);
	self->guard = load_guard(BPF_F_CGROUP_DEVICE_GUARD);
	ASSERT_LE(0, self->guard) TH_LOG("load guard: %s", strerror(errno));
	ASSERT_EQ(0, devguard_attach(self->guard, self->cg, BPF_F_ALLOW_MULTI));
	snprintf(self->work, sizeof(self->work), "/tmp/devguard.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->work));
	ASSERT_EQ(0, chmod(self->work, 0755));
}

FIXTURE_TEARDOWN(guarded)
{
	devguard_detach(self->guard, self->cg);
	rmdir(self->work);
	rmdir(self->cgroup);
}

struct container {
	const char *cgroup;	/* joined before entering the namespaces */
	const char *work;	/* a private tmpfs is mounted here */
	int (*fn)(struct container *c);
	const void *arg;
	bool root_owned;	/* its user namespace is host root's, not nobody's */
};

static int enter_container(void *p)
{
	struct container *c = p;

	CHILD_CHECK(nsdev_join_cgroup(c->cgroup) == 0);
	if (c->root_owned)
		CHILD_CHECK(nsdev_become_userns_root_of_self() == 0);
	else
		CHILD_CHECK(nsdev_become_userns_root() == 0);
	CHILD_CHECK(mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0);
	CHILD_CHECK(mount("tmpfs", c->work, "tmpfs", 0, NULL) == 0);
	return c->fn(c);
}

static int in_container(const char *cgroup, const char *work,
			int (*fn)(struct container *c), const void *arg)
{
	struct container c = { cgroup, work, fn, arg };

	return nsdev_run_child(enter_container, &c, false);
}

static int node(struct container *c, const char *name, char type, int major, int minor)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", c->work, name);
	return mknod(path, (type == 'b' ? S_IFBLK : S_IFCHR) | 0600, makedev(major, minor));
}

static int open_node(struct container *c, const char *name, int flags)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", c->work, name);
	return open(path, flags | O_CLOEXEC);
}

static int allowed_nodes_work(struct container *c)
{
	char buf[64];
	int fd;

	CHILD_CHECK(node(c, "null", 'c', 1, 3) == 0);
	CHILD_CHECK(node(c, "zero", 'c', 1, 5) == 0);
	fd = open_node(c, "null", O_RDWR);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(write(fd, "x", 1) == 1 && read(fd, buf, sizeof(buf)) == 0);
	close(fd);
	fd = open_node(c, "zero", O_RDONLY);
	CHILD_CHECK(fd >= 0);
	memset(buf, 1, sizeof(buf));
	CHILD_CHECK(read(fd, buf, sizeof(buf)) == sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		CHILD_CHECK(buf[i] == 0);
	close(fd);
	return 0;
}

TEST_F(guarded, mknod_of_allowed_device_works)
{
	ASSERT_EQ(0, in_container(self->cgroup, self->work, allowed_nodes_work, NULL));
}

static int denied_device(struct container *c)
{
	/* /dev/full is not on the guard's list. */
	CHILD_CHECK(node(c, "full", 'c', 1, 7) < 0 && errno == EPERM);
	CHILD_CHECK(open("/dev/full", O_RDONLY | O_CLOEXEC) < 0 && errno == EPERM);
	return 0;
}

TEST_F(guarded, mknod_of_denied_device_eperm)
{
	ASSERT_EQ(0, in_container(self->cgroup, self->work, denied_device, NULL));
}

static int nodev_mount(struct container *c)
{
	char dir[256];
	int fd;

	snprintf(dir, sizeof(dir), "%s/nodev", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	CHILD_CHECK(mount("tmpfs", dir, "tmpfs", MS_NODEV, NULL) == 0);
	CHILD_CHECK(node(c, "nodev/null", 'c', 1, 3) == 0);
	fd = open_node(c, "nodev/null", O_RDWR);
	CHILD_CHECK(fd < 0 && errno == EACCES);
	return 0;
}

TEST_F(guarded, nodev_mount_stays_unopenable)
{
	ASSERT_EQ(0, in_container(self->cgroup, self->work, nodev_mount, NULL));
}

TEST_F(guarded, nested_cgroup_is_guarded)
{
	char sub[192];

	snprintf(sub, sizeof(sub), "%s/nested", self->cgroup);
	ASSERT_EQ(0, mkdir(sub, 0755));
	EXPECT_EQ(0, in_container(sub, self->work, allowed_nodes_work, NULL));
	rmdir(sub);
}

/*
 * A user namespace below the container's is anybody's in the container to
 * make and be root of (an unprivileged user of the container, a sandbox):
 * filesystems of such a namespace get no nodes and open none, or every
 * device the guard allows would be theirs whatever the owners and modes of
 * the container's own nodes. The container's own filesystem still serves
 * the nested namespace, mode permitting.
 */
static int nested_namespace(struct container *c)
{
	char dir[256], opts[600];
	pid_t pid;
	int fd;

	snprintf(dir, sizeof(dir), "%s/low", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	CHILD_CHECK(node(c, "low/null", 'c', 1, 3) == 0);
	CHILD_CHECK(chmod(dir, 0755) == 0);
	snprintf(dir, sizeof(dir), "%s/low2", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	snprintf(dir, sizeof(dir), "%s/nested", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	snprintf(dir, sizeof(dir), "%s/ovl", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	pid = fork();
	CHILD_CHECK(pid >= 0);
	if (pid == 0) {
		CHILD_CHECK(nsdev_become_userns_root_of_self() == 0);
		/* Its own tmpfs takes no node. */
		snprintf(dir, sizeof(dir), "%s/nested", c->work);
		CHILD_CHECK(mount("tmpfs", dir, "tmpfs", 0, NULL) == 0);
		errno = 0;
		CHILD_CHECK(node(c, "nested/null", 'c', 1, 3) < 0 && errno == EPERM);
		/* An overlay of its own shows the container's node: it stays shut. */
		snprintf(opts, sizeof(opts), "lowerdir=%s/low:%s/low2", c->work, c->work);
		snprintf(dir, sizeof(dir), "%s/ovl", c->work);
		CHILD_CHECK(mount("overlay", dir, "overlay", 0, opts) == 0);
		errno = 0;
		CHILD_CHECK(open_node(c, "ovl/null", O_RDWR) < 0 && errno == EACCES);
		/* The container's node itself opens. */
		fd = open_node(c, "low/null", O_RDWR);
		CHILD_CHECK(fd >= 0 && write(fd, "x", 1) == 1);
		close(fd);
		_exit(0);
	}
	CHILD_CHECK(nsdev_wait(pid) == 0);
	return 0;
}

TEST_F(guarded, nested_namespace_gets_no_devices)
{
	ASSERT_EQ(0, in_container(self->cgroup, self->work, nested_namespace, NULL));
}

static int mknod_denied(struct container *c)
{
	CHILD_CHECK(node(c, "null", 'c', 1, 3) < 0 && errno == EPERM);
	return 0;
}

/* What the container holds in container_cannot_remove_or_replace_guard. */
struct held {
	int guard;		/* the guard's fd, attached to the container's cgroup */
	int plain;		/* a plain device program's fd, attached nowhere */
	const char *free_cg;	/* a cgroup of the host's with no device program */
};

/*
 * Line numbers below are kernel/bpf/cgroup.c of 6.12.118 with patches/
 * applied; the container is root of its user namespace only, so
 * device_guard_check() (:485-488) refuses it any change of a guard.
 */
static int try_to_remove_guard(struct container *c)
{
	const struct held *h = c->arg;
	int cg = open(c->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int free_cg = open(h->free_cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	union bpf_attr attr;

	CHILD_CHECK(cg >= 0 && free_cg >= 0);
	/*
	 * Stock behaviour, whatever the patches do: a detach without a
	 * program fd from a cgroup in BPF_F_ALLOW_MULTI mode is EINVAL in
	 * find_detach_entry() (:1172-1176), before any guard check.
	 */
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cg;
	attr.attach_type = BPF_CGROUP_DEVICE;
	CHILD_CHECK(devguard_bpf(BPF_PROG_DETACH, &attr) < 0 && errno == EINVAL);
	/* Detaching the guard by its fd: the guard check (:1270), EPERM. */
	CHILD_CHECK(devguard_detach(h->guard, cg) < 0 && errno == EPERM);
	/*
	 * Attaching it over itself with override or alone fails for stock
	 * reasons too: EPERM comes from device_guard_check() (:861) first,
	 * but without it the guard would still get EINVAL (a guard only with
	 * BPF_F_ALLOW_MULTI, :869), and a kernel without the series EPERM
	 * (no other mode in a BPF_F_ALLOW_MULTI cgroup, :877-882). These two
	 * show nothing of the guard check: (a) and (b) below do.
	 */
	CHILD_CHECK(devguard_attach(h->guard, cg, BPF_F_ALLOW_OVERRIDE) < 0 && errno == EPERM);
	CHILD_CHECK(devguard_attach(h->guard, cg, 0) < 0 && errno == EPERM);
	/* It cannot load programs of its own here either (stock, no token). */
	CHILD_CHECK(load_guard(0) < 0 && errno == EPERM);

	/*
	 * (a) Make a cgroup of the host's a guarded one. Stock, an attach
	 * needs a program fd and no capability: a plain program goes there
	 * and comes off again. The guard does not (:861).
	 */
	CHILD_CHECK(devguard_attach(h->plain, free_cg, BPF_F_ALLOW_MULTI) == 0);
	CHILD_CHECK(devguard_detach(h->plain, free_cg) == 0);
	CHILD_CHECK(devguard_attach(h->guard, free_cg, BPF_F_ALLOW_MULTI) < 0 && errno == EPERM);

	/*
	 * (b) Swap the guard out of its own cgroup for a plain program: stock
	 * would allow it (the guard is found, :686-690); the guard check on
	 * replace_prog (:861) does not.
	 */
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cg;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_bpf_fd = h->plain;
	attr.replace_bpf_fd = h->guard;
	attr.attach_flags = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
	CHILD_CHECK(devguard_bpf(BPF_PROG_ATTACH, &attr) < 0 && errno == EPERM);

	/* Still guarded: what the guard allows is made, what it denies not. */
	CHILD_CHECK(node(c, "full", 'c', 1, 7) < 0 && errno == EPERM);
	return allowed_nodes_work(c);
}

/* The ids of the device programs in the cgroup open at cg: how many, or -1. */
static int attached_ids(int cg, __u32 *ids, __u32 n)
{
	union bpf_attr attr;

	memset(ids, 0, n * sizeof(*ids));
	memset(&attr, 0, sizeof(attr));
	attr.query.target_fd = cg;
	attr.query.attach_type = BPF_CGROUP_DEVICE;
	attr.query.prog_ids = (__u64)(unsigned long)ids;
	attr.query.prog_cnt = n;
	if (devguard_bpf(BPF_PROG_QUERY, &attr))
		return -1;
	return attr.query.prog_cnt;
}

static __u32 prog_id(int fd)
{
	struct bpf_prog_info info;
	union bpf_attr attr;

	memset(&info, 0, sizeof(info));
	memset(&attr, 0, sizeof(attr));
	attr.info.bpf_fd = fd;
	attr.info.info_len = sizeof(info);
	attr.info.info = (__u64)(unsigned long)&info;
	return devguard_bpf(BPF_OBJ_GET_INFO_BY_FD, &attr) ? 0 : info.id;
}

TEST_F(guarded, container_cannot_remove_or_replace_guard)
{
	char free_path[128];
	struct held h = { self->guard, load_guard(0), free_path };
	struct container c = { self->cgroup, self->work, try_to_remove_guard, &h };
	__u32 ids[4];
	int free_cg;

	ASSERT_LE(0, h.plain) TH_LOG("load: %s", strerror(errno));
	ASSERT_NE(0, prog_id(self->guard));
	snprintf(free_path, sizeof(free_path), CG_ROOT "/devguard_free.%d", getpid());
	ASSERT_EQ(0, mkdir(free_path, 0755)) TH_LOG("%s: %s", free_path, strerror(errno));
	free_cg = open(free_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	EXPECT_LE(0, free_cg);

	/* The container even holds the guard's fd: it still cannot. */
	EXPECT_EQ(0, nsdev_run_child(enter_container, &c, false));
	/* The guard is still the one program of its cgroup... */
	EXPECT_EQ(1, attached_ids(self->cg, ids, 4));
	EXPECT_EQ(prog_id(self->guard), ids[0]);
	/* ...and none is in the host's other cgroup, where mknod stays stock. */
	EXPECT_EQ(0, attached_ids(free_cg, ids, 4));
	EXPECT_EQ(0, in_container(free_path, self->work, mknod_denied, NULL));

	/* Whatever got in where it should not. */
	devguard_detach(self->guard, free_cg);
	devguard_detach(h.plain, free_cg);
	devguard_detach(h.plain, self->cg);
	close(free_cg);
	close(h.plain);
	EXPECT_EQ(0, rmdir(free_path));
}

struct sync_pipes {
	int ready[2];	/* container -> host */
	int go[2];	/* host -> container */
};

/* Opens a node it made while guarded, waits, then opens it again. */
static int open_across_detach(struct container *c)
{
	const struct sync_pipes *p = c->arg;
	char byte;
	int fd;

	CHILD_CHECK(node(c, "null", 'c', 1, 3) == 0);
	fd = open_node(c, "null", O_RDWR);
	CHILD_CHECK(fd >= 0);
	close(fd);
	CHILD_CHECK(write(p->ready[1], "r", 1) == 1);
	CHILD_CHECK(read(p->go[0], &byte, 1) == 1);
	/* The guard is gone: the node on its tmpfs no longer opens. */
	fd = open_node(c, "null", O_RDWR);
	CHILD_CHECK(fd < 0 && errno == EACCES);
	return 0;
}

TEST_F(guarded, detaching_the_guard_stops_open)
{
	struct sync_pipes p;
	struct container c = { self->cgroup, self->work, open_across_detach, &p };
	char byte;
	pid_t pid;

	ASSERT_EQ(0, pipe(p.ready));
	ASSERT_EQ(0, pipe(p.go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(enter_container(&c));
	ASSERT_EQ(1, read(p.ready[0], &byte, 1));
	ASSERT_EQ(0, devguard_detach(self->guard, self->cg));
	ASSERT_EQ(1, write(p.go[1], "g", 1));
	EXPECT_EQ(0, nsdev_wait(pid));
}

/*
 * The attack: a guarded container makes a 0666 node for a block device in a
 * filesystem of the host (an init-namespace tmpfs such as /tmp), where any
 * host process, with no guard, could open it. mknod() must fail there.
 */
static int mknod_on_host_fs(struct container *c)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/null", (const char *)c->arg);
	CHILD_CHECK(mknod(path, S_IFCHR | 0666, makedev(1, 3)) < 0 && errno == EPERM);
	CHILD_CHECK(stat(path, &st) < 0 && errno == ENOENT);
	/* The directory is writable for it: a plain file can be made there. */
	snprintf(path, sizeof(path), "%s/plain", (const char *)c->arg);
	CHILD_CHECK(mknod(path, S_IFREG | 0666, 0) == 0 && unlink(path) == 0);
	return 0;
}

static void host_tmpfs(struct __test_metadata *_metadata, char *dir)
{
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, mount("tmpfs", dir, "tmpfs", 0, "mode=1777"));
}

TEST_F(guarded, mknod_on_init_namespace_fs_eperm)
{
	char host[] = "/tmp/devguard_host.XXXXXX";
	struct container c = { self->cgroup, self->work, mknod_on_host_fs, host };

	host_tmpfs(_metadata, host);
	EXPECT_EQ(0, nsdev_run_child(enter_container, &c, false));
	/* The same as root of a user namespace host root owns. */
	c.root_owned = true;
	EXPECT_EQ(0, nsdev_run_child(enter_container, &c, false));
	umount2(host, MNT_DETACH);
	rmdir(host);
}

/* An overlay of its own whose upper layer is a host filesystem: EPERM too. */
static int mknod_through_overlay(struct container *c)
{
	char opts[512], dir[256];

	snprintf(dir, sizeof(dir), "%s/lower", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	snprintf(dir, sizeof(dir), "%s/ovl", c->work);
	CHILD_CHECK(mkdir(dir, 0755) == 0);
	snprintf(opts, sizeof(opts), "lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work",
		 c->work, (const char *)c->arg, (const char *)c->arg);
	CHILD_CHECK(mount("overlay", dir, "overlay", 0, opts) == 0);
	CHILD_CHECK(node(c, "ovl/null", 'c', 1, 3) < 0 && errno == EPERM);
	/* On its own tmpfs the same node is fine. */
	CHILD_CHECK(node(c, "null", 'c', 1, 3) == 0);
	return 0;
}

TEST_F(guarded, mknod_through_overlay_on_host_fs_eperm)
{
	char host[] = "/tmp/devguard_host.XXXXXX", dir[64];
	struct container c = { self->cgroup, self->work, mknod_through_overlay, host };

	host_tmpfs(_metadata, host);
	snprintf(dir, sizeof(dir), "%s/upper", host);
	ASSERT_EQ(0, mkdir(dir, 0755));
	ASSERT_EQ(0, chown(dir, NSDEV_UID, NSDEV_GID));
	snprintf(dir, sizeof(dir), "%s/work", host);
	ASSERT_EQ(0, mkdir(dir, 0755));
	ASSERT_EQ(0, chown(dir, NSDEV_UID, NSDEV_GID));
	EXPECT_EQ(0, nsdev_run_child(enter_container, &c, false));
	umount2(host, MNT_DETACH);
	rmdir(host);
}

/* Makes a 0666 node and a plain file on its tmpfs, then waits for the host. */
static int node_for_the_host(struct container *c)
{
	const struct sync_pipes *p = c->arg;
	char path[256], byte;
	int fd;

	umask(0);
	snprintf(path, sizeof(path), "%s/null", c->work);
	CHILD_CHECK(mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0);
	fd = open_node(c, "null", O_RDWR);
	CHILD_CHECK(fd >= 0 && write(fd, "x", 1) == 1);
	close(fd);
	snprintf(path, sizeof(path), "%s/plain", c->work);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	CHILD_CHECK(fd >= 0);
	close(fd);
	CHILD_CHECK(write(p->ready[1], "r", 1) == 1);
	CHILD_CHECK(read(p->go[0], &byte, 1) == 1);
	return 0;
}

/* Opens path as the current user: returns 0 or errno. */
static int try_open(const char *path)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int open_as_nobody(void *arg)
{
	const char *dir = arg;
	char path[256];

	CHILD_CHECK(setresgid(NSDEV_GID, NSDEV_GID, NSDEV_GID) == 0 &&
		    setresuid(NSDEV_UID, NSDEV_UID, NSDEV_UID) == 0);
	snprintf(path, sizeof(path), "%s/plain", dir);
	CHILD_CHECK(try_open(path) == 0);
	snprintf(path, sizeof(path), "%s/null", dir);
	CHILD_CHECK(try_open(path) == EACCES);
	return 0;
}

/*
 * A node made on the container's own tmpfs opens inside the guard, and for
 * no host process outside it, root or not, although its file is reachable.
 */
TEST_F(guarded, node_opens_only_under_the_guard)
{
	struct sync_pipes p;
	struct container c = { self->cgroup, self->work, node_for_the_host, &p };
	char dir[160], path[192];
	char byte;
	pid_t pid;

	ASSERT_EQ(0, pipe(p.ready));
	ASSERT_EQ(0, pipe(p.go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(enter_container(&c));
	ASSERT_EQ(1, read(p.ready[0], &byte, 1));
	snprintf(dir, sizeof(dir), "/proc/%d/root%s", pid, self->work);
	snprintf(path, sizeof(path), "%s/plain", dir);
	EXPECT_EQ(0, try_open(path));
	snprintf(path, sizeof(path), "%s/null", dir);
	EXPECT_EQ(EACCES, try_open(path));
	EXPECT_EQ(0, nsdev_run_child(open_as_nobody, dir, false));
	ASSERT_EQ(1, write(p.go[1], "g", 1));
	EXPECT_EQ(0, nsdev_wait(pid));
}

/* Shared by guard_and_programs_judged_together and its container. */
struct judged {
	struct sync_pipes p;
	struct judged_counts {
		/* The host's: made odd after each detach, even after each attach. */
		unsigned int phase;
		/* The container's: its tries, and those across a detached moment. */
		unsigned int tries, across;
	} *n;	/* MAP_SHARED */
};

/* Tries, until told to stop, to make a node the guard denies. */
static int mknod_denied_loop(struct container *c)
{
	const struct judged *j = c->arg;
	struct judged_counts *n = j->n;
	unsigned int before, after;
	char path[256], byte;
	ssize_t got;

	/* Its copy of the host's end would keep it from seeing the host go. */
	close(j->p.go[1]);
	close(j->p.ready[0]);
	snprintf(path, sizeof(path), "%s/full", c->work);
	CHILD_CHECK(fcntl(j->p.go[0], F_SETFL, O_NONBLOCK) == 0);
	CHILD_CHECK(write(j->p.ready[1], "r", 1) == 1);
	for (;;) {
		got = read(j->p.go[0], &byte, 1);
		if (got == 1)
			break;
		if (got == 0) {
			/* The host is gone (it failed): do not spin in its cgroup. */
			fprintf(stderr, "# the host went away after %u tries\n", n->tries);
			_exit(1);
		}
		CHILD_CHECK(errno == EAGAIN);
		before = __atomic_load_n(&n->phase, __ATOMIC_SEQ_CST);
		/* Guarded or not at this instant, /dev/full is never allowed. */
		CHILD_CHECK(mknod(path, S_IFCHR | 0600, makedev(1, 7)) < 0 && errno == EPERM);
		after = __atomic_load_n(&n->phase, __ATOMIC_SEQ_CST);
		n->tries++;
		/*
		 * An odd phase was set in between: when it was, the guard was
		 * detached and the attach not begun, so the try spanned a
		 * moment without the guard.
		 */
		if (after > before + (before & 1))
			n->across++;
	}
	CHILD_CHECK(n->tries > 0);
	return 0;
}

/*
 * The guard is detached and attached again while the container tries: the
 * guard test and the device programs judge the same snapshot, so a moment
 * without the guard never lets a denied device through.
 */
TEST_F(guarded, guard_and_programs_judged_together)
{
	struct judged j;
	struct container c = { self->cgroup, self->work, mknod_denied_loop, &j };
	const int cycles = 2000;
	char byte;
	pid_t pid;

	j.n = mmap(NULL, sizeof(*j.n), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, j.n);
	memset(j.n, 0, sizeof(*j.n));
	ASSERT_EQ(0, pipe(j.p.ready));
	ASSERT_EQ(0, pipe(j.p.go));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0)
		_exit(enter_container(&c));
	/* Without it, a container that dies shows as EOF here. */
	close(j.p.ready[1]);
	ASSERT_EQ(1, read(j.p.ready[0], &byte, 1)) TH_LOG("the container failed");
	for (int i = 0; i < cycles; i++) {
		ASSERT_EQ(0, devguard_detach(self->guard, self->cg));
		__atomic_add_fetch(&j.n->phase, 1, __ATOMIC_SEQ_CST);
		ASSERT_EQ(0, devguard_attach(self->guard, self->cg, BPF_F_ALLOW_MULTI));
		__atomic_add_fetch(&j.n->phase, 1, __ATOMIC_SEQ_CST);
	}
	ASSERT_EQ(1, write(j.p.go[1], "g", 1));
	EXPECT_EQ(0, nsdev_wait(pid));
	TH_LOG("%d detach/attach cycles: %u mknod tries, %u of them across a moment without the guard",
	       cycles, j.n->tries, j.n->across);
	/* The container tried while the guard came and went, not only around it. */
	EXPECT_LT(0u, j.n->across);
	munmap(j.n, sizeof(*j.n));
}

TEST_F(guarded, detaching_the_guard_stops_mknod)
{
	ASSERT_EQ(0, devguard_detach(self->guard, self->cg));
	EXPECT_EQ(0, in_container(self->cgroup, self->work, mknod_denied, NULL));
	/* A plain device program is no guard either. */
	ASSERT_EQ(0, devguard_attach(load_guard(0), self->cg, BPF_F_ALLOW_MULTI));
	EXPECT_EQ(0, in_container(self->cgroup, self->work, mknod_denied, NULL));
}

static int loopfs_node(struct container *c)
{
	char path[256], buf[4096], back[4096];
	struct stat st;
	int ctl, dev, file;

	snprintf(path, sizeof(path), "%s/lfs", c->work);
	CHILD_CHECK(mkdir(path, 0755) == 0);
	CHILD_CHECK(mount("loop", path, "loop", 0, NULL) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop-control", c->work);
	ctl = open(path, O_RDWR | O_CLOEXEC);
	CHILD_CHECK(ctl >= 0 && ioctl(ctl, LOOP_CTL_ADD, 0) == 0);
	snprintf(path, sizeof(path), "%s/lfs/loop0", c->work);
	CHILD_CHECK(stat(path, &st) == 0);
	/* The container's own node for its loop device, on its tmpfs. */
	CHILD_CHECK(node(c, "myloop", 'b', major(st.st_rdev), minor(st.st_rdev)) == 0);
	snprintf(path, sizeof(path), "%s/img", c->work);
	file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHILD_CHECK(file >= 0 && ftruncate(file, 1 << 20) == 0);
	dev = open_node(c, "myloop", O_RDWR);
	CHILD_CHECK(dev >= 0 && ioctl(dev, LOOP_SET_FD, file) == 0);
	memset(buf, 0x5a, sizeof(buf));
	CHILD_CHECK(pwrite(dev, buf, sizeof(buf), 8192) == sizeof(buf) && fsync(dev) == 0);
	CHILD_CHECK(pread(file, back, sizeof(back), 8192) == sizeof(back));
	CHILD_CHECK(memcmp(buf, back, sizeof(buf)) == 0);
	CHILD_CHECK(ioctl(dev, LOOP_CLR_FD) == 0);
	close(dev);
	close(file);
	return 0;
}

TEST_F(guarded, loopfs_device_node_made_in_container)
{
	ASSERT_LT(0, nsdev_proc_major("loopfs")) TH_LOG("loopfs.ko is not loaded");
	ASSERT_EQ(0, in_container(self->cgroup, self->work, loopfs_node, NULL));
}

static int landlock_denies(struct container *c)
{
	struct landlock_ruleset_attr ruleset = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK,
	};
	int fd;

	fd = syscall(SYS_landlock_create_ruleset, &ruleset, sizeof(ruleset), 0);
	CHILD_CHECK(fd >= 0);
	CHILD_CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0);
	CHILD_CHECK(syscall(SYS_landlock_restrict_self, fd, 0) == 0);
	CHILD_CHECK(node(c, "null", 'c', 1, 3) < 0 && errno == EACCES);
	return 0;
}

TEST_F(guarded, landlock_still_denies_mknod)
{
	ASSERT_EQ(0, in_container(self->cgroup, self->work, landlock_denies, NULL));
}

static int reload_module(const char *ko)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

TEST_F(guarded, without_the_module_behaviour_is_stock)
{
	const char *ko = getenv("DEVGUARD_KO");

	ASSERT_NE(NULL, ko) TH_LOG("DEVGUARD_KO must name devguard.ko");
	ASSERT_EQ(0, syscall(SYS_delete_module, "devguard", O_NONBLOCK));
	EXPECT_EQ(0, in_container(self->cgroup, self->work, mknod_denied, NULL));
	ASSERT_EQ(0, reload_module(ko)) TH_LOG("reload: %s", strerror(errno));
	EXPECT_EQ(0, in_container(self->cgroup, self->work, allowed_nodes_work, NULL));
}

static int hammer(struct container *c)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/n", c->work);
	for (int i = 0; i < 3000; i++) {
		int fd;

		if (mknod(path, S_IFCHR | 0600, makedev(1, 3)) && errno != EPERM)
			return 1;
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
	return 0;
}

/* Unloading while guarded tasks race through the hooks: no splat. */
TEST_F(guarded, rmmod_while_mknod_and_open_run)
{
	const char *ko = getenv("DEVGUARD_KO");
	pid_t pids[3];

	ASSERT_NE(NULL, ko);
	for (int i = 0; i < 3; i++) {
		struct container c = { self->cgroup, self->work, hammer, NULL };

		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i] == 0)
			_exit(enter_container(&c));
	}
	for (int i = 0; i < 5; i++) {
		usleep(20000);
		EXPECT_EQ(0, syscall(SYS_delete_module, "devguard", O_NONBLOCK));
		usleep(20000);
		EXPECT_EQ(0, reload_module(ko));
	}
	for (int i = 0; i < 3; i++)
		EXPECT_EQ(0, nsdev_wait(pids[i]));
}

/* A cgroup without any device program: stock EPERM. */
TEST(unguarded_cgroup_is_stock)
{
	char cgroup[128], work[] = "/tmp/devguard.XXXXXX";

	snprintf(cgroup, sizeof(cgroup), CG_ROOT "/devguard_stock.%d", getpid());
	ASSERT_EQ(0, mkdir(cgroup, 0755));
	ASSERT_NE(NULL, mkdtemp(work));
	ASSERT_EQ(0, chmod(work, 0755));
	EXPECT_EQ(0, in_container(cgroup, work, mknod_denied, NULL));
	rmdir(work);
	rmdir(cgroup);
}

TEST_HARNESS_MAIN
