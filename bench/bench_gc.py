#!/usr/bin/env python3
"""bench/bench_gc.py - garbage collection and compaction throughput
(docs/space.md), beside the store work they cannot avoid (Python 3
standard library only).

    gc          `bench_gc`: a volume of NSEG segments (2000; --quick 500),
                half of them dead.  Figures: segments examined per second
                by a dry-run pass, and by a pass that marks the dead half
                and deletes its objects (synced DELETING intent, batched
                deletes, record removal).  Baselines: keys listed per second
                from the same store (every pass lists it for orphans), and
                objects deleted per second by objstore_delete_batch alone.
    compaction  COMPACT_MIB MiB (256; --quick 64) of incompressible files in
                64 MiB segments, every other file deleted, caches dropped:
                MiB/s of live bytes rewritten by one pass (read + crc check,
                new segments, upload, one switch transaction per segment).
                Baseline: the same live bytes read cold through the volume
                and put back as 64 MiB objects.

Each figure is the median of ctx.reps runs.

Use from bench/run.py:

    import bench_gc
    @benchmark("gc", bench_gc.DESC, targets=bench_gc.TARGETS)
    def _gc(ctx):
        return bench_gc.run(ctx, Row, BenchError)
"""

import json
import os
import shutil
import tempfile

MiB = 1024 * 1024
DESC = ("gc: segments examined/s (dry run and mark+delete) vs a store "
        "listing; compaction MiB/s rewritten vs a read+put copy")
TARGETS = ["bench_gc"]


def run(ctx, Row, BenchError):
    tool = ctx.tool("bench_gc")
    if not os.access(tool, os.X_OK):
        raise BenchError("%s not built (target bench_gc)" % tool)
    nseg = 500 if ctx.quick else 2000
    cmib = 64 if ctx.quick else 256
    ctx.params.update(segments=nseg, compact_mib=cmib, reps=ctx.reps)
    s = {}
    for rep in range(ctx.reps):
        work = tempfile.mkdtemp(prefix="gcbench.", dir=ctx.bench_dir)
        try:
            r = json.loads(ctx.run([tool, work, str(nseg), str(cmib)]))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        ctx.raw.setdefault("gc", []).append(r)
        for k, v in (("dry", r["gc_segments"] / r["dry_s"]),
                     ("gc", r["gc_segments"] / r["gc_s"]),
                ("gcdel", r["gc_deleted"] / r["gc_s"]),
                ("del", r["gc_deleted"] / r["del_s"]),
                     ("list", r["list_keys"] / r["list_s"]),
                     ("compact", r["compact_bytes"] / MiB / r["compact_s"]),
                     ("copy", r["copy_bytes"] / MiB / r["copy_s"])):
            s.setdefault(k, []).append(v)
    med = ctx.median
    case = "file:// %d segments" % nseg
    return [
        Row("gc", case, "dry run: segments examined/s", med(s["dry"]),
            "store list keys/s", med(s["list"]), samples=s["dry"],
            baseline_samples=s["list"], note="informational"),
        Row("gc", case, "pass, half dead: segments examined/s", med(s["gc"]),
            "store list keys/s", med(s["list"]), samples=s["gc"],
            baseline_samples=s["list"], note="informational"),
        Row("gc", case, "pass, half dead: segments deleted/s", med(s["gcdel"]),
            "objstore_delete_batch keys/s", med(s["del"]), samples=s["gcdel"],
            baseline_samples=s["del"], note="informational"),
        Row("gc", "file:// %d MiB, half live" % cmib, "compaction MiB/s",
            med(s["compact"]), "read + put copy", med(s["copy"]),
            samples=s["compact"], baseline_samples=s["copy"],
            note="informational"),
    ]
