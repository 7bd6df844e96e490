#!/bin/bash
# cli_ctl.sh CAIRN - the same commands through a real FUSE mount's control
# socket (docs/cli.md "Mounted volumes"): output identical to the
# unmounted run, local paths under the mount point, the uid rule, BUSY
# without a socket, a stale socket, and a command whose daemon is killed
# with SIGKILL (a clear error, not a hang).  Skips (77) without FUSE.
cairn=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
. "$(dirname "$0")/cli_lib.sh"
if [ ! -w /dev/fuse ] || { [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; }; then
	echo "skip: /dev/fuse not usable"
	exit 77
fi
mktmp
V=$tmp/vol
M=$tmp/mnt
cleanup() {
	[ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
	"$cairn" umount "$M" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
c() { "$cairn" --volume "$V" "$@"; }
mkdir -p "$M"
t1 format 0 c format
make_tree "$tmp/src" 20
t1 put 0 c put -r "$tmp/src" /ds

# The same commands, unmounted then mounted.
cmds=("ls /ds" "ls -l -a /ds/a" "--json ls -l /ds" "stat /ds/big.bin" "--json stat /ds/rel-link"
      "cat /ds/a/f.txt" "ls /nope" "cat /ds" "mkdir /ds" "fsck")
i=0
for cmd in "${cmds[@]}"; do
	# shellcheck disable=SC2086
	c $cmd >"$tmp/u$i.out" 2>"$tmp/u$i.err"
	echo $? >"$tmp/u$i.rc"
	i=$((i + 1))
done
t1 mount 0 c mount "$M"
[ -S "$V/control.sock" ] || fail "no control socket after mount"
i=0
for cmd in "${cmds[@]}"; do
	# shellcheck disable=SC2086
	c $cmd >"$tmp/m$i.out" 2>"$tmp/m$i.err"
	echo $? >"$tmp/m$i.rc"
	for f in out err rc; do
		cmp -s "$tmp/u$i.$f" "$tmp/m$i.$f" ||
			fail "mounted '$cmd' $f differs: $(diff "$tmp/u$i.$f" "$tmp/m$i.$f" | head -4)"
	done
	i=$((i + 1))
done
t1 status-mounted 0 c status;      has status-mounted "mounted:         $(realpath "$M")"
# a local path under the mount point means the same file
t1 local-path 0 c cat "$M/ds/a/f.txt"
[ "$out" = hello ] || fail "local path under the mount point: '$out'"
# relative local paths are the caller's, also in the daemon
(cd "$tmp" && "$cairn" -q --volume "$V" get -r /ds/a got-a) || fail "get with a relative LOCAL"
diff -r --no-dereference "$tmp/src/a" "$tmp/got-a" >/dev/null || fail "mounted get differs"
t1 put-mounted 0 c put -r "$tmp/src/a" /from-mount
[ "$(cat "$M/from-mount/f.txt")" = hello ] || fail "put through the socket is not visible in the mount"
tree_meta "$tmp/src/a" >"$tmp/ma"
tree_meta "$M/from-mount" >"$tmp/mb"
diff "$tmp/ma" "$tmp/mb" >"$tmp/mdiff" || fail "put through the socket: metadata differs in the mount: $(head -4 "$tmp/mdiff")"
t1 rm-mounted 0 c rm -r /from-mount
t1 rm-mounted-gone 3 c stat /from-mount
# the daemon invalidated the kernel's entry: gone from the mount at once
[ ! -e "$M/from-mount" ] || fail "rm through the socket still shows in the mount"

# The uid rule: another user is refused with one clear line.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$tmp"
	# The other user must be able to reach the volume at all: a checkout
	# below a 0700 directory (mktemp -d) keeps it out before the socket.
	if setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$V/volume.conf"; then
		t1 other-uid 1 setpriv --reuid=65534 --regid=65534 --clear-groups "$cairn" --volume "$V" ls /
		has other-uid "runs commands only for that user or root"
	else
		echo "note: other-uid case skipped: uid 65534 cannot reach $V"
	fi
	# The client's side of the rule: a socket planted by another user in
	# a volume directory it can write never gets our stdin/stdout/stderr.
	# (under /tmp, which every user can reach)
	planted=$(mktemp -d /tmp/cairn-planted.XXXXXX)
	chmod 777 "$planted"
	cp "$(dirname "$0")/ctl_peer.py" "$planted/peer.py"
	chmod 644 "$planted/peer.py"
	setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 \
		"$planted/peer.py" fake "$planted/control.sock" "$planted/got" \
		>"$tmp/planted.out" 2>&1 &
	fakepid=$!
	for _ in $(seq 100); do grep -q ready "$tmp/planted.out" 2>/dev/null && break; sleep 0.1; done
	t1 planted 1 setpriv --reuid=65533 --regid=65533 --clear-groups "$cairn" --volume "$planted" ls /
	has planted "runs commands only for that user or root"
	# (the fake daemon saw a connection and no descriptor, or nothing)
	kill "$fakepid" 2>/dev/null; wait "$fakepid" 2>/dev/null
	got=$(cat "$planted/got" 2>/dev/null)
	rm -rf "$planted"
	case "$got" in ""|"fds 0") ;; *) fail "planted socket: the client passed its descriptors ($got)" ;; esac
fi

# Malformed requests on the socket: each is refused or dropped, the daemon
# lives on and serves the next command.
if [ -x /usr/bin/python3 ]; then
	/usr/bin/python3 "$(dirname "$0")/ctl_peer.py" malformed "$V/control.sock" >"$tmp/malformed.out" 2>&1 ||
		fail "malformed requests: the peer failed: $(tail -3 "$tmp/malformed.out")"
	grep -q "^valid status 0" "$tmp/malformed.out" || fail "malformed requests: $(cat "$tmp/malformed.out")"
	grep -q "^not-a-volume-command status 2" "$tmp/malformed.out" ||
		fail "malformed requests: mount is not refused: $(cat "$tmp/malformed.out")"
	t1 after-malformed 0 c ls /ds
fi

# Without its socket the owned volume is BUSY (exit 5), one line.
mv "$V/control.sock" "$tmp/sock.saved"
t1 busy 5 c ls /;                  has busy "in use by process"
mv "$tmp/sock.saved" "$V/control.sock"
t1 back 0 c ls /

# A client killed mid-command: the daemon survives it (the writes to the
# gone reader fail, no SIGPIPE) and serves the next command.
mkfifo "$tmp/fifo" "$tmp/fifo0"
{ head -c 1 >/dev/null; touch "$tmp/started0"; exec sleep 600; } <"$tmp/fifo0" &
sleeper=$!
c cat /ds/big.bin >"$tmp/fifo0" 2>/dev/null &
client=$!
for _ in $(seq 1 600); do [ -e "$tmp/started0" ] && break; sleep 0.1; done
[ -e "$tmp/started0" ] || fail "the first cat through the socket never started"
kill -9 "$client"
wait "$client" 2>/dev/null
kill "$sleeper"
wait "$sleeper" 2>/dev/null
sleeper=
t1 after-client-kill 0 c cat /ds/a/f.txt
[ "$out" = hello ] || fail "after a killed client: '$out'"

# A command running when the daemon is killed: a clear error, no hang.
# The daemon blocks writing cat's output into a fifo nobody drains.
{ head -c 1 >/dev/null; touch "$tmp/started"; exec sleep 600; } <"$tmp/fifo" &
sleeper=$!
c cat /ds/big.bin >"$tmp/fifo" 2>"$tmp/kill.err" &
client=$!
for _ in $(seq 1 600); do [ -e "$tmp/started" ] && break; sleep 0.1; done
[ -e "$tmp/started" ] || fail "the cat through the socket never started"
pid=$(head -1 "$V/lock")
kill -9 "$pid"
for _ in $(seq 1 300); do kill -0 "$client" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$client" 2>/dev/null; then
	fail "the client hangs after its daemon was killed"
	kill -9 "$client"
fi
wait "$client"
rc=$?
[ "$rc" = 1 ] || fail "client of a killed daemon: exit $rc, want 1"
grep -q "went away" "$tmp/kill.err" || fail "client of a killed daemon: $(cat "$tmp/kill.err")"
[ "$(wc -l <"$tmp/kill.err")" = 1 ] || fail "client of a killed daemon: not one line: $(cat "$tmp/kill.err")"
kill "$sleeper" 2>/dev/null
sleeper=
"$cairn" umount "$M" >/dev/null 2>&1  # detach the dead mount
# The dead daemon's socket is stale: ignored (and removed), the command runs here.
t1 stale 0 c ls /ds
[ -e "$V/control.sock" ] && fail "stale control socket left behind"
t1 fsck-after-kill 0 c fsck

[ $fails = 0 ] && echo "cli_ctl: all cases passed"
[ $fails = 0 ]
