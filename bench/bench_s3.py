#!/usr/bin/env python3
"""bench/bench_s3.py - the s3:// backend beside the AWS CLI, same server,
same files, same run (Python 3 standard library only).

Both tools talk to one s3rver on loopback (tests/s3/server, installed by
tests/s3/server/install.sh), over plain HTTP with s3rver's credentials:

    big     one file (1 GiB; --quick 256 MiB) up and down:
            `aws s3 cp FILE s3://...` / `aws s3 cp s3://... FILE`  versus
            `bench_s3 put-big` (multipart, parts in parallel) /
            `bench_s3 get-big` (parallel ranged GETs into the file)
    many    5,000 files of 16 KiB (--quick 1,000) up and down:
            `aws s3 cp --recursive` versus `bench_s3 put-many/get-many`

Each figure is the median of ctx.reps repetitions, the order of the two
tools alternating between repetitions; every download is compared with the
source (SHA-256) on the first repetition.  Target: ratio >= 1.0 (at least
the AWS CLI's throughput).  Both tools run with their defaults (the AWS CLI:
10 concurrent requests, 8 MiB parts; cairn: 16 workers, 8 MiB parts).

Use from bench/run.py:

    import bench_s3
    @benchmark("s3", bench_s3.DESC, targets=["bench_s3"])
    def _s3(ctx):
        return bench_s3.run(ctx, Row, BenchError)

or alone:  bench/bench_s3.py --build build [--quick] [--reps N]
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER = os.path.join(REPO, "tests", "s3", "server")
BUCKET = "cairn-bench"
MiB = 1024 * 1024
DESC = ("s3:// backend vs the AWS CLI against the same s3rver: one big "
        "object and 5,000 16 KiB objects, up and down")


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def _tree_sha(d):
    h = hashlib.sha256()
    for name in sorted(os.listdir(d)):
        h.update(name.encode())
        h.update(_sha(os.path.join(d, name)).encode())
    return h.hexdigest()


class _Server:
    """s3rver on a free loopback port, data under d; stopped by close()."""

    def __init__(self, d, BenchError):
        if not shutil.which("node"):
            raise BenchError("node not found (apt-get install nodejs npm)")
        inst = subprocess.run([os.path.join(SERVER, "install.sh")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
        if inst.returncode != 0:
            raise BenchError("tests/s3/server/install.sh failed: "
                             + inst.stderr.strip()[-500:])
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.p = subprocess.Popen(
            ["node", os.path.join(SERVER, "run.js"), "--dir", d,
             "--bucket", BUCKET],
            stdout=subprocess.PIPE, env=env, text=True)
        line = self.p.stdout.readline()
        if not line.startswith("READY "):
            self.close()
            raise BenchError("s3rver did not start")
        self.port = int(line.split()[1])
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def close(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def _env(endpoint, home):
    e = dict(os.environ)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CA_BUNDLE",
              "AWS_ENDPOINT_URL"):
        e.pop(k, None)
    e.update(AWS_ACCESS_KEY_ID="S3RVER", AWS_SECRET_ACCESS_KEY="S3RVER",
             AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
             AWS_ENDPOINT_URL_S3=endpoint, CAIRN_S3_ALLOW_HTTP="1",
             AWS_CONFIG_FILE=os.path.join(home, "config"),
             AWS_SHARED_CREDENTIALS_FILE=os.path.join(home, "credentials"),
             AWS_PAGER="")
    return e


def _timed(cmd, env, BenchError, timeout=3600):
    t0 = time.monotonic()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, env=env, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        raise BenchError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                              p.stderr.strip()[-1500:]))
    return dt, p.stdout


def run(ctx, Row, BenchError):
    aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
    if not aws:
        raise BenchError("the AWS CLI is not installed (apt-get install awscli)")
    tool = os.path.join(ctx.build_dir, "tests", "s3", "bench_s3")
    if not os.access(tool, os.X_OK):
        raise BenchError("%s not built (configure with -DCAIRN_S3=ON, "
                         "target bench_s3)" % tool)
    big = (256 if ctx.quick else 1024) * MiB
    nsmall, small = (1000 if ctx.quick else 5000), 16 * 1024
    reps = ctx.reps
    work = tempfile.mkdtemp(prefix="s3bench.", dir=ctx.bench_dir)
    aws_version = subprocess.run([aws, "--version"], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT,
                                 text=True).stdout.strip()
    ctx.params.update(big_bytes=big, small_count=nsmall, small_bytes=small,
                      reps=reps, aws=aws, aws_version=aws_version,
                      server="s3rver 3.7.1 (patched), loopback http")
    srv = None
    samples = {}
    try:
        srv = _Server(os.path.join(work, "server"), BenchError)
        env = _env(srv.endpoint, work)
        awsx = [aws, "--endpoint-url", srv.endpoint]
        quiet = ["--no-progress", "--only-show-errors"]
        url = "s3://" + BUCKET

        ctx.log("writing %d MiB and %d x %d KiB of random data"
                % (big // MiB, nsmall, small // 1024))
        bigf = os.path.join(work, "big.bin")
        with open(bigf, "wb") as f:
            for _ in range(big // (8 * MiB)):
                f.write(os.urandom(8 * MiB))
        smalld = os.path.join(work, "small")
        os.mkdir(smalld)
        for i in range(nsmall):
            with open(os.path.join(smalld, "f%05d" % i), "wb") as f:
                f.write(os.urandom(small))
        big_sha, small_sha = _sha(bigf), _tree_sha(smalld)

        def cairn_cmd(*a):
            dt, out = _timed([tool] + list(a), env, BenchError)
            ctx.raw.setdefault("cairn", []).append(json.loads(out))
            return dt

        def one(rep, who):
            tag = "%s%d" % (who, rep)
            down = os.path.join(work, "down-" + tag)
            downd = os.path.join(work, "downd-" + tag)
            if who == "cairn":
                t_up = cairn_cmd("put-big", url, bigf, "big/" + tag)
                t_down = cairn_cmd("get-big", url, "big/" + tag, down)
                t_sup = cairn_cmd("put-many", url, smalld, "many/" + tag)
                t_sdown = cairn_cmd("get-many", url, "many/" + tag, downd)
            else:
                t_up, _ = _timed(awsx + ["s3", "cp"] + quiet + [bigf,
                                         "%s/big/%s" % (url, tag)], env,
                                 BenchError)
                t_down, _ = _timed(awsx + ["s3", "cp"] + quiet + ["%s/big/%s"
                                           % (url, tag), down], env,
                                   BenchError)
                t_sup, _ = _timed(awsx + ["s3", "cp"] + quiet + ["--recursive", smalld,
                                          "%s/many/%s/" % (url, tag)], env,
                                  BenchError)
                t_sdown, _ = _timed(awsx + ["s3", "cp"] + quiet + ["--recursive",
                                            "%s/many/%s/" % (url, tag),
                                            downd], env, BenchError)
            if rep == 0:
                if _sha(down) != big_sha:
                    raise BenchError("%s: downloaded big object differs" % who)
                if _tree_sha(downd) != small_sha:
                    raise BenchError("%s: downloaded small files differ" % who)
            os.unlink(down)
            shutil.rmtree(downd)
            # Keep the server's disk use to one copy at a time.
            _timed(awsx + ["s3", "rm", "--only-show-errors", "--recursive", "%s/big/%s"
                           % (url, tag)], env, BenchError)
            _timed(awsx + ["s3", "rm", "--only-show-errors", "--recursive", "%s/many/%s/"
                           % (url, tag)], env, BenchError)
            r = {"big up": big / t_up / 1e6, "big down": big / t_down / 1e6,
                 "many up": nsmall * small / t_sup / 1e6,
                 "many down": nsmall * small / t_sdown / 1e6,
                 "many up obj/s": nsmall / t_sup,
                 "many down obj/s": nsmall / t_sdown}
            for k, v in r.items():
                samples.setdefault((who, k), []).append(v)
            ctx.log("rep %d %-5s big up %7.1f down %7.1f MB/s; 16K up %6.0f "
                    "down %6.0f obj/s" % (rep + 1, who, r["big up"],
                                          r["big down"], r["many up obj/s"],
                                          r["many down obj/s"]))

        for rep in range(reps):
            order = ("cairn", "aws") if rep % 2 == 0 else ("aws", "cairn")
            for who in order:
                one(rep, who)
    finally:
        if srv:
            srv.close()
        if not getattr(ctx.args, "keep", False):
            shutil.rmtree(work, ignore_errors=True)

    rows = []
    cases = [("big up", "1 object of %d MiB, upload" % (big // MiB), "MB/s"),
             ("big down", "1 object of %d MiB, download" % (big // MiB), "MB/s"),
             ("many up obj/s", "%d objects of 16 KiB, upload" % nsmall, "obj/s"),
             ("many down obj/s", "%d objects of 16 KiB, download" % nsmall,
              "obj/s")]
    for key, case, metric in cases:
        c, a = samples[("cairn", key)], samples[("aws", key)]
        rows.append(Row("s3", case, metric, ctx.median(c),
                        "aws s3 cp (%s)" % aws_version.split()[0],
                        ctx.median(a), target=1.0, samples=c,
                        baseline_samples=a))
    return rows


def main():
    import argparse
    import statistics

    ap = argparse.ArgumentParser(description=DESC)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    class BenchError(Exception):
        pass

    class Row(dict):
        def __init__(self, bench, case, metric, value, baseline_name,
                     baseline, target=None, samples=None,
                     baseline_samples=None, note=""):
            super().__init__(bench=bench, case=case, metric=metric,
                             value=value, baseline_name=baseline_name,
                             baseline=baseline,
                             ratio=value / baseline if baseline else None,
                             target=target, samples=samples,
                             baseline_samples=baseline_samples)

    class Ctx:
        pass

    ctx = Ctx()
    ctx.args, ctx.quick, ctx.reps = args, args.quick, args.reps
    ctx.build_dir = os.path.abspath(args.build)
    ctx.bench_dir = os.path.join(ctx.build_dir, "bench-data")
    os.makedirs(ctx.bench_dir, exist_ok=True)
    ctx.params, ctx.raw = {}, {}
    ctx.log = lambda m: print("  " + m, file=sys.stderr, flush=True)
    ctx.median = statistics.median
    try:
        rows = run(ctx, Row, BenchError)
    except BenchError as e:
        print("bench_s3: not run: %s" % e, file=sys.stderr)
        return 1
    for r in rows:
        print("%-36s %10.1f %-6s vs %10.1f  ratio %.2f" % (
            r["case"], r["value"], r["metric"], r["baseline"], r["ratio"]))
    print(json.dumps({"params": ctx.params, "rows": rows}, indent=1),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
