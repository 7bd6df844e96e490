/*
 * vol_snap.c - snapshots and clones of the volume API, passed through to
 * meta/ (meta_snapshot_*, meta_clone), plus volume_sync_durable.
 *
 * The only logic of its own: a snapshot or clone must hold every completed
 * write, so the data buffered in memory is staged and committed first
 * (vol_sync_all).  The copy itself is one synced metadata transaction that
 * shares every extent map (docs/metadata.md "Snapshots and clones").
 */
#include <string.h>

#include "vol_int.h"

static void snap_from(const meta_snap *s, cairn_snap *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof *o);
	memcpy(o->name, s->name, sizeof o->name);
	o->root = s->root;
	o->src = s->src;
	o->ctime_ns = s->ctime_ns;
	o->entries = s->entries;
}

typedef struct snapop {
	uint64_t src, dparent;
	const char *name;
	meta_snap snap;
	meta_attr attr;
} snapop;

static int snap_create_fn(meta_txn *t, void *arg)
{
	snapop *p = arg;
	return meta_snapshot_create(t, p->src, p->name, &p->snap);
}

static int snap_delete_fn(meta_txn *t, void *arg)
{
	snapop *p = arg;
	return meta_snapshot_delete(t, p->name);
}

static int clone_fn(meta_txn *t, void *arg)
{
	snapop *p = arg;
	return meta_clone(t, p->src, p->dparent, p->name, &p->attr);
}

int volume_snapshot_create(cairn_volume *vol, uint64_t src, const char *name,
			   cairn_snap *out)
{
	VOL_RO_CHECK(vol);
	snapop p = { .src = src, .name = name };
	int rc;

	if (!name || !*name)
		return cairn_errf(CAIRN_E_INVAL, "snapshot: empty name");
	if ((rc = vol_sync_all(vol, 0)))
		return cairn_err_wrap(rc, "snapshot %s: commit buffered data", name);
	rc = meta_write(vol->meta, META_SYNCED, META_OP_SNAPSHOT, snap_create_fn, &p, NULL);
	if (!rc)
		snap_from(&p.snap, out);
	return rc;
}

int volume_snapshot_get(cairn_volume *vol, const char *name, cairn_snap *out)
{
	meta_txn *t;
	meta_snap s;
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_snapshot_get(t, name, &s);
	meta_read_end(t);
	if (!rc)
		snap_from(&s, out);
	return rc;
}

typedef struct snaplist {
	cairn_snap_fn cb;
	void *arg;
} snaplist;

static int snap_list_cb(const meta_snap *s, void *arg)
{
	snaplist *l = arg;
	cairn_snap o;
	snap_from(s, &o);
	return l->cb(&o, l->arg);
}

int volume_snapshot_list(cairn_volume *vol, cairn_snap_fn cb, void *arg)
{
	meta_txn *t;
	snaplist l = { cb, arg };
	int rc = meta_read_begin(vol->meta, &t);
	if (rc)
		return rc;
	rc = meta_snapshot_list(t, snap_list_cb, &l);
	meta_read_end(t);
	return rc;
}

int volume_snapshot_delete(cairn_volume *vol, const char *name)
{
	VOL_RO_CHECK(vol);
	snapop p = { .name = name };
	return meta_write(vol->meta, META_SYNCED, META_OP_SNAPSHOT, snap_delete_fn, &p, NULL);
}

int volume_clone(cairn_volume *vol, uint64_t src, uint64_t dparent,
		 const char *dname, cairn_attr *out)
{
	VOL_RO_CHECK(vol);
	snapop p = { .src = src, .dparent = dparent, .name = dname };
	int rc;

	if ((rc = vol_sync_all(vol, 0)))
		return cairn_err_wrap(rc, "clone %s: commit buffered data", dname);
	rc = meta_write(vol->meta, META_SYNCED, META_OP_CLONE, clone_fn, &p, NULL);
	if (!rc)
		vol_attr_from(&p.attr, out);
	return rc;
}

int volume_sync_durable(cairn_volume *vol, int durability)
{
	if (durability != CAIRN_DUR_LOCAL && durability != CAIRN_DUR_REMOTE)
		return cairn_errf(CAIRN_E_INVAL, "sync: durability %d unknown", durability);
	return vol_sync_all(vol, durability == CAIRN_DUR_REMOTE);
}
