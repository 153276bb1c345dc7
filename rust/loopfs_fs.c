// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs filesystem plumbing: file_system_type, fs_context, superblock and
 * inodes. Everything loopfs decides is in loopfs_main.rs; this file only
 * does what the Rust bindings of Linux 6.12 cannot reach, following the
 * binderfs design (drivers/android/binderfs.c): every mount is a new
 * instance, user-namespace root may mount it.
 */

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>

#include "loopfs.h"

#define LOOPFS_SUPER_MAGIC 0x6c706673 /* "lpfs" */

struct loopfs_fs_context {
	u32 max;	/* 0: not given */
};

enum loopfs_param {
	OPT_MAX,
};

static const struct fs_parameter_spec loopfs_fs_parameters[] = {
	fsparam_u32("max", OPT_MAX),
	{}
};

static int loopfs_fs_context_parse_param(struct fs_context *fc,
					 struct fs_parameter *param)
{
	struct loopfs_fs_context *ctx = fc->fs_private;
	struct fs_parse_result result;
	int opt;

	opt = fs_parse(fc, loopfs_fs_parameters, param, &result);
	if (opt < 0)
		return opt;

	switch (opt) {
	case OPT_MAX:
		if (!rust_loopfs_max_valid(result.uint_32))
			return invalfc(fc, "Bad value for '%s'", param->key);
		ctx->max = result.uint_32;
		break;
	default:
		return invalfc(fc, "Unsupported parameter '%s'", param->key);
	}
	return 0;
}

static int loopfs_show_options(struct seq_file *seq, struct dentry *root)
{
	u32 max = rust_loopfs_instance_max(root->d_sb->s_fs_info);

	if (max)
		seq_printf(seq, ",max=%u", max);
	return 0;
}

static const struct super_operations loopfs_super_ops = {
	.statfs		= simple_statfs,
	.show_options	= loopfs_show_options,
};

static int loopfs_fill_super(struct super_block *sb, struct fs_context *fc)
{
	struct loopfs_fs_context *ctx = fc->fs_private;
	struct inode *root;
	kuid_t uid;
	kgid_t gid;

	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_magic = LOOPFS_SUPER_MAGIC;
	sb->s_op = &loopfs_super_ops;
	sb->s_time_gran = 1;

	sb->s_fs_info = rust_loopfs_instance_new(ctx->max);
	if (!sb->s_fs_info)
		return -ENOMEM;

	/* Everything in the instance belongs to root of the mounting userns. */
	uid = make_kuid(sb->s_user_ns, 0);
	gid = make_kgid(sb->s_user_ns, 0);
	if (!uid_valid(uid))
		uid = GLOBAL_ROOT_UID;
	if (!gid_valid(gid))
		gid = GLOBAL_ROOT_GID;

	root = new_inode(sb);
	if (!root)
		return -ENOMEM;
	root->i_ino = 1;
	root->i_uid = uid;
	root->i_gid = gid;
	root->i_mode = S_IFDIR | 0755;
	simple_inode_init_ts(root);
	root->i_op = &simple_dir_inode_operations;
	root->i_fop = &simple_dir_operations;
	set_nlink(root, 2);

	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	return 0;
}

static int loopfs_fs_context_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, loopfs_fill_super);
}

static int loopfs_fs_context_reconfigure(struct fs_context *fc)
{
	struct loopfs_fs_context *ctx = fc->fs_private;

	if (ctx->max)
		rust_loopfs_instance_set_max(fc->root->d_sb->s_fs_info, ctx->max);
	return 0;
}

static void loopfs_fs_context_free(struct fs_context *fc)
{
	kfree(fc->fs_private);
}

static const struct fs_context_operations loopfs_fs_context_ops = {
	.free		= loopfs_fs_context_free,
	.get_tree	= loopfs_fs_context_get_tree,
	.parse_param	= loopfs_fs_context_parse_param,
	.reconfigure	= loopfs_fs_context_reconfigure,
};

static int loopfs_init_fs_context(struct fs_context *fc)
{
	struct loopfs_fs_context *ctx;

	ctx = kzalloc(sizeof(*ctx), GFP_KERNEL);
	if (!ctx)
		return -ENOMEM;
	fc->fs_private = ctx;
	fc->ops = &loopfs_fs_context_ops;
	return 0;
}

/* Also reached when fill_super failed half-way. */
static void loopfs_kill_sb(struct super_block *sb)
{
	void *instance = sb->s_fs_info;

	kill_litter_super(sb);
	if (instance)
		rust_loopfs_instance_free(instance);
}

static struct file_system_type loopfs_fs_type = {
	.owner			= THIS_MODULE,
	.name			= "loop",
	.init_fs_context	= loopfs_init_fs_context,
	.parameters		= loopfs_fs_parameters,
	.kill_sb		= loopfs_kill_sb,
	.fs_flags		= FS_USERNS_MOUNT,
};

int loopfs_register_filesystem(void)
{
	return register_filesystem(&loopfs_fs_type);
}

void loopfs_unregister_filesystem(void)
{
	unregister_filesystem(&loopfs_fs_type);
}
