#!/usr/bin/env python3
"""bench/bench_ship.py - log shipping (docs/log-shipping.md): recovery of a
volume from the bucket alone, and a follower's lag (Python 3 standard
library only).

    recover   `bench_ship recover`: a volume of NFILES small files
              (1,000,000; --quick 20,000) on a file:// store, shipped,
              its directory deleted, rebuilt by volume_recover_store
              (image + log objects + fsck).  Figure: seconds to recover and
              files recovered per second.  Baseline: a plain GET of every
              metadata object recovery reads (the transfer floor).
    follow    `bench_ship follow`: a writer creating RATE small files per
              second for SECONDS (200/s for 60 s; --quick 100/s for 15 s)
              and a follower in the same process.  Figures: lag from the
              writer's create to the follower seeing the file (p50, p99,
              max, ms), beside the bound the defaults promise (commit
              1 s + seal 3 s + ship interval 5 s + poll 1 s, plus the
              upload; docs/log-shipping.md "Followers").

Use from bench/run.py:

    import bench_ship
    @benchmark("ship", bench_ship.DESC, targets=bench_ship.TARGETS)
    def _ship(ctx):
        return bench_ship.run(ctx, Row, BenchError)
"""

import json
import shutil
import tempfile
import os

DESC = ("ship: recovery of a volume from the bucket (files/s vs fetching "
        "its metadata objects); follower lag under a steady small-file load")
TARGETS = ["bench_ship"]


def run(ctx, Row, BenchError):
    tool = ctx.tool("bench_ship")
    if not os.access(tool, os.X_OK):
        raise BenchError("%s not built (target bench_ship)" % tool)
    nfiles = 20000 if ctx.quick else 1000000
    secs, rate = (15, 100) if ctx.quick else (60, 200)
    ctx.params.update(recover_files=nfiles, follow_seconds=secs,
                      follow_rate=rate)
    rows = []
    work = tempfile.mkdtemp(prefix="shipbench.", dir=ctx.bench_dir)
    try:
        r = json.loads(ctx.run([tool, "recover", work, str(nfiles)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ctx.raw["recover"] = r
    case = "file:// %d files" % nfiles
    rows.append(Row("ship", case, "recover: files/s (%.1f s, fsck %d problems)"
                    % (r["recover_s"], r["fsck_problems"]),
                    r["files"] / r["recover_s"],
                    "GET of the %d metadata objects (%.0f MiB): files/s"
                    % (r["get_objects"], r["get_bytes"] / 2**20),
                    r["files"] / r["get_s"], note="informational"))
    work = tempfile.mkdtemp(prefix="shipbench.", dir=ctx.bench_dir)
    try:
        f = json.loads(ctx.run([tool, "follow", work, str(secs), str(rate)]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ctx.raw["follow"] = f
    case = "%d files/s for %d s" % (rate, secs)
    for k in ("p50", "p99", "max"):
        rows.append(Row("ship", case, "follower lag %s (ms)" % k,
                        f["lag_%s_ms" % k], "promised bound (ms)",
                        f["bound_ms"], note="informational; lower is better"))
    return rows
