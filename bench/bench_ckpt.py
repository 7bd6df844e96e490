#!/usr/bin/env python3
"""bench/bench_ckpt.py - `cairn ckpt save` / `cairn ckpt restore` of a
checkpoint tree beside plain tools, same disk, same tree, same run (Python 3
standard library only).

The tree: 8 files of 512 MiB (--quick 64 MiB) of random bytes plus 1,000
small files of 4-128 KiB, in two directories.

    file://   `cairn ckpt save SRC NAME` (a fresh volume per repetition; the
              command returns once the data is in the file:// store) versus
              `cp -r SRC DST && sync`; `cairn ckpt restore NAME DST` (synced
              to disk before it returns) versus the same `cp -r && sync`.
              Target >= 0.7 of cp's throughput for both.
    s3rver    save with the volume's store on s3rver versus
              `aws s3 cp --recursive SRC s3://...`; restore with the
              volume's local copies and cache removed first (every byte
              comes from the store) versus `aws s3 cp --recursive s3://...
              DST`.  Target >= 1.0.
    incremental  after the last file:// repetition, 10% of the
              content-defined chunks of the large files are changed
              (ckpt_chunks cuts them as the volume does) and the tree saved
              again under a new name: bytes the store grew by versus bytes
              of the changed chunks (informational), and the incremental
              save's throughput versus the full save's.

Each figure is the median of ctx.reps repetitions, the order of the two
tools alternating; the first restore of each kind is compared with the
source (SHA-256 of every file).

Use from bench/run.py:

    import bench_ckpt
    @benchmark("ckpt", bench_ckpt.DESC, targets=bench_ckpt.TARGETS)
    def _ckpt(ctx):
        return bench_ckpt.run(ctx, Row, BenchError)
"""

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import bench_s3

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "tests", "ckpt"))
import ckpt_tree  # noqa: E402  (changes 10% of the chunks, as ckpt_incr)

MiB = 1024 * 1024
DESC = ("cairn ckpt save/restore of 8 x 512 MiB + 1,000 small files: "
        "file:// vs cp -r + sync, s3rver vs aws s3 cp --recursive, and an "
        "incremental save")
TARGETS = []  # cairn and ckpt_chunks are built by run() itself


def _gen(d, nbig, big, nsmall, seed=1):
    rng = random.Random(seed)
    os.makedirs(os.path.join(d, "shards"))
    os.makedirs(os.path.join(d, "meta"))
    for i in range(nbig):
        with open(os.path.join(d, "shards", "shard%02d.pt" % i), "wb") as f:
            for _ in range(big // (8 * MiB)):
                f.write(os.urandom(8 * MiB))
    for i in range(nsmall):
        with open(os.path.join(d, "meta", "f%04d.json" % i), "wb") as f:
            f.write(os.urandom(rng.randrange(4096, 128 * 1024)))


def _tree_sha(d):
    h = hashlib.sha256()
    for dp, dns, fns in sorted(os.walk(d)):
        dns.sort()
        for n in sorted(fns):
            p = os.path.join(dp, n)
            h.update(os.path.relpath(p, d).encode())
            h.update(bench_s3._sha(p).encode())
    return h.hexdigest()


def _du(d):
    tot = 0
    for dp, _, fns in os.walk(d):
        for n in fns:
            try:
                tot += os.lstat(os.path.join(dp, n)).st_size
            except OSError:
                pass
    return tot


def run(ctx, Row, BenchError):
    cairn = os.path.join(ctx.build_dir, "cairn")
    chunks_tool = os.path.join(ctx.build_dir, "tests", "ckpt", "ckpt_chunks")
    if not getattr(ctx.args, "no_build", False):
        p = subprocess.run(["cmake", "--build", ctx.build_dir, "-j2",
                            "--target", "cairn", "ckpt_chunks"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        if p.returncode != 0:
            raise BenchError("build cairn: %s" % p.stdout[-1500:])
    for t in (cairn, chunks_tool):
        if not os.access(t, os.X_OK):
            raise BenchError("%s not built" % t)
    nbig = 8
    big = (64 if ctx.quick else 512) * MiB
    nsmall = 1000
    reps = ctx.reps
    work = tempfile.mkdtemp(prefix="ckptbench.", dir=ctx.bench_dir)
    src = os.path.join(work, "src")
    samples = {}
    rows = []

    def add(key, v):
        samples.setdefault(key, []).append(v)

    def timed(cmd, env=None):
        return bench_s3._timed(cmd, env or dict(os.environ), BenchError)

    def rm(*paths):
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)

    def cp_sync(s, d):
        dt1, _ = timed(["cp", "-r", s, d])
        dt2, _ = timed(["sync"])
        return dt1 + dt2

    try:
        ctx.log("writing %d x %d MiB + %d small files" % (nbig, big // MiB,
                                                          nsmall))
        _gen(src, nbig, big, nsmall)
        timed(["sync"])  # the source's writeback must not hit the first rep
        total = _du(src)
        src_sha = _tree_sha(src)
        ctx.params.update(big_files=nbig, big_bytes=big, small_files=nsmall,
                          total_bytes=total, reps=reps)
        env = dict(os.environ)
        env.pop("CAIRN_VOLUME", None)

        # ---- file:// ----
        last_vol = None
        for rep in range(reps):
            vol = os.path.join(work, "vol%d" % rep)
            cdst, rdst = os.path.join(work, "cp%d" % rep), \
                os.path.join(work, "restore%d" % rep)
            order = ("cairn", "cp") if rep % 2 == 0 else ("cp", "cairn")
            for who in order:
                if who == "cp":
                    t_save = cp_sync(src, cdst)
                    rm(cdst)
                    t_rest = cp_sync(src, cdst)
                    rm(cdst)
                    add(("cp", "save"), total / t_save / 1e6)
                    add(("cp", "restore"), total / t_rest / 1e6)
                else:
                    timed([cairn, "--volume", vol, "format"], env)
                    timed(["sync"])
                    t_save, out = timed([cairn, "--volume", vol, "--json",
                                         "ckpt", "save", src, "full"], env)
                    ctx.raw.setdefault("save", []).append(json.loads(out))
                    t_rest, out = timed([cairn, "--volume", vol, "--json",
                                         "ckpt", "restore", "full", rdst], env)
                    ctx.raw.setdefault("restore", []).append(json.loads(out))
                    if rep == 0 and _tree_sha(rdst) != src_sha:
                        raise BenchError("file:// restore differs from the "
                                         "source")
                    rm(rdst)
                    add(("cairn", "save"), total / t_save / 1e6)
                    add(("cairn", "restore"), total / t_rest / 1e6)
                    if last_vol:
                        rm(last_vol)
                    last_vol = vol
            ctx.log("rep %d file:// save %.0f vs cp %.0f MB/s; restore %.0f "
                    "vs cp %.0f MB/s" % (
                        rep + 1, samples[("cairn", "save")][-1],
                        samples[("cp", "save")][-1],
                        samples[("cairn", "restore")][-1],
                        samples[("cp", "restore")][-1]))
        for key in ("save", "restore"):
            c, b = samples[("cairn", key)], samples[("cp", key)]
            rows.append(Row("ckpt", "file:// %s, %d x %d MiB + %d small" % (
                key, nbig, big // MiB, nsmall), "MB/s", ctx.median(c),
                "cp -r + sync", ctx.median(b), target=0.7, samples=c,
                baseline_samples=b))

        # ---- incremental (on the last file:// volume) ----
        store = os.path.join(last_vol, "store")
        nch, k, changed = ckpt_tree.mutate(src, 7, 10, chunks_tool)
        before = _du(store)
        t_inc, out = timed([cairn, "--volume", last_vol, "--json", "ckpt",
                            "save", src, "incr"], env)
        grown = _du(store) - before
        ctx.raw["incremental"] = dict(json.loads(out), chunks=nch,
                                      chunks_changed=k, changed_bytes=changed,
                                      store_growth=grown)
        ctx.log("incremental: %d of %d chunks changed (%d bytes); store grew "
                "by %d bytes (%.1f%% of %d)" % (k, nch, changed, grown,
                                                100.0 * grown / total, total))
        rows.append(Row("ckpt", "incremental save, 10% of chunks changed: "
                        "store growth, % of the checkpoint", "%",
                        100.0 * grown / total,
                        "changed chunks, %", 100.0 * changed / total,
                        note="informational: ratio = store growth / bytes of "
                        "the changed chunks (issue target: growth <= 15%)"))
        full = ctx.median(samples[("cairn", "save")])
        rows.append(Row("ckpt", "incremental save throughput", "MB/s",
                        total / t_inc / 1e6, "full save", full,
                        note="informational"))
        rm(last_vol)
        # the source changed: take its new digest for the s3 checks
        src_sha = _tree_sha(src)

        # ---- s3rver ----
        aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
        if not aws:
            ctx.log("s3: the AWS CLI is not installed, skipped")
            return rows
        srv = None
        try:
            srv = bench_s3._Server(os.path.join(work, "server"), BenchError)
            senv = bench_s3._env(srv.endpoint, work)
            senv.pop("CAIRN_VOLUME", None)
            awsx = [aws, "--endpoint-url", srv.endpoint, "s3"]
            quiet = ["--no-progress", "--only-show-errors"]
            url = "s3://" + bench_s3.BUCKET
            for rep in range(reps):
                order = ("cairn", "aws") if rep % 2 == 0 else ("aws", "cairn")
                dst = os.path.join(work, "s3down%d" % rep)
                for who in order:
                    if who == "aws":
                        pre = "%s/aws%d/" % (url, rep)
                        t_up, _ = timed(awsx + ["cp"] + quiet + [
                            "--recursive", src, pre], senv)
                        t_down, _ = timed(awsx + ["cp"] + quiet + [
                            "--recursive", pre, dst], senv)
                        t_down += timed(["sync"])[0]
                        if rep == 0 and _tree_sha(dst) != src_sha:
                            raise BenchError("aws download differs")
                        timed(awsx + ["rm", "--only-show-errors",
                                      "--recursive", pre], senv)
                    else:
                        vol = os.path.join(work, "s3vol%d" % rep)
                        timed([cairn, "--volume", vol, "format", "--store",
                               "%s/cairn%d" % (url, rep)], senv)
                        t_up, out = timed([cairn, "--volume", vol, "--json",
                                           "ckpt", "save", src, "full"], senv)
                        ctx.raw.setdefault("s3_save", []).append(
                            json.loads(out))
                        # --cold: local copies and cache dropped first,
                        # every byte comes from the store
                        t_down, out = timed([cairn, "--volume", vol, "--json",
                                             "ckpt", "restore", "--cold",
                                             "full", dst],
                                            senv)
                        ctx.raw.setdefault("s3_restore", []).append(
                            json.loads(out))
                        if rep == 0 and _tree_sha(dst) != src_sha:
                            raise BenchError("cairn s3 restore differs")
                        rm(vol)
                    rm(dst)
                    add((who, "s3 up"), total / t_up / 1e6)
                    add((who, "s3 down"), total / t_down / 1e6)
                ctx.log("rep %d s3 save %.0f vs aws %.0f MB/s; restore %.0f "
                        "vs aws %.0f MB/s" % (
                            rep + 1, samples[("cairn", "s3 up")][-1],
                            samples[("aws", "s3 up")][-1],
                            samples[("cairn", "s3 down")][-1],
                            samples[("aws", "s3 down")][-1]))
        finally:
            if srv:
                srv.close()
        for key, what in (("s3 up", "save"), ("s3 down", "restore (cold)")):
            c, b = samples[("cairn", key)], samples[("aws", key)]
            rows.append(Row("ckpt", "s3rver %s, %d x %d MiB + %d small" % (
                what, nbig, big // MiB, nsmall), "MB/s", ctx.median(c),
                "aws s3 cp --recursive", ctx.median(b), target=1.0,
                samples=c, baseline_samples=b))
    finally:
        if not getattr(ctx.args, "keep", False):
            shutil.rmtree(work, ignore_errors=True)
    return rows
