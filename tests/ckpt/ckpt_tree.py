#!/usr/bin/env python3
"""ckpt_tree.py - checkpoint trees for the ckpt tests (standard library only).

    ckpt_tree.py gen DIR SEED [--big N] [--big-mib M] [--small N]
        a tree with N large files of M MiB (above the 16 MiB stream
        threshold), small files, empty files, sparse files (small and
        large), symlinks (relative, absolute, dangling), nested
        directories, odd names, varied modes and ns-precision times
    ckpt_tree.py cmp A B
        exit 0 if the trees under A and B are the same: names, types,
        bytes (SHA-256), mode bits, mtimes (ns), symlink targets, and
        sparse files still sparse in B; else print every difference, exit 1
    ckpt_tree.py mutate DIR SEED PCT CHUNKS_TOOL
        change PCT% of the content-defined chunks (ckpt_chunks cuts them as
        the volume does) of every file over 16 MiB, in place (same size);
        prints: chunks, chunks changed, bytes of the changed chunks
    ckpt_tree.py size DIR      total bytes of the regular files under DIR
    ckpt_tree.py json-get KEY  one field of the JSON document on stdin
"""

import hashlib
import json
import os
import random
import stat
import subprocess
import sys

MiB = 1 << 20

ODD_NAMES = [
    "with space", "tab\there", "new\nline", "-leading-dash", "#hash",
    "quote'\"", "back\\slash", "\u00e9t\u00e9-\u6f22\u5b57", "*star?",
    "x" * 255, ".hidden", "..dots..", "semi;colon", "percent%s",
]


def _times(rng, path, follow=True):
    # ns precision, some before 1970 is not portable: keep positive
    at = rng.randrange(10**9, 1_700_000_000) * 10**9 + rng.randrange(10**9)
    mt = rng.randrange(10**9, 1_700_000_000) * 10**9 + rng.randrange(10**9)
    os.utime(path, ns=(at, mt), follow_symlinks=follow)


def _write(path, data, mode, rng):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    _times(rng, path)


def gen(d, seed, big=2, big_mib=20, small=120):
    rng = random.Random(seed)
    os.makedirs(d, exist_ok=True)
    dirs = [d]
    # nested directories
    cur = d
    for i in range(5):
        cur = os.path.join(cur, "level%d" % i)
        os.mkdir(cur)
        dirs.append(cur)
    for name in ("a", "b", "c with space"):
        p = os.path.join(d, name)
        os.mkdir(p)
        dirs.append(p)
    os.mkdir(os.path.join(d, "emptydir"))
    dirs.append(os.path.join(d, "emptydir"))
    # large files: streamed
    for i in range(big):
        p = os.path.join(rng.choice(dirs[:3]), "shard%02d.bin" % i)
        with open(p, "wb") as f:
            left = big_mib * MiB + rng.randrange(MiB)
            while left:
                n = min(left, 4 * MiB)
                f.write(rng.randbytes(n))
                left -= n
        os.chmod(p, 0o644)
        _times(rng, p)
    # small files, some compressible, some random
    for i in range(small):
        n = rng.choice([1, 17, 4096, 10000, 65536, rng.randrange(1, 300000)])
        data = rng.randbytes(n) if i % 2 else (b"ckpt %d " % i) * (n // 8 + 1)
        _write(os.path.join(rng.choice(dirs), "f%04d.dat" % i), data[:n],
               rng.choice([0o644, 0o600, 0o755, 0o444, 0o640]), rng)
    # empty files
    for i in range(3):
        _write(os.path.join(rng.choice(dirs), "empty%d" % i), b"", 0o644, rng)
    # odd names
    for i, name in enumerate(ODD_NAMES):
        _write(os.path.join(d, "b", name), rng.randbytes(100 + i), 0o644, rng)
    # sparse files: holes at the start, middle and end
    p = os.path.join(d, "sparse_small")
    with open(p, "wb") as f:
        f.seek(100000)
        f.write(rng.randbytes(5000))
        f.truncate(3 * MiB)
    _times(rng, p)
    p = os.path.join(d, "a", "sparse_big")
    with open(p, "wb") as f:
        f.write(rng.randbytes(MiB))
        f.seek(12 * MiB)
        f.write(rng.randbytes(2 * MiB))
        f.seek(30 * MiB)
        f.write(rng.randbytes(4096))
        f.truncate(40 * MiB)
    _times(rng, p)
    p = os.path.join(d, "all_hole")
    with open(p, "wb") as f:
        f.truncate(8 * MiB)
    _times(rng, p)
    # symlinks
    links = [("link_rel", "a/f0001.dat"), ("link_abs", "/etc/passwd"),
             ("link_dangling", "does/not/exist"), ("link_dir", "level0"),
             ("link_up", "../outside")]
    for name, target in links:
        p = os.path.join(d, name)
        os.symlink(target, p)
        _times(rng, p, follow=False)
    os.symlink("../../b", os.path.join(d, "level0", "level1", "link_b"))
    # modes and times of directories last (contents are done)
    os.chmod(os.path.join(d, "c with space"), 0o750)
    os.chmod(os.path.join(d, "emptydir"), 0o555)
    for p in sorted(dirs + [os.path.join(d, "emptydir")], key=len,
                    reverse=True):
        _times(rng, p)


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                return h.hexdigest()
            h.update(b)


def _walk(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root)] = p
    out["."] = root
    return out


def cmp(a, b):
    ta, tb = _walk(a), _walk(b)
    bad = []
    for rel in sorted(set(ta) | set(tb)):
        if rel not in tb:
            bad.append("missing in %s: %r" % (b, rel))
            continue
        if rel not in ta:
            bad.append("extra in %s: %r" % (b, rel))
            continue
        sa, sb = os.lstat(ta[rel]), os.lstat(tb[rel])
        if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
            bad.append("%r: type %o vs %o" % (rel, stat.S_IFMT(sa.st_mode),
                                              stat.S_IFMT(sb.st_mode)))
            continue
        if stat.S_ISLNK(sa.st_mode):
            if os.readlink(ta[rel]) != os.readlink(tb[rel]):
                bad.append("%r: target %r vs %r" % (
                    rel, os.readlink(ta[rel]), os.readlink(tb[rel])))
        elif stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            bad.append("%r: mode %o vs %o" % (rel, stat.S_IMODE(sa.st_mode),
                                              stat.S_IMODE(sb.st_mode)))
        if sa.st_mtime_ns != sb.st_mtime_ns:
            bad.append("%r: mtime %d vs %d" % (rel, sa.st_mtime_ns,
                                               sb.st_mtime_ns))
        if stat.S_ISREG(sa.st_mode):
            if sa.st_size != sb.st_size:
                bad.append("%r: size %d vs %d" % (rel, sa.st_size, sb.st_size))
            elif _sha(ta[rel]) != _sha(tb[rel]):
                bad.append("%r: bytes differ" % rel)
            # a file with holes in A must keep holes in B
            if (sa.st_blocks * 512 < sa.st_size // 2 and
                    sb.st_blocks * 512 >= sb.st_size and sb.st_size > 65536):
                bad.append("%r: holes lost (%d blocks for %d bytes)" % (
                    rel, sb.st_blocks, sb.st_size))
    for line in bad[:50]:
        print("cmp: " + line)
    return 1 if bad else 0


def mutate(d, seed, pct, tool):
    """Change pct% of the content-defined chunks (as `tool` cuts them;
    counted by their bytes) of the large files: 32 bytes in the middle of
    each chosen chunk, far from its cut points.  Returns (chunks, chunks changed, their bytes)
    (bench/bench_ckpt.py uses it too)."""
    rng = random.Random(seed)
    chunks = []  # (path, offset, length) over all large files
    for dp, _, fns in sorted(os.walk(d)):
        for n in sorted(fns):
            p = os.path.join(dp, n)
            st = os.lstat(p)
            if not stat.S_ISREG(st.st_mode) or st.st_size <= 16 * MiB:
                continue
            if st.st_blocks * 512 < st.st_size // 2:
                continue  # sparse: not a stream
            out = subprocess.run([tool, p], check=True, stdout=subprocess.PIPE,
                                 text=True).stdout
            chunks += [(p,) + tuple(map(int, ln.split()))
                       for ln in out.splitlines()]
    # Chunk sizes spread from min to max (1 to 16 MiB by default), so a
    # sample of 10% of the chunks by count can hold 17% of the bytes (seed
    # 1135).  Take chunks in random order while they fit in pct% of the
    # bytes: about pct% of the chunks, and pct% of the data at most.
    target = sum(c[2] for c in chunks) * pct / 100.0
    picked, changed_bytes = [], 0
    for c in rng.sample(chunks, len(chunks)):
        if changed_bytes + c[2] <= target or not picked:
            picked.append(c)
            changed_bytes += c[2]
    k = len(picked)
    for p, off, ln in sorted(picked):
        st = os.lstat(p)
        os.chmod(p, st.st_mode | 0o200)
        with open(p, "r+b") as f:
            f.seek(off + ln // 2)
            f.write(bytes(b ^ 0xff for b in rng.randbytes(32)))
        os.chmod(p, st.st_mode)
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    return len(chunks), k, changed_bytes


def size(d):
    tot = 0
    for dp, _, fns in os.walk(d):
        for n in fns:
            st = os.lstat(os.path.join(dp, n))
            if stat.S_ISREG(st.st_mode):
                tot += st.st_size
    print(tot)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    opts = {}
    pos = []
    i = 0
    while i < len(args):
        if args[i].startswith("--"):
            opts[args[i][2:].replace("-", "_")] = int(args[i + 1])
            i += 2
        else:
            pos.append(args[i])
            i += 1
    if cmd == "gen":
        gen(pos[0], int(pos[1]), **opts)
    elif cmd == "cmp":
        return cmp(pos[0], pos[1])
    elif cmd == "mutate":
        print(*mutate(pos[0], int(pos[1]), float(pos[2]), pos[3]))
    elif cmd == "size":
        size(pos[0])
    elif cmd == "json-get":
        doc = json.load(sys.stdin)
        for k in pos[0].split("."):
            doc = doc[k]
        print(doc)
    else:
        print("unknown command %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
