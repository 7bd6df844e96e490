#!/usr/bin/env python3
"""bench/smoke_test.py BUILD_DIR - the CTest test bench_quick_smoke.

Runs the bench suite in its smallest mode (bench/run.py --smoke: 200 files,
no peers, a few seconds) into a fresh results folder and checks its output,
not its numbers: results.json parses; every cell names its workload, case
and system and has a status (ok, timeout, skipped or failed); a cell that is
not ok says why; an ok cell has a positive figure; no cell failed; the
baseline of the small-file workload (native ext4 writes) ran; report.md has
one table per workload.  Exit 0 pass, 1 fail.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    build = os.path.abspath(sys.argv[1])
    tmp = os.environ.get("CAIRN_TEST_TMP") or tempfile.gettempdir()
    os.makedirs(tmp, exist_ok=True)
    work = tempfile.mkdtemp(prefix="bench-smoke.", dir=tmp)
    errors = []
    try:
        p = subprocess.run([sys.executable, os.path.join(HERE, "run.py"),
                            "--smoke", "--no-build", "--build", build,
                            "--dir", os.path.join(work, "data"),
                            "--out", os.path.join(work, "out")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=85)
        if p.returncode != 0:
            print(p.stdout[-3000:])
            print("FAIL: run.py --smoke exited %d" % p.returncode)
            return 1
        runs = os.listdir(os.path.join(work, "out"))
        if len(runs) != 1:
            print("FAIL: expected one results folder, got %s" % runs)
            return 1
        out = os.path.join(work, "out", runs[0])
        with open(os.path.join(out, "results.json")) as f:
            res = json.load(f)
        cells = res["cells"]
        if not cells:
            errors.append("no cells")
        for c in cells:
            name = "%s / %s / %s" % (c.get("workload"), c.get("case"),
                                     c.get("system"))
            if not all(c.get(k) for k in ("workload", "case", "system")):
                errors.append("cell without a name: %r" % c)
            st = c.get("status")
            if st not in ("ok", "timeout", "skipped", "failed"):
                errors.append("%s: bad status %r" % (name, st))
            elif st == "failed":
                errors.append("%s: failed: %s" % (name, c.get("reason")))
            elif st != "ok" and not c.get("reason"):
                errors.append("%s: %s without a reason" % (name, st))
            elif st == "ok" and not (isinstance(c.get("figure"), (int, float))
                                     and c["figure"] > 0):
                errors.append("%s: ok without a positive figure" % name)
        if not any(c["system"] == "native ext4" and c["status"] == "ok"
                   and c["case"].startswith("write") for c in cells):
            errors.append("the native baseline's write cell did not run")
        with open(os.path.join(out, "report.md")) as f:
            report = f.read()
        for w in {c["workload"] for c in cells}:
            if "### " + w not in report:
                errors.append("report.md has no table for %s" % w)
        print("%d cells: %s" % (len(cells), res["status_counts"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for e in errors:
        print("FAIL: " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
