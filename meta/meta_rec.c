/*
 * meta_rec.c - the byte layouts of keys and values (docs/format.md).
 *
 * Every value starts with a one-byte version.  Decoders check the version
 * first and refuse anything but the versions this build knows, with a
 * CAIRN_E_VERSION message that names the record; then they check the length
 * before reading a field (CAIRN_E_CORRUPT otherwise).  Encoders always write
 * the newest version.
 *
 * Invariants:
 *   1. A decoder never reads past v->mv_size.
 *   2. Encoding then decoding a record gives back the same fields.
 */
#include <sys/stat.h>

#include "meta_int.h"

int mr_version(const MDB_val *v, const char *what, uint64_t id)
{
	if (v->mv_size < 1)
		return cairn_errf(CAIRN_E_CORRUPT, "%s %llu: empty record", what,
				  (unsigned long long)id);
	uint8_t ver = ((const uint8_t *)v->mv_data)[0];
	if (ver != META_REC_V1)
		return cairn_errf(CAIRN_E_VERSION,
				  "%s %llu: record version %u is unknown (this build reads version %u)",
				  what, (unsigned long long)id, ver, META_REC_V1);
	return 0;
}

/* ---- inode ---- */

int mi_inode_dec(uint64_t ino, const MDB_val *v, mi_inode *out)
{
	int rc = mr_version(v, "inode", ino);
	if (rc)
		return rc;
	const uint8_t *p = v->mv_data;
	if (v->mv_size < MI_FIXED)
		return cairn_errf(CAIRN_E_CORRUPT, "inode %llu: record of %zu bytes is short",
				  (unsigned long long)ino, v->mv_size);
	memset(&out->a, 0, sizeof out->a);
	out->a.ino = ino;
	out->a.flags = p[1];
	out->tlen = rle16(p + 2);
	out->a.mode = rle32(p + 4);
	out->a.uid = rle32(p + 8);
	out->a.gid = rle32(p + 12);
	out->a.nlink = rle32(p + 16);
	out->a.size = rle64(p + 24);
	out->a.rdev = rle64(p + 32);
	out->emap = rle64(p + 40);
	out->next_cookie = rle64(p + 48);
	out->a.atime_ns = (int64_t)rle64(p + 56);
	out->a.mtime_ns = (int64_t)rle64(p + 64);
	out->a.ctime_ns = (int64_t)rle64(p + 72);
	out->a.btime_ns = (int64_t)rle64(p + 80);
	out->parent = rle64(p + 88);
	if (out->tlen > META_SYMLINK_MAX || v->mv_size != (size_t)MI_FIXED + out->tlen)
		return cairn_errf(CAIRN_E_CORRUPT, "inode %llu: bad symlink length %u in %zu bytes",
				  (unsigned long long)ino, out->tlen, v->mv_size);
	memcpy(out->target, p + MI_FIXED, out->tlen);
	out->target[out->tlen] = 0;
	return 0;
}

size_t mi_inode_enc(const mi_inode *in, uint8_t *p)
{
	memset(p, 0, MI_FIXED);
	p[0] = META_REC_V1;
	p[1] = (uint8_t)in->a.flags;
	le16(p + 2, in->tlen);
	le32(p + 4, in->a.mode);
	le32(p + 8, in->a.uid);
	le32(p + 12, in->a.gid);
	le32(p + 16, in->a.nlink);
	le64(p + 24, in->a.size);
	le64(p + 32, in->a.rdev);
	le64(p + 40, in->emap);
	le64(p + 48, in->next_cookie);
	le64(p + 56, (uint64_t)in->a.atime_ns);
	le64(p + 64, (uint64_t)in->a.mtime_ns);
	le64(p + 72, (uint64_t)in->a.ctime_ns);
	le64(p + 80, (uint64_t)in->a.btime_ns);
	le64(p + 88, in->parent);
	memcpy(p + MI_FIXED, in->target, in->tlen);
	return (size_t)MI_FIXED + in->tlen;
}

int mi_inode_get(meta_txn *t, uint64_t ino, mi_inode *out)
{
	uint8_t k[8];
	MDB_val v;
	be64(k, ino);
	int rc = mt_get(t, MT_INODE, k, 8, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "inode %llu does not exist", (unsigned long long)ino);
	if (rc)
		return rc;
	return mi_inode_dec(ino, &v, out);
}

/* Writes the inode and keeps the statfs counters exact: old is the
 * previous value (NULL for a new inode). */
int mi_inode_put(meta_txn *t, const mi_inode *old, const mi_inode *in)
{
	uint8_t k[8], buf[MI_FIXED + META_SYMLINK_MAX + 1];
	be64(k, in->a.ino);
	size_t n = mi_inode_enc(in, buf);
	int rc = mt_put(t, MT_INODE, k, 8, buf, n);
	if (rc)
		return rc;
	if (!old)
		rc = mt_counter_add(t, MC_INODES, 1);
	if (!rc && S_ISREG(in->a.mode)) {
		int64_t d = (int64_t)in->a.size - (old ? (int64_t)old->a.size : 0);
		if (d)
			rc = mt_counter_add(t, MC_FILE_BYTES, d);
	}
	return rc;
}

int mi_inode_put_raw(meta_txn *t, const mi_inode *in)
{
	uint8_t k[8], buf[MI_FIXED + META_SYMLINK_MAX + 1];
	be64(k, in->a.ino);
	size_t n = mi_inode_enc(in, buf);
	return mt_put(t, MT_INODE, k, 8, buf, n);
}

int mi_inode_del(meta_txn *t, const mi_inode *old)
{
	uint8_t k[8];
	be64(k, old->a.ino);
	int rc = mt_del(t, MT_INODE, k, 8);
	if (!rc)
		rc = mt_counter_add(t, MC_INODES, -1);
	if (!rc && S_ISREG(old->a.mode) && old->a.size)
		rc = mt_counter_add(t, MC_FILE_BYTES, -(int64_t)old->a.size);
	return rc;
}

/* ---- dirent ---- */

size_t md_key(uint8_t *k, uint64_t parent, const char *name, size_t nlen)
{
	be64(k, parent);
	memcpy(k + 8, name, nlen);
	return 8 + nlen;
}

int md_dec(const MDB_val *v, uint64_t *ino, uint32_t *type, uint64_t *cookie)
{
	int rc = mr_version(v, "dirent of inode", 0);
	if (rc)
		return rc;
	if (v->mv_size != MD_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "dirent record of %zu bytes (want %d)",
				  v->mv_size, MD_VLEN);
	const uint8_t *p = v->mv_data;
	*type = (uint32_t)p[1] << 12;
	*ino = rle64(p + 2);
	*cookie = rle64(p + 10);
	return 0;
}

void md_enc(uint8_t *p, uint64_t ino, uint32_t type, uint64_t cookie)
{
	p[0] = META_REC_V1;
	p[1] = (uint8_t)((type & S_IFMT) >> 12);
	le64(p + 2, ino);
	le64(p + 10, cookie);
}

/* ---- extent ---- */

int me_dec(const MDB_val *v, meta_extent *e)
{
	int rc = mr_version(v, "extent", 0);
	if (rc)
		return rc;
	if (v->mv_size != ME_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "extent record of %zu bytes (want %d)",
				  v->mv_size, ME_VLEN);
	const uint8_t *p = v->mv_data;
	e->len = rle64(p + 1);
	e->chunk = rle64(p + 9);
	e->chunk_off = rle64(p + 17);
	return 0;
}

void me_enc(uint8_t *p, const meta_extent *e)
{
	p[0] = META_REC_V1;
	le64(p + 1, e->len);
	le64(p + 9, e->chunk);
	le64(p + 17, e->chunk_off);
}

/* ---- chunk ---- */

int mch_dec(uint64_t id, const MDB_val *v, meta_chunk *c)
{
	int rc = mr_version(v, "chunk", id);
	if (rc)
		return rc;
	if (v->mv_size != MCH_VLEN)
		return cairn_errf(CAIRN_E_CORRUPT, "chunk %llu: record of %zu bytes (want %d)",
				  (unsigned long long)id, v->mv_size, MCH_VLEN);
	const uint8_t *p = v->mv_data;
	c->id = id;
	c->codec = p[1];
	c->stored_len = rle32(p + 4);
	c->raw_len = rle32(p + 8);
	c->crc = rle32(p + 12);
	c->seg = rle64(p + 16);
	c->seg_off = rle64(p + 24);
	c->refs = rle64(p + 32);
	memcpy(c->hash, p + 40, META_HASH_LEN);
	return 0;
}

void mch_enc(uint8_t *p, const meta_chunk *c)
{
	memset(p, 0, MCH_VLEN);
	p[0] = META_REC_V1;
	p[1] = c->codec;
	le32(p + 4, c->stored_len);
	le32(p + 8, c->raw_len);
	le32(p + 12, c->crc);
	le64(p + 16, c->seg);
	le64(p + 24, c->seg_off);
	le64(p + 32, c->refs);
	memcpy(p + 40, c->hash, META_HASH_LEN);
}

int mch_get(meta_txn *t, uint64_t id, meta_chunk *c)
{
	uint8_t k[8];
	MDB_val v;
	be64(k, id);
	int rc = mt_get(t, MT_CHUNK, k, 8, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "chunk %llu does not exist", (unsigned long long)id);
	if (rc)
		return rc;
	return mch_dec(id, &v, c);
}

int mch_put(meta_txn *t, const meta_chunk *c)
{
	uint8_t k[8], v[MCH_VLEN];
	be64(k, c->id);
	mch_enc(v, c);
	return mt_put(t, MT_CHUNK, k, 8, v, MCH_VLEN);
}

/* ---- segment ---- */

int ms_dec(uint64_t id, const MDB_val *v, meta_seg *s)
{
	int rc = mr_version(v, "segment", id);
	if (rc)
		return rc;
	const uint8_t *p = v->mv_data;
	if (v->mv_size < MS_FIXED)
		return cairn_errf(CAIRN_E_CORRUPT, "segment %llu: record of %zu bytes is short",
				  (unsigned long long)id, v->mv_size);
	size_t kl = rle16(p + 4), ul = rle16(p + 6);
	if (kl >= META_SEG_KEY_MAX || ul >= META_SEG_UPLOAD_ID_MAX ||
	    v->mv_size != MS_FIXED + kl + ul)
		return cairn_errf(CAIRN_E_CORRUPT, "segment %llu: bad key lengths %zu/%zu",
				  (unsigned long long)id, kl, ul);
	memset(s, 0, sizeof *s);
	s->id = id;
	s->state = p[1];
	s->kind = p[2];
	s->size = rle64(p + 8);
	s->live_bytes = rle64(p + 16);
	s->nchunks = rle64(p + 24);
	s->ctime_ns = (int64_t)rle64(p + 32);
	s->mtime_ns = (int64_t)rle64(p + 40);
	memcpy(s->key, p + MS_FIXED, kl);
	memcpy(s->upload_id, p + MS_FIXED + kl, ul);
	return 0;
}

size_t ms_enc(const meta_seg *s, uint8_t *p)
{
	size_t kl = strnlen(s->key, META_SEG_KEY_MAX - 1);
	size_t ul = strnlen(s->upload_id, META_SEG_UPLOAD_ID_MAX - 1);
	memset(p, 0, MS_FIXED);
	p[0] = META_REC_V1;
	p[1] = (uint8_t)s->state;
	p[2] = (uint8_t)s->kind;
	le16(p + 4, (uint16_t)kl);
	le16(p + 6, (uint16_t)ul);
	le64(p + 8, s->size);
	le64(p + 16, s->live_bytes);
	le64(p + 24, s->nchunks);
	le64(p + 32, (uint64_t)s->ctime_ns);
	le64(p + 40, (uint64_t)s->mtime_ns);
	memcpy(p + MS_FIXED, s->key, kl);
	memcpy(p + MS_FIXED + kl, s->upload_id, ul);
	return MS_FIXED + kl + ul;
}

int ms_get(meta_txn *t, uint64_t id, meta_seg *s)
{
	uint8_t k[8];
	MDB_val v;
	be64(k, id);
	int rc = mt_get(t, MT_SEG, k, 8, &v);
	if (rc == CAIRN_E_NOTFOUND)
		return cairn_errf(rc, "segment %llu does not exist", (unsigned long long)id);
	if (rc)
		return rc;
	return ms_dec(id, &v, s);
}

int ms_put(meta_txn *t, const meta_seg *s)
{
	uint8_t k[8], v[MS_FIXED + META_SEG_KEY_MAX + META_SEG_UPLOAD_ID_MAX];
	be64(k, s->id);
	size_t n = ms_enc(s, v);
	return mt_put(t, MT_SEG, k, 8, v, n);
}
