/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Cgroup device programs as plain BPF instructions: an allow list of
 * devices, loaded (optionally as a device guard) and attached to a cgroup.
 * Used by samples/devguard-run.c and the devguard kselftests.
 */
#ifndef _NSDEV_DEVGUARD_PROG_H
#define _NSDEV_DEVGUARD_PROG_H

#include <errno.h>
#include <linux/bpf.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nsdev_helpers.h"

/* A device the program allows: type 'c' or 'b'; minor -1 for any. */
struct devguard_rule {
	char type;
	unsigned int major;
	int minor;
};

#define DEVGUARD_MAX_RULES 64

static inline int devguard_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static inline struct bpf_insn devguard_insn(__u8 code, __u8 dst, __u8 src,
					    __s16 off, __s32 imm)
{
	struct bpf_insn insn = {
		.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm,
	};

	return insn;
}

/*
 * Builds the program: r2 = device type, r3 = major, r4 = minor; one block
 * per rule returning 1 on a match; 0 at the end. Returns the length.
 */
static inline int devguard_build(struct bpf_insn *insn,
				 const struct devguard_rule *rules, int n)
{
	int i = 0;

	insn[i++] = devguard_insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1,
				  offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	insn[i++] = devguard_insn(BPF_ALU64 | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
	insn[i++] = devguard_insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1,
				  offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	insn[i++] = devguard_insn(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1,
				  offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	for (int r = 0; r < n; r++) {
		int len = rules[r].minor < 0 ? 4 : 5;
		int type = rules[r].type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;

		insn[i++] = devguard_insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, len - 1, type);
		insn[i++] = devguard_insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_3, 0, len - 2,
					  rules[r].major);
		if (rules[r].minor >= 0)
			insn[i++] = devguard_insn(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, 2,
						  rules[r].minor);
		insn[i++] = devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 1);
		insn[i++] = devguard_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	}
	insn[i++] = devguard_insn(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
	insn[i++] = devguard_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return i;
}

/*
 * Loads a device program allowing rules[0..n). prog_flags may hold
 * BPF_F_CGROUP_DEVICE_GUARD; token_fd >= 0 loads through a BPF token.
 * Returns the program fd, or -1 with errno set.
 */
static inline int devguard_load(const struct devguard_rule *rules, int n,
				__u32 prog_flags, int token_fd)
{
	struct bpf_insn insn[6 + 5 * DEVGUARD_MAX_RULES];
	union bpf_attr attr;

	if (n > DEVGUARD_MAX_RULES) {
		errno = E2BIG;
		return -1;
	}
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.expected_attach_type = BPF_CGROUP_DEVICE;
	attr.insns = (__u64)(unsigned long)insn;
	attr.insn_cnt = devguard_build(insn, rules, n);
	attr.license = (__u64)(unsigned long)"GPL";
	attr.prog_flags = prog_flags;
	if (token_fd >= 0) {
		attr.prog_flags |= BPF_F_TOKEN_FD;
		attr.prog_token_fd = token_fd;
	}
	return devguard_bpf(BPF_PROG_LOAD, &attr);
}

/* Attaches a device program to the cgroup open at cgroup_fd. */
static inline int devguard_attach(int prog_fd, int cgroup_fd, __u32 flags)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cgroup_fd;
	attr.attach_bpf_fd = prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = flags;
	return devguard_bpf(BPF_PROG_ATTACH, &attr);
}

static inline int devguard_detach(int prog_fd, int cgroup_fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.target_fd = cgroup_fd;
	attr.attach_bpf_fd = prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	return devguard_bpf(BPF_PROG_DETACH, &attr);
}

/* A link of a device program to the cgroup open at cgroup_fd. */
static inline int devguard_link(int prog_fd, int cgroup_fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = prog_fd;
	attr.link_create.target_fd = cgroup_fd;
	attr.link_create.attach_type = BPF_CGROUP_DEVICE;
	return devguard_bpf(BPF_LINK_CREATE, &attr);
}

/* Puts the device program prog_fd into the link link_fd. */
static inline int devguard_link_update(int link_fd, int prog_fd)
{
	union bpf_attr attr;

	memset(&attr, 0, sizeof(attr));
	attr.link_update.link_fd = link_fd;
	attr.link_update.new_prog_fd = prog_fd;
	return devguard_bpf(BPF_LINK_UPDATE, &attr);
}

/*
 * Adds what a container needs to use loopfs: its loop-control nodes (char
 * "loopfs-control") and its disks (block "loopfs"). Returns the new count.
 */
static inline int devguard_add_loopfs(struct devguard_rule *rules, int n)
{
	int ctl = nsdev_proc_major("loopfs-control");
	int blk = nsdev_proc_major("loopfs");

	if (ctl > 0 && n < DEVGUARD_MAX_RULES)
		rules[n++] = (struct devguard_rule){ 'c', ctl, -1 };
	if (blk > 0 && n < DEVGUARD_MAX_RULES)
		rules[n++] = (struct devguard_rule){ 'b', blk, -1 };
	return n;
}

#endif /* _NSDEV_DEVGUARD_PROG_H */
