#!/bin/sh
# ckpt_kill.sh CAIRN - SIGKILL `cairn ckpt save` at random moments.  After
# each kill the checkpoint is absent (restore: exit 3) or complete (restore
# gives the source exactly); the next save cleans the staging directories
# left behind; at the end a save succeeds and no staging directory is left.
# Rounds: 20 x CAIRN_TEST_SCALE.
. "$(dirname "$0")/ckpt_lib.sh"
export CAIRN_VOLUME=$tmp/vol
t format 0 "$cairn" format
[ $fail = 0 ] || exit 1
seed=${CAIRN_TEST_SEED:-$$}
rounds=$((20 * ${CAIRN_TEST_SCALE:-1}))
echo "seed $seed, $rounds rounds"
src=$tmp/src
$tree gen "$src" "$seed" --big 1 --big-mib 17 --small 40 || exit 1

# How long one save takes here: kills land in [0, 1.3 x that].
t0=$(date +%s%N)
t first 0 "$cairn" ckpt save "$src" first
t1=$(date +%s%N)
span_us=$(( (t1 - t0) * 13 / 10000 ))
[ $span_us -gt 0 ] || span_us=1000
echo "one save: $(( (t1 - t0) / 1000000 )) ms"

absent=0 complete=0 stale=0
r=1
# a small deterministic generator: rounds differ, runs repeat with the seed
rnd=$seed
while [ $r -le $rounds ]; do
	rnd=$(( (rnd * 1103515245 + 12345) % 2147483648 ))
	delay_us=$(( rnd % span_us ))
	"$cairn" ckpt save "$src" "k$r" >/dev/null 2>&1 &
	pid=$!
	sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	rm -rf "$tmp/out"
	out=$("$cairn" ckpt restore "k$r" "$tmp/out" 2>&1)
	got=$?
	case $got in
	0)
		complete=$((complete + 1))
		$tree cmp "$src" "$tmp/out" || { echo "FAIL round $r: checkpoint k$r is not the source"; fail=1; }
		;;
	3)
		absent=$((absent + 1)) ;;
	*)
		echo "FAIL round $r: restore exit $got: $out"; fail=1 ;;
	esac
	r=$((r + 1))
done
echo "after kills: $complete complete, $absent absent"

# The next save succeeds and removes what the killed ones left.
tj after 0 "$cairn" --json ckpt save "$src" after
stale=$(jget stale_staging_removed)
echo "stale staging directories removed: $stale"
if "$cairn" ls --help >/dev/null 2>&1; then
	t ls-staging 0 "$cairn" ls /.cairn/staging
	[ -z "$out" ] || { echo "FAIL: staging leftovers after a save: $out"; fail=1; }
else
	echo "note: no 'cairn ls' in this build: staging leftovers not listed"
fi
rm -rf "$tmp/out"
t restore-after 0 "$cairn" ckpt restore after "$tmp/out"
$tree cmp "$src" "$tmp/out" || { echo "FAIL: checkpoint 'after' is not the source"; fail=1; }

# gc reclaims what the killed saves left: after one pass (no grace) a
# second finds nothing more to delete, no orphan object, and fsck is clean.
tj gc 0 "$cairn" --json gc --grace 0
echo "gc: $(jget segments_deleted) segments deleted, $(jget orphans_deleted) orphans deleted"
tj gc-again 0 "$cairn" --json gc --dry-run --grace 0
for k in segments_deleted segments_waiting orphans_found; do
	v=$(jget $k)
	[ "$v" = 0 ] || { echo "FAIL: after gc, a second pass still finds $k=$v"; fail=1; }
done
t fsck 0 "$cairn" fsck

[ $fail = 0 ] && echo "ckpt_kill: all cases passed"
exit $fail
