#!/usr/bin/python3
"""ctl_peer.py - a hostile peer of the mount daemon's control socket
(tools/cli_ctl.c), for tests/cli/cli_ctl.sh.

  ctl_peer.py malformed SOCK   send malformed requests, one connection each;
                               print one line per answer (or "closed")
  ctl_peer.py fake SOCK OUT    listen on SOCK as a fake daemon; for one
                               connection write "fds N" (file descriptors
                               received) to OUT, then answer status 0
"""
import array
import os
import socket
import struct
import sys

MAGIC = 0x314E5243
HDR = "<IIIiII"   # magic, version, flags, verbose, argc, len
RESP = "<IiI"     # magic, status, msglen


def req(argc, length, magic=MAGIC, version=1):
    return struct.pack(HDR, magic, version, 0, 0, argc, length)


def answer(s):
    s.settimeout(30)
    data = b""
    try:
        while len(data) < struct.calcsize(RESP):
            b = s.recv(4096)
            if not b:
                break
            data += b
    except OSError as e:
        return "error %s" % e.errno
    if len(data) < struct.calcsize(RESP):
        return "closed"
    magic, status, msglen = struct.unpack_from(RESP, data)
    return "status %d" % status


def one(path, header, payload=b"", nfds=3):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    fds = [os.open("/dev/null", os.O_RDWR) for _ in range(nfds)]
    try:
        try:
            if header is not None:
                anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
                s.sendmsg([header], anc)
            if payload:
                s.sendall(payload)
        except OSError:
            pass  # the daemon hung up early: read what it said
        return answer(s)
    finally:
        for fd in fds:
            os.close(fd)
        s.close()


def malformed(path):
    good = b"/\0ls\0/\0"
    cases = [
        ("nothing", None, b"", 0),
        ("short-header", b"\x43\x52", b"", 3),
        ("bad-magic", req(2, len(good), magic=1), good, 3),
        ("bad-version", req(2, len(good), version=99), good, 3),
        ("huge-len", req(2, 0xFFFFFFFF), b"", 3),
        ("zero-len", req(2, 0), b"", 3),
        ("zero-argc", req(0, len(good)), good, 3),
        ("huge-argc", req(0xFFFFFFFF, len(good)), good, 3),
        ("no-fds", req(2, len(good)), good, 0),
        ("one-fd", req(2, len(good)), good, 1),
        ("many-fds", req(2, len(good)), good, 8),
        ("argc-too-big", req(5, len(good)), good, 3),
        ("argc-too-small", req(1, len(good)), good, 3),
        ("no-nul", req(2, 6), b"/\0ls\0/", 3),
        ("relative-cwd", req(2, 7), b"x\0ls\0/\0", 3),
        ("short-payload", req(2, 100), good, 3),
        ("not-a-volume-command", req(1, 8), b"/\0mount\0", 3),
    ]
    for name, header, payload, nfds in cases:
        print(name, one(path, header, payload, nfds))
    # a valid request still works
    print("valid", one(path, req(2, len(good)), good, 3))


def fake(path, out):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(1)
    print("ready", flush=True)
    s.settimeout(60)
    c, _ = s.accept()
    c.settimeout(10)
    n = 0
    try:
        msg, anc, flags, addr = c.recvmsg(4096, socket.CMSG_SPACE(64 * 4))
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[: len(data) - len(data) % 4])
                n += len(fds)
                for fd in fds:
                    os.close(fd)
    except OSError:
        pass
    with open(out, "w") as f:
        f.write("fds %d\n" % n)
    try:
        c.sendall(struct.pack(RESP, MAGIC, 0, 0))
    except OSError:
        pass
    c.close()
    s.close()


if __name__ == "__main__":
    if sys.argv[1] == "malformed":
        malformed(sys.argv[2])
    else:
        fake(sys.argv[2], sys.argv[3])
