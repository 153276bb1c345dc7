// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs filesystem plumbing: file_system_type, fs_context, superblock,
 * the loop-control node and the device nodes. Everything loopfs decides is
 * in loopfs_main.rs; this file only does what the Rust bindings of Linux
 * 6.12 cannot reach, following the binderfs design
 * (drivers/android/binderfs.c): every mount is a new instance, user-namespace
 * root may mount it, and the instance only ever holds its own nodes.
 */

#include <linux/blktrace_api.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/fsnotify.h>
#include <linux/hash.h>
#include <linux/namei.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/module.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>

#include "loopfs.h"

#define LOOPFS_SUPER_MAGIC 0x6c706673 /* "lpfs" */

static unsigned int max_devices = 256;
module_param(max_devices, uint, 0644);
MODULE_PARM_DESC(max_devices, "Most loop devices of all loopfs instances together");

static unsigned int max_devices_per_userns = 64;
module_param(max_devices_per_userns, uint, 0644);
MODULE_PARM_DESC(max_devices_per_userns,
		 "Most loop devices of the instances of one user namespace and its descendants");

static unsigned int max_devices_per_user = 64;
module_param(max_devices_per_user, uint, 0644);
MODULE_PARM_DESC(max_devices_per_user,
		 "Most loop devices of the instances of all user namespaces one host user other than root owns");

static unsigned int reserved_devices = 8;
module_param(reserved_devices, uint, 0644);
MODULE_PARM_DESC(reserved_devices,
		 "Loop devices of max_devices only instances of the initial user namespace may use");

u32 loopfs_max_devices(void)
{
	return READ_ONCE(max_devices);
}

u32 loopfs_max_devices_per_userns(void)
{
	return READ_ONCE(max_devices_per_userns);
}

u32 loopfs_max_devices_per_user(void)
{
	return READ_ONCE(max_devices_per_user);
}

u32 loopfs_reserved_devices(void)
{
	return READ_ONCE(reserved_devices);
}

/* The device number loop-control nodes carry; no cdev is behind it. */
static dev_t loopfs_ctl_devt;

static long loopfs_ctl_ioctl(struct file *file, unsigned int cmd,
			     unsigned long arg)
{
	return rust_loopfs_ctl_ioctl(file_inode(file)->i_sb->s_fs_info, cmd, arg);
}

static const struct file_operations loopfs_ctl_fops = {
	.owner		= THIS_MODULE,
	.open		= nonseekable_open,
	.unlocked_ioctl	= loopfs_ctl_ioctl,
	.compat_ioctl	= loopfs_ctl_ioctl,
	.llseek		= noop_llseek,
};

struct user_namespace *loopfs_get_user_ns(struct user_namespace *ns)
{
	return get_user_ns(ns);
}

void loopfs_put_user_ns(struct user_namespace *ns)
{
	put_user_ns(ns);
}

/*
 * Block nodes of an instance open through a wrapper of the block layer's
 * open: a node outlives its device when someone holds it (O_PATH, a bind
 * mount), and its number may by then belong to another disk. What opens must
 * be a disk or partition of the very device the node was made for, whose id
 * the inode keeps; else ENXIO. A node taken out of the instance loses the id
 * (0, which no device has), and its open stops before the block layer: the
 * open of whatever disk has its number now (its driver's open, an exclusive
 * claim) is not reached, but by an open racing with the removal.
 */
static const struct file_operations *loopfs_def_blk_fops;
static const struct file_operations *loopfs_node_fops;

/*
 * The tasks opening a disk through an instance's node, or asking the block
 * layer to open it through one (BLKRRPART), each for the length of that
 * call and for the device the node was made for: the disk's open
 * (loopfs_bdev_open()) tells them from the openers of other nodes of it,
 * such as the host's devtmpfs node.
 */
struct loopfs_node_opener {
	struct hlist_node node;
	struct task_struct *task;
	u64 id;
};

/*
 * Hashed by task: a disk's open looks only at the calls of its own task,
 * in one bucket, under that bucket's lock.
 */
#define LOOPFS_OPENER_BITS 6

static struct loopfs_opener_bucket {
	spinlock_t lock;		/* head */
	struct hlist_head head;
} loopfs_node_openers[1 << LOOPFS_OPENER_BITS];

static struct loopfs_opener_bucket *loopfs_opener_bucket(struct task_struct *t)
{
	return &loopfs_node_openers[hash_ptr(t, LOOPFS_OPENER_BITS)];
}

bool loopfs_opening_through_node(u64 id)
{
	struct loopfs_opener_bucket *b = loopfs_opener_bucket(current);
	struct loopfs_node_opener *o;
	bool found = false;

	spin_lock(&b->lock);
	hlist_for_each_entry(o, &b->head, node) {
		if (o->task == current && o->id == id) {
			found = true;
			break;
		}
	}
	spin_unlock(&b->lock);
	return found;
}

static void loopfs_node_opener_add(struct loopfs_node_opener *o)
{
	struct loopfs_opener_bucket *b = loopfs_opener_bucket(o->task);

	spin_lock(&b->lock);
	hlist_add_head(&o->node, &b->head);
	spin_unlock(&b->lock);
}

static void loopfs_node_opener_del(struct loopfs_node_opener *o)
{
	struct loopfs_opener_bucket *b = loopfs_opener_bucket(o->task);

	spin_lock(&b->lock);
	hlist_del(&o->node);
	spin_unlock(&b->lock);
}

static int loopfs_node_open(struct inode *inode, struct file *file)
{
	u64 id = (uintptr_t)READ_ONCE(inode->i_private);
	struct loopfs_node_opener me = { .task = current, .id = id };
	int ret;

	if (!id)
		return -ENXIO;
	loopfs_node_opener_add(&me);
	ret = loopfs_def_blk_fops->open(inode, file);
	loopfs_node_opener_del(&me);
	if (ret)
		return ret;
	if (!loopfs_bdev_has_id(I_BDEV(file->f_mapping->host), id)) {
		loopfs_def_blk_fops->release(inode, file);
		return -ENXIO;
	}
	return 0;
}

/*
 * blktrace (BLKTRACESETUP and the rest) checks no capability in 6.12: it
 * allocates relay buffers of the caller's choosing, per CPU and charged to
 * no one, and turns tracepoints on host-wide. Through an instance's nodes
 * it takes CAP_SYS_ADMIN in the initial namespace, as BLKPG and BLKRRPART
 * do.
 */
static bool loopfs_node_ioctl_denied(unsigned int cmd)
{
	switch (cmd) {
	case BLKTRACESETUP:
#ifdef CONFIG_COMPAT
	case BLKTRACESETUP32:
#endif
	case BLKTRACESTART:
	case BLKTRACESTOP:
	case BLKTRACETEARDOWN:
		return !capable(CAP_SYS_ADMIN);
	default:
		return false;
	}
}

/*
 * An ioctl through an instance's node: BLKRRPART opens the disk again
 * (disk_scan_partitions()), through the node as far as the disk's open is
 * concerned.
 */
static long loopfs_node_call_ioctl(struct file *file, unsigned int cmd,
				   unsigned long arg,
				   long (*ioctl)(struct file *, unsigned int,
						 unsigned long))
{
	struct loopfs_node_opener me = {
		.task = current,
		.id = (uintptr_t)READ_ONCE(file_inode(file)->i_private),
	};
	long ret;

	if (loopfs_node_ioctl_denied(cmd))
		return -EPERM;
	if (cmd != BLKRRPART)
		return ioctl(file, cmd, arg);
	loopfs_node_opener_add(&me);
	ret = ioctl(file, cmd, arg);
	loopfs_node_opener_del(&me);
	return ret;
}

static long loopfs_node_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	return loopfs_node_call_ioctl(file, cmd, arg,
				      loopfs_def_blk_fops->unlocked_ioctl);
}

#ifdef CONFIG_COMPAT
static long loopfs_node_compat_ioctl(struct file *file, unsigned int cmd,
				     unsigned long arg)
{
	return loopfs_node_call_ioctl(file, cmd, arg,
				      loopfs_def_blk_fops->compat_ioctl);
}
#endif

/*
 * The block layer's file operations (not exported), with that open and
 * those ioctls.
 */
static int loopfs_node_fops_init(void)
{
	struct inode *probe = kzalloc(sizeof(*probe), GFP_KERNEL);
	struct file_operations *fops;

	if (!probe)
		return -ENOMEM;
	init_special_inode(probe, S_IFBLK, 0);
	loopfs_def_blk_fops = probe->i_fop;
	kfree(probe);
	fops = kmemdup(loopfs_def_blk_fops, sizeof(*fops), GFP_KERNEL);
	if (!fops)
		return -ENOMEM;
	fops->owner = THIS_MODULE;
	fops->open = loopfs_node_open;
	fops->unlocked_ioctl = loopfs_node_ioctl;
#ifdef CONFIG_COMPAT
	fops->compat_ioctl = loopfs_node_compat_ioctl;
#endif
	loopfs_node_fops = fops;
	return 0;
}

static struct inode *loopfs_new_inode(struct super_block *sb, umode_t mode)
{
	struct inode *inode = new_inode(sb);
	kuid_t uid;
	kgid_t gid;

	if (!inode)
		return NULL;
	/* Everything in the instance belongs to root of the mounting userns. */
	uid = make_kuid(sb->s_user_ns, 0);
	gid = make_kgid(sb->s_user_ns, 0);
	inode->i_uid = uid_valid(uid) ? uid : GLOBAL_ROOT_UID;
	inode->i_gid = gid_valid(gid) ? gid : GLOBAL_ROOT_GID;
	inode->i_ino = get_next_ino();
	inode->i_mode = mode;
	simple_inode_init_ts(inode);
	return inode;
}

/*
 * Looks name up in the locked root with no permission check: the nodes are
 * loopfs's to add and remove, whoever's request that is and whatever mode
 * the root's owner gave it (a removal that failed a search permission check
 * would leave a node keeping its device id).
 */
static struct dentry *loopfs_lookup_locked(struct dentry *root,
					   const char *name)
{
	struct qstr q = QSTR_INIT(name, strlen(name));

	q.hash = full_name_hash(root, q.name, q.len);
	return lookup_one_qstr_excl(&q, root, 0);
}

/*
 * Creates the node name in the root of the instance: the loop-control
 * character device when devt is 0, else a block device node for the device
 * with this id.
 */
static int loopfs_add_node(struct super_block *sb, const char *name,
			   dev_t devt, u64 id)
{
	struct dentry *root = sb->s_root, *dentry;
	struct inode *inode;
	int ret = 0;

	inode = loopfs_new_inode(sb, 0);
	if (!inode)
		return -ENOMEM;
	if (devt) {
		init_special_inode(inode, S_IFBLK | 0600, devt);
		inode->i_fop = loopfs_node_fops;
		inode->i_private = (void *)(uintptr_t)id;
	} else {
		init_special_inode(inode, S_IFCHR | 0600, loopfs_ctl_devt);
		inode->i_fop = &loopfs_ctl_fops;
	}

	inode_lock(d_inode(root));
	dentry = loopfs_lookup_locked(root, name);
	if (IS_ERR(dentry)) {
		ret = PTR_ERR(dentry);
	} else if (d_really_is_positive(dentry)) {
		dput(dentry);
		ret = -EEXIST;
	} else {
		/* The lookup reference stays with the dentry until unlink. */
		d_instantiate(dentry, inode);
		fsnotify_create(d_inode(root), dentry);
	}
	inode_unlock(d_inode(root));
	if (ret)
		iput(inode);
	return ret;
}

int loopfs_fs_add_node(struct super_block *sb, const char *name, dev_t devt,
		       u64 id)
{
	return devt ? loopfs_add_node(sb, name, devt, id) : -EINVAL;
}

void loopfs_fs_remove_node(struct super_block *sb, const char *name)
{
	struct dentry *root = sb->s_root, *dentry;

	inode_lock(d_inode(root));
	dentry = loopfs_lookup_locked(root, name);
	if (!IS_ERR(dentry)) {
		if (d_really_is_positive(dentry)) {
			WRITE_ONCE(d_inode(dentry)->i_private, NULL);
			simple_unlink(d_inode(root), dentry);
			d_delete_notify(d_inode(root), dentry);
		}
		dput(dentry);
	}
	inode_unlock(d_inode(root));
}

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

	sb->s_blocksize = PAGE_SIZE;
	sb->s_blocksize_bits = PAGE_SHIFT;
	sb->s_magic = LOOPFS_SUPER_MAGIC;
	sb->s_op = &loopfs_super_ops;
	sb->s_time_gran = 1;
	/*
	 * Device nodes of an instance mounted in a user namespace must be
	 * usable there, as in binderfs. This is safe: nobody but loopfs creates
	 * nodes in the instance, and it only creates its own loop-control and
	 * the loop devices of this instance. MNT_NODEV still applies.
	 */
	sb->s_iflags &= ~SB_I_NODEV;
	sb->s_iflags |= SB_I_NOEXEC;

	sb->s_fs_info = rust_loopfs_instance_new(sb, get_user_ns(sb->s_user_ns),
						 ctx->max);
	if (!sb->s_fs_info)
		return -ENOMEM;

	root = loopfs_new_inode(sb, S_IFDIR | 0755);
	if (!root)
		return -ENOMEM;
	root->i_op = &simple_dir_inode_operations;
	root->i_fop = &simple_dir_operations;
	set_nlink(root, 2);

	sb->s_root = d_make_root(root);
	if (!sb->s_root)
		return -ENOMEM;
	return loopfs_add_node(sb, "loop-control", 0, 0);
}

static int loopfs_fs_context_get_tree(struct fs_context *fc)
{
	return get_tree_nodev(fc, loopfs_fill_super);
}

static int loopfs_fs_context_reconfigure(struct fs_context *fc)
{
	struct loopfs_fs_context *ctx = fc->fs_private;

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

	if (instance)
		rust_loopfs_instance_shutdown(instance);
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
	int ret, i;

	for (i = 0; i < ARRAY_SIZE(loopfs_node_openers); i++) {
		spin_lock_init(&loopfs_node_openers[i].lock);
		INIT_HLIST_HEAD(&loopfs_node_openers[i].head);
	}
	ret = loopfs_node_fops_init();
	if (ret)
		return ret;
	ret = alloc_chrdev_region(&loopfs_ctl_devt, 0, 1, "loopfs-control");
	if (ret)
		goto out_fops;
	ret = register_filesystem(&loopfs_fs_type);
	if (ret)
		goto out_chrdev;
	return 0;

out_chrdev:
	unregister_chrdev_region(loopfs_ctl_devt, 1);
out_fops:
	kfree(loopfs_node_fops);
	return ret;
}

void loopfs_unregister_filesystem(void)
{
	unregister_filesystem(&loopfs_fs_type);
	unregister_chrdev_region(loopfs_ctl_devt, 1);
	/* No node is left: each pins the module through the filesystem. */
	kfree(loopfs_node_fops);
}
