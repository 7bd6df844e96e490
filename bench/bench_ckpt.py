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

CAIRN_BENCH_CKPT_PARTS=s3 (a comma list of file, incr, s3; default all)
runs only those parts: e.g. the s3rver cells alone, same tree, same
baseline, in a quarter of the time (incr needs file).

Each figure is the median of ctx.reps repetitions, the order of the two
tools alternating; the first restore of each kind is compared with the
source (SHA-256 of every file).

A baseline that fails (cp -r + sync, or the AWS CLI, which is retried once
after deleting its partial prefix) does not stop the part: the baseline is
not run again, cairn's figures are still measured and reported, and their
rows carry baseline None, ratio None and the note "baseline failed: <what>:
<the tool's last stderr line>".  cairn's own failures still raise
BenchError.

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
import time

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


class _BaselineFailed(Exception):
    """A baseline tool failed; the message is one line for the report."""


def _last_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "(no message)"


def _base_timed(what, cmd, env):
    """Run a baseline command; return its seconds.  On failure raise
    _BaselineFailed("WHAT: exit N: <last stderr line>")."""
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _BaselineFailed("%s: %s" % (what, _last_line(str(e))))
    if p.returncode != 0:
        raise _BaselineFailed("%s: exit %d: %s" % (
            what, p.returncode, _last_line(p.stderr or p.stdout)))
    return time.monotonic() - t0


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
    base_failed = {}  # "file", "s3" -> one-line reason

    def add(key, v):
        samples.setdefault(key, []).append(v)

    def timed(cmd, env=None):
        return bench_s3._timed(cmd, env or dict(os.environ), BenchError)

    def rm(*paths):
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)

    def cp_sync(s, d):
        return (_base_timed("cp -r", ["cp", "-r", s, d], None) +
                _base_timed("sync", ["sync"], None))

    def last(who, key):
        v = samples.get((who, key))
        return "%.0f" % v[-1] if v else "-"

    def base_fail(kind, reason):
        base_failed[kind] = reason
        ctx.log("baseline failed (%s), cairn's figures go on without it: %s"
                % (kind, reason))
        ctx.raw.setdefault("baseline_failed", {})[kind] = reason

    def pair_row(kind, case, cairn_key, base_key, base_name, target):
        """cairn's figure beside its baseline's, or with the baseline's
        failure as the note."""
        c, b = samples[cairn_key], samples.get(base_key, [])
        if kind in base_failed:
            return Row("ckpt", case, "MB/s", ctx.median(c), base_name, None,
                       target=target, samples=c, baseline_samples=b,
                       note="baseline failed: " + base_failed[kind])
        return Row("ckpt", case, "MB/s", ctx.median(c), base_name,
                   ctx.median(b), target=target, samples=c,
                   baseline_samples=b)

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
        parts = set((os.environ.get("CAIRN_BENCH_CKPT_PARTS") or
                     "file,incr,s3").split(","))
        if "incr" in parts and "file" not in parts:
            raise BenchError("CAIRN_BENCH_CKPT_PARTS: incr needs file")

        # ---- file:// ----
        last_vol = None
        for rep in range(reps if "file" in parts else 0):
            vol = os.path.join(work, "vol%d" % rep)
            cdst, rdst = os.path.join(work, "cp%d" % rep), \
                os.path.join(work, "restore%d" % rep)
            order = ("cairn", "cp") if rep % 2 == 0 else ("cp", "cairn")
            for who in order:
                if who == "cp":
                    if "file" in base_failed:
                        continue
                    try:
                        t_save = cp_sync(src, cdst)
                        rm(cdst)
                        t_rest = cp_sync(src, cdst)
                    except _BaselineFailed as e:
                        base_fail("file", str(e))
                        continue
                    finally:
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
            ctx.log("rep %d file:// save %.0f vs cp %s MB/s; restore %.0f "
                    "vs cp %s MB/s" % (
                        rep + 1, samples[("cairn", "save")][-1],
                        last("cp", "save"),
                        samples[("cairn", "restore")][-1],
                        last("cp", "restore")))
        for key in ("save", "restore") if "file" in parts else ():
            rows.append(pair_row(
                "file", "file:// %s, %d x %d MiB + %d small" % (
                    key, nbig, big // MiB, nsmall), ("cairn", key),
                ("cp", key), "cp -r + sync", 0.7))

        # ---- incremental (on the last file:// volume) ----
        if "incr" in parts:
            store = os.path.join(last_vol, "store")
            nch, k, changed = ckpt_tree.mutate(src, 7, 10, chunks_tool)
            before = _du(store)
            t_inc, out = timed([cairn, "--volume", last_vol, "--json", "ckpt",
                                "save", src, "incr"], env)
            grown = _du(store) - before
            ctx.raw["incremental"] = dict(
                json.loads(out), chunks=nch, chunks_changed=k,
                changed_bytes=changed, store_growth=grown)
            ctx.log("incremental: %d of %d chunks changed (%d bytes); store "
                    "grew by %d bytes (%.1f%% of %d)" % (
                        k, nch, changed, grown, 100.0 * grown / total, total))
            rows.append(Row("ckpt", "incremental save, 10% of chunks changed: "
                            "store growth, % of the checkpoint", "%",
                            100.0 * grown / total,
                            "changed chunks, %", 100.0 * changed / total,
                            note="informational: ratio = store growth / bytes "
                            "of the changed chunks (issue target: growth <= "
                            "15%)"))
            full = ctx.median(samples[("cairn", "save")])
            rows.append(Row("ckpt", "incremental save throughput", "MB/s",
                            total / t_inc / 1e6, "full save", full,
                            note="informational"))
            rm(last_vol)
            # the source changed: take its new digest for the s3 checks
            src_sha = _tree_sha(src)
        if "s3" not in parts:
            return rows

        # ---- s3rver ----
        aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
        if not aws:
            base_fail("s3", "the AWS CLI is not installed")
        srv = None
        try:
            srv = bench_s3._Server(os.path.join(work, "server"), BenchError)
            senv = bench_s3._env(srv.endpoint, work)
            senv.pop("CAIRN_VOLUME", None)
            awsx = [aws, "--endpoint-url", srv.endpoint, "s3"]
            quiet = ["--no-progress", "--only-show-errors"]
            url = "s3://" + bench_s3.BUCKET

            def aws_rm(pre):
                try:
                    _base_timed("aws s3 rm", awsx + [
                        "rm", "--only-show-errors", "--recursive", pre], senv)
                except _BaselineFailed as e:
                    ctx.log("deleting %s: %s" % (pre, e))

            def aws_once(rep, pre, dst):
                t_up = _base_timed("aws s3 cp --recursive (upload)",
                                   awsx + ["cp"] + quiet + [
                                       "--recursive", src, pre], senv)
                t_down = _base_timed("aws s3 cp --recursive (download)",
                                     awsx + ["cp"] + quiet + [
                                         "--recursive", pre, dst], senv)
                t_down += timed(["sync"])[0]
                if rep == 0 and _tree_sha(dst) != src_sha:
                    raise _BaselineFailed("aws s3 cp --recursive: the "
                                          "download differs from the source")
                return t_up, t_down

            def aws_rep(rep, dst):
                """One repetition of the AWS CLI; retried once after its
                partial prefix is deleted; None when it failed twice."""
                for attempt in (1, 2):
                    pre = "%s/aws%d-%d/" % (url, rep, attempt)
                    try:
                        return aws_once(rep, pre, dst)
                    except _BaselineFailed as e:
                        err = e
                        ctx.log("aws attempt %d of rep %d failed: %s"
                                % (attempt, rep + 1, e))
                    finally:
                        aws_rm(pre)
                        rm(dst)
                base_fail("s3", "%s (retried once after deleting its "
                          "partial prefix; failed again)" % err)
                return None
            for rep in range(reps):
                order = ("cairn", "aws") if rep % 2 == 0 else ("aws", "cairn")
                dst = os.path.join(work, "s3down%d" % rep)
                for who in order:
                    if who == "aws":
                        if "s3" in base_failed:
                            continue
                        r = aws_rep(rep, dst)
                        if r is None:
                            continue
                        t_up, t_down = r
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
                ctx.log("rep %d s3 save %.0f vs aws %s MB/s; restore %.0f "
                        "vs aws %s MB/s" % (
                            rep + 1, samples[("cairn", "s3 up")][-1],
                            last("aws", "s3 up"),
                            samples[("cairn", "s3 down")][-1],
                            last("aws", "s3 down")))
        finally:
            if srv:
                srv.close()
        for key, what in (("s3 up", "save"), ("s3 down", "restore (cold)")):
            rows.append(pair_row(
                "s3", "s3rver %s, %d x %d MiB + %d small" % (
                    what, nbig, big // MiB, nsmall), ("cairn", key),
                ("aws", key), "aws s3 cp --recursive", 1.0))
    finally:
        if not getattr(ctx.args, "keep", False):
            shutil.rmtree(work, ignore_errors=True)
    return rows
