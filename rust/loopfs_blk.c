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

#include <linux/bitops.h>
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
#include <linux/sched/task_stack.h>
#include <linux/uio.h>
#include <linux/workqueue.h>
#include <uapi/linux/loop.h>

#include "loopfs.h"

#define LOOPFS_QUEUE_DEPTH 128

static int loopfs_major;
static DEFINE_IDA(loopfs_minor_ida);
/* Removals of the devices of unmounted instances (see device.rs). */
static struct workqueue_struct *loopfs_reap_wq;

/*
 * A worker's requests are served by at most LOOPFS_DRAINERS work items at a
 * time: one while what waits is small (4 KiB random I/O pays a wakeup per
 * hand-off), a second when LOOPFS_SPREAD_BYTES or more wait (large requests,
 * where a second CPU doubles the throughput of a RAM-backed file). Writes
 * through the backing file's page cache take its lock (i_rwsem), which the
 * filesystem holds for the whole copy: a second work item would spin on it
 * for as long as the first writes, taking the CPU from the writeback and the
 * submitter. So one work item writes through the cache at a time
 * (loopfs_worker.writing): another that finds such a write first in the
 * list leaves it there and stops, and the writer, which drains the list
 * until it is empty, serves it next, in order. No second one starts while
 * one writes.
 */
#define LOOPFS_DRAINERS 2
#define LOOPFS_SPREAD_BYTES (256 << 10)

struct loopfs_worker;

struct loopfs_drainer {
	struct work_struct work;
	struct loopfs_worker *w;
};

/*
 * The requests of one io cgroup on a disk (loop.c's loop_worker): one
 * cgroup's throttled I/O does not hold up another's. A worker exists while
 * it has requests; the disk's own serves those without a cgroup and those
 * for which no worker could be allocated.
 */
struct loopfs_worker {
	struct list_head node;		/* in loopfs_disk.workers */
	struct list_head cmds;
	unsigned int nr_cmds;
	unsigned long bytes;		/* of the cmds */
	unsigned long active;		/* bit i: drainers[i] queued or running */
	struct cgroup_subsys_state *blkcg_css;	/* a reference, or NULL */
	struct loopfs_disk *ld;
	struct loopfs_drainer drainers[LOOPFS_DRAINERS];
	bool writing;			/* a drainer writes through the cache */
};

struct loopfs_disk {
	struct blk_mq_tag_set tag_set;
	struct workqueue_struct *wq;
	spinlock_t lock;		/* workers, their cmds and state */
	struct list_head workers;
	struct loopfs_worker root;
	void *dev;
	int minor;
	bool buffered;			/* see loopfs_disk_set_buffered() */
};

/*
 * Per-request data. A request runs with the submitter's io and memory
 * cgroups, as loop.c's loop_handle_cmd(), so that the backing file's I/O and
 * page cache are charged to the submitter: in queue_rq() when the submitter
 * is the task whose cgroups those are, else from its cgroup's worker, which
 * takes them on.
 */
struct loopfs_cmd {
	struct list_head node;		/* in loopfs_worker.cmds */
	struct cgroup_subsys_state *blkcg_css;
	struct cgroup_subsys_state *memcg_css;	/* a reference */
	/* Asynchronous direct I/O (loopfs_rq_aio()). */
	struct kiocb iocb;
	struct bio_vec *bvec;		/* a copy, or NULL */
	atomic_t ref;
	long ret;
	bool nowait;
};

static void loopfs_cmd_end(struct loopfs_cmd *cmd, int ret)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);

	if (cmd->memcg_css)
		css_put(cmd->memcg_css);
	blk_mq_end_request(rq, errno_to_blk_status(ret));
}

/*
 * Serves a request in its memory cgroup: with nowait, from queue_rq(), whose
 * task is in its io cgroup already; else from a worker, which takes that on.
 */
static int loopfs_cmd_serve(struct loopfs_cmd *cmd, bool nowait)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	struct loopfs_disk *ld = rq->q->queuedata;
	struct cgroup_subsys_state *blkcg_css = nowait ? NULL : cmd->blkcg_css;
	/*
	 * Read before the serve: it may end the request, which is then
	 * reused, and put the request's reference while the memory cgroup
	 * is still this task's active one. So the serve holds its own.
	 */
	struct cgroup_subsys_state *memcg_css = cmd->memcg_css;
	struct mem_cgroup *old_memcg = NULL;
	unsigned int noio;
	int ret;

	if (blkcg_css)
		kthread_associate_blkcg(blkcg_css);
	if (memcg_css) {
		css_get(memcg_css);
		old_memcg = set_active_memcg(mem_cgroup_from_css(memcg_css));
	}
	/*
	 * As loop.c's worker: no allocation for the backing I/O may recurse
	 * into reclaim's I/O, which could wait on this very device (swap).
	 */
	noio = memalloc_noio_save();
	ret = rust_loopfs_dev_serve(ld->dev, rq, nowait);
	memalloc_noio_restore(noio);
	if (memcg_css) {
		set_active_memcg(old_memcg);
		css_put(memcg_css);
	}
	if (blkcg_css)
		kthread_associate_blkcg(NULL);
	return ret;
}

/* Serves a request from a worker, in the request's cgroups. */
static void loopfs_cmd_run(struct loopfs_cmd *cmd)
{
	int ret = loopfs_cmd_serve(cmd, false);

	if (ret != LOOPFS_RQ_QUEUED)
		loopfs_cmd_end(cmd, ret);
}

/*
 * Whether a request writes through the backing file's page cache. The
 * device's mode is read without a lock: it only decides who serves a write.
 */
static bool loopfs_cmd_writes_cached(struct loopfs_disk *ld,
				     struct loopfs_cmd *cmd)
{
	return req_op(blk_mq_rq_from_pdu(cmd)) == REQ_OP_WRITE &&
	       READ_ONCE(ld->buffered);
}

/*
 * A drainer serves its worker's requests until there are none. Only the
 * last to stop may free the worker: it is unlisted first, under the lock,
 * so that no request can reach it afterwards.
 */
static void loopfs_drainer_fn(struct work_struct *work)
{
	struct loopfs_drainer *d = container_of(work, struct loopfs_drainer, work);
	struct loopfs_worker *w = d->w;
	struct loopfs_disk *ld = w->ld;
	unsigned int orig_flags = current->flags;
	struct loopfs_cmd *cmd;
	bool gone;

	/*
	 * As loop.c's loop_process_work(): the worker writes back another
	 * disk's data, so only the backing file's disk's dirty limits throttle
	 * it (balance_dirty_pages()).
	 */
	current->flags |= PF_LOCAL_THROTTLE;
	spin_lock_irq(&ld->lock);
	while ((cmd = list_first_entry_or_null(&w->cmds, struct loopfs_cmd,
					       node))) {
		bool writes = loopfs_cmd_writes_cached(ld, cmd);

		if (writes) {
			/* Left first in the list, to the drainer writing. */
			if (w->writing)
				break;
			w->writing = true;
		}
		list_del(&cmd->node);
		w->nr_cmds--;
		w->bytes -= blk_rq_bytes(blk_mq_rq_from_pdu(cmd));
		spin_unlock_irq(&ld->lock);
		loopfs_cmd_run(cmd);
		cond_resched();
		spin_lock_irq(&ld->lock);
		if (writes)
			w->writing = false;
	}
	w->active &= ~BIT(d - w->drainers);
	gone = !w->active && w != &ld->root;
	if (gone)
		list_del(&w->node);
	spin_unlock_irq(&ld->lock);
	current_restore_flags(orig_flags, PF_LOCAL_THROTTLE);
	if (gone) {
		css_put(w->blkcg_css);
		kfree(w);
	}
}

static void loopfs_worker_init(struct loopfs_worker *w, struct loopfs_disk *ld,
			       struct cgroup_subsys_state *blkcg_css)
{
	int i;

	INIT_LIST_HEAD(&w->cmds);
	w->nr_cmds = 0;
	w->bytes = 0;
	w->active = 0;
	w->writing = false;
	w->ld = ld;
	w->blkcg_css = blkcg_css;
	for (i = 0; i < LOOPFS_DRAINERS; i++) {
		INIT_WORK(&w->drainers[i].work, loopfs_drainer_fn);
		w->drainers[i].w = w;
	}
	if (blkcg_css) {
		css_get(blkcg_css);
		list_add(&w->node, &ld->workers);
	}
}

/*
 * Hands a request to its cgroup's worker, in any context. A busy worker
 * takes it without a wakeup; another drainer is started only when the
 * requests waiting outnumber the drainers and are large enough to share.
 */
static void loopfs_queue_cmd(struct loopfs_disk *ld, struct loopfs_cmd *cmd)
{
	struct loopfs_worker *w = &ld->root, *pos;
	unsigned long flags;
	unsigned int i;

	spin_lock_irqsave(&ld->lock, flags);
	/* As loop.c: the root cgroup's requests are the disk's worker's. */
	if (cmd->blkcg_css && cmd->blkcg_css != blkcg_root_css) {
		w = NULL;
		list_for_each_entry(pos, &ld->workers, node) {
			if (pos->blkcg_css == cmd->blkcg_css) {
				w = pos;
				break;
			}
		}
		if (!w) {
			/* As loop.c: failing that, the disk's worker serves it. */
			w = kmalloc(sizeof(*w), GFP_NOWAIT | __GFP_NOWARN);
			if (w)
				loopfs_worker_init(w, ld, cmd->blkcg_css);
			else
				w = &ld->root;
		}
	}
	list_add_tail(&cmd->node, &w->cmds);
	w->nr_cmds++;
	w->bytes += blk_rq_bytes(blk_mq_rq_from_pdu(cmd));
	i = ffz(w->active);
	if (!w->active || (i < LOOPFS_DRAINERS && !w->writing &&
			   w->nr_cmds > hweight_long(w->active) &&
			   w->bytes >= LOOPFS_SPREAD_BYTES)) {
		w->active |= BIT(i);
		queue_work(ld->wq, &w->drainers[i].work);
	}
	spin_unlock_irqrestore(&ld->lock, flags);
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

/*
 * Whether less than half of the task's stack is in use: serving a request in
 * queue_rq() enters the backing filesystem and the block layer below it,
 * from wherever the submitter flushes its plug (deep in a filesystem of
 * its own, mounted on the device).
 */
static bool loopfs_stack_room(void)
{
#ifdef CONFIG_STACK_GROWSUP
	return false;
#else
	unsigned long sp = (unsigned long)__builtin_frame_address(0);

	return sp - (unsigned long)task_stack_page(current) > THREAD_SIZE / 2;
#endif
}

/*
 * Whether queue_rq() may try the request itself, in a context the backing
 * filesystem can be entered from as from a system call: its submitter, a
 * user task, is in the request's io cgroup (its I/O is charged where the
 * worker would charge it), not in a filesystem transaction (the submitter's
 * filesystem flushing its plug with a journal handle open, which the
 * backing filesystem would take for its own), not in memory reclaim
 * (swap-out to the device), has stack to spare, and no rq_qos policy of
 * this queue can wait in submit_bio() for requests whose backing I/O would
 * wait on this submission; the submitter did not ask not to wait
 * (REQ_NOWAIT: io_uring's non-blocking issue, RWF_NOWAIT); and it holds
 * nothing the serve, which may sleep, would keep from others.
 */
static bool loopfs_cmd_inline_ok(struct loopfs_cmd *cmd, struct request *rq)
{
	struct blk_plug *plug = current->plug;
	bool same = true;

	if (current->flags & (PF_KTHREAD | PF_MEMALLOC) ||
	    current->journal_info || rq->cmd_flags & REQ_NOWAIT ||
	    READ_ONCE(rq->q->rq_qos) || !loopfs_stack_room())
		return false;
	/*
	 * Not a clone that request-based device mapper (multipath on a
	 * loopfs disk) inserts from its own queue_rq(), which runs under RCU:
	 * the serve may sleep. Nor in any other atomic context, where the
	 * kernel can tell.
	 */
	if (rq->end_io)
		return false;
#ifdef CONFIG_PREEMPT_COUNT
	if (!preemptible() || rcu_preempt_depth())
		return false;
#endif
	/*
	 * Only from a plug its owner flushes (blk_finish_plug(), io_submit(),
	 * readahead, a direct I/O of several bios), never inside submit_bio().
	 * There, bios submitted meanwhile are held back until it returns (a
	 * read of the backing filesystem's block map it waited for would never
	 * come), and the plug being flushed may be the caller's, flushed to
	 * make room for the request submit_bio() has just allocated for
	 * another disk. Such a request pins that disk's queue: a freeze of it
	 * (an elevator switch, io.latency enabled, a limits update) waits for
	 * it, it waits for this serve, and the serve's backing I/O may go to
	 * that very disk and wait for the freeze.
	 */
	if (current->bio_list)
		return false;
	/*
	 * For the same reason, no other disk's requests may wait in the plug
	 * (what is left of this queue's own is harmless), and none cached
	 * (each pins its queue), nor callbacks a sleep would run, nor
	 * requests added since the flush began.
	 */
	if (plug && (plug->rq_count || !rq_list_empty(&plug->cached_rqs) ||
		     !list_empty(&plug->cb_list) ||
		     (plug->multiple_queues && !rq_list_empty(&plug->mq_list))))
		return false;
#ifdef CONFIG_BLK_CGROUP
	rcu_read_lock();
	same = task_css(current, io_cgrp_id) == cmd->blkcg_css;
	rcu_read_unlock();
#endif
	return same;
}

static blk_status_t loopfs_queue_rq(struct blk_mq_hw_ctx *hctx,
				    const struct blk_mq_queue_data *bd)
{
	struct request *rq = bd->rq;
	struct loopfs_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct loopfs_disk *ld = hctx->queue->queuedata;

	blk_mq_start_request(rq);
	loopfs_cmd_set_cgroups(cmd, rq);
	if (loopfs_cmd_inline_ok(cmd, rq)) {
		struct blk_plug *plug = current->plug;
		int ret;

		/*
		 * The backing filesystem is entered as from a system call: its
		 * bios go through plugs of their own, not the one being
		 * flushed, whose list blk-mq is taking requests from (6.12
		 * dereferences NULL there once another disk's request is added
		 * to it). The time cached in that plug goes first (PF_BLOCK_TS
		 * needs a plug); its flush would drop it anyway.
		 */
		if (plug) {
			blk_plug_invalidate_ts();
			/* No preemption may see PF_BLOCK_TS without a plug. */
			barrier();
			current->plug = NULL;
		}
		ret = loopfs_cmd_serve(cmd, true);
		WARN_ON_ONCE(current->plug || current->bio_list);
		current->plug = plug;

		if (ret == LOOPFS_RQ_QUEUED)
			return BLK_STS_OK;
		if (ret != LOOPFS_RQ_RETRY) {
			loopfs_cmd_end(cmd, ret);
			return BLK_STS_OK;
		}
	}
	loopfs_queue_cmd(ld, cmd);
	return BLK_STS_OK;
}

static int loopfs_init_request(struct blk_mq_tag_set *set, struct request *rq,
			       unsigned int hctx_idx, unsigned int numa_node)
{
	struct loopfs_cmd *cmd = blk_mq_rq_to_pdu(rq);

	cmd->bvec = NULL;
	return 0;
}

static const struct blk_mq_ops loopfs_mq_ops = {
	.queue_rq	= loopfs_queue_rq,
	.init_request	= loopfs_init_request,
};

static int loopfs_bdev_open(struct gendisk *disk, blk_mode_t mode)
{
	struct loopfs_disk *ld = disk->private_data;

	return rust_loopfs_dev_open(ld->dev, (__force u32)mode,
		loopfs_opening_through_node(rust_loopfs_dev_id(ld->dev)));
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
	/* queue_rq() may sleep: it can serve the request itself. */
	ld->tag_set.flags = BLK_MQ_F_SHOULD_MERGE | BLK_MQ_F_STACKING |
		BLK_MQ_F_NO_SCHED_BY_DEFAULT | BLK_MQ_F_BLOCKING;
	ld->tag_set.driver_data = ld;
	err = blk_mq_alloc_tag_set(&ld->tag_set);
	if (err)
		goto out_ida;

	disk = blk_mq_alloc_disk(&ld->tag_set, &lim, ld);
	if (IS_ERR(disk)) {
		err = PTR_ERR(disk);
		goto out_tags;
	}

	spin_lock_init(&ld->lock);
	INIT_LIST_HEAD(&ld->workers);
	loopfs_worker_init(&ld->root, ld, NULL);
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
/*
 * The disk suppresses uevents, so its partitions' adds were never sent:
 * nor are their removals, by a rescan or the disk's deletion (one per
 * partition, up to 255, to every network namespace's listeners), whoever
 * made them (loopfs, or a scan at open after host root's BLKRRPART).
 */
static void loopfs_disk_quiet_partitions(struct gendisk *disk)
{
	struct block_device *part;
	unsigned long idx;

	lockdep_assert_held(&disk->open_mutex);
	xa_for_each_start(&disk->part_tbl, idx, part, 1)
		dev_set_uevent_suppress(&part->bd_device, 1);
}

void *loopfs_disk_destroy(struct gendisk *disk)
{
	struct loopfs_disk *ld = disk->private_data;
	void *dev = ld->dev;

	/* The host saw the add: let it see the remove; not the partitions'. */
	mutex_lock(&disk->open_mutex);
	loopfs_disk_quiet_partitions(disk);
	mutex_unlock(&disk->open_mutex);
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

/*
 * Whether the backing file's data is on a filesystem on a loopfs disk or
 * partition: through it, a device could end up below itself.
 */
bool loopfs_file_on_loopfs(struct file *file)
{
	struct block_device *bdev = loopfs_file_real_inode(file)->i_sb->s_bdev;

	return bdev && bdev->bd_disk->fops == &loopfs_bdev_ops;
}

/* Whether the file is append-only (chattr +a): writable only at its end. */
bool loopfs_file_append_only(struct file *file)
{
	return IS_APPEND(file_inode(file));
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

/*
 * Whether the device's reads and writes go through the backing file's page
 * cache; read once per request, without a lock, by
 * loopfs_cmd_writes_cached(), where it only decides who serves a write.
 */
void loopfs_disk_set_buffered(struct gendisk *disk, bool buffered)
{
	struct loopfs_disk *ld = disk->queue->queuedata;

	WRITE_ONCE(ld->buffered, buffered);
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

u64 loopfs_disk_capacity(struct gendisk *disk)
{
	return get_capacity(disk);
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

static int loopfs_disk_changed(struct gendisk *disk)
{
	int ret;

	loopfs_disk_quiet_partitions(disk);
	ret = bdev_disk_changed(disk, false);
	loopfs_disk_quiet_partitions(disk);
	return ret;
}

int loopfs_disk_rescan(struct gendisk *disk, bool locked)
{
	int ret;

	if (locked)
		return loopfs_disk_changed(disk);
	mutex_lock(&disk->open_mutex);
	ret = loopfs_disk_changed(disk);
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
 * The request's data as an iov_iter. Several bios, possibly split mid-bvec,
 * need their bvecs gathered into an array (*copy, for the caller to free),
 * as loop.c does; one bio is iterated in place from where it starts.
 */
static int loopfs_rq_iter(struct request *rq, bool write,
			  struct iov_iter *iter, struct bio_vec **copy)
{
	struct bio_vec tmp, *bvec;
	struct req_iterator rq_iter;
	unsigned int offset = 0;
	int nr_bvec = 0;

	*copy = NULL;
	rq_for_each_bvec(tmp, rq, rq_iter)
		nr_bvec++;
	if (rq->bio != rq->biotail) {
		*copy = kmalloc_array(nr_bvec, sizeof(**copy), GFP_NOIO);
		if (!*copy)
			return -ENOMEM;
		bvec = *copy;
		rq_for_each_bvec(tmp, rq, rq_iter) {
			*bvec = tmp;
			bvec++;
		}
		bvec = *copy;
	} else {
		offset = rq->bio->bi_iter.bi_bvec_done;
		bvec = __bvec_iter_bvec(rq->bio->bi_io_vec, rq->bio->bi_iter);
	}
	iov_iter_bvec(iter, write ? ITER_SOURCE : ITER_DEST, bvec, nr_bvec,
		      blk_rq_bytes(rq));
	iter->iov_offset = offset;
	return 0;
}

/*
 * Write access to the backing file's superblock (file_start_write()); with
 * IOCB_NOWAIT only if it is free now. Held past the call for asynchronous
 * I/O, as io_uring does.
 */
static bool loopfs_start_write(struct kiocb *iocb)
{
	struct inode *inode = file_inode(iocb->ki_filp);

	if (!S_ISREG(inode->i_mode))
		return true;
	if (!(iocb->ki_flags & IOCB_NOWAIT))
		sb_start_write(inode->i_sb);
	else if (!sb_start_write_trylock(inode->i_sb))
		return false;
	if (!is_sync_kiocb(iocb))
		__sb_writers_release(inode->i_sb, SB_FREEZE_WRITE);
	return true;
}

static void loopfs_end_write(struct kiocb *iocb)
{
	struct inode *inode = file_inode(iocb->ki_filp);

	if (!S_ISREG(inode->i_mode))
		return;
	if (!is_sync_kiocb(iocb))
		__sb_writers_acquired(inode->i_sb, SB_FREEZE_WRITE);
	sb_end_write(inode->i_sb);
}

/*
 * Reads or writes the data of a READ or WRITE request from or to file at
 * pos through the page cache. With nowait, only if that needs no waiting
 * and no I/O (IOCB_NOWAIT, IOCB_NOIO): -EAGAIN or a short count otherwise.
 * Returns the bytes transferred or a negative errno.
 */
ssize_t loopfs_rq_rw(struct request *rq, struct file *file, loff_t pos,
		     bool write, bool nowait)
{
	struct bio_vec *copy;
	struct iov_iter iter;
	struct kiocb kiocb;
	ssize_t ret;

	ret = loopfs_rq_iter(rq, write, &iter, &copy);
	if (ret)
		return ret;
	init_sync_kiocb(&kiocb, file);
	/*
	 * The request says where: not an O_APPEND the binder may have set on
	 * the file since (fcntl()), which would write at its end, past any
	 * size limit checked at pos. An append-only file (chattr +a) takes no
	 * writes from a device at all (Device::serve()).
	 */
	kiocb.ki_flags &= ~IOCB_APPEND;
	kiocb.ki_pos = pos;
	kiocb.ki_ioprio = req_get_ioprio(rq);
	if (nowait)
		kiocb.ki_flags |= IOCB_NOWAIT | IOCB_NOIO;

	if (write) {
		kiocb.ki_flags |= IOCB_WRITE;
		ret = -EAGAIN;
		if (loopfs_start_write(&kiocb)) {
			ret = file->f_op->write_iter(&kiocb, &iter);
			loopfs_end_write(&kiocb);
		}
	} else {
		ret = file->f_op->read_iter(&kiocb, &iter);
	}
	kfree(copy);
	return ret;
}

/* The last of submission and completion ends an asynchronous transfer. */
static void loopfs_aio_put(struct loopfs_cmd *cmd)
{
	struct request *rq = blk_mq_rq_from_pdu(cmd);
	struct loopfs_disk *ld = rq->q->queuedata;
	struct file *file = cmd->iocb.ki_filp;
	int ret;

	if (!atomic_dec_and_test(&cmd->ref))
		return;
	kfree(cmd->bvec);
	cmd->bvec = NULL;
	if (cmd->iocb.ki_flags & IOCB_WRITE)
		loopfs_end_write(&cmd->iocb);
	fput(file);
	ret = rust_loopfs_dev_aio_done(ld->dev, rq, cmd->ret, cmd->nowait);
	if (ret == LOOPFS_RQ_RETRY)
		loopfs_queue_cmd(ld, cmd);
	else
		loopfs_cmd_end(cmd, ret);
}

static void loopfs_aio_complete(struct kiocb *iocb, long ret)
{
	struct loopfs_cmd *cmd = container_of(iocb, struct loopfs_cmd, iocb);

	cmd->ret = ret;
	loopfs_aio_put(cmd);
}

/*
 * Starts the data transfer of a READ or WRITE request from or to file at pos
 * as asynchronous direct I/O (loop.c's lo_rw_aio()); with nowait, only if it
 * needs no waiting (IOCB_NOWAIT). Returns 0 when started: the transfer holds
 * its own file reference and its completion passes the result to
 * rust_loopfs_dev_aio_done(), in any context. Otherwise nothing was started:
 * -EAGAIN when it would have waited, or another negative errno.
 */
int loopfs_rq_aio(struct request *rq, struct file *file, loff_t pos,
		  bool write, bool nowait)
{
	struct loopfs_cmd *cmd = blk_mq_rq_to_pdu(rq);
	struct kiocb *iocb = &cmd->iocb;
	struct iov_iter iter;
	ssize_t ret;

	ret = loopfs_rq_iter(rq, write, &iter, &cmd->bvec);
	if (ret)
		return ret;
	*iocb = (struct kiocb) {
		.ki_filp = file,
		.ki_pos = pos,
		.ki_complete = loopfs_aio_complete,
		.ki_flags = IOCB_DIRECT,
		.ki_ioprio = req_get_ioprio(rq),
	};
	if (nowait)
		iocb->ki_flags |= IOCB_NOWAIT;
	if (write) {
		iocb->ki_flags |= IOCB_WRITE;
		if (!loopfs_start_write(iocb)) {
			ret = -EAGAIN;
			goto out_free;
		}
	}
	cmd->nowait = nowait;
	atomic_set(&cmd->ref, 2);
	get_file(file);

	if (write)
		ret = file->f_op->write_iter(iocb, &iter);
	else
		ret = file->f_op->read_iter(iocb, &iter);
	if (ret == -EIOCBQUEUED) {
		loopfs_aio_put(cmd);
		return 0;
	}
	if (ret != -EAGAIN || !nowait) {
		/* Done already: complete it as if asynchronously. */
		loopfs_aio_complete(iocb, ret);
		loopfs_aio_put(cmd);
		return 0;
	}
	/* Would have waited: nothing happened. */
	fput(file);
	if (write)
		loopfs_end_write(iocb);
out_free:
	kfree(cmd->bvec);
	cmd->bvec = NULL;
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

/*
 * Whether file takes IOCB_NOWAIT for this kind of transfer; buffered writes
 * only where the filesystem says so (ext4, for one, refuses them).
 */
bool loopfs_file_nowait(struct file *file, bool write, bool direct)
{
	if (!(file->f_mode & FMODE_NOWAIT))
		return false;
	if (direct)
		return true;
	return file->f_op->fop_flags &
		(write ? FOP_BUFFER_WASYNC : FOP_BUFFER_RASYNC);
}

/* The block device file is, or its filesystem is on, if any. */
static struct block_device *loopfs_file_bdev(struct file *file)
{
	struct inode *inode = file->f_mapping->host;

	if (S_ISBLK(inode->i_mode))
		return I_BDEV(inode);
	return inode->i_sb->s_bdev;
}

/* Whether the device under file, if any, is rotational (as loop.c). */
bool loopfs_file_bdev_rotational(struct file *file)
{
	struct block_device *bdev = loopfs_file_bdev(file);

	return bdev && !bdev_nonrot(bdev);
}

/*
 * Whether the device under file, if any, does its I/O in the submission
 * (RAM disks, zram, pmem).
 */
bool loopfs_file_bdev_synchronous(struct file *file)
{
	struct block_device *bdev = loopfs_file_bdev(file);

	return bdev && bdev_synchronous(bdev);
}

/* Logical block size of the device under file, 0 if there is none. */
unsigned int loopfs_file_bdev_block_size(struct file *file)
{
	struct block_device *bdev = loopfs_file_bdev(file);

	return bdev ? bdev_logical_block_size(bdev) : 0;
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

u64 loopfs_now_ns(void)
{
	return ktime_get_ns();
}

/* Sleeps ns or until a fatal signal; whether one is pending. */
bool loopfs_sleep_killable(u64 ns)
{
	schedule_timeout_killable(nsecs_to_jiffies(ns));
	return fatal_signal_pending(current);
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
