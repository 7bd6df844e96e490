#!/usr/bin/env python3
"""bench/run.py - cairn's benchmark harness (Python 3 standard library only).

Every cairn figure is measured beside a baseline in the same run, on the same
machine and the same files, and reported as a ratio: absolute numbers from a
shared VM mean little, a ratio to fio or to a plain copy means something.

    bench/run.py                     # the bench suite (bench/suite.py), full
    bench/run.py --quick             # the suite in 5 minutes
    bench/run.py --smoke             # the suite in a minute, no peers (CI)
    bench/run.py --registry          # every benchmark below, full size
    bench/run.py --only uring        # one benchmark (repeatable)
    bench/run.py --list              # what exists
    bench/run.py --dir /mnt/nvme/x   # where the benchmark files go
    bench/run.py --out /tmp/res      # where results go

Without --only/--registry this runs the bench suite of issue 10
(bench/suite.py, docs/benchmarks.md): small-file writes and reads through
cairn's mount and volume API beside native ext4, s3fs and rclone, on
loopback s3rver and on a modelled 20 ms store, plus the metadata and
checkpoint benchmarks below; results.json with every cell's status,
report.md and PNG charts.

Output of --only/--registry: <out>/<UTC timestamp>/results.json (figures,
samples, ratios, parameters and the environment: kernel, CPU, cores,
memory, the file system and device of --dir, cairn/fio/liburing versions,
build type) and report.md
(a short Markdown summary), and a table on stdout.  Targets are reported,
never asserted: the exit status is 0 unless a benchmark could not run.

Adding a benchmark
    Write a function taking a Context and returning a list of Row, decorate
    it with @benchmark("name", "what it measures", targets=[cmake targets]),
    and put its C program (if any) in bench/ with a target in
    bench/CMakeLists.txt.  Use ctx.quick to pick sizes, ctx.reps for repeats,
    ctx.median() for the figure, ctx.run() for commands, ctx.bench_dir for
    files and ctx.tool(target) for built programs.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BENCHMARKS = {}  # name -> {"fn", "desc", "targets"}


def benchmark(name, desc, targets=()):
    """Register fn as benchmark `name`; it needs the CMake `targets`."""
    def reg(fn):
        BENCHMARKS[name] = {"fn": fn, "desc": desc, "targets": list(targets)}
        return fn
    return reg


class BenchError(Exception):
    """A benchmark could not run (missing tool, failed command)."""


class Row(dict):
    """One line of the report: cairn's figure beside its baseline's.

    ratio = value / baseline (for throughput: higher is better).  target is
    the ratio we aim at, or None for an informational row."""

    def __init__(self, bench, case, metric, value, baseline_name, baseline,
                 target=None, samples=None, baseline_samples=None, note=""):
        ratio = (value / baseline) if (value is not None and baseline) else None
        super().__init__(
            bench=bench, case=case, metric=metric, value=value,
            baseline_name=baseline_name, baseline=baseline, ratio=ratio,
            target=target,
            meets_target=(None if target is None or ratio is None
                          else ratio >= target),
            samples=samples or [], baseline_samples=baseline_samples or [],
            note=note)


class Context:
    def __init__(self, args, build_dir, bench_dir):
        self.args = args
        self.quick = args.quick
        self.reps = args.reps or 3
        self.build_dir = build_dir
        self.bench_dir = bench_dir
        self.params = {}  # per-benchmark parameters, recorded in results
        self.raw = {}     # per-benchmark raw outputs, recorded in results

    def log(self, msg):
        print("  " + msg, file=sys.stderr, flush=True)

    def run(self, cmd, check=True, timeout=3600):
        """Run cmd (a list); return its stdout.  Raise BenchError on
        failure, with the command's stderr."""
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise BenchError("%s: %s" % (" ".join(cmd), e))
        if check and p.returncode != 0:
            raise BenchError("%s: exit %d: %s" % (
                " ".join(cmd), p.returncode, p.stderr.strip()[-2000:]))
        return p.stdout

    def tool(self, target):
        """Path of a built program of bench/."""
        return os.path.join(self.build_dir, "bench", target)

    @staticmethod
    def median(xs):
        return statistics.median(xs) if xs else None


# ----------------------------------------------------------------------
# environment

def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _cmd(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=30)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def _fs_of(path):
    """Mount point, fs type, source, options and device facts of path."""
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    info = {"path": path, "dev": "%d:%d" % (major, minor)}
    for line in _read("/proc/self/mountinfo").splitlines():
        parts = line.split()
        if len(parts) < 10 or parts[2] != info["dev"]:
            continue
        sep = parts.index("-")
        info.update(mount_point=parts[4], mount_options=parts[5],
                    fstype=parts[sep + 1], source=parts[sep + 2])
    sysdev = "/sys/dev/block/%d:%d" % (major, minor)
    if os.path.exists(sysdev):
        real = os.path.realpath(sysdev)
        # a partition's queue/ and device/ live in its parent disk
        disk = real if os.path.exists(os.path.join(real, "queue")) \
            else os.path.dirname(real)
        info["block_device"] = os.path.basename(disk)
        for key, rel in (("rotational", "queue/rotational"),
                         ("scheduler", "queue/scheduler"),
                         ("model", "device/model"),
                         ("vendor", "device/vendor")):
            v = _read(os.path.join(disk, rel)).strip()
            if v:
                info[key] = v
        sectors = _read(os.path.join(disk, "size")).strip()
        if sectors.isdigit():
            info["device_bytes"] = int(sectors) * 512
    usage = shutil.disk_usage(path)
    info["fs_total_bytes"], info["fs_free_bytes"] = usage.total, usage.free
    return info


def _reclaim():
    """Proactive reclaim that empties 'warm' caches behind every system's
    back: DAMON kdamonds with a pageout scheme (this VM runs one)."""
    root = "/sys/kernel/mm/damon/admin/kdamonds"
    out = []
    for k in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        kd = os.path.join(root, k)
        if not k.isdigit() or _read(os.path.join(kd, "state")).strip() != "on":
            continue
        ctx = os.path.join(kd, "contexts", "0")
        aggr = _read(os.path.join(ctx, "monitoring_attrs", "intervals",
                                  "aggr_us")).strip()
        sch = os.path.join(ctx, "schemes")
        for s in sorted(os.listdir(sch)) if os.path.isdir(sch) else []:
            if not s.isdigit():
                continue
            act = _read(os.path.join(sch, s, "action")).strip()
            age = _read(os.path.join(sch, s, "access_pattern", "age",
                                     "min")).strip()
            try:
                idle = "%.0f s" % (int(age) * int(aggr) / 1e6)
            except ValueError:
                idle = "?"
            out.append("DAMON kdamond %s: %s of memory idle for %s or more"
                       % (k, act or "?", idle))
    return "; ".join(out) or None


def collect_env(build_dir, bench_dir):
    cpu = "unknown"
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith(("model name", "Model", "cpu model")):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = None
    m = re.search(r"MemTotal:\s+(\d+) kB", _read("/proc/meminfo"))
    if m:
        mem = int(m.group(1)) * 1024
    version = None
    m = re.search(r'#define CAIRN_VERSION "([^"]+)"',
                  _read(os.path.join(REPO, "core/include/cairn/runtime.h")))
    if m:
        version = m.group(1)
    cache = _read(os.path.join(build_dir, "CMakeCache.txt"))
    build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", cache, re.M)
    cc = re.search(r"^CMAKE_C_COMPILER:\w+=(.*)$", cache, re.M)
    sanitize = re.search(r"^CAIRN_SANITIZE:\w+=(.*)$", cache, re.M)
    fio = _cmd(["fio", "--version"])
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "loadavg": _read("/proc/loadavg").split()[:3],
        "memory_bytes": mem,
        "proactive_reclaim": _reclaim(),
        "bench_dir_fs": _fs_of(bench_dir),
        "io_uring_disabled": _read(
            "/proc/sys/kernel/io_uring_disabled").strip() or None,
        "cairn_version": version,
        "cairn_git": _cmd(["git", "-C", REPO, "rev-parse", "--short",
                           "HEAD"]),
        "build_dir": build_dir,
        "build_type": build_type.group(1) if build_type else None,
        "c_compiler": cc.group(1) if cc else None,
        "sanitize": sanitize.group(1) if sanitize else None,
        "fio_version": fio,
        "liburing_version": _cmd(["pkg-config", "--modversion",
                                  "liburing"]),
        "python": platform.python_version(),
    }


# ----------------------------------------------------------------------
# build

def _built_path(build_dir, target):
    """Where a CMake target's program lands: the cairn CLI at the top of the
    build tree, the bench programs in bench/."""
    if target == "cairn":
        return os.path.join(build_dir, "cairn")
    return os.path.join(build_dir, "bench", target)


def ensure_built(build_dir, targets, no_build):
    missing = [t for t in targets
               if not os.access(_built_path(build_dir, t), os.X_OK)]
    if not missing and no_build:
        return
    if no_build:
        raise BenchError("not built: %s (in %s; drop --no-build)"
                         % (", ".join(_built_path(build_dir, t) for t in missing),
                            build_dir))
    if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
        subprocess.run(["cmake", "-S", REPO, "-B", build_dir,
                        "-DCMAKE_BUILD_TYPE=RelWithDebInfo"], check=True,
                       stdout=subprocess.DEVNULL)
    # Rebuild even when present: a stale binary would measure old code.
    if targets:
        subprocess.run(["cmake", "--build", build_dir, "-j2", "--target"]
                       + list(targets), check=True,
                       stdout=subprocess.DEVNULL)


# ----------------------------------------------------------------------
# benchmarks

MiB = 1 << 20
GiB = 1 << 30


def _fio_mib_s(out, mode):
    """fio --output-format=json: bandwidth of the one job, in MiB/s.  fio may
    print warnings before the JSON; skip to the first brace."""
    start = out.find("{")
    if start < 0:
        raise BenchError("fio printed no JSON: %s" % out[:500])
    try:
        data = json.loads(out[start:])
        return data["jobs"][0][mode]["bw_bytes"] / MiB
    except (ValueError, KeyError, IndexError) as e:
        raise BenchError("fio JSON: %s" % e)


@benchmark("uring",
           "sequential 1 MiB O_DIRECT reads and writes of one file through "
           "the uring_q API vs fio --ioengine=io_uring, same file and depth",
           targets=["bench_uring"])
def bench_uring(ctx):
    if not shutil.which("fio"):
        raise BenchError("fio not found (apt-get install fio)")
    size = 256 * MiB if ctx.quick else GiB
    if ctx.args.size:
        size = ctx.args.size * MiB
    qd = ctx.args.qd or 32
    bs = MiB
    path = os.path.join(ctx.bench_dir, "uring.dat")
    tool = ctx.tool("bench_uring")
    ctx.params.update(size=size, qd=qd, bs=bs, reps=ctx.reps, file=path,
                      threads_engine_threads=qd)

    def cairn(mode, engine):
        out = ctx.run([tool, "--mode", mode, "--file", path, "--size",
                       str(size), "--bs", str(bs), "--qd", str(qd),
                       "--engine", engine, "--threads", str(qd)])
        r = json.loads(out)
        if engine != "auto" and r["engine"] != engine:
            raise BenchError("asked for %s, ran %s" % (engine, r["engine"]))
        ctx.raw.setdefault("cairn", []).append(r)
        return r["mib_s"]

    def fio(mode):
        out = ctx.run(["fio", "--name=cairn-baseline", "--ioengine=io_uring",
                       "--direct=1", "--bs=%d" % bs, "--rw=%s" % mode,
                       "--iodepth=%d" % qd, "--size=%d" % size,
                       "--filename=%s" % path, "--output-format=json"])
        v = _fio_mib_s(out, mode)
        ctx.raw.setdefault("fio", []).append({"mode": mode, "mib_s": v})
        return v

    # Lay the file out first (not measured): every measured write then
    # overwrites allocated blocks, for cairn and fio alike.
    ctx.log("laying out %d MiB at %s" % (size // MiB, path))
    cairn("write", "io_uring")
    samples = {}
    runners = [("io_uring", lambda m: cairn(m, "io_uring")),
               ("fio", fio),
               ("threads", lambda m: cairn(m, "threads"))]
    try:
        for rep in range(ctx.reps):
            # Rotate the order each repetition so drift (other load, device
            # caches warming) does not always favour the same side.
            order = runners[rep % 3:] + runners[:rep % 3]
            for mode in ("write", "read"):
                for name, fn in order:
                    v = fn(mode)
                    samples.setdefault((name, mode), []).append(v)
                    ctx.log("rep %d %-5s %-8s %8.1f MiB/s"
                            % (rep + 1, mode, name, v))
    finally:
        if not ctx.args.keep:
            try:
                os.unlink(path)
            except OSError:
                pass

    rows = []
    for mode in ("read", "write"):
        base = samples[("fio", mode)]
        for engine, target in (("io_uring", 0.80), ("threads", None)):
            s = samples[(engine, mode)]
            rows.append(Row(
                "uring", "%s qd=%d bs=1M %s engine" % (mode, qd, engine),
                "MiB/s", ctx.median(s), "fio io_uring", ctx.median(base),
                target=target, samples=s, baseline_samples=base,
                note="" if target else
                "thread-pool fallback (%d threads), informational" % qd))
    return rows


@benchmark("smallfiles",
           "16 KiB files through the volume API (create+write+close, "
           "durability local; cold reads in write order and shuffled) vs one "
           "object per file, both on file:// behind a 20 ms first-byte "
           "latency wrapper",
           targets=["bench_smallfiles"])
def bench_smallfiles(ctx):
    """The packed-segment claim of issue 5: one request per segment (or
    read window) instead of one per file.  The baseline does what an
    object-per-file system does at close: one synchronous PUT per file, and
    one GET per file to read it back; it runs fewer files (its per-file
    cost does not depend on the count)."""
    files = 2000 if ctx.quick else 8000
    base_files = 100 if ctx.quick else 200
    size = 16 * 1024
    lat = 20
    tool = ctx.tool("bench_smallfiles")
    ctx.params.update(files=files, baseline_files=base_files, size=size,
                      latency_ms=lat, reps=ctx.reps)
    samples = {}
    for rep in range(ctx.reps):
        for mode, n in (("cairn", files), ("baseline", base_files)):
            d = os.path.join(ctx.bench_dir, "smallfiles-%s-%d" % (mode, rep))
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            try:
                out = ctx.run([tool, "--mode", mode, "--dir", d, "--files",
                               str(n), "--size", str(size), "--latency-ms",
                               str(lat), "--seed", str(rep + 1)])
            finally:
                if not ctx.args.keep:
                    shutil.rmtree(d, ignore_errors=True)
            r = json.loads(out)
            ctx.raw.setdefault(mode, []).append(r)
            for k in ("write_files_s", "read_ordered_files_s",
                      "read_shuffled_files_s"):
                samples.setdefault((mode, k), []).append(r[k])
            ctx.log("rep %d %-8s write %8.1f  ordered %8.1f  shuffled %8.1f "
                    "files/s" % (rep + 1, mode, r["write_files_s"],
                                 r["read_ordered_files_s"],
                                 r["read_shuffled_files_s"]))
    rows = []
    for key, case, target in (
            ("write_files_s", "16 KiB create+write+close, durability local",
             100.0),
            ("read_ordered_files_s", "16 KiB cold reads, write order", 20.0),
            ("read_shuffled_files_s", "16 KiB cold reads, shuffled", None)):
        c = samples[("cairn", key)]
        b = samples[("baseline", key)]
        rows.append(Row("smallfiles", case, "files/s", ctx.median(c),
                        "one object per file", ctx.median(b), target=target,
                        samples=c, baseline_samples=b,
                        note="" if target else "informational"))
    return rows


# ----------------------------------------------------------------------
# output

# Benchmarks kept in their own modules (bench/bench_*.py), registered here.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_s3  # noqa: E402
import bench_meta  # noqa: E402
import bench_large  # noqa: E402
import bench_fuse  # noqa: E402
import bench_ckpt  # noqa: E402
import bench_gc  # noqa: E402
import bench_ship  # noqa: E402


@benchmark("s3", bench_s3.DESC, targets=["bench_s3"])
def _bench_s3(ctx):
    return bench_s3.run(ctx, Row, BenchError)


@benchmark("meta", bench_meta.DESC, targets=bench_meta.TARGETS)
def _bench_meta(ctx):
    return bench_meta.run(ctx, Row, BenchError)


@benchmark("large", bench_large.DESC, targets=bench_large.TARGETS)
def _bench_large(ctx):
    return bench_large.run(ctx, Row, BenchError)


@benchmark("fuse", bench_fuse.DESC, targets=bench_fuse.TARGETS)
def _bench_fuse(ctx):
    return bench_fuse.run(ctx, Row, BenchError)


@benchmark("ckpt", bench_ckpt.DESC, targets=bench_ckpt.TARGETS)
def _bench_ckpt(ctx):
    return bench_ckpt.run(ctx, Row, BenchError)


@benchmark("gc", bench_gc.DESC, targets=bench_gc.TARGETS)
def _bench_gc(ctx):
    return bench_gc.run(ctx, Row, BenchError)


@benchmark("ship", bench_ship.DESC, targets=bench_ship.TARGETS)
def _bench_ship(ctx):
    return bench_ship.run(ctx, Row, BenchError)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (nd, v)
    return str(v)


def table(rows):
    head = ["bench", "case", "cairn", "baseline", "ratio", "target"]
    lines = []
    for r in rows:
        tgt = "-" if r["target"] is None else ">= %.2f %s" % (
            r["target"], "n/a" if r["meets_target"] is None else
            "ok" if r["meets_target"] else "MISSED")
        lines.append([r["bench"], r["case"],
                      "%s %s" % (fmt(r["value"]), r["metric"]),
                      "%s (%s)" % (fmt(r["baseline"]), r["baseline_name"]),
                      fmt(r["ratio"], 2), tgt])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    for ln in lines:
        out.append("  ".join(c.ljust(w) for c, w in zip(ln, widths)))
    for r in rows:  # e.g. bench_ckpt's "baseline failed: ..."
        if r["baseline"] is None and r["note"]:
            out.append("%s / %s: %s" % (r["bench"], r["case"], r["note"]))
    return "\n".join(out)


def report_md(res):
    env = res["environment"]
    fs = env["bench_dir_fs"]
    lines = ["# cairn benchmarks %s" % res["timestamp"], "",
             "%s run; ratios are cairn / baseline, measured in the same run "
             "on the same files (higher is better). Targets are reported, "
             "not asserted." % ("Quick" if res["quick"] else "Full"), "",
             "| bench | case | cairn | baseline | ratio | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        tgt = "-" if r["target"] is None else "%.2f (%s)" % (
            r["target"], "n/a: " + (r["note"] or "no baseline")
            if r["meets_target"] is None else
            "met" if r["meets_target"] else "missed")
        lines.append("| %s | %s | %s %s | %s %s | %s | %s |" % (
            r["bench"], r["case"], fmt(r["value"]), r["metric"],
            fmt(r["baseline"]), r["baseline_name"], fmt(r["ratio"], 2), tgt))
    for name, err in res["errors"].items():
        lines.append("| %s | not run: %s | | | | |" % (name, err))
    lines += ["", "## Environment", "",
              "- kernel %s, %s" % (env["kernel"], env["machine"]),
              "- CPU: %s, %s cores (%s usable), load %s" % (
                  env["cpu_model"], env["cores"], env["cores_usable"],
                  " ".join(env["loadavg"])),
              "- memory: %.1f GiB" % ((env["memory_bytes"] or 0) / GiB),
              "- bench dir %s: %s on %s (%s, device %s, rotational %s)" % (
                  fs.get("path"), fs.get("fstype"), fs.get("source"),
                  fs.get("mount_point"), fs.get("block_device"),
                  fs.get("rotational")),
              "- cairn %s (git %s), build %s, %s" % (
                  env["cairn_version"], env["cairn_git"], env["build_type"],
                  env["c_compiler"]),
              "- %s, liburing %s" % (env["fio_version"],
                                     env["liburing_version"]),
              ""]
    for name, b in res["benchmarks"].items():
        lines.append("Parameters of %s: `%s`" % (
            name, json.dumps(b.get("params", {}), sort_keys=True)))
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Run cairn benchmarks beside their baselines.")
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes (the suite: within 5 minutes)")
    ap.add_argument("--smoke", action="store_true",
                    help="the suite at tiny sizes, without peers (CI)")
    ap.add_argument("--registry", action="store_true",
                    help="run every registered benchmark instead of the "
                    "suite")
    ap.add_argument("--no-s3", action="store_true",
                    help="suite: cairn on a file:// store, no s3rver, no "
                    "peers")
    ap.add_argument("--no-charts", action="store_true",
                    help="suite: do not draw PNG charts")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this benchmark (repeatable)")
    ap.add_argument("--list", action="store_true",
                    help="list benchmarks and exit")
    ap.add_argument("--build", default=os.path.join(REPO, "build"),
                    help="CMake build directory (default: %(default)s)")
    ap.add_argument("--no-build", action="store_true",
                    help="do not (re)build the benchmark programs")
    ap.add_argument("--dir", help="where benchmark files go "
                    "(default: <build>/bench-data)")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"),
                    help="results root (default: %(default)s)")
    ap.add_argument("--reps", type=int, default=0,
                    help="repetitions per figure, median reported "
                    "(default 3)")
    ap.add_argument("--qd", type=int, default=0,
                    help="queue depth for I/O benchmarks (default 32)")
    ap.add_argument("--size", type=int, default=0,
                    help="file size in MiB for I/O benchmarks "
                    "(default 1024, --quick 256)")
    ap.add_argument("--keep", action="store_true",
                    help="keep benchmark files afterwards")
    args = ap.parse_args(argv)

    if args.list:
        for name, b in BENCHMARKS.items():
            print("%-10s %s" % (name, b["desc"]))
        return 0
    if not args.only and not args.registry:
        import suite
        build_dir = os.path.abspath(args.build)
        if not args.no_build:
            try:
                ensure_built(build_dir, ["bench_dataset", "bench_fuse",
                                         "bench_meta", "cairn", "ckpt_chunks"],
                             False)
            except (BenchError, subprocess.CalledProcessError, OSError) as e:
                print("run.py: build failed: %s" % e, file=sys.stderr)
                return 1
        return suite.main(args, build_dir, os.path.abspath(
            args.dir or os.path.join(build_dir, "bench-data")),
            os.path.abspath(args.out), collect_env)
    names = args.only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        ap.error("unknown benchmark %s (have: %s)"
                 % (", ".join(unknown), ", ".join(BENCHMARKS)))
    if args.reps < 0 or args.qd < 0 or args.size < 0:
        ap.error("--reps, --qd and --size must be positive")

    build_dir = os.path.abspath(args.build)
    bench_dir = os.path.abspath(args.dir or os.path.join(build_dir,
                                                         "bench-data"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    out_dir = os.path.join(os.path.abspath(args.out), stamp)

    targets = sorted({t for n in names for t in BENCHMARKS[n]["targets"]})
    try:
        ensure_built(build_dir, targets, args.no_build)
    except (BenchError, subprocess.CalledProcessError, OSError) as e:
        print("run.py: build failed: %s" % e, file=sys.stderr)
        return 1
    os.makedirs(bench_dir, exist_ok=True)

    res = {"timestamp": stamp, "argv": sys.argv, "quick": args.quick,
           "environment": collect_env(build_dir, bench_dir),
           "benchmarks": {}, "rows": [], "errors": {}}
    for name in names:
        print("== %s: %s" % (name, BENCHMARKS[name]["desc"]),
              file=sys.stderr, flush=True)
        ctx = Context(args, build_dir, bench_dir)
        t0 = time.monotonic()
        try:
            rows = BENCHMARKS[name]["fn"](ctx)
        except BenchError as e:
            print("  %s: not run: %s" % (name, e), file=sys.stderr)
            res["errors"][name] = str(e)
            rows = []
        res["benchmarks"][name] = {
            "params": ctx.params, "raw": ctx.raw, "rows": rows,
            "seconds": round(time.monotonic() - t0, 2)}
        res["rows"].extend(rows)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(report_md(res))
    print(table(res["rows"]))
    for name, err in res["errors"].items():
        print("%s: not run: %s" % (name, err))
    print("results: %s" % out_dir)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
