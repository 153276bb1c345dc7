// SPDX-License-Identifier: GPL-2.0
/*
 * BPF token (Linux 6.9+) under a host's device guard. The host delegates
 * prog_load of cgroup_device programs through a bpffs owned by the
 * container's user namespace. With a token the container loads a device
 * program of its own and attaches it below the guard: it can only narrow
 * what the guard allows, cannot be a guard, and the token is useless in a
 * sibling user namespace. Without the token the same load fails.
 */

#define _GNU_SOURCE
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>

#include "../nsdev_util.h"
#include "../../samples/devguard_prog.h"
#include "kselftest_harness.h"

static int token_create(int bpffs)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.token_create.bpffs_fd = bpffs;
	return devguard_bpf(BPF_TOKEN_CREATE, &attr);
}

struct ctx {
	int sock;
	const char *cgroup;	/* the container's cgroup, below the guard */
	char work[64];
};

static int node(const char *dir, int minor)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/n%d", dir, minor);
	return mknod(path, S_IFCHR | 0600, makedev(1, minor));
}

/*
 * Host side: receives the container's bpffs context, delegates prog_load of
 * cgroup_device programs, and nothing else, creates it, says 'y'.
 */
static int delegate_bpffs(int sock)
{
	char mask[32];
	int fs;

	if (nsdev_recv_fds(sock, &fs, 1))
		return -1;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_PROG_LOAD);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "delegate_cmds", mask, 0))
		return -1;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_PROG_TYPE_CGROUP_DEVICE);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "delegate_progs", mask, 0))
		return -1;
	snprintf(mask, sizeof(mask), "0x%llx", 1ULL << BPF_CGROUP_DEVICE);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "delegate_attachs", mask, 0) ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0))
		return -1;
	close(fs);
	return write(sock, "y", 1) == 1 ? 0 : -1;
}

/* Container side: a token from a bpffs the host delegated, or -1. */
static int delegated_token(int sock)
{
	int fs, mnt;
	char ok;

	fs = fsopen("bpf", FSOPEN_CLOEXEC);
	if (fs < 0 || nsdev_send_fds(sock, &fs, 1) || read(sock, &ok, 1) != 1 || ok != 'y')
		return -1;
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	if (mnt < 0)
		return -1;
	mnt = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return mnt < 0 ? -1 : token_create(mnt);
}

/* The container: user-namespace root of an unprivileged user. */
static int first_container(void *arg)
{
	struct devguard_rule only_null = { 'c', 1, 3 };
	struct ctx *c = arg;
	int fs, mnt, token, prog, cg, fds[2];
	char ok;

	CHILD_CHECK(mount(NULL, "/", NULL, MS_PRIVATE | MS_REC, NULL) == 0);
	CHILD_CHECK(mount("tmpfs", c->work, "tmpfs", 0, NULL) == 0);

	/* Without a token: no BPF for an unprivileged user. */
	CHILD_CHECK(devguard_load(&only_null, 1, 0, -1) < 0 && errno == EPERM);

	/* Nor can it make the bpffs for a token itself: that is the host's. */
	fs = fsopen("bpf", FSOPEN_CLOEXEC);
	CHILD_CHECK(fs >= 0);
	CHILD_CHECK(fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 && errno == EPERM);
	close(fs);

	/* A bpffs of its own user namespace, delegated by the host. */
	fs = fsopen("bpf", FSOPEN_CLOEXEC);
	CHILD_CHECK(fs >= 0);
	CHILD_CHECK(nsdev_send_fds(c->sock, &fs, 1) == 0);
	CHILD_CHECK(read(c->sock, &ok, 1) == 1 && ok == 'y');
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, 0);
	CHILD_CHECK(mnt >= 0);
	/* fsmount() gives an O_PATH fd; the token wants the bpffs root open. */
	mnt = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHILD_CHECK(mnt >= 0);
	token = token_create(mnt);
	CHILD_CHECK(token >= 0);

	/* Its own program: null only, where the host allows null and zero. */
	prog = devguard_load(&only_null, 1, 0, token);
	CHILD_CHECK(prog >= 0);
	/* It cannot make a guard, token or not. */
	CHILD_CHECK(devguard_load(&only_null, 1, BPF_F_CGROUP_DEVICE_GUARD, token) < 0 &&
		    errno == EPERM);
	cg = open(c->cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHILD_CHECK(cg >= 0 && devguard_attach(prog, cg, BPF_F_ALLOW_MULTI) == 0);
	CHILD_CHECK(node(c->work, 3) == 0);
	/* Allowed by the host's guard, denied by its own program. */
	CHILD_CHECK(node(c->work, 5) < 0 && errno == EPERM);

	/* Hand the token and the bpffs to a sibling. */
	fds[0] = token;
	fds[1] = mnt;
	CHILD_CHECK(nsdev_send_fds(c->sock, fds, 2) == 0);
	return 0;
}

/* A sibling container with the first one's token and bpffs. */
static int sibling(void *arg)
{
	struct devguard_rule only_null = { 'c', 1, 3 };
	struct ctx *c = arg;
	int fds[2];

	CHILD_CHECK(nsdev_recv_fds(c->sock, fds, 2) == 0);
	CHILD_CHECK(devguard_load(&only_null, 1, 0, fds[0]) < 0 && errno == EPERM);
	CHILD_CHECK(token_create(fds[1]) < 0 && errno == EPERM);
	return 0;
}

static int join_and_run(struct ctx *c, int (*fn)(void *))
{
	pid_t pid = fork();

	if (pid)
		return pid;
	CHILD_CHECK(nsdev_join_cgroup(c->cgroup) == 0);
	CHILD_CHECK(nsdev_become_userns_root() == 0);
	_exit(fn(c));
}

TEST(delegated_token_narrows_the_guard)
{
	struct devguard_rule host_allows[] = { { 'c', 1, 3 }, { 'c', 1, 5 } };
	char guarded[128], below[160];
	int sk[2], sk2[2], cg, guard, fds[2];
	struct ctx c, s;
	pid_t a, b;

	snprintf(guarded, sizeof(guarded), "/sys/fs/cgroup/token_test.%d", getpid());
	snprintf(below, sizeof(below), "%s/container", guarded);
	ASSERT_EQ(0, mkdir(guarded, 0755));
	ASSERT_EQ(0, mkdir(below, 0755));
	/* Delegated: the container owns its cgroup. */
	ASSERT_EQ(0, nsdev_delegate_cgroup(below, NSDEV_UID, NSDEV_GID));
	cg = open(guarded, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	guard = devguard_load(host_allows, 2, BPF_F_CGROUP_DEVICE_GUARD, -1);
	ASSERT_LE(0, guard);
	ASSERT_EQ(0, devguard_attach(guard, cg, BPF_F_ALLOW_MULTI));

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk));
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk2));
	c = (struct ctx){ .sock = sk[1], .cgroup = below };
	snprintf(c.work, sizeof(c.work), "/tmp/token_test.XXXXXX");
	ASSERT_NE(NULL, mkdtemp(c.work));
	ASSERT_EQ(0, chmod(c.work, 0755));
	s = (struct ctx){ .sock = sk2[1], .cgroup = below };
	snprintf(s.work, sizeof(s.work), "%s", c.work);

	a = join_and_run(&c, first_container);
	ASSERT_LT(0, a);
	ASSERT_EQ(0, delegate_bpffs(sk[0])) TH_LOG("delegating: %s", strerror(errno));

	ASSERT_EQ(0, nsdev_recv_fds(sk[0], fds, 2)) TH_LOG("the container failed");
	EXPECT_EQ(0, nsdev_wait(a));

	b = join_and_run(&s, sibling);
	ASSERT_LT(0, b);
	ASSERT_EQ(0, nsdev_send_fds(sk2[0], fds, 2));
	EXPECT_EQ(0, nsdev_wait(b));

	devguard_detach(guard, cg);
	rmdir(below);
	rmdir(guarded);
	rmdir(c.work);
}

/* Attaches prog to the cgroup at path with flags: 0, or errno. */
static int attach_flags_at(int prog, const char *path, __u32 flags)
{
	int cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret;

	if (cg < 0)
		return -1;
	ret = devguard_attach(prog, cg, flags) ? errno : 0;
	close(cg);
	return ret;
}

/* Attaches prog to the cgroup at path, multi: 0, or errno. */
static int attach_at(int prog, const char *path)
{
	return attach_flags_at(prog, path, BPF_F_ALLOW_MULTI);
}

struct cgroups {
	int sock;
	char guarded[128];	/* the host's, with the guard */
	char own[160];		/* delegated to the container, below the guard */
	char sibling[160];	/* delegated to a sibling of the same user */
	char other[160];	/* below the guard, not delegated */
	char unguarded[128];	/* delegated, but no guard above it */
};

/* Attaches a guard allowing rules to the cgroup at path, open in *cg. */
static int attach_guard(const char *path, const struct devguard_rule *rules, int n, int *cg)
{
	int guard;

	*cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*cg < 0)
		return -1;
	guard = devguard_load(rules, n, BPF_F_CGROUP_DEVICE_GUARD, -1);
	if (guard < 0 || devguard_attach(guard, *cg, BPF_F_ALLOW_MULTI))
		return -1;
	return guard;
}

/*
 * Starts fn(g) in a child that joins the cgroup at path and becomes root of
 * a user namespace of NSDEV_UID: a container, talking to the host over
 * g->sock, the other end of which, *host, the caller gets. Returns its pid.
 */
static pid_t start_container(struct cgroups *g, const char *path, int (*fn)(void *),
			     int *host)
{
	int sk[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk))
		return -1;
	g->sock = sk[1];
	pid = fork();
	if (pid == 0) {
		CHILD_CHECK(nsdev_join_cgroup(path) == 0);
		CHILD_CHECK(nsdev_become_userns_root() == 0);
		_exit(fn(g));
	}
	/* A container that dies ends the conversation. */
	close(sk[1]);
	*host = sk[0];
	return pid;
}

/*
 * Loads a device program that allows everything, after calling, with
 * BPF_FUNC_set_retval, bpf_set_retval(arg), or with BPF_FUNC_tail_call,
 * bpf_tail_call(ctx, the prog array arg, 0); with 0, nothing. The
 * verifier's log goes to log.
 */
static int load_allow_all(int helper, int arg, int token, char *log, size_t size)
{
	struct bpf_insn insn[8];
	union bpf_attr attr;
	int n = 0;

	if (helper == BPF_FUNC_set_retval) {
		insn[n++] = devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_1, 0, 0, arg);
	} else if (helper == BPF_FUNC_tail_call) {
		insn[n++] = devguard_insn(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_2,
					  BPF_PSEUDO_MAP_FD, 0, arg);
		insn[n++] = devguard_insn(0, 0, 0, 0, 0);
		insn[n++] = devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_3, 0, 0, 0);
	}
	if (helper)
		insn[n++] = devguard_insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
	insn[n++] = devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
	insn[n++] = devguard_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.expected_attach_type = BPF_CGROUP_DEVICE;
	attr.insns = (__u64)(unsigned long)insn;
	attr.insn_cnt = n;
	attr.license = (__u64)(unsigned long)"GPL";
	attr.log_buf = (__u64)(unsigned long)log;
	attr.log_size = size;
	attr.log_level = 1;
	log[0] = '\0';
	if (token >= 0) {
		attr.prog_flags = BPF_F_TOKEN_FD;
		attr.prog_token_fd = token;
	}
	return devguard_bpf(BPF_PROG_LOAD, &attr);
}

/* Whether the load was refused for the helper, by name. */
static bool refused(int prog, const char *log, const char *helper)
{
	char want[64];

	snprintf(want, sizeof(want), "cannot use helper %s#", helper);
	return prog < 0 && errno == EINVAL && strstr(log, want);
}

/*
 * The attack: with a delegated token, a deny-all device program, attached
 * above the container, would deny the host its devices. Only its own
 * cgroup takes it.
 */
static int attacker(void *arg)
{
	const struct cgroups *g = arg;
	int token, prog, root;

	token = delegated_token(g->sock);
	CHILD_CHECK(token >= 0);
	prog = devguard_load(NULL, 0, 0, token);
	CHILD_CHECK(prog >= 0);
	/* Not writable by it: the root cgroup, the guard's, an undelegated one. */
	CHILD_CHECK(attach_at(prog, "/sys/fs/cgroup") == EPERM);
	CHILD_CHECK(attach_at(prog, g->guarded) == EPERM);
	CHILD_CHECK(attach_at(prog, g->other) == EPERM);
	root = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHILD_CHECK(root >= 0 && devguard_link(prog, root) < 0 && errno == EPERM);
	/* Delegated to its user, but not below a guard. */
	CHILD_CHECK(attach_at(prog, g->unguarded) == EPERM);
	/* In its own cgroup namespace, its sibling's cgroup is out of reach. */
	CHILD_CHECK(unshare(CLONE_NEWCGROUP) == 0);
	CHILD_CHECK(attach_at(prog, g->sibling) == EPERM);
	/*
	 * Not without BPF_F_ALLOW_MULTI: a detach with no program fd, which
	 * anyone who can open the cgroup may ask for, takes the one program of
	 * a cgroup without the flag (a workload would free itself of what its
	 * container put there to narrow the guard).
	 */
	CHILD_CHECK(attach_flags_at(prog, g->own, 0) == EPERM);
	CHILD_CHECK(attach_flags_at(prog, g->own, BPF_F_ALLOW_OVERRIDE) == EPERM);
	/* Its own cgroup takes it, and then it denies only the container. */
	CHILD_CHECK(attach_at(prog, g->own) == 0);
	CHILD_CHECK(open("/dev/null", O_RDWR | O_CLOEXEC) < 0 && errno == EPERM);
	CHILD_CHECK(nsdev_send_fds(g->sock, &prog, 1) == 0);
	return 0;
}

TEST(token_program_stays_in_delegated_cgroups)
{
	struct devguard_rule host_allows[] = { { 'c', 1, 3 }, { 'c', 1, 5 } };
	int host, cg, root, guard, prog, plain, fd, link;
	static char log[65536];
	struct cgroups g;
	pid_t pid;

	snprintf(g.guarded, sizeof(g.guarded), "/sys/fs/cgroup/token_deleg.%d", getpid());
	snprintf(g.own, sizeof(g.own), "%s/own", g.guarded);
	snprintf(g.sibling, sizeof(g.sibling), "%s/sibling", g.guarded);
	snprintf(g.other, sizeof(g.other), "%s/other", g.guarded);
	snprintf(g.unguarded, sizeof(g.unguarded), "/sys/fs/cgroup/token_unguarded.%d", getpid());
	ASSERT_EQ(0, mkdir(g.guarded, 0755));
	ASSERT_EQ(0, mkdir(g.own, 0755));
	ASSERT_EQ(0, mkdir(g.sibling, 0755));
	ASSERT_EQ(0, mkdir(g.other, 0755));
	ASSERT_EQ(0, mkdir(g.unguarded, 0755));
	ASSERT_EQ(0, nsdev_delegate_cgroup(g.own, NSDEV_UID, NSDEV_GID));
	ASSERT_EQ(0, nsdev_delegate_cgroup(g.sibling, NSDEV_UID, NSDEV_GID));
	ASSERT_EQ(0, nsdev_delegate_cgroup(g.unguarded, NSDEV_UID, NSDEV_GID));
	guard = attach_guard(g.guarded, host_allows, 2, &cg);
	ASSERT_LE(0, guard) TH_LOG("guard: %s", strerror(errno));

	pid = start_container(&g, g.own, attacker, &host);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, delegate_bpffs(host)) TH_LOG("delegating: %s", strerror(errno));
	ASSERT_EQ(0, nsdev_recv_fds(host, &prog, 1)) TH_LOG("the container failed");
	EXPECT_EQ(0, nsdev_wait(pid));

	/* Host root still opens its devices. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	EXPECT_LE(0, fd);
	close(fd);
	/* Not even host root attaches a token-loaded program outside a guard. */
	EXPECT_EQ(EPERM, attach_at(prog, "/sys/fs/cgroup"));
	EXPECT_EQ(EPERM, attach_at(prog, g.unguarded));
	/*
	 * Nor anywhere else, a container's program passed to it (a broker
	 * attaching for containers): every cgroup is delegated to host root,
	 * the sibling's, below the guard, too.
	 */
	EXPECT_EQ(EPERM, attach_at(prog, g.sibling));
	EXPECT_EQ(EPERM, attach_at(prog, g.own));
	/* A program loaded without a token: today's rules. */
	plain = load_allow_all(0, 0, -1, log, sizeof(log));
	ASSERT_LE(0, plain) TH_LOG("load: %s %s", strerror(errno), log);
	root = open("/sys/fs/cgroup", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ASSERT_LE(0, root);
	EXPECT_EQ(0, devguard_attach(plain, root, BPF_F_ALLOW_MULTI));
	EXPECT_EQ(0, devguard_detach(plain, root));
	/*
	 * Nor does the token-loaded program go into a link there by an
	 * update, which has no cgroup fd to check the delegation on.
	 */
	link = devguard_link(plain, root);
	ASSERT_LE(0, link) TH_LOG("link: %s", strerror(errno));
	EXPECT_EQ(-1, devguard_link_update(link, prog));
	EXPECT_EQ(EPERM, errno);
	EXPECT_EQ(0, devguard_link_update(link, plain));
	close(link);

	devguard_detach(guard, cg);
	rmdir(g.own);
	rmdir(g.sibling);
	rmdir(g.other);
	rmdir(g.guarded);
	rmdir(g.unguarded);
}

/*
 * The attack: in the delegated cgroup that holds the guard, a program of
 * the container's runs after the guard; with bpf_set_retval(0) it would
 * undo the guard's denial of /dev/zero (and any host disk), with
 * bpf_set_retval(1) hand inode_permission() a positive value; with a tail
 * call it would reach a program that does either.
 */
static int undoer(void *arg)
{
	const struct cgroups *g = arg;
	int token, prog, fd, map;
	static char log[65536];

	token = delegated_token(g->sock);
	CHILD_CHECK(token >= 0);
	CHILD_CHECK(nsdev_recv_fds(g->sock, &map, 1) == 0);
	prog = load_allow_all(BPF_FUNC_set_retval, 0, token, log, sizeof(log));
	CHILD_CHECK(refused(prog, log, "bpf_set_retval"));
	prog = load_allow_all(BPF_FUNC_set_retval, 1, token, log, sizeof(log));
	CHILD_CHECK(refused(prog, log, "bpf_set_retval"));
	prog = load_allow_all(BPF_FUNC_tail_call, map, token, log, sizeof(log));
	CHILD_CHECK(refused(prog, log, "bpf_tail_call"));
	/* What it may attach there, after the guard, allows nothing more. */
	prog = load_allow_all(0, 0, token, log, sizeof(log));
	CHILD_CHECK(prog >= 0);
	CHILD_CHECK(attach_at(prog, g->guarded) == 0);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHILD_CHECK(fd >= 0);
	close(fd);
	CHILD_CHECK(open("/dev/zero", O_RDONLY | O_CLOEXEC) < 0 && errno == EPERM);
	CHILD_CHECK(nsdev_send_fds(g->sock, &prog, 1) == 0);
	return 0;
}

TEST(token_program_cannot_undo_the_guard)
{
	struct devguard_rule host_allows = { 'c', 1, 3 };
	int host, cg, guard, prog, plain, map;
	static char log[65536];
	union bpf_attr attr;
	struct cgroups g;
	pid_t pid;

	/* The guard on the very cgroup delegated to the container. */
	snprintf(g.guarded, sizeof(g.guarded), "/sys/fs/cgroup/token_undo.%d", getpid());
	ASSERT_EQ(0, mkdir(g.guarded, 0755));
	ASSERT_EQ(0, nsdev_delegate_cgroup(g.guarded, NSDEV_UID, NSDEV_GID));
	guard = attach_guard(g.guarded, &host_allows, 1, &cg);
	ASSERT_LE(0, guard) TH_LOG("guard: %s", strerror(errno));
	/* A prog array the host hands the container. */
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_PROG_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	map = devguard_bpf(BPF_MAP_CREATE, &attr);
	ASSERT_LE(0, map) TH_LOG("prog array: %s", strerror(errno));
	/* Without a token the same programs load: the helpers are there. */
	plain = load_allow_all(BPF_FUNC_set_retval, 0, -1, log, sizeof(log));
	EXPECT_LE(0, plain) TH_LOG("load: %s %s", strerror(errno), log);
	close(plain);
	plain = load_allow_all(BPF_FUNC_tail_call, map, -1, log, sizeof(log));
	EXPECT_LE(0, plain) TH_LOG("load: %s %s", strerror(errno), log);
	close(plain);

	pid = start_container(&g, g.guarded, undoer, &host);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, delegate_bpffs(host)) TH_LOG("delegating: %s", strerror(errno));
	ASSERT_EQ(0, nsdev_send_fds(host, &map, 1));
	ASSERT_EQ(0, nsdev_recv_fds(host, &prog, 1)) TH_LOG("the container failed");
	EXPECT_EQ(0, nsdev_wait(pid));

	devguard_detach(prog, cg);
	devguard_detach(guard, cg);
	close(map);
	rmdir(g.guarded);
}

/*
 * The attack: a token-loaded program attached to a cgroup of the container's
 * while the container removes that cgroup. The attach takes the cgroup
 * from its fd while it lives, the removal can run to its end before the
 * attach takes the cgroup lock, and the checks on the delegation and the
 * guard then looked at a dead cgroup (its cgroup.procs gone, its programs
 * freed): a NULL dereference with the cgroup lock held. Each attach must
 * succeed, or fail with ENOENT (gone before), ENODEV (gone during) or
 * EINVAL (attached to that cgroup already). The test races for RACE_MIN
 * seconds, then on until an attach has hit the window (ENODEV), for
 * RACE_MAX seconds at most: a run that never hit it shows nothing, and
 * fails.
 */
#define RACE_MIN 3
#define RACE_MAX 30

static bool within(const struct timespec *start, int seconds)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - start->tv_sec < seconds;
}

static int racer(void *arg)
{
	const struct cgroups *g = arg;
	int token, prog, cg, attached = 0, again = 0, gone = 0, dead = 0, made = 0;
	static char log[65536];
	struct timespec start, end;
	int *stop;	/* shared with the remover */
	pid_t remover;

	token = delegated_token(g->sock);
	CHILD_CHECK(token >= 0);
	prog = load_allow_all(0, 0, token, log, sizeof(log));
	CHILD_CHECK(prog >= 0);
	stop = mmap(NULL, sizeof(*stop), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHILD_CHECK(stop != MAP_FAILED);
	*stop = 0;
	clock_gettime(CLOCK_MONOTONIC, &start);
	remover = fork();
	CHILD_CHECK(remover >= 0);
	if (remover == 0) {
		/* Not on past the racer, should it fail. */
		CHILD_CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL) == 0);
		while (!__atomic_load_n(stop, __ATOMIC_RELAXED) && within(&start, RACE_MAX + 5)) {
			CHILD_CHECK(!mkdir(g->sibling, 0755) || errno == EEXIST);
			rmdir(g->sibling);
		}
		_exit(0);
	}
	while (within(&start, RACE_MIN) || (!dead && within(&start, RACE_MAX))) {
		cg = open(g->sibling, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg < 0)
			continue;
		made++;
		if (!devguard_attach(prog, cg, BPF_F_ALLOW_MULTI)) {
			attached++;
		} else if (errno == EINVAL) {
			again++;	/* attached to this one already */
		} else if (errno == ENOENT) {
			gone++;
		} else {
			CHILD_CHECK(errno == ENODEV);
			dead++;
		}
		close(cg);
	}
	__atomic_store_n(stop, 1, __ATOMIC_RELAXED);
	CHILD_CHECK(nsdev_wait(remover) == 0);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ksft_print_msg("%d attaches in %lds: %d attached, %d there already, cgroup gone %d, removed during the attach %d\n",
		       made, (long)(end.tv_sec - start.tv_sec), attached, again, gone, dead);
	/* The race was run: the cgroup was there to attach to... */
	CHILD_CHECK(made > 0);
	/* ...and an attach did find it removed under it. */
	if (!dead)
		ksft_print_msg("no attach hit the window in %ds\n", RACE_MAX);
	CHILD_CHECK(dead > 0);
	return 0;
}

/* Only for TEST_F_TIMEOUT: the race may take RACE_MAX seconds. */
FIXTURE(slow) {};
FIXTURE_SETUP(slow) {}
FIXTURE_TEARDOWN(slow) {}

TEST_F_TIMEOUT(slow, token_attach_racing_cgroup_removal, RACE_MAX + 30)
{
	struct devguard_rule host_allows = { 'c', 1, 3 };
	int host, cg, guard;
	struct cgroups g;
	pid_t pid;

	snprintf(g.guarded, sizeof(g.guarded), "/sys/fs/cgroup/token_race.%d", getpid());
	snprintf(g.own, sizeof(g.own), "%s/own", g.guarded);
	snprintf(g.sibling, sizeof(g.sibling), "%s/own/x", g.guarded);
	ASSERT_EQ(0, mkdir(g.guarded, 0755));
	ASSERT_EQ(0, mkdir(g.own, 0755));
	ASSERT_EQ(0, nsdev_delegate_cgroup(g.own, NSDEV_UID, NSDEV_GID));
	guard = attach_guard(g.guarded, &host_allows, 1, &cg);
	ASSERT_LE(0, guard) TH_LOG("guard: %s", strerror(errno));

	pid = start_container(&g, g.own, racer, &host);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, delegate_bpffs(host)) TH_LOG("delegating: %s", strerror(errno));
	EXPECT_EQ(0, nsdev_wait(pid));

	rmdir(g.sibling);
	devguard_detach(guard, cg);
	rmdir(g.own);
	rmdir(g.guarded);
}

TEST_HARNESS_MAIN
