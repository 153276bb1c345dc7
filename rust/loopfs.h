/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between loopfs's Rust logic (loopfs_main.rs) and its C
 * plumbing (loopfs_fs.c: filesystem; loopfs_blk.c: block device).
 *
 * Ownership across it:
 * - An instance is a Rust Arc handed to C as an opaque pointer. C owns that
 *   one reference from rust_loopfs_instance_new() until it passes it to
 *   rust_loopfs_instance_free(), and keeps it in sb->s_fs_info in between.
 * - A device is a Rust Arc too. loopfs_disk_create() takes one reference
 *   when it succeeds, and loopfs_disk_destroy() returns it after deleting
 *   the disk; on failure the reference stays with the caller.
 * - A struct gendisk returned by loopfs_disk_create() stays added until
 *   loopfs_disk_destroy(), which its Rust owner (OwnedDisk) calls once, on
 *   drop. Callbacks borrow the disk for their duration.
 */
#ifndef _NSDEV_LOOPFS_H
#define _NSDEV_LOOPFS_H

#include <linux/blkdev.h>
#include <linux/fs.h>
#include <linux/types.h>
#include <uapi/linux/falloc.h>
#include <uapi/linux/loop.h>
#include <uapi/linux/magic.h>

#ifdef CONFIG_COMPAT
#include <linux/compat.h>

/* loop.c's struct compat_loop_info: struct loop_info of 32-bit programs. */
struct loopfs_compat_loop_info {
	compat_int_t	lo_number;
	compat_dev_t	lo_device;
	compat_ulong_t	lo_inode;
	compat_dev_t	lo_rdevice;
	compat_int_t	lo_offset;
	compat_int_t	lo_encrypt_type;
	compat_int_t	lo_encrypt_key_size;
	compat_int_t	lo_flags;
	char		lo_name[LO_NAME_SIZE];
	unsigned char	lo_encrypt_key[LO_KEY_SIZE];
	compat_ulong_t	lo_init[2];
	char		reserved[4];
};

unsigned long loopfs_compat_ptr(unsigned long arg);
int rust_loopfs_dev_compat_ioctl(void *dev, struct block_device *bdev,
				 blk_mode_t mode, unsigned int cmd,
				 unsigned long arg);
#endif

/*
 * Constants Rust needs whose macros are casts bindgen cannot evaluate: the
 * compiler evaluates them here, and bindgen passes the values on.
 */
enum loopfs_consts {
	LOOPFS_FMODE_READ = (__force int)FMODE_READ,
	LOOPFS_FMODE_WRITE = (__force int)FMODE_WRITE,
	LOOPFS_FMODE_CAN_ODIRECT = (__force int)FMODE_CAN_ODIRECT,
	LOOPFS_BLK_OPEN_WRITE = (__force int)BLK_OPEN_WRITE,
	LOOPFS_BLK_OPEN_EXCL = (__force int)BLK_OPEN_EXCL,
	LOOPFS_O_DIRECT = O_DIRECT,
	/* Private to fs/configfs/mount.c, which no header exports. */
	LOOPFS_CONFIGFS_MAGIC = 0x62656570,
};

/*
 * What rust_loopfs_dev_serve() and rust_loopfs_dev_aio_done() return besides
 * 0 or a negative errno, the result to end the request with.
 */
enum loopfs_rq_result {
	/* An asynchronous transfer started; its completion ends the request. */
	LOOPFS_RQ_QUEUED = 1,
	/* Not served without waiting: a worker serves it. */
	LOOPFS_RQ_RETRY = 2,
};

struct block_device;
struct cred;
struct mutex;
struct workqueue_struct;
struct file;
struct gendisk;
struct request;
struct request_queue;
struct super_block;
struct user_namespace;

/* loopfs_fs.c, called from Rust. */
int loopfs_register_filesystem(void);
void loopfs_unregister_filesystem(void);
u32 loopfs_max_devices(void);
u32 loopfs_max_devices_per_userns(void);
u32 loopfs_max_devices_per_user(void);
u32 loopfs_reserved_devices(void);
int loopfs_fs_add_node(struct super_block *sb, const char *name, dev_t devt,
		       u64 id);
void loopfs_fs_remove_node(struct super_block *sb, const char *name);
struct user_namespace *loopfs_get_user_ns(struct user_namespace *ns);
void loopfs_put_user_ns(struct user_namespace *ns);

/* loopfs_blk.c, called from Rust. */
int loopfs_blk_init(void);
void loopfs_blk_exit(void);
struct gendisk *loopfs_disk_create(void *dev);
void *loopfs_disk_destroy(struct gendisk *disk);
void loopfs_disk_get(struct gendisk *disk);
void loopfs_disk_put(struct gendisk *disk);
void loopfs_disk_lock_open(struct gendisk *disk);
void loopfs_disk_unlock_open(struct gendisk *disk);
struct gendisk *loopfs_bdev_disk(struct block_device *bdev);
void loopfs_mutex_lock(struct mutex *lock);
int loopfs_mutex_lock_killable(struct mutex *lock);
void loopfs_mutex_unlock(struct mutex *lock);
void loopfs_blk_drain(void);
struct workqueue_struct *loopfs_reap_queue(void);
bool loopfs_file_is_loopfs_bdev(struct file *file);
bool loopfs_bdev_has_id(struct block_device *bdev, u64 id);
bool loopfs_opening_through_node(u64 id);
bool loopfs_file_untrusted(struct file *file);
bool loopfs_file_on_loopfs(struct file *file);
bool loopfs_file_append_only(struct file *file);
bool loopfs_current_user_ns_is(struct user_namespace *ns);
dev_t loopfs_disk_devt(struct gendisk *disk);
struct request_queue *loopfs_disk_queue(struct gendisk *disk);
int loopfs_disk_openers(struct gendisk *disk);
int loopfs_disk_set_limits(struct gendisk *disk, unsigned int bsize,
			   u32 max_discard_sectors, u32 discard_granularity,
			   bool write_cache, bool rotational);
u64 loopfs_disk_capacity(struct gendisk *disk);
unsigned int loopfs_disk_block_size(struct gendisk *disk);
void loopfs_disk_disable(struct gendisk *disk, bool write_zeroes);
int loopfs_disk_reset_block_size(struct gendisk *disk);
void loopfs_disk_set_buffered(struct gendisk *disk, bool buffered);
struct gendisk *loopfs_rq_disk(struct request *rq);
void loopfs_disk_set_partscan(struct gendisk *disk, bool on);
int loopfs_disk_rescan(struct gendisk *disk, bool locked);
void loopfs_disk_partitions(struct gendisk *disk, dev_t *devts,
			    unsigned int max);
void loopfs_disk_uevent_change(struct gendisk *disk);
int loopfs_disk_sysfs_add(struct gendisk *disk);
void loopfs_disk_sysfs_remove(struct gendisk *disk);
void loopfs_rq_info(struct request *rq, u32 *op, u64 *pos, u32 *bytes,
		    bool *nounmap);
ssize_t loopfs_rq_rw(struct request *rq, struct file *file, loff_t pos,
		     bool write, bool nowait);
int loopfs_rq_aio(struct request *rq, struct file *file, loff_t pos,
		  bool write, bool nowait);
bool loopfs_file_nowait(struct file *file, bool write, bool direct);
void loopfs_rq_zero_from(struct request *rq, u32 done);
struct file *loopfs_get_file(struct file *file);
s64 loopfs_file_size(struct file *file);
unsigned int loopfs_file_bdev_block_size(struct file *file);
bool loopfs_file_bdev_rotational(struct file *file);
bool loopfs_file_bdev_synchronous(struct file *file);
gfp_t loopfs_file_set_nofs(struct file *file);
void loopfs_file_restore_gfp(struct file *file, gfp_t gfp);
u64 loopfs_file_magic(struct file *file);
const struct cred *loopfs_get_current_cred(void);
void loopfs_put_cred(const struct cred *cred);
u64 loopfs_now_ns(void);
bool loopfs_sleep_killable(u64 ns);
u64 loopfs_current_fsize_limit(void);

/* Rust: instances (sb->s_fs_info). */
/* Takes over the reference on ns, also when it fails (NULL). */
void *rust_loopfs_instance_new(struct super_block *sb,
			       struct user_namespace *ns, u32 max);
void rust_loopfs_instance_shutdown(void *instance);
void rust_loopfs_instance_free(void *instance);
bool rust_loopfs_max_valid(u32 max);
void rust_loopfs_instance_set_max(void *instance, u32 max);
u32 rust_loopfs_instance_max(void *instance);
long rust_loopfs_ctl_ioctl(void *instance, unsigned int cmd, unsigned long arg);

/* Rust: devices (the disk's private reference). */
int rust_loopfs_dev_open(void *dev, u32 mode, bool through_node);
u64 rust_loopfs_dev_id(void *dev);
bool rust_loopfs_dev_visible(void *dev);
void rust_loopfs_dev_last_close(void *dev, struct gendisk *disk);
int rust_loopfs_dev_ioctl(void *dev, struct block_device *bdev,
			  blk_mode_t mode, unsigned int cmd, unsigned long arg);
/*
 * Serves a started request: from queue_rq() (nowait: only what needs no
 * waiting, else LOOPFS_RQ_RETRY) or from its worker.
 */
int rust_loopfs_dev_serve(void *dev, struct request *rq, bool nowait);
/* The result of loopfs_rq_aio()'s transfer; any context. */
int rust_loopfs_dev_aio_done(void *dev, struct request *rq, long ret,
			     bool nowait);

/* Rust: the values the sysfs loop/ attributes show. */
struct loopfs_dev_info {
	struct file *file;	/* a reference for the caller, or NULL */
	u64 offset;
	u64 sizelimit;
	u32 flags;		/* LO_FLAGS_* */
};

void rust_loopfs_dev_info(void *dev, struct loopfs_dev_info *info);

#endif /* _NSDEV_LOOPFS_H */
