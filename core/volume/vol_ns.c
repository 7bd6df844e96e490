/*
 * vol_ns.c - namespace operations of the volume API, passed through to
 * meta/.  Each change is one meta_write() (group-committed, META_RELAXED:
 * safe against a process crash, durable within the metadata's flush
 * interval or at the next fsync/volume_sync, which commit META_SYNCED and so
 * make every earlier commit durable too).
 *
 * The only logic of its own: getattr overlays the size and mtime of data
 * still buffered in memory, and a truncation first commits the inode's
 * buffered data (so that the metadata's cut applies to all of it).
 *
 * Invariant: the volume never hands out meta_* types; cairn_attr mirrors
 * meta_attr so that FUSE and the CLI need nothing from meta.h.
 */
#include <string.h>
#include <sys/stat.h>

#include "vol_int.h"

void vol_attr_from(const meta_attr *a, cairn_attr *o)
{
	if (!o)
		return;
	o->ino = a->ino;
	o->mode = a->mode;
	o->uid = a->uid;
	o->gid = a->gid;
	o->nlink = a->nlink;
	o->flags = a->flags;
	o->size = a->size;
	o->rdev = a->rdev;
	o->atime_ns = a->atime_ns;
	o->mtime_ns = a->mtime_ns;
	o->ctime_ns = a->ctime_ns;
	o->btime_ns = a->btime_ns;
}

/* Overlay what only the in-memory buffer knows. */
static void attr_overlay(cairn_volume *vol, cairn_attr *o)
{
	if (vol->fl)
		return;  /* a follower's sizes are the metadata's */
	vinode *vi = vol_vinode_find(vol, o->ino);
	if (!vi)
		return;
	pthread_rwlock_rdlock(&vi->lk);
	o->size = vi->size;
	if (vi->head && !vi->mtime_set && vi->mtime_ns > o->mtime_ns)
		o->mtime_ns = o->ctime_ns = vi->mtime_ns;
	pthread_rwlock_unlock(&vi->lk);
	vol_vinode_unpin(vol, vi);
}

enum { NS_SETATTR, NS_MKNOD, NS_CREATE, NS_MKDIR, NS_SYMLINK, NS_UNLINK,
       NS_RMDIR, NS_LINK, NS_RENAME, NS_XSET, NS_XREMOVE };

typedef struct nsop {
	int kind;
	uint64_t a, b;
	const char *name, *name2, *target;
	uint32_t mode, uid, gid;
	uint64_t rdev;
	unsigned flags;
	const void *val;
	size_t len;
	meta_sattr sa;
	meta_attr out;
} nsop;

static int ns_fn(meta_txn *t, void *arg)
{
	nsop *p = arg;
	switch (p->kind) {
	case NS_SETATTR:
		return meta_setattr(t, p->a, &p->sa, &p->out);
	case NS_MKNOD:
		return meta_mknod(t, p->a, p->name, p->mode, p->rdev, p->uid, p->gid, &p->out);
	case NS_CREATE:
		return meta_create(t, p->a, p->name, p->mode, p->uid, p->gid, &p->out);
	case NS_MKDIR:
		return meta_mkdir(t, p->a, p->name, p->mode, p->uid, p->gid, &p->out);
	case NS_SYMLINK:
		return meta_symlink(t, p->a, p->name, p->target, p->uid, p->gid, &p->out);
	case NS_UNLINK:
		return meta_unlink(t, p->a, p->name);
	case NS_RMDIR:
		return meta_rmdir(t, p->a, p->name);
	case NS_LINK:
		return meta_link(t, p->a, p->b, p->name, &p->out);
	case NS_RENAME:
		return meta_rename(t, p->a, p->name, p->b, p->name2, p->flags);
	case NS_XSET:
		return meta_xattr_set(t, p->a, p->name, p->val, p->len, p->flags);
	case NS_XREMOVE:
		return meta_xattr_remove(t, p->a, p->name);
	}
	return cairn_errf(CAIRN_E_INTERNAL, "namespace op %d unknown", p->kind);
}

static const unsigned ns_walop[] = {
	[NS_SETATTR] = META_OP_SETATTR, [NS_MKNOD] = META_OP_CREATE,
	[NS_CREATE] = META_OP_CREATE, [NS_MKDIR] = META_OP_MKDIR,
	[NS_SYMLINK] = META_OP_SYMLINK, [NS_UNLINK] = META_OP_UNLINK,
	[NS_RMDIR] = META_OP_RMDIR, [NS_LINK] = META_OP_LINK,
	[NS_RENAME] = META_OP_RENAME, [NS_XSET] = META_OP_XATTR,
	[NS_XREMOVE] = META_OP_XATTR,
};

static int ns_run(cairn_volume *vol, nsop *p, cairn_attr *out)
{
	int rc = meta_write(vol->meta, META_RELAXED, ns_walop[p->kind], ns_fn, p, NULL);
	if (!rc)
		vol_attr_from(&p->out, out);
	return rc;
}

int volume_lookup(cairn_volume *vol, uint64_t parent, const char *name,
		  cairn_attr *out)
{
	meta_txn *t;
	meta_attr a;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_lookup(t, parent, name, &a);
	meta_read_end(t);
	if (rc)
		return rc;
	vol_attr_from(&a, out);
	attr_overlay(vol, out);
	return 0;
}

int volume_getattr(cairn_volume *vol, uint64_t ino, cairn_attr *out)
{
	meta_txn *t;
	meta_attr a;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_getattr(t, ino, &a);
	meta_read_end(t);
	if (rc)
		return rc;
	vol_attr_from(&a, out);
	attr_overlay(vol, out);
	return 0;
}

int volume_setattr(cairn_volume *vol, uint64_t ino, const cairn_sattr *sa,
		   cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_SETATTR, .a = ino };
	vinode *vi = NULL;
	int rc;

	p.sa.mask = sa->mask;
	p.sa.mode = sa->mode;
	p.sa.uid = sa->uid;
	p.sa.gid = sa->gid;
	p.sa.size = sa->size;
	p.sa.atime_ns = sa->atime_ns;
	p.sa.mtime_ns = sa->mtime_ns;
	p.sa.ctime_ns = sa->ctime_ns;
	if (sa->mask & CAIRN_SET_MTIME) {
		/* The explicit time must survive the later commit of data
		 * written before it (cp -p, tar): mark the buffered and the
		 * staged data of the inode before the change commits. */
		vinode *b = vol_vinode_find(vol, ino);
		if (b) {
			pthread_rwlock_wrlock(&b->lk);
			b->mtime_set = 1;
			pthread_rwlock_unlock(&b->lk);
			vol_vinode_unpin(vol, b);
		}
		vol_stage_keep_times(vol, ino);
	}
	if (!(sa->mask & CAIRN_SET_SIZE))
		return ns_run(vol, &p, out);
	/* A truncation applies to buffered data too: commit it first, under
	 * the inode lock so that no write slips in between. */
	{
		meta_txn *t;
		meta_attr a;
		if ((rc = meta_read_begin(vol->meta, &t)))
			return rc;
		rc = meta_getattr(t, ino, &a);
		meta_read_end(t);
		if (rc)
			return rc;
		if (!S_ISREG(a.mode))
			return ns_run(vol, &p, out);  /* meta gives the error */
		if ((rc = vol_vinode_get(vol, ino, a.size, &vi)))
			return rc;
	}
	pthread_rwlock_wrlock(&vi->lk);
	vol_inode_prune(vol, vi);
	rc = 0;
	if (vi->head || vi->st) {
		rc = vol_inode_stage(vol, vi);
		if (!rc)
			rc = vol_commit(vol, 0);
	}
	if (!rc) {
		vol_inode_prune(vol, vi);
		rc = ns_run(vol, &p, out);
		if (!rc)
			vi->size = sa->size;
	}
	pthread_rwlock_unlock(&vi->lk);
	vol_vinode_unpin(vol, vi);
	return rc;
}

int volume_mknod(cairn_volume *vol, uint64_t parent, const char *name,
		 uint32_t mode, uint64_t rdev, uint32_t uid, uint32_t gid,
		 cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_MKNOD, .a = parent, .name = name, .mode = mode,
		   .rdev = rdev, .uid = uid, .gid = gid };
	return ns_run(vol, &p, out);
}

int volume_create(cairn_volume *vol, uint64_t parent, const char *name,
		  uint32_t mode, uint32_t uid, uint32_t gid, cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_CREATE, .a = parent, .name = name, .mode = mode,
		   .uid = uid, .gid = gid };
	return ns_run(vol, &p, out);
}

int volume_mkdir(cairn_volume *vol, uint64_t parent, const char *name,
		 uint32_t mode, uint32_t uid, uint32_t gid, cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_MKDIR, .a = parent, .name = name, .mode = mode,
		   .uid = uid, .gid = gid };
	return ns_run(vol, &p, out);
}

int volume_symlink(cairn_volume *vol, uint64_t parent, const char *name,
		   const char *target, uint32_t uid, uint32_t gid,
		   cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_SYMLINK, .a = parent, .name = name, .target = target,
		   .uid = uid, .gid = gid };
	return ns_run(vol, &p, out);
}

int volume_readlink(cairn_volume *vol, uint64_t ino, char *buf, size_t size,
		    size_t *len)
{
	meta_txn *t;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_readlink(t, ino, buf, size, len);
	meta_read_end(t);
	return rc;
}

int volume_unlink(cairn_volume *vol, uint64_t parent, const char *name)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_UNLINK, .a = parent, .name = name };
	return ns_run(vol, &p, NULL);
}

int volume_rmdir(cairn_volume *vol, uint64_t parent, const char *name)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_RMDIR, .a = parent, .name = name };
	return ns_run(vol, &p, NULL);
}

int volume_link(cairn_volume *vol, uint64_t ino, uint64_t newparent,
		const char *newname, cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_LINK, .a = ino, .b = newparent, .name = newname };
	int rc = ns_run(vol, &p, out);
	if (!rc && out)
		attr_overlay(vol, out);
	return rc;
}

int volume_rename(cairn_volume *vol, uint64_t sparent, const char *sname,
		  uint64_t dparent, const char *dname, unsigned flags)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_RENAME, .a = sparent, .name = sname, .b = dparent,
		   .name2 = dname, .flags = flags };
	return ns_run(vol, &p, NULL);
}

int volume_readdir(cairn_volume *vol, uint64_t dir, uint64_t cookie,
		   cairn_dirent_fn cb, void *arg)
{
	meta_txn *t;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_readdir(t, dir, cookie, cb, arg);
	meta_read_end(t);
	return rc;
}

int volume_xattr_set(cairn_volume *vol, uint64_t ino, const char *name,
		     const void *val, size_t len, unsigned flags)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_XSET, .a = ino, .name = name, .val = val, .len = len,
		   .flags = flags };
	return ns_run(vol, &p, NULL);
}

int volume_xattr_get(cairn_volume *vol, uint64_t ino, const char *name,
		     void *buf, size_t size, size_t *len)
{
	meta_txn *t;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_xattr_get(t, ino, name, buf, size, len);
	meta_read_end(t);
	return rc;
}

int volume_xattr_list(cairn_volume *vol, uint64_t ino, char *buf, size_t size,
		      size_t *len)
{
	meta_txn *t;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_xattr_list(t, ino, buf, size, len);
	meta_read_end(t);
	return rc;
}

int volume_xattr_remove(cairn_volume *vol, uint64_t ino, const char *name)
{
	VOL_RO_CHECK(vol);
	nsop p = { .kind = NS_XREMOVE, .a = ino, .name = name };
	return ns_run(vol, &p, NULL);
}

int volume_statfs(cairn_volume *vol, cairn_statfs *out)
{
	meta_txn *t;
	meta_statfs s;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_statfs_get(t, &s);
	meta_read_end(t);
	if (rc)
		return rc;
	out->inodes = s.inodes;
	out->file_bytes = s.file_bytes;
	out->stored_bytes = s.stored_bytes;
	out->segments = s.segments;
	out->chunks = s.chunks;
	return 0;
}
