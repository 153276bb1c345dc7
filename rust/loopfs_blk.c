// SPDX-License-Identifier: GPL-2.0
/*
 * loopfs block device plumbing: the blk-mq tag set and gendisk, the
 * block_device_operations and blk_mq_ops tables, and the adapter that turns
 * a request into an iov_iter on the backing file. The Linux 6.12 Rust block
 * abstractions cannot add ioctls, run requests in process context or end a
 * request with an error; this file supplies those mechanisms and leaves
 * every decision to loopfs_main.rs.
 *
 * Each disk's private_data is a struct loopfs_disk holding a reference to
 * the Rust device, which loopfs_disk_destroy() hands back after
 * del_gendisk(): no callback of a deleted disk runs, so there is no
 * free_disk, and nothing of this module runs after the gendisk is gone.
 */

#include <linux/blk-cgroup.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/fs.h>
#include <linux/idr.h>
#include <linux/module.h>
#include <linux/memcontrol.h>
#include <linux/pagemap.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <uapi/linux/loop.h>

#include "loopfs.h"

#define LOOPFS_QUEUE_DEPTH 128

static int loopfs_major;
static DEFINE_IDA(loopfs_minor_ida);
/* Removals of the devices of unmounted instances (see device.rs). */
static struct workqueue_struct *loopfs_reap_wq;

struct loopfs_disk {
	struct blk_mq_tag_set tag_set;
	struct workqueue_struct *wq;
	void *dev;
	int minor;
};

/*
 * Per-request data: requests run from a workqueue, never in queue_rq, with
 * the submitter's io and memory cgroups (as loop.c's loop_handle_cmd()), so
 * that the backing file's I/O and page cache are charged to the submitter.
 */
struct loopfs_cmd {
	struct work_struct work;
	struct cgroup_subsys_state *blkcg_css;
	struct cgroup_subsys_state *memcg_css;	/* a reference */
};

static void loopfs_cmd_work(struct work_struct *work)
{
	struct loopfs_cmd *cmd = container_of(work, struct loopfs_cmd, work);
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	struct loopfs_disk *ld = rq->q->queuedata;
	struct mem_cgroup *old_memcg = NULL;
	int ret;

	if (cmd->blkcg_css)
		kthread_associate_blkcg(cmd->blkcg_css);
	if (cmd->memcg_css)
		old_memcg = set_active_memcg(mem_cgroup_from_css(cmd->memcg_css));
	ret = rust_loopfs_dev_do_request(ld->dev, rq);
	if (cmd->blkcg_css)
		kthread_associate_blkcg(NULL);
	if (cmd->memcg_css) {
		set_active_memcg(old_memcg);
		css_put(cmd->memcg_css);
	}
	blk_mq_end_request(rq, errno_to_blk_status(ret));
}

/* The first bio's cgroups, as loop.c's loop_queue_rq(). */
static void loopfs_cmd_set_cgroups(struct loopfs_cmd *cmd, struct request *rq)
{
	cmd->blkcg_css = NULL;
	cmd->memcg_css = NULL;
#ifdef CONFIG_BLK_CGROUP
	if (rq->bio)
		cmd->blkcg_css = bio_blkcg_css(rq->bio);
#ifdef CONFIG_MEMCG
	if (cmd->blkcg_css)
		cmd->memcg_css = cgroup_get_e_css(cmd->blkcg_css->cgroup,
						  &memory_cgrp_subsys);
#endif
#endif
}

static blk_status_t loopfs_queue_rq(struct blk_mq_hw_ctx *hctx,
				    const struct blk_mq_queue_data *bd)
{
	struct loopfs_cmd *cmd = blk_mq_rq_to_pdu(bd->rq);
	struct loopfs_disk *ld = hctx->queue->queuedata;

	blk_mq_start_request(bd->rq);
	loopfs_cmd_set_cgroups(cmd, bd->rq);
	queue_work(ld->wq, &cmd->work);
	return BLK_STS_OK;
}

static int loopfs_init_request(struct blk_mq_tag_set *set, struct request *rq,
			       unsigned int hctx_idx, unsigned int numa_node)
{
	struct loopfs_cmd *cmd = blk_mq_rq_to_pdu(rq);

	INIT_WORK(&cmd->work, loopfs_cmd_work);
	return 0;
}

static const struct blk_mq_ops loopfs_mq_ops = {
	.queue_rq	= loopfs_queue_rq,
	.init_request	= loopfs_init_request,
};

static int loopfs_bdev_open(struct gendisk *disk, blk_mode_t mode)
{
	struct loopfs_disk *ld = disk->private_data;

	return rust_loopfs_dev_open(ld->dev);
}

static void loopfs_bdev_release(struct gendisk *disk)
{
	struct loopfs_disk *ld = disk->private_data;

	if (disk_openers(disk) == 0)
		rust_loopfs_dev_last_close(ld->dev, disk);
}

static int loopfs_bdev_ioctl(struct block_device *bdev, blk_mode_t mode,
			     unsigned int cmd, unsigned long arg)
{
	struct loopfs_disk *ld = bdev->bd_disk->private_data;

	return rust_loopfs_dev_ioctl(ld->dev, bdev, mode, cmd, arg);
}

/*
 * The host's devtmpfs node is /dev/loopfs/<minor>, not /dev/<disk name>:
 * host tools that list or detach "all loop devices" (losetup -a, -D) take
 * each /sys/block/loop* for /dev/loop*, find no node there and leave the
 * containers' devices alone. Host root reaches them through the instance.
 */
static char *loopfs_devnode(struct gendisk *disk, umode_t *mode)
{
	return kasprintf(GFP_KERNEL, "loopfs/%d", disk->first_minor);
}

#ifdef CONFIG_COMPAT
static int loopfs_bdev_compat_ioctl(struct block_device *bdev, blk_mode_t mode,
				    unsigned int cmd, unsigned long arg)
{
	struct loopfs_disk *ld = bdev->bd_disk->private_data;

	return rust_loopfs_dev_compat_ioctl(ld->dev, bdev, mode, cmd, arg);
}

unsigned long loopfs_compat_ptr(unsigned long arg)
{
	return (unsigned long)compat_ptr(arg);
}
#endif

static const struct block_device_operations loopfs_bdev_ops = {
	.owner		= THIS_MODULE,
	.devnode	= loopfs_devnode,
	.open		= loopfs_bdev_open,
	.release	= loopfs_bdev_release,
	.ioctl		= loopfs_bdev_ioctl,
#ifdef CONFIG_COMPAT
	.compat_ioctl	= loopfs_bdev_compat_ioctl,
#endif
};

/*
 * The loop/ sysfs attributes util-linux reads, as loop.c has them: present
 * while a file is attached (util-linux takes them as "in use").
 */
static bool loopfs_info(struct device *d, struct loopfs_dev_info *info)
{
	struct loopfs_disk *ld = dev_to_disk(d)->private_data;

	rust_loopfs_dev_info(ld->dev, info);
	if (!info->file)
		return false;
	fput(info->file);
	info->file = NULL;
	return true;
}

static ssize_t backing_file_show(struct device *d,
				 struct device_attribute *attr, char *buf)
{
	struct loopfs_disk *ld = dev_to_disk(d)->private_data;
	struct loopfs_dev_info info;
	ssize_t ret;
	char *p;

	/* The path is the instance's business (see rust_loopfs_dev_open()). */
	if (!rust_loopfs_dev_visible(ld->dev))
		return -EACCES;
	rust_loopfs_dev_info(ld->dev, &info);
	if (!info.file)
		return -ENXIO;
	p = file_path(info.file, buf, PAGE_SIZE - 1);
	fput(info.file);
	if (IS_ERR(p))
		return PTR_ERR(p);
	ret = strlen(p);
	memmove(buf, p, ret);
	buf[ret++] = '\n';
	buf[ret] = 0;
	return ret;
}
static DEVICE_ATTR_RO(backing_file);

#define LOOPFS_ATTR(_name, _value)					\
static ssize_t _name##_show(struct device *d,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct loopfs_dev_info info;					\
									\
	if (!loopfs_info(d, &info))					\
		return -ENXIO;						\
	return sysfs_emit(buf, "%llu\n", (unsigned long long)(_value));	\
}									\
static DEVICE_ATTR_RO(_name)

LOOPFS_ATTR(offset, info.offset);
LOOPFS_ATTR(sizelimit, info.sizelimit);
LOOPFS_ATTR(autoclear, !!(info.flags & LO_FLAGS_AUTOCLEAR));
LOOPFS_ATTR(partscan, !!(info.flags & LO_FLAGS_PARTSCAN));
LOOPFS_ATTR(dio, !!(info.flags & LO_FLAGS_DIRECT_IO));

static struct attribute *loopfs_attrs[] = {
	&dev_attr_backing_file.attr,
	&dev_attr_offset.attr,
	&dev_attr_sizelimit.attr,
	&dev_attr_autoclear.attr,
	&dev_attr_partscan.attr,
	&dev_attr_dio.attr,
	NULL,
};

static const struct attribute_group loopfs_attr_group = {
	.name = "loop",
	.attrs = loopfs_attrs,
};

int loopfs_disk_sysfs_add(struct gendisk *disk)
{
	return sysfs_create_group(&disk_to_dev(disk)->kobj, &loopfs_attr_group);
}

void loopfs_disk_sysfs_remove(struct gendisk *disk)
{
	sysfs_remove_group(&disk_to_dev(disk)->kobj, &loopfs_attr_group);
}

struct gendisk *loopfs_disk_create(void *dev)
{
	struct queue_limits lim = {
		/* As loop.c: the historic block max_sectors cap. */
		.max_hw_sectors = 2560u,
	};
	struct loopfs_disk *ld;
	struct gendisk *disk;
	int err;

	ld = kzalloc(sizeof(*ld), GFP_KERNEL);
	if (!ld)
		return ERR_PTR(-ENOMEM);

	ld->minor = ida_alloc_max(&loopfs_minor_ida, MINORMASK, GFP_KERNEL);
	if (ld->minor < 0) {
		err = ld->minor;
		goto out_free;
	}

	ld->tag_set.ops = &loopfs_mq_ops;
	ld->tag_set.nr_hw_queues = 1;
	ld->tag_set.queue_depth = LOOPFS_QUEUE_DEPTH;
	ld->tag_set.numa_node = NUMA_NO_NODE;
	ld->tag_set.cmd_size = sizeof(struct loopfs_cmd);
	ld->tag_set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_STACKING |
		BLK_MQ_F_NO_SCHED_BY_DEFAULT;
	ld->tag_set.driver_data = ld;
	err = blk_mq_alloc_tag_set(&ld->tag_set);
	if (err)
		goto out_ida;

	disk = blk_mq_alloc_disk(&ld->tag_set, &lim, ld);
	if (IS_ERR(disk)) {
		err = PTR_ERR(disk);
		goto out_tags;
	}

	ld->wq = alloc_workqueue("loopfs%d", WQ_UNBOUND | WQ_FREEZABLE, 0,
				 ld->minor);
	if (!ld->wq) {
		err = -ENOMEM;
		goto out_disk;
	}

	/* Partitions are scanned only when a device asks for it. */
	set_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
	disk->major = loopfs_major;
	disk->first_minor = ld->minor;
	disk->minors = 1;
	disk->fops = &loopfs_bdev_ops;
	disk->private_data = ld;
	disk->events = DISK_EVENT_MEDIA_CHANGE;
	disk->event_flags = DISK_EVENT_FLAG_UEVENT;
	/*
	 * Globally unique, and "loop*": util-linux before 2.39 refuses devices
	 * whose sysfs name does not start with "loop".
	 */
	snprintf(disk->disk_name, DISK_NAME_LEN, "loopfs%d", ld->minor);

	ld->dev = dev;
	err = add_disk(disk);
	if (err)
		goto out_wq;
	/*
	 * The instance makes the nodes, nothing on the host needs the events:
	 * after the add of the empty disk, no uevent reaches the host's udev,
	 * which would otherwise probe data the container controls (blkid,
	 * RAID/LVM auto-assembly, by-uuid links). Partitions inherit this for
	 * their add; removals, which carry no data, are still announced.
	 */
	dev_set_uevent_suppress(disk_to_dev(disk), 1);
	return disk;

out_wq:
	destroy_workqueue(ld->wq);
out_disk:
	put_disk(disk);
out_tags:
	blk_mq_free_tag_set(&ld->tag_set);
out_ida:
	ida_free(&loopfs_minor_ida, ld->minor);
out_free:
	kfree(ld);
	return ERR_PTR(err);
}

/*
 * Deletes the disk and returns the device reference it held. After
 * del_gendisk() no callback runs: the caller made sure nobody has the disk
 * open (under open_mutex), the queue is drained and torn down, and the sysfs
 * attributes are gone with their readers.
 */
void *loopfs_disk_destroy(struct gendisk *disk)
{
	struct loopfs_disk *ld = disk->private_data;
	void *dev = ld->dev;

	/* The host saw the add: let it see the remove. */
	dev_set_uevent_suppress(disk_to_dev(disk), 0);
	del_gendisk(disk);
	destroy_workqueue(ld->wq);
	blk_mq_free_tag_set(&ld->tag_set);
	ida_free(&loopfs_minor_ida, ld->minor);
	put_disk(disk);
	kfree(ld);
	return dev;
}

void loopfs_disk_get(struct gendisk *disk)
{
	get_device(disk_to_dev(disk));
}

void loopfs_disk_put(struct gendisk *disk)
{
	put_disk(disk);
}

void loopfs_disk_lock_open(struct gendisk *disk)
{
	mutex_lock(&disk->open_mutex);
}

void loopfs_disk_unlock_open(struct gendisk *disk)
{
	mutex_unlock(&disk->open_mutex);
}

struct gendisk *loopfs_bdev_disk(struct block_device *bdev)
{
	return bdev->bd_disk;
}

/* Lockdep-aware mutex calls: macros in some configurations. */
void loopfs_mutex_lock(struct mutex *lock)
{
	mutex_lock(lock);
}

int loopfs_mutex_lock_killable(struct mutex *lock)
{
	return mutex_lock_killable(lock);
}

void loopfs_mutex_unlock(struct mutex *lock)
{
	mutex_unlock(lock);
}

/* Whether file is a loopfs disk or one of its partitions, of any instance. */
bool loopfs_file_is_loopfs_bdev(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	return S_ISBLK(inode->i_mode) &&
		I_BDEV(inode)->bd_disk->fops == &loopfs_bdev_ops;
}

/*
 * Whether bdev, which the caller holds open, is a disk or partition of the
 * loopfs device with this id.
 */
bool loopfs_bdev_has_id(struct block_device *bdev, u64 id)
{
	struct gendisk *disk = bdev->bd_disk;
	struct loopfs_disk *ld = disk->private_data;

	return disk->fops == &loopfs_bdev_ops && rust_loopfs_dev_id(ld->dev) == id;
}

/*
 * The inode a backing file's data is on (below overlayfs), and whether its
 * filesystem was mounted by an untrusted user (FUSE in a user namespace):
 * I/O there may wait on that user for ever.
 */
static struct inode *loopfs_file_real_inode(struct file *file)
{
	return d_real_inode(file->f_path.dentry);
}

bool loopfs_file_untrusted(struct file *file)
{
	struct super_block *sb = loopfs_file_real_inode(file)->i_sb;

	return sb->s_iflags & SB_I_UNTRUSTED_MOUNTER;
}

dev_t loopfs_disk_devt(struct gendisk *disk)
{
	return disk_devt(disk);
}

struct request_queue *loopfs_disk_queue(struct gendisk *disk)
{
	return disk->queue;
}

int loopfs_disk_openers(struct gendisk *disk)
{
	return disk_openers(disk);
}

int loopfs_disk_set_limits(struct gendisk *disk, unsigned int bsize,
			   u32 max_discard_sectors, u32 discard_granularity,
			   bool write_cache, bool rotational)
{
	struct queue_limits lim = queue_limits_start_update(disk->queue);

	lim.logical_block_size = bsize;
	lim.physical_block_size = bsize;
	lim.io_min = bsize;
	lim.features &= ~(BLK_FEAT_WRITE_CACHE | BLK_FEAT_ROTATIONAL);
	if (write_cache)
		lim.features |= BLK_FEAT_WRITE_CACHE;
	if (rotational)
		lim.features |= BLK_FEAT_ROTATIONAL;
	lim.max_hw_discard_sectors = max_discard_sectors;
	lim.max_write_zeroes_sectors = max_discard_sectors;
	lim.discard_granularity = max_discard_sectors ? discard_granularity : 0;
	return queue_limits_commit_update(disk->queue, &lim);
}

int loopfs_disk_reset_block_size(struct gendisk *disk)
{
	struct queue_limits lim = queue_limits_start_update(disk->queue);

	lim.logical_block_size = SECTOR_SIZE;
	lim.physical_block_size = SECTOR_SIZE;
	lim.io_min = SECTOR_SIZE;
	return queue_limits_commit_update(disk->queue, &lim);
}

/* Stops offering write-zeroes or discard (loop.c's loop_clear_limits()). */
void loopfs_disk_disable(struct gendisk *disk, bool write_zeroes)
{
	struct queue_limits lim = queue_limits_start_update(disk->queue);

	if (write_zeroes) {
		lim.max_write_zeroes_sectors = 0;
	} else {
		lim.max_hw_discard_sectors = 0;
		lim.discard_granularity = 0;
	}
	queue_limits_commit_update(disk->queue, &lim);
}

struct gendisk *loopfs_rq_disk(struct request *rq)
{
	return rq->q->disk;
}

unsigned int loopfs_disk_block_size(struct gendisk *disk)
{
	return queue_logical_block_size(disk->queue);
}

void loopfs_disk_set_partscan(struct gendisk *disk, bool on)
{
	if (on)
		clear_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
	else
		set_bit(GD_SUPPRESS_PART_SCAN, &disk->state);
}

int loopfs_disk_rescan(struct gendisk *disk, bool locked)
{
	int ret;

	if (locked)
		return bdev_disk_changed(disk, false);
	mutex_lock(&disk->open_mutex);
	ret = bdev_disk_changed(disk, false);
	mutex_unlock(&disk->open_mutex);
	return ret;
}

/*
 * Fills devts[i] with the device number of partition i + 1, or 0, for the
 * first max partitions of disk.
 */
void loopfs_disk_partitions(struct gendisk *disk, dev_t *devts,
			    unsigned int max)
{
	struct block_device *part;
	unsigned long idx;

	memset(devts, 0, max * sizeof(*devts));
	rcu_read_lock();
	xa_for_each_start(&disk->part_tbl, idx, part, 1) {
		if (idx > max)
			break;
		devts[idx - 1] = part->bd_dev;
	}
	rcu_read_unlock();
}

void loopfs_disk_uevent_change(struct gendisk *disk)
{
	kobject_uevent(&disk_to_dev(disk)->kobj, KOBJ_CHANGE);
}

/* What a request asks for: its operation, byte position and length. */
void loopfs_rq_info(struct request *rq, u32 *op, u64 *pos, u32 *bytes,
		    bool *nounmap)
{
	*op = req_op(rq);
	*pos = (u64)blk_rq_pos(rq) << SECTOR_SHIFT;
	*bytes = blk_rq_bytes(rq);
	*nounmap = rq->cmd_flags & REQ_NOUNMAP;
}

/*
 * Reads or writes the data of a READ or WRITE request from or to file at
 * pos, synchronously, with O_DIRECT semantics when direct is set. Returns
 * the bytes transferred or a negative errno.
 */
ssize_t loopfs_rq_rw(struct request *rq, struct file *file, loff_t pos,
		     bool write, bool direct)
{
	struct bio_vec tmp, *bvec, *copy = NULL;
	struct req_iterator rq_iter;
	struct iov_iter iter;
	struct kiocb kiocb;
	unsigned int offset = 0;
	int nr_bvec = 0;
	ssize_t ret;

	rq_for_each_bvec(tmp, rq, rq_iter)
		nr_bvec++;
	if (rq->bio != rq->biotail) {
		/*
		 * Several bios, possibly split mid-bvec: gather their bvecs, as
		 * loop.c does.
		 */
		copy = kmalloc_array(nr_bvec, sizeof(*copy), GFP_NOIO);
		if (!copy)
			return -ENOMEM;
		bvec = copy;
		rq_for_each_bvec(tmp, rq, rq_iter) {
			*bvec = tmp;
			bvec++;
		}
		bvec = copy;
	} else {
		/* One bio: iterate its own bvecs from where it starts. */
		offset = rq->bio->bi_iter.bi_bvec_done;
		bvec = __bvec_iter_bvec(rq->bio->bi_io_vec, rq->bio->bi_iter);
	}

	iov_iter_bvec(&iter, write ? ITER_SOURCE : ITER_DEST, bvec, nr_bvec,
		      blk_rq_bytes(rq));
	iter.iov_offset = offset;
	init_sync_kiocb(&kiocb, file);
	kiocb.ki_pos = pos;
	kiocb.ki_ioprio = req_get_ioprio(rq);
	if (direct)
		kiocb.ki_flags |= IOCB_DIRECT;

	if (write) {
		kiocb.ki_flags |= IOCB_WRITE;
		file_start_write(file);
		ret = file->f_op->write_iter(&kiocb, &iter);
		file_end_write(file);
	} else {
		ret = file->f_op->read_iter(&kiocb, &iter);
	}
	kfree(copy);
	return ret;
}

/* Zeroes the part of a READ request past the first done bytes. */
void loopfs_rq_zero_from(struct request *rq, u32 done)
{
	struct req_iterator iter;
	struct bio_vec bv;
	u32 at = 0;

	rq_for_each_segment(bv, rq, iter) {
		if (at + bv.bv_len > done) {
			u32 skip = done > at ? done - at : 0;

			memzero_bvec(&(struct bio_vec){
				.bv_page = bv.bv_page,
				.bv_offset = bv.bv_offset + skip,
				.bv_len = bv.bv_len - skip });
		}
		at += bv.bv_len;
	}
}

/* Backing file helpers: static inlines the Rust side cannot call. */
struct file *loopfs_get_file(struct file *file)
{
	return get_file(file);
}

s64 loopfs_file_size(struct file *file)
{
	return i_size_read(file->f_mapping->host);
}

/* Whether the device under file, if any, is rotational (as loop.c). */
bool loopfs_file_bdev_rotational(struct file *file)
{
	struct inode *inode = file->f_mapping->host;
	struct block_device *bdev = NULL;

	if (S_ISBLK(inode->i_mode))
		bdev = I_BDEV(inode);
	else if (inode->i_sb->s_bdev)
		bdev = inode->i_sb->s_bdev;
	return bdev && !bdev_nonrot(bdev);
}

/* Logical block size of the device under file, 0 if there is none. */
unsigned int loopfs_file_bdev_block_size(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	if (S_ISBLK(inode->i_mode))
		return bdev_logical_block_size(I_BDEV(inode));
	if (inode->i_sb->s_bdev)
		return bdev_logical_block_size(inode->i_sb->s_bdev);
	return 0;
}

/*
 * As loop.c: page cache allocations for the backing file must not recurse
 * into I/O or filesystems, which could wait on this very device.
 */
gfp_t loopfs_file_set_nofs(struct file *file)
{
	gfp_t old = mapping_gfp_mask(file->f_mapping);

	mapping_set_gfp_mask(file->f_mapping, old & ~(__GFP_IO | __GFP_FS));
	return old;
}

void loopfs_file_restore_gfp(struct file *file, gfp_t gfp)
{
	mapping_set_gfp_mask(file->f_mapping, gfp);
}

u64 loopfs_file_magic(struct file *file)
{
	return loopfs_file_real_inode(file)->i_sb->s_magic;
}

bool loopfs_current_user_ns_is(struct user_namespace *ns)
{
	return current_user_ns() == ns;
}

/* The current task's credentials and file size limit, for backing I/O. */
const struct cred *loopfs_get_current_cred(void)
{
	return get_current_cred();
}

void loopfs_put_cred(const struct cred *cred)
{
	put_cred(cred);
}

u64 loopfs_current_fsize_limit(void)
{
	return rlimit(RLIMIT_FSIZE);
}

struct workqueue_struct *loopfs_reap_queue(void)
{
	return loopfs_reap_wq;
}

int loopfs_blk_init(void)
{
	loopfs_reap_wq = alloc_workqueue("loopfs_reap", 0, 0);
	if (!loopfs_reap_wq)
		return -ENOMEM;
	loopfs_major = register_blkdev(0, "loopfs");
	if (loopfs_major < 0) {
		destroy_workqueue(loopfs_reap_wq);
		return loopfs_major;
	}
	return 0;
}

/* Runs what is queued for removal and takes the queue away. */
void loopfs_blk_drain(void)
{
	destroy_workqueue(loopfs_reap_wq);
	loopfs_reap_wq = NULL;
}

void loopfs_blk_exit(void)
{
	if (loopfs_reap_wq)
		destroy_workqueue(loopfs_reap_wq);
	unregister_blkdev(loopfs_major, "loopfs");
	ida_destroy(&loopfs_minor_ida);
}
