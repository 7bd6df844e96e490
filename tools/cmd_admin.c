/*
 * cmd_admin.c - operations on a volume: status, fsck, gc, recover (table
 * cli_admin_commands).  All but recover are CLI_VOLUME: run in the mount
 * daemon when the volume is mounted (cli_ctl.c); recover builds a volume
 * directory from a store (docs/log-shipping.md) in this process.
 *
 * status reports the settings chosen at format time (volume.conf, a text
 * file of "key = value" lines, docs/volume.md), what the namespace holds
 * (volume_statfs), the space picture of docs/space.md (volume_space), the
 * upload pipeline (volume_stats) and the local disk the volume uses
 * (its cache and staging directories, measured with lstat).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* ---- status ---- */

struct conf {
	char uuid[64], store[1100];
	long zstd_level;
	uint64_t segment_size;
};

static int conf_read(const char *dir, struct conf *cf)
{
	char path[4200], line[1200];
	FILE *f;

	memset(cf, 0, sizeof *cf);
	snprintf(path, sizeof path, "%s/volume.conf", dir);
	if (!(f = fopen(path, "r"))) {
		/* a follower's directory (docs/log-shipping.md) */
		snprintf(path, sizeof path, "%s/follow.conf", dir);
		f = fopen(path, "r");
	}
	if (!f)
		return cairn_errf(cairn_rc_from_errno(errno), "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof line, f)) {
		char *eq = strstr(line, " = ");
		if (!eq)
			continue;
		*eq = 0;
		char *v = eq + 3;
		v[strcspn(v, "\n")] = 0;
		if (strcmp(line, "uuid") == 0)
			snprintf(cf->uuid, sizeof cf->uuid, "%s", v);
		else if (strcmp(line, "store") == 0)
			snprintf(cf->store, sizeof cf->store, "%s", v);
		else if (strcmp(line, "zstd_level") == 0)
			cf->zstd_level = strtol(v, NULL, 10);
		else if (strcmp(line, "segment_size") == 0)
			cf->segment_size = strtoull(v, NULL, 10);
	}
	fclose(f);
	return 0;
}

/* Bytes and files under dir (not following symlinks). */
static void du(int dfd, uint64_t *bytes, uint64_t *files, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	if (!d) {
		close(dfd);
		return;
	}
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;  /* removed meanwhile */
		if (S_ISDIR(st.st_mode) && depth < 8) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				du(sub, bytes, files, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			*bytes += (uint64_t)st.st_blocks * 512;
			(*files)++;
		}
	}
	closedir(d);
}

static void du_path(const char *dir, const char *sub, uint64_t *bytes, uint64_t *files)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	*bytes = *files = 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		du(fd, bytes, files, 0);
}

static int cmd_status(cli_ctx *c, int argc, char **argv)
{
	struct conf cf;
	cairn_statfs sf;
	cairn_space sp;
	cairn_volume_stats vs;
	uint64_t cache_b, cache_f, stage_b, stage_f;
	char uuid[37], b[8][24];
	int rc;

	if (argc > 1)
		return argv[1][0] == '-' ? cli_usage(c, "unknown option '%s'", argv[1]) :
			cli_usage(c, "unexpected argument '%s'", argv[1]);
	if ((rc = conf_read(c->volume_dir, &cf)))
		return cli_fail(c, rc, NULL, "volume settings");
	if ((rc = volume_statfs(c->vol, &sf)))
		return cli_fail(c, rc, NULL, "statfs");
	if ((rc = volume_space(c->vol, &sp)))
		return cli_fail(c, rc, NULL, "space accounting");
	volume_stats(c->vol, &vs);
	volume_uuid(c->vol, uuid);
	du_path(c->volume_dir, "cache", &cache_b, &cache_f);
	du_path(c->volume_dir, "staging", &stage_b, &stage_f);

	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "volume", c->volume_dir);
		cli_json_kstr(&j, "uuid", uuid);
		cli_json_kstr(&j, "store", cf.store);
		cli_json_kstr(&j, "compression", cf.zstd_level < 0 ? "none" : "zstd");
		cli_json_ki64(&j, "zstd_level", cf.zstd_level < 0 ? 0 : cf.zstd_level);
		cli_json_ku64(&j, "segment_size", cf.segment_size);
		cli_json_key(&j, "mountpoint");
		cli_json_str(&j, c->mountpoint);
		cli_json_ku64(&j, "inodes", sf.inodes);
		cli_json_ku64(&j, "file_bytes", sf.file_bytes);
		cli_json_ku64(&j, "logical_bytes", sp.logical_bytes);
		cli_json_ku64(&j, "referenced_bytes", sp.referenced_bytes);
		cli_json_ku64(&j, "live_bytes", sp.live_bytes);
		cli_json_ku64(&j, "stored_bytes", sp.stored_bytes);
		cli_json_ku64(&j, "reclaimable_bytes", sp.reclaimable_bytes);
		cli_json_ku64(&j, "segments", sp.segments);
		cli_json_ku64(&j, "segments_dead", sp.segments_dead);
		cli_json_ku64(&j, "chunks", sp.chunks);
		cli_json_kf64(&j, "live_fraction", sp.live_fraction);
		cli_json_kf64(&j, "dedup_ratio", sp.dedup_ratio);
		cli_json_ku64(&j, "cache_bytes", cache_b);
		cli_json_ku64(&j, "cache_files", cache_f);
		cli_json_ku64(&j, "staging_bytes", stage_b);
		cli_json_ku64(&j, "pending_upload_bytes", vs.unuploaded_bytes);
		cli_json_ku64(&j, "pending_upload_segments", vs.upload_queue);
		cli_json_ku64(&j, "upload_failures", vs.upload_failures);
		cli_json_kbool(&j, "follower", vs.follower);
		cli_json_ku64(&j, "last_lsn", vs.last_lsn);
		if (vs.follower) {
			cli_json_ku64(&j, "follow_applied_objects", vs.follow_applied_objects);
			cli_json_ku64(&j, "follow_resyncs", vs.follow_resyncs);
			cli_json_ku64(&j, "follow_lag_ms", vs.follow_lag_ms);
		} else {
			cli_json_ku64(&j, "shipped_lsn", vs.shipped_lsn);
			cli_json_ku64(&j, "unshipped_records", vs.last_lsn > vs.shipped_lsn ?
				      vs.last_lsn - vs.shipped_lsn : 0);
			cli_json_ku64(&j, "ship_objects", vs.ship_objects);
			cli_json_ku64(&j, "ship_bytes", vs.ship_bytes);
			cli_json_ku64(&j, "ship_failures", vs.ship_failures);
			cli_json_ku64(&j, "images", vs.images);
			cli_json_ku64(&j, "lease_epoch", vs.lease_epoch);
			cli_json_kbool(&j, "fenced", vs.fenced);
		}
		cli_json_ku64(&j, "image_lsn", vs.image_lsn);
		cli_json_obj_end(&j);
		return 0;
	}
	fprintf(c->out, "volume:          %s\n", c->volume_dir);
	fprintf(c->out, "uuid:            %s\n", uuid);
	fprintf(c->out, "store:           %s\n", cf.store);
	if (vs.follower)
		fprintf(c->out, "role:            read-only follower (docs/log-shipping.md)\n");
	if (vs.follower || !cf.segment_size)
		{ /* a follower's format settings are the writer's */ }
	else if (cf.zstd_level < 0)
		fprintf(c->out, "compression:     none\n");
	else
		fprintf(c->out, "compression:     zstd level %ld\n", cf.zstd_level);
	if (cf.segment_size)
		fprintf(c->out, "segment size:    %s\n",
			cli_fmt_bytes(cf.segment_size, b[0], sizeof b[0]));
	fprintf(c->out, "mounted:         %s\n", c->mountpoint ? c->mountpoint : "no");
	fprintf(c->out, "inodes:          %llu\n", (unsigned long long)sf.inodes);
	fprintf(c->out, "logical bytes:   %s (%llu, snapshots included)\n",
		cli_fmt_bytes(sp.logical_bytes, b[1], sizeof b[1]),
		(unsigned long long)sp.logical_bytes);
	fprintf(c->out, "stored bytes:    %s in %llu segments (%llu dead), %llu chunks\n",
		cli_fmt_bytes(sp.stored_bytes, b[2], sizeof b[2]), (unsigned long long)sp.segments,
		(unsigned long long)sp.segments_dead, (unsigned long long)sp.chunks);
	fprintf(c->out, "live bytes:      %s (live fraction %.3f)\n",
		cli_fmt_bytes(sp.live_bytes, b[3], sizeof b[3]), sp.live_fraction);
	fprintf(c->out, "dedup ratio:     %.3f\n", sp.dedup_ratio);
	fprintf(c->out, "reclaimable:     %s (cairn gc)\n",
		cli_fmt_bytes(sp.reclaimable_bytes, b[4], sizeof b[4]));
	fprintf(c->out, "local cache:     %s in %llu files\n",
		cli_fmt_bytes(cache_b, b[5], sizeof b[5]), (unsigned long long)cache_f);
	fprintf(c->out, "staging:         %s\n", cli_fmt_bytes(stage_b, b[6], sizeof b[6]));
	fprintf(c->out, "pending uploads: %s in %llu segments (%llu upload failures so far)\n",
		cli_fmt_bytes(vs.unuploaded_bytes, b[7], sizeof b[7]),
		(unsigned long long)vs.upload_queue, (unsigned long long)vs.upload_failures);
	if (vs.follower) {
		fprintf(c->out, "following:       applied LSN %llu, %llu log objects, %llu "
			"re-syncs, lag %llu ms\n", (unsigned long long)vs.last_lsn,
			(unsigned long long)vs.follow_applied_objects,
			(unsigned long long)vs.follow_resyncs, (unsigned long long)vs.follow_lag_ms);
	} else if (vs.lease_epoch || vs.shipped_lsn || vs.ship_objects) {
		fprintf(c->out, "log shipping:    shipped LSN %llu of %llu (%llu unshipped), %llu "
			"objects (%s), %llu failures%s\n", (unsigned long long)vs.shipped_lsn,
			(unsigned long long)vs.last_lsn,
			(unsigned long long)(vs.last_lsn > vs.shipped_lsn ?
					     vs.last_lsn - vs.shipped_lsn : 0),
			(unsigned long long)vs.ship_objects,
			cli_fmt_bytes(vs.ship_bytes, b[0], sizeof b[0]),
			(unsigned long long)vs.ship_failures,
			vs.fenced ? "; FENCED: another writer took the volume" : "");
		fprintf(c->out, "metadata image:  %llu uploaded, newest at LSN %llu; lease "
			"epoch %llu\n", (unsigned long long)vs.images,
			(unsigned long long)vs.image_lsn, (unsigned long long)vs.lease_epoch);
	} else {
		fprintf(c->out, "log shipping:    off (the store alone cannot rebuild this "
			"volume)\n");
	}
	return 0;
}

/* ---- fsck ---- */

static int cmd_fsck(cli_ctx *c, int argc, char **argv)
{
	static const cli_opt opts[] = {{"repair", 0, 0, 1}, {NULL, 0, 0, 0}};
	cairn_fsck_result r;
	char *rep = NULL;
	size_t replen = 0;
	int repair = 0, opt, n, rc;
	cli_args a;
	FILE *mf;

	cli_args_init(&a, argc, argv);
	while ((opt = cli_getopt(c, &a, opts)) > 0)
		repair = 1;
	char **ops = cli_operands(&a, &n);
	if (opt < 0 || n) {
		rc = opt < 0 ? CLI_EXIT_USAGE : cli_usage(c, "unexpected argument '%s'", ops[0]);
		cli_args_free(&a);
		return rc;
	}
	cli_args_free(&a);
	if (!(mf = open_memstream(&rep, &replen)))
		return cli_fail(c, cairn_errf(CAIRN_E_NOMEM, "report buffer"), NULL, "fsck");
	rc = volume_fsck(c->vol, repair ? CAIRN_FSCK_REPAIR : 0, mf, &r);
	fclose(mf);
	if (rc) {
		free(rep);
		return cli_fail(c, rc, NULL, "fsck");
	}
	uint64_t remain = r.problems > r.repaired ? r.problems - r.repaired : 0;
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_ku64(&j, "inodes", r.inodes);
		cli_json_ku64(&j, "dirents", r.dirents);
		cli_json_ku64(&j, "extents", r.extents);
		cli_json_ku64(&j, "chunks", r.chunks);
		cli_json_ku64(&j, "segments", r.segments);
		cli_json_ku64(&j, "live_bytes", r.live_bytes);
		cli_json_ku64(&j, "referenced_bytes", r.referenced_bytes);
		cli_json_ku64(&j, "problems", r.problems);
		cli_json_ku64(&j, "repaired", r.repaired);
		cli_json_kbool(&j, "clean", remain == 0);
		cli_json_key(&j, "report");
		cli_json_arr_begin(&j);
		for (char *save = NULL, *ln = rep ? strtok_r(rep, "\n", &save) : NULL; ln;
		     ln = strtok_r(NULL, "\n", &save))
			cli_json_str(&j, ln);
		cli_json_arr_end(&j);
		cli_json_obj_end(&j);
	} else {
		if (rep && replen)
			fputs(rep, c->out);
		fprintf(c->out, "checked %llu inodes, %llu entries, %llu extents, %llu chunks, "
			"%llu segments: %llu problems, %llu repaired\n",
			(unsigned long long)r.inodes, (unsigned long long)r.dirents,
			(unsigned long long)r.extents, (unsigned long long)r.chunks,
			(unsigned long long)r.segments, (unsigned long long)r.problems,
			(unsigned long long)r.repaired);
	}
	free(rep);
	if (remain) {
		fprintf(c->err, "cairn: fsck: %llu problem%s remain%s\n", (unsigned long long)remain,
			remain == 1 ? "" : "s", remain == 1 ? "s" : "");
		return CLI_EXIT_FAIL;
	}
	return 0;
}

/* ---- gc ---- */

static int cmd_gc(cli_ctx *c, int argc, char **argv)
{
	enum { O_DRY = 1, O_GRACE, O_NOCOMPACT };
	static const cli_opt opts[] = {
		{"dry-run", 'n', 0, O_DRY}, {"grace", 0, 1, O_GRACE},
		{"no-compact", 0, 0, O_NOCOMPACT}, {NULL, 0, 0, 0},
	};
	cairn_gc_opts o;
	cairn_gc_result r;
	char b[4][24];
	int opt, n, rc, status = 0;
	cli_args a;
	char **ops;

	volume_gc_opts_init(&o);
	cli_args_init(&a, argc, argv);
	while (!status && (opt = cli_getopt(c, &a, opts)) != 0) {
		switch (opt) {
		case O_DRY: o.dry_run = 1; break;
		case O_NOCOMPACT: o.compact_below = 0; break;
		case O_GRACE:
			if (cli_parse_duration(a.arg, &o.grace_ms))
				status = cli_usage(c, "--grace takes a duration (30s, 5m, 1h, 0), "
						   "not '%s'", a.arg);
			break;
		default: status = CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &n);
	if (!status && n)
		status = cli_usage(c, "unexpected argument '%s'", ops[0]);
	cli_args_free(&a);
	if (status)
		return status;
	memset(&r, 0, sizeof r);
	rc = volume_gc(c->vol, &o, &r);
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kbool(&j, "dry_run", o.dry_run);
		cli_json_ku64(&j, "segments_examined", r.segments_examined);
		cli_json_ku64(&j, "segments_marked_dead", r.segments_marked_dead);
		cli_json_ku64(&j, "segments_deleted", r.segments_deleted);
		cli_json_ku64(&j, "bytes_deleted", r.bytes_deleted);
		cli_json_ku64(&j, "segments_waiting", r.segments_waiting);
		cli_json_ku64(&j, "bytes_waiting", r.bytes_waiting);
		cli_json_ku64(&j, "orphans_found", r.orphans_found);
		cli_json_ku64(&j, "orphans_deleted", r.orphans_deleted);
		cli_json_ku64(&j, "orphan_bytes", r.orphan_bytes);
		cli_json_ku64(&j, "segments_compacted", r.segments_compacted);
		cli_json_ku64(&j, "chunks_moved", r.chunks_moved);
		cli_json_ku64(&j, "bytes_rewritten", r.bytes_rewritten);
		cli_json_kbool(&j, "ok", rc == 0);
		cli_json_obj_end(&j);
	} else {
		const char *w = o.dry_run ? "would delete" : "deleted";
		fprintf(c->out, "examined %llu segments, %llu newly dead\n",
			(unsigned long long)r.segments_examined,
			(unsigned long long)r.segments_marked_dead);
		fprintf(c->out, "%s %llu segments (%s)\n", w, (unsigned long long)r.segments_deleted,
			cli_fmt_bytes(r.bytes_deleted, b[0], sizeof b[0]));
		fprintf(c->out, "waiting out the grace period: %llu segments (%s)\n",
			(unsigned long long)r.segments_waiting,
			cli_fmt_bytes(r.bytes_waiting, b[1], sizeof b[1]));
		fprintf(c->out, "orphaned objects: %llu found, %llu %s (%s)\n",
			(unsigned long long)r.orphans_found, (unsigned long long)r.orphans_deleted,
			o.dry_run ? "would be deleted" : "deleted",
			cli_fmt_bytes(r.orphan_bytes, b[2], sizeof b[2]));
		fprintf(c->out, "%s %llu segments (%llu chunks, %s rewritten)\n",
			o.dry_run ? "would compact" : "compacted",
			(unsigned long long)r.segments_compacted, (unsigned long long)r.chunks_moved,
			cli_fmt_bytes(r.bytes_rewritten, b[3], sizeof b[3]));
	}
	if (rc)
		return cli_fail(c, rc, "what is listed above was done", "gc");
	return 0;
}

/* ---- recover ---- */

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Not CLI_VOLUME: it builds a volume directory that does not exist yet. */
static int cmd_recover(cli_ctx *c, int argc, char **argv)
{
	enum { O_STORE = 1, O_UUID, O_FORCE };
	static const cli_opt opts[] = {
		{"store", 0, 1, O_STORE}, {"uuid", 0, 1, O_UUID}, {"force", 0, 0, O_FORCE},
		{NULL, 0, 0, 0},
	};
	cairn_recover_opts ro;
	cairn_recover_result r;
	char dir[4200], tb[40];
	int opt, n, rc, status = 0;
	cli_args a;
	char **ops;

	memset(&ro, 0, sizeof ro);
	cli_args_init(&a, argc, argv);
	while (!status && (opt = cli_getopt(c, &a, opts)) != 0) {
		switch (opt) {
		case O_STORE: ro.store_url = a.arg; break;
		case O_UUID: ro.uuid = a.arg; break;
		case O_FORCE: ro.force = 1; break;
		default: status = CLI_EXIT_USAGE;
		}
	}
	ops = cli_operands(&a, &n);
	if (!status && n > 1)
		status = cli_usage(c, "unexpected argument '%s'", ops[1]);
	if (!status && n == 1 && cli_local_path(c, ops[0], dir, sizeof dir))
		status = cli_usage(c, "directory path too long");
	if (!status && n == 0)
		snprintf(dir, sizeof dir, "%s", c->volume_dir);
	if (!status && !ro.store_url) {
		struct conf cf;
		char path[4300];
		struct stat st;
		snprintf(path, sizeof path, "%s/volume.conf", dir);
		if (stat(path, &st) == 0 && conf_read(dir, &cf) == 0)
			status = cli_usage(c, "%s holds volume %s already; to rebuild it from its "
					   "store, move it away and run 'cairn recover --store %s "
					   "%s'", dir, cf.uuid, cf.store, dir);
		else
			status = cli_usage(c, "missing --store URL (the store holding the volume)");
	}
	cli_args_free(&a);
	if (status)
		return status;
	double t0 = mono_s();
	rc = volume_recover_store(dir, &ro, &r);
	double secs = mono_s() - t0;
	if (rc) {
		const char *hint = NULL;
		if (rc == CAIRN_E_BUSY)
			hint = "stop the writer, or pass --force to take the volume over";
		else if (rc == CAIRN_E_EXISTS)
			hint = "recover into a new directory";
		return cli_fail(c, rc, hint, "recover into %s", dir);
	}
	if (c->json) {
		cli_json j;
		cli_json_init(&j, c->out);
		cli_json_obj_begin(&j);
		cli_json_kstr(&j, "volume", dir);
		cli_json_kstr(&j, "uuid", r.uuid);
		cli_json_kstr(&j, "store", ro.store_url);
		cli_json_ku64(&j, "lsn", r.lsn);
		cli_json_kstr(&j, "committed", r.time_ns ? cli_fmt_time(r.time_ns, tb, sizeof tb)
			      : "");
		cli_json_ku64(&j, "image_lsn", r.image_lsn);
		cli_json_ku64(&j, "log_objects", r.log_objects);
		cli_json_ku64(&j, "records", r.records);
		cli_json_ku64(&j, "epoch", r.epoch);
		cli_json_kf64(&j, "seconds", secs);
		cli_json_ku64(&j, "fsck_problems", r.fsck_problems);
		cli_json_kbool(&j, "fsck_clean", r.fsck_problems == 0);
		cli_json_obj_end(&j);
	} else if (c->verbose >= 0) {
		char fb[64];
		if (r.fsck_problems)
			snprintf(fb, sizeof fb, "fsck found %llu problems (run 'cairn fsck')",
				 (unsigned long long)r.fsck_problems);
		else
			snprintf(fb, sizeof fb, "fsck clean");
		fprintf(c->out, "recovered volume %s to LSN %llu (committed %s) from image at "
			"LSN %llu + %llu log objects in %.1fs; %s\n", r.uuid,
			(unsigned long long)r.lsn,
			r.time_ns ? cli_fmt_time(r.time_ns, tb, sizeof tb) : "at an unknown time",
			(unsigned long long)r.image_lsn, (unsigned long long)r.log_objects, secs, fb);
	}
	if (r.fsck_problems) {
		fprintf(c->err, "cairn: recover: the rebuilt volume %s has %llu fsck problems\n",
			dir, (unsigned long long)r.fsck_problems);
		return CLI_EXIT_FAIL;
	}
	return 0;
}

const cli_command cli_admin_commands[] = {
	{"status", "show the volume's settings, space and uploads",
	 "usage: cairn status\n"
	 "\n"
	 "Print the settings chosen at format time (store, compression, segment\n"
	 "size), whether it is mounted, what it holds (inodes, logical bytes),\n"
	 "the space picture (stored and live bytes, segments, live fraction,\n"
	 "dedup ratio, bytes 'cairn gc' can reclaim), the local cache and staging\n"
	 "use, and the uploads still pending.  With --json, one object.\n",
	 CLI_VOLUME, cmd_status},
	{"fsck", "check the volume's consistency",
	 "usage: cairn fsck [--repair]\n"
	 "\n"
	 "Check every metadata record (inodes, entries, extents, chunks,\n"
	 "segments, reference counts) and that the store holds every segment\n"
	 "with its recorded size.  One line per problem, then a summary.\n"
	 "\n"
	 "  --repair  fix what can be fixed (counts, dangling records)\n"
	 "\n"
	 "Exit status 1 when problems remain.\n",
	 CLI_VOLUME, cmd_fsck},
	{"gc", "reclaim the space of deleted data",
	 "usage: cairn gc [--dry-run] [--grace DURATION] [--no-compact]\n"
	 "\n"
	 "One pass of garbage collection (docs/space.md): segments nothing\n"
	 "references any more are marked dead and deleted from the store once\n"
	 "they have been dead for the grace period; segments mostly dead are\n"
	 "compacted (their live chunks rewritten); store objects the metadata\n"
	 "does not know are deleted.  Safe while the volume is in use.\n"
	 "\n"
	 "  -n, --dry-run      report what would be freed, change nothing\n"
	 "  --grace DURATION   delete segments dead at least this long (30s, 5m,\n"
	 "                     1h; 0: at once; default 1h)\n"
	 "  --no-compact       do not rewrite partly dead segments\n",
	 CLI_VOLUME, cmd_gc},
	{"recover", "rebuild a volume from its store alone",
	 "usage: cairn recover --store URL [--uuid UUID] [--force] [DIR]\n"
	 "\n"
	 "Rebuild a volume in DIR (default: --volume) from what its writer\n"
	 "shipped to the store (docs/log-shipping.md): the newest metadata\n"
	 "image, then every later log object in order, then fsck.  DIR must not\n"
	 "hold a volume.  The rebuilt volume keeps its uuid and store, takes an\n"
	 "epoch above every writer's before it, and opens as a writer (mount it,\n"
	 "or use any command).  A log object that fails its checks, or a missing\n"
	 "one (a gap), stops recovery with an error naming it: never a silently\n"
	 "shorter namespace.\n"
	 "\n"
	 "  --store URL  the store (file:///dir or s3://bucket[/prefix])\n"
	 "  --uuid UUID  which volume, when the store holds several\n"
	 "  --force      recover although a writer's lease is fresh (that writer\n"
	 "               is fenced: what it commits from then on is lost)\n"
	 "\n"
	 "Exit status 1 also when the rebuilt volume has fsck problems.\n",
	 0, cmd_recover},
	{0},
};
