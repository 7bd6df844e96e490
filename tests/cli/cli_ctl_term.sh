#!/bin/bash
# cli_ctl_term.sh CAIRN - SIGTERM of a mount daemon while a control-socket
# command is invalidating entries of a directory that processes are
# looking names up in (docs/fuse.md "Commands through the control
# socket"): the daemon ends, its volume closed ("unmounted" in the log).
# A notification the kernel blocks behind a LOOKUP that was queued when
# the session loop ended must not hang the daemon (fuse_mount.c
# serve_until_quiet).  The race is not hit every round: rounds are
# 4 x CAIRN_TEST_SCALE.  Skips (77) without FUSE.
cairn=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
. "$(dirname "$0")/cli_lib.sh"
if [ ! -w /dev/fuse ] || { [ "$(id -u)" != 0 ] && ! command -v fusermount3 >/dev/null; }; then
	echo "skip: /dev/fuse not usable"
	exit 77
fi
mktmp
V=$tmp/vol
M=$tmp/mnt
hammers=()
stop_hammers() {
	for p in "${hammers[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${hammers[@]}"; do wait "$p" 2>/dev/null; done
	hammers=()
}
cleanup() {
	stop_hammers
	"$cairn" umount "$M" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
c() { "$cairn" --volume "$V" "$@"; }
export CAIRN_LOG=info   # the daemon logs "unmounted from" once closed
mkdir -p "$M" "$tmp/src/tree0"
for i in $(seq 1 3000); do mkdir "$tmp/src/tree0/d$i"; done
t1 format 0 c format
rounds=$((4 * ${CAIRN_TEST_SCALE:-1}))
for r in $(seq 1 "$rounds"); do
	t1 "mount-$r" 0 c mount "$M" || break
	# the directory the command fills, known to the kernel beforehand
	mv "$tmp/src/tree$((r - 1))" "$tmp/src/tree$r"
	mkdir "$M/tree$r"
	dpid=$(ps -eo pid,args | awk -v v="--volume $V mount" 'index($0, v) && !/awk/ {print $1; exit}')
	[ -n "$dpid" ] || { fail "round $r: no daemon found"; break; }
	for k in 1 2 3 4 5 6 7 8; do
		( while :; do stat "$M/tree$r/z$RANDOM" >/dev/null 2>&1; done ) &
		hammers+=($!)
	done
	c put -r -f "$tmp/src/tree$r" / >/dev/null 2>&1 &
	put=$!
	sleep "0.$((RANDOM % 9 + 1))"
	kill -TERM "$dpid"
	gone=0
	for s in $(seq 1 200); do
		kill -0 "$dpid" 2>/dev/null || { gone=1; break; }
		sleep 0.1
	done
	[ $gone = 1 ] || fail "round $r: daemon $dpid still running 20 s after SIGTERM"
	# without the processes holding the directory lock, a hung daemon ends
	stop_hammers
	for s in $(seq 1 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
	wait "$put" 2>/dev/null
	umount -l "$M" 2>/dev/null
	[ $gone = 1 ] || break
	[ "$(grep -c "unmounted from $M" "$V/mount.log")" = "$r" ] ||
		fail "round $r: the volume was not closed"
done
t1 fsck-after 0 c fsck

[ $fails = 0 ] && echo "cli_ctl_term: all cases passed"
[ $fails = 0 ]
