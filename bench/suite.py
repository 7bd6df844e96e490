#!/usr/bin/env python3
"""bench/suite.py - the bench suite of issue 10 (`./build.sh bench`, or
bench/run.py without --only).  docs/benchmarks.md describes it.

Every cell (workload x case x system) runs time-boxed in the same run beside
its baseline and lands in results.json with a status: ok, timeout (with the
work it finished) or skipped (with the reason), never silently missing.

Modes:   --smoke  tiny sizes, no peers (the CI test bench_quick_smoke)
         --quick  a few thousand files, 5 minutes on a 2-core machine
         (full)   100,000 files (10,000 for the peers), within an hour

Systems of the small-file workloads, all on the same disk and (for the
object-store ones) the same s3rver:
    native ext4   a directory under --dir (the local limit; the baseline)
    cairn fuse    `cairn mount` of a volume whose store is s3rver
    cairn api     the volume API (bench_dataset api-*) on another volume
    s3fs          s3fs-fuse 1.90 mount of a prefix of the same bucket
    rclone        rclone mount (--vfs-cache-mode full) of another prefix
"""

import atexit
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MiB = 1 << 20

# sizes per mode
MODES = {
    # budget_s: the whole suite; meta_s, ckpt_s: the metadata and checkpoint
    # parts (kept in reserve while the small-file cells run); cell_s: one
    # small-file cell's time box
    "smoke": dict(budget_s=60, meta_s=0, ckpt_s=0, cell_s=15,
                  files=200, peer_files=0, read_threads=(1, 8),
                  meta=False, ckpt=False, peers=False, remote=False),
    "quick": dict(budget_s=290, meta_s=25, ckpt_s=80, cell_s=12,
                  files=2000, peer_files=300, read_threads=(1, 8),
                  meta=True, ckpt=True, peers=True, remote=True),
    "full": dict(budget_s=3500, meta_s=300, ckpt_s=900, cell_s=45,
                 files=100000, peer_files=10000, read_threads=(1, 8),
                 meta=True, ckpt=True, peers=True, remote=True),
}
WRITE_THREADS = 8
SEED = 1
BUCKET = "cairn-bench"


def log(msg):
    print("  " + msg, file=sys.stderr, flush=True)


class Skip(Exception):
    """A cell or a system cannot run here; the message says why."""


def drop_page_cache():
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError as e:
        raise Skip("cannot drop the page cache (%s): cold reads need root" % e)


def page_cache_drops():
    """How many times anyone wrote /proc/sys/vm/drop_caches since boot
    (drop_pagecache in /proc/vmstat); None if the kernel does not say."""
    try:
        with open("/proc/vmstat") as f:
            for ln in f:
                if ln.startswith("drop_pagecache "):
                    return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


class CellTimeout(Exception):
    pass


def run_cmd(cmd, timeout, env=None, check=True):
    """Run cmd in its own process group; kill the group at the timeout."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        p.communicate()
        raise CellTimeout("%s: killed after %d s" % (os.path.basename(cmd[0]),
                                                      timeout))
    if check and p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(cmd), p.returncode,
                                                (err or out).strip()[-800:]))
    return out


# ----------------------------------------------------------------------
# systems

class System:
    """A place the dataset can be written to and read from."""
    name = "?"
    api = False
    peer = False

    def __init__(self, suite):
        self.s = suite
        self.files = suite.cfg["peer_files"] if self.peer else suite.cfg["files"]

    def setup(self):
        pass

    def root(self):
        raise NotImplementedError

    def cold(self):
        """Empty every cache between the reader and the stored bytes."""
        drop_page_cache()

    def settle(self):
        """After writing: make the data readable from the store.  Returns
        None (all files readable) or K: only the first K files in write
        order are, and the read cells read just those (see Rclone)."""

    def teardown(self):
        pass

    def discard(self):
        """After the system's cells: free its disk (Suite.discard)."""

    def version(self):
        return None


class Native(System):
    name = "native ext4"

    def setup(self):
        self.dir = os.path.join(self.s.cdir, "native")
        os.makedirs(self.dir)

    def root(self):
        return self.dir

    def discard(self):
        self.s.discard([self.dir], None)

    def version(self):
        fs = self.s.env.get("bench_dir_fs", {})
        return "%s on %s" % (fs.get("fstype"), fs.get("source"))


class CairnFuse(System):
    name = "cairn fuse"

    def setup(self):
        if os.geteuid() != 0:
            raise Skip("needs root (mount, drop_caches)")
        if not os.access("/dev/fuse", os.R_OK | os.W_OK):
            raise Skip("/dev/fuse is not usable")
        self.vol = os.path.join(self.s.cdir, "vol-fuse")
        self.mnt = os.path.join(self.s.cdir, "mnt-cairn")
        os.makedirs(self.mnt)
        self.s.cairn(["--volume", self.vol, "format", "--store",
                      self.s.store_url("fuse")])
        self.mount()

    def mount(self):
        self.s.cairn(["--volume", self.vol, "mount", self.mnt])
        self.s.on_cleanup(("umount", self.mnt), self.umount)

    def umount(self):
        if os.path.ismount(self.mnt):
            self.s.cairn(["umount", self.mnt], timeout=300)

    def root(self):
        return self.mnt

    def cold(self):
        self.umount()
        run_cmd([self.s.tool("bench_fuse"), "drop-cache", self.vol], 120,
                env=self.s.s3env)
        drop_page_cache()
        self.mount()

    def teardown(self):
        self.umount()

    def discard(self):
        self.s.discard([self.vol], "cairn-fuse")

    def version(self):
        return self.s.cairn_version


class CairnApi(System):
    name = "cairn api"
    api = True

    def setup(self):
        self.vol = os.path.join(self.s.cdir, "vol-api")
        self.s.cairn(["--volume", self.vol, "format", "--store",
                      self.s.store_url("api")])

    def root(self):
        return self.vol

    def discard(self):
        self.s.discard([self.vol], "cairn-api")

    def version(self):
        return self.s.cairn_version


class PeerMount(System):
    """A peer's FUSE mount of a prefix of the bucket, with a local cache
    directory (removed for cold reads).  Subclasses give prepare() and
    mount_cmd()."""
    peer = True
    version_arg = "--version"

    def setup(self):
        if not self.s.cfg["peers"]:
            raise Skip("peers are not run in --%s mode" % self.s.mode)
        if not self.s.server:
            raise Skip("no S3 server: %s" % self.s.server_note)
        if not shutil.which(self.name):
            raise Skip("%s not installed (./build.sh bench installs the "
                       "Debian package %s; it failed or was not run)"
                       % (self.name, self.name))
        if os.geteuid() != 0:
            raise Skip("needs root")
        self.mnt = os.path.join(self.s.cdir, "mnt-" + self.name)
        self.cache = os.path.join(self.s.cdir, self.name + "-cache")
        self.env = self.s.s3env
        os.makedirs(self.mnt)
        self.prepare()
        self.mount()

    def prepare(self):
        pass

    def mount(self):
        os.makedirs(self.cache, exist_ok=True)
        run_cmd(self.mount_cmd(), 60, env=self.env)
        for _ in range(100):
            if os.path.ismount(self.mnt):
                break
            time.sleep(0.1)
        if not os.path.ismount(self.mnt):
            raise RuntimeError("%s did not mount" % self.name)
        self.s.on_cleanup(("umount", self.mnt), self.umount)

    def umount(self):
        if os.path.ismount(self.mnt):
            run_cmd(["umount", self.mnt], 120, check=False)
            for _ in range(100):
                if not os.path.ismount(self.mnt):
                    break
                time.sleep(0.1)

    def root(self):
        return self.mnt

    def cold(self):
        self.umount()
        shutil.rmtree(self.cache, ignore_errors=True)
        drop_page_cache()
        self.mount()

    def teardown(self):
        self.umount()

    def discard(self):
        self.s.discard([self.cache], self.name)

    def version(self):
        out = subprocess.run([self.name, self.version_arg],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True).stdout
        return out.splitlines()[0].strip() if out else None


class S3fs(PeerMount):
    name = "s3fs"

    def prepare(self):
        self.pw = os.path.join(self.s.cdir, "s3fs.passwd")
        with open(self.pw, "w") as f:
            f.write("S3RVER:S3RVER\n")
        os.chmod(self.pw, 0o600)
        self.s.s3_put_empty("s3fs/")

    def mount_cmd(self):
        return ["s3fs", "%s:/s3fs" % BUCKET, self.mnt,
                "-o", "url=%s" % self.s.endpoint, "-o", "use_path_request_style",
                "-o", "passwd_file=%s" % self.pw, "-o", "use_cache=%s" % self.cache,
                "-o", "parallel_count=8", "-o", "multireq_max=8"]


class Rclone(PeerMount):
    name = "rclone"
    version_arg = "version"

    def prepare(self):
        self.env = dict(self.s.s3env,
                        RCLONE_CONFIG_S3R_TYPE="s3",
                        RCLONE_CONFIG_S3R_PROVIDER="Other",
                        RCLONE_CONFIG_S3R_ENDPOINT=self.s.endpoint,
                        RCLONE_CONFIG_S3R_ACCESS_KEY_ID="S3RVER",
                        RCLONE_CONFIG_S3R_SECRET_ACCESS_KEY="S3RVER",
                        RCLONE_CONFIG_S3R_FORCE_PATH_STYLE="true",
                        RCLONE_CONFIG="/dev/null")

    def mount_cmd(self):
        return ["rclone", "mount", "s3r:%s/rclone" % BUCKET, self.mnt,
                "--daemon", "--vfs-cache-mode", "full", "--cache-dir",
                self.cache, "--transfers", "8"]

    def uploaded(self):
        """The number of objects under rclone's prefix, None if unknown."""
        out = run_cmd(["rclone", "size", "--json", "s3r:%s/rclone" % BUCKET],
                      60, env=self.env, check=False)
        try:
            return int(json.loads(out)["count"])
        except (ValueError, KeyError, TypeError):
            return None

    def settle(self):
        # rclone uploads closed files in the background (write-back): wait
        # until the bucket holds them all, or a cold read would find
        # nothing.  At least 3 cell boxes; longer while the count still
        # grows, up to max(135 s, 6 boxes) or what the suite's budget has
        # left after the read cells, whichever is less.
        s = self.s
        want = s.files_written.get(self.name, self.files)
        cell_s = s.cfg["cell_s"]
        base = 3 * cell_s
        room = (s.left() - s.cfg["meta_s"] - s.cfg["ckpt_s"] -
                len(s.read_cells()) * cell_s)
        cap = max(base, min(max(135, 2 * base), room))
        stall = max(15, cell_s)
        t0 = last_growth = time.monotonic()
        have = -1
        while True:
            n = self.uploaded()
            if n is not None and n >= want:
                return None
            now = time.monotonic()
            if n is not None and n > have:
                have, last_growth = n, now
            if now - t0 >= cap or (now - t0 >= base and
                                   now - last_growth >= stall):
                break
            time.sleep(1)
        waited = time.monotonic() - t0
        # Read what did reach the store: the reads take files 0..K-1 (in
        # write order or shuffled), so K is the longest run of uploaded
        # files from the first one in write order.
        out = run_cmd(["rclone", "lsf", "-R", "--files-only",
                       "s3r:%s/rclone" % BUCKET], 300, env=self.env,
                      check=False)
        got = set()
        for ln in out.splitlines():
            base_name = ln.strip().rsplit("/", 1)[-1]
            if base_name.startswith("f") and base_name[1:].isdigit():
                got.add(int(base_name[1:]))
        k = 0
        while k < want and k in got:
            k += 1
        what = ("rclone's write-back had uploaded %d of the %d files "
                "written after %.0f s of waiting" % (len(got), want, waited))
        if k == 0:
            raise Skip("%s, but not the first file in write order, so "
                       "its read cells (which read files 0..K-1) did not "
                       "run" % what)
        self.partial = "%s: the read cells read the first %d files in " \
            "write order (all uploaded), not all %d" % (what, k, want)
        s.notes.append("rclone (%s store): %s" % (s.condition, self.partial))
        return k


# ----------------------------------------------------------------------
# the modelled remote store

class RemoteStore:
    """s3rver in a network namespace, reached through a veth pair, behind
    bench/delay_proxy.py (in the namespace too): 10 ms each way and 20 ms
    per new connection, i.e. a 20 ms round trip that cairn and the peers
    pay alike.  A second proxy without delay, same path, is the control of
    the model check.  close() (also at exit) stops both and deletes the
    namespace (which deletes the veth pair)."""

    ONE_WAY_MS = 10
    CONNECT_MS = 20

    def __init__(self, suite):
        self.s = suite
        self.procs = []
        self.ns = None
        k = os.getpid() % 250 + 1
        self.name = "cairnb%d" % os.getpid()
        self.veth = ("cbh%d" % os.getpid())[:15], ("cbn%d" % os.getpid())[:15]
        self.host_ip, self.ns_ip = "10.213.%d.1" % k, "10.213.%d.2" % k

    def ip(self, *a):
        run_cmd(["ip"] + list(a), 30)

    def start(self):
        import bench_s3
        if os.geteuid() != 0:
            raise Skip("needs root (network namespace)")
        if not shutil.which("ip"):
            raise Skip("the ip command (iproute2) is missing")
        if not shutil.which("node"):
            raise Skip("node is missing (s3rver)")
        self.s.on_cleanup(("remote",), self.close)
        self.ip("netns", "add", self.name)
        self.ns = self.name
        self.ip("link", "add", self.veth[0], "type", "veth", "peer", "name",
                self.veth[1])
        self.ip("link", "set", self.veth[1], "netns", self.ns)
        self.ip("addr", "add", self.host_ip + "/30", "dev", self.veth[0])
        self.ip("link", "set", self.veth[0], "up")
        nsx = ["ip", "netns", "exec", self.ns]
        run_cmd(nsx + ["ip", "addr", "add", self.ns_ip + "/30", "dev",
                       self.veth[1]], 30)
        run_cmd(nsx + ["ip", "link", "set", self.veth[1], "up"], 30)
        run_cmd(nsx + ["ip", "link", "set", "lo", "up"], 30)
        d = os.path.join(self.s.cdir, "s3rver")
        os.makedirs(d)
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        port = self.spawn(nsx + ["node", os.path.join(bench_s3.SERVER, "run.js"),
                                 "--dir", d, "--bucket", BUCKET], env)
        proxy = [sys.executable, os.path.join(HERE, "delay_proxy.py"),
                 "--target", "127.0.0.1:%d" % port]
        pport = self.spawn(nsx + proxy + [
            "--listen", self.ns_ip + ":0", "--one-way-ms", str(self.ONE_WAY_MS),
            "--connect-ms", str(self.CONNECT_MS)])
        cport = self.spawn(nsx + proxy + [
            "--listen", self.ns_ip + ":0", "--one-way-ms", "0",
            "--connect-ms", "0"])
        self.endpoint = "http://%s:%d" % (self.ns_ip, pport)
        self.control = "http://%s:%d" % (self.ns_ip, cport)

    def spawn(self, cmd, env=None):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True,
                             start_new_session=True)
        self.procs.append(p)
        line = p.stdout.readline().split()
        if len(line) < 2 or line[0] != "READY":
            raise RuntimeError("%s did not start" % os.path.basename(cmd[4]))
        return int(line[1])

    def check(self):
        """The model check: median time of a 16 KiB GET on a kept-alive
        connection and on a new connection, through the delay proxy and
        through the control proxy (same namespace and veth, no delay)."""
        import http.client
        import statistics
        import urllib.parse
        self.s.s3_put_bytes("model-check-16k", os.urandom(16384))
        out = {}
        for label, url in (("delayed", self.endpoint), ("control", self.control)):
            u = urllib.parse.urlparse(url)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            keep, fresh = [], []
            for i in range(21):
                t0 = time.monotonic()
                conn.request("GET", "/%s/model-check-16k" % BUCKET)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or len(body) != 16384:
                    raise RuntimeError("model check GET: HTTP %d, %d bytes"
                                       % (r.status, len(body)))
                if i:  # the first one opened the connection
                    keep.append(time.monotonic() - t0)
            conn.close()
            for i in range(10):
                c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                t0 = time.monotonic()
                c.request("GET", "/%s/model-check-16k" % BUCKET)
                c.getresponse().read()
                fresh.append(time.monotonic() - t0)
                c.close()
            out[label] = (statistics.median(keep) * 1000,
                          statistics.median(fresh) * 1000)
        d_keep = out["delayed"][0] - out["control"][0]
        d_fresh = out["delayed"][1] - out["control"][1]
        return dict(
            get_16k_ms_control=round(out["control"][0], 2),
            get_16k_ms_delayed=round(out["delayed"][0], 2),
            added_ms_kept_alive=round(d_keep, 2),
            get_16k_new_conn_ms_control=round(out["control"][1], 2),
            get_16k_new_conn_ms_delayed=round(out["delayed"][1], 2),
            added_ms_new_connection=round(d_fresh, 2),
            expected_added_ms=2 * self.ONE_WAY_MS,
            ok=abs(d_keep - 2 * self.ONE_WAY_MS) <= 5)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(10)
                except (OSError, subprocess.TimeoutExpired):
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except OSError:
                        pass
                    p.wait()
        self.procs = []
        if self.ns:
            subprocess.run(["ip", "netns", "del", self.ns],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.ns = None
        subprocess.run(["ip", "link", "del", self.veth[0]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ----------------------------------------------------------------------
# the suite

class Suite:
    def __init__(self, args, mode, build_dir, bench_dir, out_dir, env):
        self.args = args
        self.mode = mode
        self.cfg = MODES[mode]
        self.build_dir = build_dir
        self.bench_dir = bench_dir
        self.out_dir = out_dir
        self.env = env
        self.cells = []
        self.notes = []
        self.cleanups = []  # (key, fn), run in reverse order
        self.files_written = {}
        self.drops_seen = None   # drop_pagecache after the last cell
        self.server = None
        self.server_note = ""
        self.model_check = None
        self.loopback_endpoint = None
        self.phase_seconds = {}
        self.condition = "loopback"
        self.endpoint = None
        self.s3env = dict(os.environ)
        self.cairn_bin = os.path.join(build_dir, "cairn")
        self.cairn_version = None
        atexit.register(self.cleanup)

    # -- helpers

    def tool(self, name):
        return os.path.join(self.build_dir, "bench", name)

    def cairn(self, argv, timeout=120):
        return run_cmd([self.cairn_bin] + argv, timeout, env=self.s3env)

    def on_cleanup(self, key, fn):
        if all(k != key for k, _ in self.cleanups):
            self.cleanups.append((key, fn))

    def cleanup(self):
        while self.cleanups:
            key, fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # cleanup goes on whatever failed
                log("cleanup %s: %s" % (key, e))

    def store_url(self, tag):
        if self.server:
            return "s3://%s/cairn-%s" % (BUCKET, tag)
        return "file://%s" % os.path.join(self.cdir, "store-" + tag)

    def aws(self, argv, timeout=60):
        """The AWS CLI against the current S3 server."""
        import bench_s3
        aws = shutil.which("aws", path="/usr/bin") or shutil.which("aws")
        if not aws:
            raise Skip("the AWS CLI is not installed")
        home = os.path.join(self.cdir, "aws")
        os.makedirs(home, exist_ok=True)
        return run_cmd([aws, "--endpoint-url", self.endpoint] + argv, timeout,
                       env=bench_s3._env(self.endpoint, home))

    def s3_put_empty(self, key):
        self.aws(["s3api", "put-object", "--bucket", BUCKET, "--key", key])

    def s3_put_bytes(self, key, data):
        path = os.path.join(self.cdir, "put.tmp")
        with open(path, "wb") as f:
            f.write(data)
        self.aws(["s3", "cp", "--quiet", path, "s3://%s/%s" % (BUCKET, key)])
        os.unlink(path)

    def discard(self, paths, prefix):
        """Free the disk a system's cells used (a full run's datasets do not
        all fit at once): local paths and the store prefix; not with --keep."""
        if self.args.keep:
            return
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)
        if prefix and self.server:
            try:
                self.aws(["s3", "rm", "--recursive", "--quiet",
                          "s3://%s/%s" % (BUCKET, prefix)], timeout=900)
            except (Skip, RuntimeError, CellTimeout, OSError) as e:
                self.notes.append("freeing s3://%s/%s: %s" % (BUCKET, prefix, e))

    def add(self, workload, case, system, unit, status, figure=None,
            reason="", work=None, seconds=None, baseline_system=None,
            condition=None):
        condition = condition or self.condition
        c = dict(workload=workload, case=case, system=system, unit=unit,
                 figure=figure, status=status, reason=reason,
                 work=work or {}, seconds=seconds, condition=condition,
                 baseline_system=baseline_system, baseline=None, ratio=None)
        self.cells.append(c)
        fig = "-" if figure is None else "%.1f" % figure
        log("%-9s %-10s %-40s %-12s %10s %s %s%s" % (
            condition, workload, case, system, fig, unit, status,
            (": " + reason) if reason else ""))
        return c

    # -- object store

    def start_server(self):
        import bench_s3

        class E(Exception):
            pass
        if self.args.no_s3:
            self.server_note = "--no-s3 given; cairn uses a file:// store"
            return
        try:
            self.server = bench_s3._Server(os.path.join(self.work, "s3rver"), E)
        except (E, OSError) as e:
            self.server_note = "s3rver could not start (%s); cairn uses a " \
                "file:// store" % e
            self.notes.append(self.server_note)
            return
        self.on_cleanup(("server",), self.server.close)
        self.endpoint = self.loopback_endpoint = self.server.endpoint
        home = os.path.join(self.work, "aws")
        os.makedirs(home, exist_ok=True)
        self.s3env = bench_s3._env(self.endpoint, home)

    # -- small files

    def left(self):
        """Seconds left of the suite's time budget."""
        return self.cfg["budget_s"] - (time.monotonic() - self.t_start)

    def cell_budget(self):
        """A cell's time box: cell_s, less when the suite's budget (which
        keeps room for the metadata and checkpoint parts) runs short."""
        reserve = self.cfg["meta_s"] + self.cfg["ckpt_s"]
        return int(max(1, min(self.cfg["cell_s"], self.left() - reserve)))

    def dataset_cmd(self, sysm, verb, n, threads, order=None, temp=None):
        budget = str(self.cell_budget())
        if sysm.api:
            cmd = [self.tool("bench_dataset"), "api-" + verb, sysm.root(),
                   str(n), str(SEED), str(threads)]
        else:
            cmd = [self.tool("bench_dataset"), verb, sysm.root(), str(n),
                   str(SEED), str(threads)]
        if order:
            cmd.append(order)
        cmd.append(budget)
        if sysm.api and verb == "read":
            cmd.append(temp)
        return cmd

    def dataset_cell(self, sysm, case, cmd, unit_key="files_per_s",
                     limit=None, note="", warm=False):
        # hard limit: the tool's own deadline plus room for setup and close
        hard = self.cfg["cell_s"] * 2 + 60
        t0 = time.monotonic()
        if self.left() - self.cfg["meta_s"] - self.cfg["ckpt_s"] < 1:
            self.add("smallfiles", case, sysm.name, "files/s", "skipped",
                     reason="the suite's time budget of %d s ran out" %
                     self.cfg["budget_s"], baseline_system="native ext4")
            return None
        # A warm cell means what the caches kept since the cold cell: if
        # another process dropped the page cache in between (the bench
        # smoke test of a CI run does), the cell says so.
        d0 = self.drops_seen if warm else page_cache_drops()
        env = self.s3env
        if limit:
            env = dict(env if env is not None else os.environ,
                       BENCH_LIMIT=str(limit))
        try:
            out = run_cmd(cmd, hard, env=env)
            r = json.loads(out.strip().splitlines()[-1])
        except CellTimeout as e:
            self.add("smallfiles", case, sysm.name, "files/s", "timeout",
                     reason=str(e) + "; work finished unknown",
                     seconds=round(time.monotonic() - t0, 1))
            return None
        except (RuntimeError, ValueError, IndexError, OSError) as e:
            self.add("smallfiles", case, sysm.name, "files/s", "failed",
                     reason=str(e), seconds=round(time.monotonic() - t0, 1))
            return None
        work = dict(files_done=r["files_done"], files=r["files"],
                    bytes_done=r["bytes_done"], threads=r["threads"],
                    mib_per_s=r["mib_per_s"])
        if sysm.api:
            work.update(chunks_read_local=r.get("chunks_read_local"),
                        chunks_read_store=r.get("chunks_read_store"))
        status = "ok" if r["complete"] else "timeout"
        reason = "" if r["complete"] else (
            "time box of %s s ran out after %d of %d files" % (
                cmd[-2] if sysm.api and "read" in cmd[1] else cmd[-1],
                r["files_done"], r["files"]))
        d1 = self.drops_seen = page_cache_drops()
        if d0 is not None and d1 is not None and d1 != d0:
            dropped = ("another process dropped the page cache %d time%s "
                       "during this cell%s (/proc/vmstat drop_pagecache): "
                       "reads it made cold again count here" % (
                           d1 - d0, "" if d1 - d0 == 1 else "s",
                           " or since the cold one" if warm else ""))
            note = "; ".join(x for x in (note, dropped) if x)
        reason = "; ".join(x for x in (reason, note) if x)
        c = self.add("smallfiles", case, sysm.name, "files/s", status,
                     figure=r[unit_key], reason=reason, work=work,
                     seconds=round(r["secs"], 2), baseline_system="native ext4")
        if note:
            c["note_in_table"] = True
        return r

    def smallfiles(self, systems):
        for sysm in systems:
            n = sysm.files
            try:
                sysm.setup()
            except Skip as e:
                self.skip_system(sysm, str(e))
                continue
            except (RuntimeError, CellTimeout, OSError) as e:
                self.skip_system(sysm, "setup failed: %s" % e, status="failed")
                continue
            log("%s: %d files" % (sysm.name, n))
            try:
                self.system_cells(sysm, n)
            finally:
                try:
                    sysm.teardown()
                    sysm.discard()
                except (RuntimeError, CellTimeout, OSError) as e:
                    self.notes.append("%s teardown: %s" % (sysm.name, e))

    def system_cells(self, sysm, n):
        """The write cell, then the read cells of one system."""
        wcase = "write: create+write+close, %d threads" % WRITE_THREADS
        r = self.dataset_cell(sysm, wcase, self.dataset_cmd(
            sysm, "gen", n, WRITE_THREADS))
        if not r or not r["files_done"]:
            self.skip_system(sysm, "no dataset: the write cell did not "
                             "finish any file", reads_only=True)
            return
        n = r["files_done"]
        self.files_written[sysm.name] = n
        cold_done = None
        try:
            ready = sysm.settle()
            note = ""
            if ready is not None and ready < n:
                # only the first `ready` files reached the store
                n, note = ready, sysm.partial
            for threads, order, temp in self.read_cells():
                case = self.read_case(threads, order, temp)
                limit = None
                if temp == "cold":
                    sysm.cold()
                elif cold_done and cold_done < n:
                    # Warm means the files the cold pass read: when its
                    # time box ran out, the warm pass reads just those.
                    limit = cold_done
                r = self.dataset_cell(sysm, case, self.dataset_cmd(
                    sysm, "read", n, threads, order, temp), limit=limit,
                    note=note, warm=temp == "warm")
                if temp == "cold":
                    cold_done = r["files_done"] if r else None
        except Skip as e:
            self.skip_system(sysm, str(e), reads_only=True)
        except (RuntimeError, CellTimeout, OSError) as e:
            self.skip_system(sysm, "stopped: %s" % e, reads_only=True,
                             status="failed")

    def read_cells(self):
        """(threads, order, temperature) of the read cells: all of them on
        loopback; through the modelled remote store only the cold shuffled
        reads (warm reads do not reach the store)."""
        out = []
        for threads in self.cfg["read_threads"]:
            for order in ("order", "shuffle"):
                for temp in ("cold", "warm"):
                    if self.condition == "loopback" or (
                            order == "shuffle" and temp == "cold"):
                        out.append((threads, order, temp))
        return out

    @staticmethod
    def read_case(threads, order, temp):
        return "read %s, %s, %d thread%s" % (
            "write order" if order == "order" else "shuffled", temp, threads,
            "" if threads == 1 else "s")

    def skip_system(self, sysm, reason, reads_only=False, status="skipped"):
        """Every cell of sysm not yet recorded gets `status` and reason."""
        cases = [] if reads_only else [
            "write: create+write+close, %d threads" % WRITE_THREADS]
        for threads, order, temp in self.read_cells():
            cases.append(self.read_case(threads, order, temp))
        have = {(c["case"], c["system"], c["condition"]) for c in self.cells}
        for case in cases:
            if (case, sysm.name, self.condition) not in have:
                self.add("smallfiles", case, sysm.name, "files/s", status,
                         reason=reason, baseline_system="native ext4")

    # -- workloads kept in their own modules, run time-boxed through run.py

    def module_cells(self, name, workload, enabled, budget):
        if not enabled:
            self.add(workload, "all cases", "cairn", "-", "skipped",
                     reason="not run in --%s mode" % self.mode)
            return
        out = tempfile.mkdtemp(prefix="sub-", dir=self.work)
        cmd = [sys.executable, os.path.join(HERE, "run.py"), "--only", name,
               "--build", self.build_dir, "--dir", self.bench_dir, "--out", out,
               "--reps", "1", "--no-build"]
        if self.mode != "full":
            cmd.append("--quick")
        t0 = time.monotonic()
        try:
            run_cmd(cmd, budget, check=False)
        except CellTimeout as e:
            self.add(workload, "all cases", "cairn", "-", "timeout",
                     reason="%s (time box %d s)" % (e, budget),
                     seconds=round(time.monotonic() - t0, 1))
            return
        res = None
        for d in os.listdir(out):
            p = os.path.join(out, d, "results.json")
            if os.path.exists(p):
                with open(p) as f:
                    res = json.load(f)
        if res is None or res["errors"].get(name):
            self.add(workload, "all cases", "cairn", "-", "failed",
                     reason=(res["errors"].get(name) if res else
                             "run.py --only %s wrote no results" % name),
                     seconds=round(time.monotonic() - t0, 1))
            return
        for r in res["rows"]:
            sysname = "cairn"
            note = r.get("note", "")
            c = self.add(workload, r["case"], sysname, r["metric"], "ok",
                         figure=r["value"], reason=note,
                         baseline_system=r["baseline_name"])
            c["work"] = {"samples": r.get("samples", [])}
            if r["baseline"] is None:
                # the baseline failed (bench_ckpt: "baseline failed: ...");
                # cairn's figure stands, without a ratio
                c["note_in_table"] = True
                self.add(workload, r["case"], r["baseline_name"], r["metric"],
                         "failed", reason=note or "the baseline gave no "
                         "figure", baseline_system=r["baseline_name"])
                continue
            self.add(workload, r["case"], r["baseline_name"], r["metric"],
                     "ok", figure=r["baseline"], baseline_system=r["baseline_name"])

    # -- ratios, output

    def ratios(self):
        base = {}
        for c in self.cells:
            if c["system"] == c["baseline_system"] and c["status"] in ("ok", "timeout"):
                base[(c["workload"], c["case"], c["condition"])] = c["figure"]
        for c in self.cells:
            b = base.get((c["workload"], c["case"], c["condition"]),
                         base.get((c["workload"], c["case"], "loopback")))
            c["baseline"] = b
            if b and c["figure"] is not None:
                c["ratio"] = c["figure"] / b

    def run(self):
        t_start = self.t_start = time.monotonic()
        self.work = tempfile.mkdtemp(prefix="suite.", dir=self.bench_dir)
        if not self.args.keep:
            self.on_cleanup(("rm", self.work),
                            lambda: shutil.rmtree(self.work, ignore_errors=True))
        self.cairn_version = (run_cmd([self.cairn_bin, "version"], 30,
                                      check=False).strip().splitlines() or
                              [None])[0]
        self.set_condition("loopback")
        self.start_server()
        systems = [Native(self), CairnFuse(self), CairnApi(self), S3fs(self),
                   Rclone(self)]
        t = time.monotonic()
        self.smallfiles(systems)
        if self.server:
            self.server.close()
        self.phase_seconds["smallfiles, loopback"] = round(time.monotonic() - t)
        t = time.monotonic()
        self.remote()
        self.phase_seconds["smallfiles, 20 ms store"] = round(time.monotonic() - t)
        self.set_condition("loopback")
        self.versions = {s.name: self.safe_version(s) for s in systems}
        t = time.monotonic()
        self.module_cells("meta", "metadata", self.cfg["meta"],
                          self.cfg["meta_s"])
        self.phase_seconds["metadata"] = round(time.monotonic() - t)
        t = time.monotonic()
        self.module_cells("ckpt", "checkpoint", self.cfg["ckpt"],
                          self.cfg["ckpt_s"])
        self.phase_seconds["checkpoint"] = round(time.monotonic() - t)
        self.cleanup()
        self.ratios()
        self.seconds = round(time.monotonic() - t_start, 1)

    def set_condition(self, cond):
        self.condition = cond
        self.cdir = os.path.join(self.work, cond.replace(" ", ""))
        os.makedirs(self.cdir, exist_ok=True)

    def remote(self):
        """The small-file cells again, through the modelled 20 ms store."""
        self.set_condition("20 ms")
        systems = [CairnFuse(self), CairnApi(self), S3fs(self), Rclone(self)]
        if not self.cfg["remote"]:
            for sysm in systems:
                self.skip_system(sysm, "not run in --%s mode" % self.mode)
            return
        rs = RemoteStore(self)
        try:
            rs.start()
            import bench_s3
            self.server, self.endpoint = rs, rs.endpoint
            home = os.path.join(self.cdir, "aws")
            os.makedirs(home, exist_ok=True)
            self.s3env = bench_s3._env(self.endpoint, home)
            self.model_check = rs.check()
            log("model check: %s" % self.model_check)
            if not self.model_check["ok"]:
                self.notes.append("the 20 ms model check missed: %s"
                                  % self.model_check)
            self.smallfiles(systems)
        except Skip as e:
            self.model_check = {"ok": None, "skipped": str(e)}
            for sysm in systems:
                self.skip_system(sysm, "modelled store: %s" % e)
        except (RuntimeError, CellTimeout, OSError) as e:
            self.model_check = {"ok": None, "failed": str(e)}
            for sysm in systems:
                self.skip_system(sysm, "modelled store failed: %s" % e,
                                 status="failed")
        finally:
            rs.close()

    @staticmethod
    def safe_version(s):
        try:
            return s.version()
        except (OSError, AttributeError):
            return None


# ----------------------------------------------------------------------
# report

def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = float(v)
        if abs(v) >= 100 or nd == 0:
            return "{:,.0f}".format(v)
        return "%.*f" % (nd, v)
    return str(v)


def groups(cells):
    """(title, cells) per workload and store condition, in run order."""
    keys = []
    for c in cells:
        k = (c["workload"], c["condition"])
        if k not in keys:
            keys.append(k)
    return [("%s, %s store" % k if k[0] == "smallfiles" else k[0],
             [c for c in cells if (c["workload"], c["condition"]) == k])
            for k in keys]


def systems_cases(cells):
    """The systems and the cases of cells, each in first-seen order."""
    systems, cases = [], []
    for c in cells:
        if c["system"] not in systems:
            systems.append(c["system"])
        if c["case"] not in cases:
            cases.append(c["case"])
    return systems, cases


def cell_text(c, notes):
    if c["status"] == "ok":
        # note_in_table: an ok figure whose reason the reader must see
        # (a failed baseline, a read of part of the files)
        star = "*" if c.get("note_in_table") and c["reason"] else ""
        if star:
            notes.setdefault(c["reason"], []).append(c)
        return "%s%s%s" % (fmt(c["figure"]), "" if c["ratio"] is None or
                           c["system"] == c["baseline_system"]
                           else " (%.2f)" % c["ratio"], star)
    notes.setdefault(c["reason"], []).append(c)
    if c["status"] == "timeout" and c["figure"] is not None:
        return "%s (%s) timeout*" % (fmt(c["figure"]), fmt(c["ratio"], 2))
    return c["status"] + "*"


def tables_md(cells):
    """One table per workload and condition: cases down, systems across,
    figure (ratio to the baseline); workloads whose baseline differs by case
    get one row per case with the baseline named."""
    lines = []
    for title, wc in groups(cells):
        systems, cases = systems_cases(wc)
        notes = {}
        bases = {c["baseline_system"] for c in wc if c["baseline_system"]}
        unit = wc[0]["unit"]
        if len(bases) <= 1:
            lines += ["### %s (%s; in brackets: ratio to %s)" % (
                title, unit, (bases.pop() if bases else "the baseline")), "",
                "| case | " + " | ".join(systems) + " |",
                "| --- |" + " --- |" * len(systems)]
            for case in cases:
                row = []
                for s in systems:
                    c = next((x for x in wc if x["case"] == case and
                              x["system"] == s), None)
                    row.append("" if c is None else cell_text(c, notes))
                lines.append("| %s | %s |" % (case, " | ".join(row)))
        else:
            lines += ["### %s" % title, "",
                      "| case | cairn | baseline | ratio |",
                      "| --- | --- | --- | --- |"]
            for case in cases:
                cc = [x for x in wc if x["case"] == case]
                me = next((x for x in cc if x["system"] != x["baseline_system"]),
                          cc[0])
                b = next((x for x in cc if x["system"] == x["baseline_system"]),
                         None)
                if b is None:
                    btext = "-"
                elif b["status"] == "ok":
                    btext = "%s %s (%s)" % (fmt(b["figure"]), b["unit"],
                                            b["system"])
                else:
                    btext = "%s (%s)" % (cell_text(b, notes), b["system"])
                lines.append("| %s | %s %s | %s | %s |" % (
                    case, cell_text(dict(me, ratio=None), notes), me["unit"],
                    btext, fmt(me["ratio"], 2)))
        lines.append("")
        for reason, cs in notes.items():
            lines.append("\\* %s: %s" % (", ".join(sorted({
                c["system"] for c in cs})), reason or "(no reason given)"))
        if notes:
            lines.append("")
    return "\n".join(lines)


def report_md(res):
    env = res["environment"]
    fs = env.get("bench_dir_fs", {})
    GiB = 1 << 30
    lines = ["# cairn bench suite %s (%s mode)" % (res["timestamp"], res["mode"]),
             "",
             "Every figure was measured in this run beside its baseline, on "
             "the same machine and disk; ratios are figure / baseline (higher "
             "is better). %d cells: %s. Suite time %.0f s." % (
                 len(res["cells"]), ", ".join(
                     "%d %s" % (n, k) for k, n in sorted(res["status_counts"].items())),
                 res["seconds"]),
             "Time per part (s): %s." % ", ".join(
                 "%s %s" % kv for kv in res.get("phase_seconds", {}).items()),
             ""]
    lines.append(tables_md(res["cells"]))
    if res["charts"]:
        lines += ["## Charts", ""]
        for ch in res["charts"]:
            lines.append("![%s](%s)" % (ch, ch))
        lines.append("")
    else:
        lines += ["Charts: not drawn (%s)." % res["charts_note"], ""]
    lines += ["## Environment", "",
              "- kernel %s, %s" % (env["kernel"], env["machine"]),
              "- CPU: %s, %s cores (%s usable), load at start %s" % (
                  env["cpu_model"], env["cores"], env["cores_usable"],
                  " ".join(env["loadavg"])),
              "- memory: %.1f GiB" % ((env["memory_bytes"] or 0) / GiB),
              "- proactive reclaim: %s" % (env.get("proactive_reclaim") or
                                           "none found"),
              "- disk: bench dir %s is %s on %s (device %s, %s, rotational %s)" % (
                  fs.get("path"), fs.get("fstype"), fs.get("source"),
                  fs.get("block_device"), fs.get("model", "model unknown"),
                  fs.get("rotational")),
              "- cairn %s (git %s), build %s, %s" % (
                  env["cairn_version"], env["cairn_git"], env["build_type"],
                  env["c_compiler"]),
              "- object store: %s" % res["settings"]["store"]]
    for k, v in sorted(res["versions"].items()):
        lines.append("- %s: %s" % (k, v or "-"))
    lines += ["", "## Settings", ""]
    for k, v in sorted(res["settings"].items()):
        lines.append("- %s: %s" % (k, v))
    mc = res.get("model_check")
    lines += ["", "## Model check of the 20 ms store", ""]
    if not mc:
        lines.append("Not run.")
    elif mc.get("ok") is None:
        lines.append("Not run: %s" % (mc.get("skipped") or mc.get("failed")))
    else:
        lines.append(
            "A 16 KiB GET on a kept-alive connection took %.2f ms through the "
            "delay proxy and %.2f ms through a control proxy without delay "
            "(same namespace and veth): %.2f ms more, expected %d ms: %s. "
            "On a new connection each: %.2f ms vs %.2f ms (%.2f ms more)." % (
                mc["get_16k_ms_delayed"], mc["get_16k_ms_control"],
                mc["added_ms_kept_alive"], mc["expected_added_ms"],
                "model holds" if mc["ok"] else "MODEL MISSED",
                mc["get_16k_new_conn_ms_delayed"],
                mc["get_16k_new_conn_ms_control"],
                mc["added_ms_new_connection"]))
    if res["notes"]:
        lines += ["", "## Notes", ""] + ["- " + n for n in res["notes"]]
    lines.append("")
    return "\n".join(lines)


def charts(res, out_dir):
    """One grouped bar chart per workload (log scale): systems side by side.
    Returns (file names, note)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        # Debian's python3-matplotlib is for Debian's python3; this may be
        # another interpreter (pyenv, a venv): draw with that one instead
        deb = "/usr/bin/python3"
        if os.path.realpath(sys.executable) != os.path.realpath(deb) and \
                os.access(deb, os.X_OK):
            tmp = os.path.join(out_dir, ".chart-input.json")
            with open(tmp, "w") as f:
                json.dump(res, f)
            p = subprocess.run([deb, os.path.abspath(__file__), "--charts",
                                tmp, out_dir], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
            os.unlink(tmp)
            if p.returncode == 0:
                got = json.loads(p.stdout)
                return got["charts"], got["note"]
        return [], "matplotlib not available: %s (./build.sh bench installs " \
            "python3-matplotlib for /usr/bin/python3)" % e
    names = []
    for w, wc in groups(res["cells"]):
        wc = [c for c in wc if c["figure"]]
        if not wc:
            continue
        systems, cases = systems_cases(wc)
        fig, ax = plt.subplots(figsize=(min(16, max(8, 0.35 * len(cases) *
                                                    len(systems))), 6))
        width = 0.8 / len(systems)
        for k, s in enumerate(systems):
            xs, ys, hatch = [], [], []
            for i, case in enumerate(cases):
                c = next((x for x in wc if x["case"] == case and x["system"] == s), None)
                if c:
                    xs.append(i + k * width - 0.4 + width / 2)
                    ys.append(c["figure"])
                    hatch.append("//" if c["status"] == "timeout" else "")
            bars = ax.bar(xs, ys, width, label=s)
            for b, h in zip(bars, hatch):
                b.set_hatch(h)
        ax.set_yscale("log")
        ax.set_xticks(range(len(cases)))
        ax.set_xticklabels([c if len(c) < 40 else c[:38] + ".." for c in cases],
                           rotation=35, ha="right", fontsize=7)
        ax.set_ylabel(wc[0]["unit"] + " (log scale)")
        ax.set_title("%s, %s mode, %s (hatched: timed out, partial work)" % (
            w, res["mode"], res["timestamp"]), fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        name = "%s.png" % "".join(ch if ch.isalnum() else "-" for ch in w)
        fig.savefig(os.path.join(out_dir, name), dpi=110)
        plt.close(fig)
        names.append(name)
    return names, ""


def main(args, build_dir, bench_dir, out_root, collect_env):
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = os.path.join(out_root, stamp)
    os.makedirs(bench_dir, exist_ok=True)
    for t in ("bench_dataset", "bench_fuse", "bench_meta"):
        if not os.access(os.path.join(build_dir, "bench", t), os.X_OK):
            print("suite: %s not built in %s/bench" % (t, build_dir), file=sys.stderr)
            return 1
    env = collect_env(build_dir, bench_dir)
    # SIGTERM (a CI timeout, kill) must still unmount and delete the
    # namespace: turn it into SystemExit so finally and atexit run
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    suite = Suite(args, mode, build_dir, bench_dir, out_dir, env)
    try:
        suite.run()
    finally:
        suite.cleanup()
    counts = {}
    for c in suite.cells:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    versions = dict(suite.versions)
    versions["matplotlib"] = None
    try:
        import matplotlib
        versions["matplotlib"] = matplotlib.__version__
    except ImportError:
        if os.access("/usr/bin/python3", os.X_OK):
            versions["matplotlib"] = subprocess.run(
                ["/usr/bin/python3", "-c", "import matplotlib; "
                 "print(matplotlib.__version__)"], stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True).stdout.strip() or None
    versions["aws cli"] = (subprocess.run(
        [shutil.which("aws", path="/usr/bin") or "aws", "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True).stdout.strip() if shutil.which("aws") else None)
    versions["node (s3rver)"] = (subprocess.run(
        ["node", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()
        if shutil.which("node") else None)
    res = {
        "timestamp": stamp, "mode": mode, "argv": sys.argv,
        "environment": env, "versions": versions,
        "settings": {
            "files (cairn, native)": suite.cfg["files"],
            "files (peers)": suite.cfg["peer_files"],
            "file sizes": "log-normal, median 64 KiB, sigma 1, clamped to "
                          "4 KiB..1 MiB (bench/bench_dataset.c)",
            "write threads": WRITE_THREADS,
            "read threads": list(suite.cfg["read_threads"]),
            "time box per cell (s)": suite.cfg["cell_s"],
            "store": ("s3rver on loopback, %s" % suite.loopback_endpoint
                      if suite.loopback_endpoint
                      else "file:// (%s)" % suite.server_note),
            "cairn": "defaults (durability local, 1 GiB cache, 4 MiB read "
                     "window); mount with default options",
            "s3fs": "use_cache, parallel_count=8, multireq_max=8",
            "rclone": "--vfs-cache-mode full --transfers 8",
            "20 ms store": "s3rver in a network namespace behind a veth pair "
                           "and bench/delay_proxy.py: %d ms each way, %d ms "
                           "per new connection" % (RemoteStore.ONE_WAY_MS,
                                                   RemoteStore.CONNECT_MS),
            "cold": "page cache dropped (drop_caches=3); cairn: volume cache "
                    "emptied (volume_drop_cache) and fresh mount; peers: "
                    "cache dir removed and fresh mount",
        },
        "seconds": suite.seconds, "status_counts": counts,
        "phase_seconds": suite.phase_seconds,
        "notes": suite.notes, "cells": suite.cells,
        "model_check": suite.model_check,
    }
    os.makedirs(out_dir, exist_ok=True)
    res["charts"], res["charts_note"] = ([], "--no-charts") if args.no_charts \
        else charts(res, out_dir)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(res, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(report_md(res))
    print(tables_md(res["cells"]))
    print("results: %s" % out_dir)
    return 0


if __name__ == "__main__":
    # bench/suite.py --charts RESULTS.json OUT_DIR: draw the charts only
    # (used when the running interpreter has no matplotlib)
    if len(sys.argv) == 4 and sys.argv[1] == "--charts":
        with open(sys.argv[2]) as f:
            r = json.load(f)
        names, note = charts(r, sys.argv[3])
        if not names and note:
            print(note, file=sys.stderr)
            sys.exit(1)
        print(json.dumps({"charts": names, "note": note}))
        sys.exit(0)
    print("usage: bench/run.py [--quick|--smoke] (the suite); "
          "bench/suite.py --charts RESULTS.json OUT_DIR", file=sys.stderr)
    sys.exit(2)
