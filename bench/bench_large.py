#!/usr/bin/env python3
"""bench/bench_large.py - one large file (1 GiB; --quick 256 MiB) through
the volume API beside plain tools, same disk, same file, same run (Python 3
standard library only).

    file://   `bench_large write` (write in 8 MiB pieces + fsync, durability
              local: the data is on local stable storage, as with dd)
              versus `dd if=SRC of=DST bs=8M conv=fsync`; target >= 0.8.
              Informational: the time until the upload to the file://
              store completed.  `bench_large read` (cold: local copies
              and cache dropped, 64 MiB reads, parallel ranged GETs) versus
              `dd if=DST of=/dev/null bs=8M` of dd's file after its pages
              were dropped (POSIX_FADV_DONTNEED); target >= 0.8.
    s3rver    `bench_large write` with the volume's store on s3rver, timed
              until the object is complete in the store, versus
              `aws s3 cp SRC s3://...`; `bench_large read` (cold) versus
              `aws s3 cp s3://... FILE`; target >= 1.0 for both.

With `bench/run.py --only large --no-s3` only the file:// rows run.
Each figure is the median of ctx.reps repetitions (alternating the order of
the two tools); the first read of each kind is compared with the source
(SHA-256); on file:// that check is a read of its own after the timed
one, untimed, so that every timed read discards its bytes as dd's (to
/dev/null) do.

Use from bench/run.py:

    import bench_large
    @benchmark("large", bench_large.DESC, targets=bench_large.TARGETS)
    def _large(ctx):
        return bench_large.run(ctx, Row, BenchError)
"""

import json
import os
import shutil
import subprocess
import tempfile

import bench_s3

MiB = 1024 * 1024
DESC = ("large files through the volume API: 1 GiB write+fsync and cold "
        "read on file:// vs dd, on s3rver vs aws s3 cp")
TARGETS = ["bench_large"]


def _evict(path):
    """Drop one file's pages from the page cache (it is clean after dd's
    fsync), so that dd reads it from the disk as cairn's cold read does,
    without a global drop_caches that would disturb other work."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run(ctx, Row, BenchError):
    tool = ctx.tool("bench_large")
    if not os.access(tool, os.X_OK):
        raise BenchError("%s not built (target bench_large)" % tool)
    size = (256 if ctx.quick else 1024) * MiB
    reps = ctx.reps
    work = tempfile.mkdtemp(prefix="largebench.", dir=ctx.bench_dir)
    ctx.params.update(bytes=size, reps=reps)
    rows = []
    samples = {}

    def add(key, v):
        samples.setdefault(key, []).append(v)

    def timed(cmd, env=None):
        dt, out = bench_s3._timed(cmd, env or dict(os.environ), BenchError)
        return dt, out

    def cairn(args, env=None):
        _, out = timed([tool] + args, env)
        r = json.loads(out)
        ctx.raw.setdefault("large", []).append(r)
        return r

    try:
        src = os.path.join(work, "src.bin")
        ctx.log("writing %d MiB of random data" % (size // MiB))
        with open(src, "wb") as f:
            for _ in range(size // (8 * MiB)):
                f.write(os.urandom(8 * MiB))
        src_sha = bench_s3._sha(src)

        # ---- file:// versus dd ----
        for rep in range(reps):
            order = ("cairn", "dd") if rep % 2 == 0 else ("dd", "cairn")
            for who in order:
                vol = os.path.join(work, "vol")
                dst = os.path.join(work, "dd.bin")
                if who == "cairn":
                    shutil.rmtree(vol, ignore_errors=True)
                    r = cairn(["write", vol, src])
                    add("f_w", size / r["write_local_s"])
                    add("f_up", size / r["write_remote_s"])
                    r = cairn(["read", vol, "-"])
                    add("f_r", size / r["read_s"])
                    if rep == 0:
                        # Checked once, after the timed read and untimed:
                        # timed reads discard the bytes as dd's do.
                        out = os.path.join(work, "read.bin")
                        cairn(["read", vol, out])
                        if bench_s3._sha(out) != src_sha:
                            raise BenchError("file:// read back differs")
                        os.unlink(out)
                else:
                    dt, _ = timed(["dd", "if=" + src, "of=" + dst, "bs=8M",
                                   "conv=fsync", "status=none"])
                    add("dd_w", size / dt)
                    _evict(dst)
                    dt, _ = timed(["dd", "if=" + dst, "of=/dev/null", "bs=8M",
                                   "status=none"])
                    add("dd_r", size / dt)
                    os.unlink(dst)
        shutil.rmtree(os.path.join(work, "vol"), ignore_errors=True)
        med = ctx.median
        rows.append(Row("large", "file:// 1 file", "write+fsync MiB/s",
                        med(samples["f_w"]) / MiB, "dd conv=fsync",
                        med(samples["dd_w"]) / MiB, target=0.8,
                        samples=samples["f_w"], baseline_samples=samples["dd_w"]))
        rows.append(Row("large", "file:// 1 file", "write until uploaded MiB/s",
                        med(samples["f_up"]) / MiB, "dd conv=fsync",
                        med(samples["dd_w"]) / MiB, note="informational"))
        rows.append(Row("large", "file:// 1 file", "cold read MiB/s",
                        med(samples["f_r"]) / MiB, "dd (cold)",
                        med(samples["dd_r"]) / MiB, target=0.8,
                        samples=samples["f_r"], baseline_samples=samples["dd_r"]))

        # ---- s3rver versus the AWS CLI ----
        if getattr(ctx.args, "no_s3", False):
            ctx.log("--no-s3: s3 rows skipped")
            return rows
        aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
        if not aws:
            ctx.log("the AWS CLI is not installed: s3 rows skipped")
            return rows
        srv = bench_s3._Server(os.path.join(work, "server"), BenchError)
        try:
            env = bench_s3._env(srv.endpoint, work)
            awsx = [aws, "--endpoint-url", srv.endpoint]
            quiet = ["--no-progress", "--only-show-errors"]
            url = "s3://" + bench_s3.BUCKET
            for rep in range(reps):
                order = ("cairn", "aws") if rep % 2 == 0 else ("aws", "cairn")
                for who in order:
                    if who == "cairn":
                        vol = os.path.join(work, "svol%d" % rep)
                        r = cairn(["write", vol, src, "%s/vol%d" % (url, rep)], env)
                        add("s_w", size / r["write_remote_s"])
                        out = os.path.join(work, "sread.bin")
                        r = cairn(["read", vol, out], env)
                        add("s_r", size / r["read_s"])
                        if rep == 0 and bench_s3._sha(out) != src_sha:
                            raise BenchError("s3 read back differs")
                        os.unlink(out)
                        shutil.rmtree(vol, ignore_errors=True)
                    else:
                        key = "%s/aws/%d.bin" % (url, rep)
                        dt, _ = timed(awsx + ["s3", "cp"] + quiet + [src, key], env)
                        add("a_w", size / dt)
                        out = os.path.join(work, "aread.bin")
                        dt, _ = timed(awsx + ["s3", "cp"] + quiet + [key, out], env)
                        add("a_r", size / dt)
                        os.unlink(out)
        finally:
            srv.close()
        rows.append(Row("large", "s3rver 1 file", "write until uploaded MiB/s",
                        med(samples["s_w"]) / MiB, "aws s3 cp (up)",
                        med(samples["a_w"]) / MiB, target=1.0,
                        samples=samples["s_w"], baseline_samples=samples["a_w"]))
        rows.append(Row("large", "s3rver 1 file", "cold read MiB/s",
                        med(samples["s_r"]) / MiB, "aws s3 cp (down)",
                        med(samples["a_r"]) / MiB, target=1.0,
                        samples=samples["s_r"], baseline_samples=samples["a_r"]))
        return rows
    finally:
        shutil.rmtree(work, ignore_errors=True)
