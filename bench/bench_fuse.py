#!/usr/bin/env python3
"""bench/bench_fuse.py - a cairn FUSE mount beside a native directory and
beside the volume API, same machine, same run (Python 3 standard library).

    warm      10,000 files of 4 KiB (--quick 2,000) read with 8 threads,
              caches warm: mount vs native directory (target >= 0.5)
    cold      the same files after dropping every cache (kernel page cache;
              for the mount also the volume's local segment copies and
              window cache, so reads go to the store): informational
    create    creation of those files (create+write+close, 8 threads):
              informational
    seq       1 GiB (--quick 256 MiB) sequential write (1 MiB write(2)
              calls, then fsync) and read (1 MiB read(2) calls, after a
              remount) through the mount vs the same bytes through the
              volume API (bench_fuse file-* vs api-*), the two sides in
              alternating order from one repetition to the next
              (target >= 0.7)

Needs root (mounting, drop_caches) and /dev/fuse.  The volume and the
native directory live under --dir (the same file system).

Use from bench/run.py:

    import bench_fuse
    @benchmark("fuse", bench_fuse.DESC, targets=bench_fuse.TARGETS)
    def _fuse(ctx):
        return bench_fuse.run(ctx, Row, BenchError)
"""

import json
import os
import shutil
import subprocess
import time

DESC = ("FUSE mount vs native directory (warm/cold reads and creation of "
        "10,000 small files, 8 threads) and vs the volume API (1 GiB "
        "sequential write and read)")
TARGETS = ["cairn", "bench_fuse"]
THREADS = 8


def _drop_page_cache():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def run(ctx, Row, BenchError):
    if os.geteuid() != 0:
        raise BenchError("bench fuse needs root (mount, drop_caches)")
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        raise BenchError("/dev/fuse is not usable")
    cairn = os.path.join(ctx.build_dir, "cairn")
    tool = ctx.tool("bench_fuse")
    files = 2000 if ctx.quick else 10000
    size = 4096
    seq_mib = 256 if ctx.quick else 1024
    ctx.params.update(files=files, size=size, threads=THREADS,
                      seq_mib=seq_mib, reps=ctx.reps)
    root = os.path.join(ctx.bench_dir, "fuse")
    shutil.rmtree(root, ignore_errors=True)
    vol, mnt, nat = (os.path.join(root, x) for x in ("vol", "mnt", "native"))
    os.makedirs(mnt)
    os.makedirs(nat)
    ctx.run([tool, "format", vol])
    mounted = [False]

    def mount():
        ctx.run([cairn, "--volume", vol, "mount", mnt])
        mounted[0] = True

    def umount():
        ctx.run([cairn, "umount", mnt])
        mounted[0] = False

    def js(cmd):
        return json.loads(ctx.run(cmd).strip().splitlines()[-1])

    samples = {k: [] for k in ("warm_m", "warm_n", "cold_m", "cold_n",
                               "create_m", "create_n", "w_m", "w_a",
                               "r_m", "r_a")}
    try:
        for rep in range(ctx.reps):
            mount()
            tm, tn = os.path.join(mnt, "t%d" % rep), os.path.join(nat, "t%d" % rep)
            os.makedirs(tm)
            os.makedirs(tn)
            samples["create_m"].append(js([tool, "mktree", tm, str(files), str(size),
                                           str(THREADS)])["files_per_s"])
            samples["create_n"].append(js([tool, "mktree", tn, str(files), str(size),
                                           str(THREADS)])["files_per_s"])
            for t, k in ((tm, "warm_m"), (tn, "warm_n")):
                js([tool, "readtree", t, str(files), str(THREADS)])  # warm up
                samples[k].append(js([tool, "readtree", t, str(files),
                                      str(THREADS)])["files_per_s"])
            umount()
            ctx.run([tool, "drop-cache", vol])
            _drop_page_cache()
            mount()
            samples["cold_m"].append(js([tool, "readtree", tm, str(files),
                                         str(THREADS)])["files_per_s"])
            samples["cold_n"].append(js([tool, "readtree", tn, str(files),
                                         str(THREADS)])["files_per_s"])
            # sequential: through the mount and through the volume API (the
            # volume has one owner), in alternating order: the VM's disk
            # swings between about 0.3 and 1 GB/s for writes (a token
            # bucket), so whichever side came first after the tree phases
            # used to pay for them.  Reads are cold on both sides: page
            # cache dropped, then a fresh mount / a fresh volume_open.
            big = os.path.join(mnt, "big%d" % rep)

            def through_mount():
                samples["w_m"].append(js([tool, "file-write", big,
                                          str(seq_mib)])["mib_per_s"])
                umount()
                _drop_page_cache()
                mount()
                samples["r_m"].append(js([tool, "file-read", big])["mib_per_s"])

            def through_api():
                umount()
                samples["w_a"].append(js([tool, "api-write", vol,
                                          str(seq_mib)])["mib_per_s"])
                _drop_page_cache()
                samples["r_a"].append(js([tool, "api-read", vol])["mib_per_s"])
                mount()
                os.unlink(os.path.join(mnt, "api-big"))

            for side in ((through_mount, through_api) if rep % 2 == 0
                         else (through_api, through_mount)):
                side()
            umount()
    finally:
        if mounted[0]:
            subprocess.run([cairn, "umount", mnt])
        shutil.rmtree(root, ignore_errors=True)

    m = ctx.median
    S = samples
    return [
        Row("fuse", "warm reads, %d x %d B, %d threads" % (files, size, THREADS),
            "files/s", m(S["warm_m"]), "native dir", m(S["warm_n"]), target=0.5,
            samples=S["warm_m"], baseline_samples=S["warm_n"]),
        Row("fuse", "cold reads (from the store), %d files" % files, "files/s",
            m(S["cold_m"]), "native dir (cold)", m(S["cold_n"]),
            samples=S["cold_m"], baseline_samples=S["cold_n"], note="informational"),
        Row("fuse", "create %d files" % files, "files/s", m(S["create_m"]),
            "native dir", m(S["create_n"]), samples=S["create_m"],
            baseline_samples=S["create_n"], note="informational"),
        Row("fuse", "sequential write %d MiB (+fsync)" % seq_mib, "MiB/s", m(S["w_m"]),
            "volume API", m(S["w_a"]), target=0.7, samples=S["w_m"],
            baseline_samples=S["w_a"]),
        Row("fuse", "sequential read %d MiB" % seq_mib, "MiB/s", m(S["r_m"]),
            "volume API", m(S["r_a"]), target=0.7, samples=S["r_m"],
            baseline_samples=S["r_a"]),
    ]
