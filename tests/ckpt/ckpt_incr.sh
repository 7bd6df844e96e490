#!/bin/sh
# ckpt_incr.sh CAIRN - incremental save: change 10% of the chunks (by bytes) of a saved
# checkpoint's large files and save it again under a new name; the bytes
# the store grows by (file:// store directory, total file size) must be at
# most 15% of the checkpoint.  Both checkpoints then restore exactly.
. "$(dirname "$0")/ckpt_lib.sh"
vol=$tmp/vol
export CAIRN_VOLUME=$vol
t format 0 "$cairn" format
[ $fail = 0 ] || exit 1
seed=${CAIRN_TEST_SEED:-$$}
echo "seed $seed"
src=$tmp/src
chunks_tool=$3
$tree gen "$src" "$seed" --big 4 --big-mib 64 --small 100 || exit 1
store_bytes() { find "$vol/store" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

t base 0 "$cairn" ckpt save "$src" base
cp -a "$src" "$tmp/base-copy"
set -- $($tree mutate "$src" "$seed" 10 "$chunks_tool")
[ -n "$3" ] || { echo "FAIL: mutate failed"; exit 1; }
echo "changed $2 of the $1 chunks of the large files ($3 bytes)"
total=$($tree size "$src")
before=$(store_bytes)
tj incr 0 "$cairn" --json ckpt save "$src" incr
after=$(store_bytes)
grown=$((after - before))
pct=$(awk -v g=$grown -v t=$total 'BEGIN {printf "%.1f", 100 * g / t}')
echo "checkpoint $total bytes; store grew by $grown bytes ($pct%); save says $(jget stored_bytes_added) bytes newly stored"
awk -v g=$grown -v t=$total 'BEGIN {exit !(g <= 0.15 * t)}' ||
	{ echo "FAIL incr: the store grew by $pct% of the checkpoint (limit 15%)"; fail=1; }

t restore-incr 0 "$cairn" ckpt restore incr "$tmp/r-incr"
$tree cmp "$src" "$tmp/r-incr" || { echo "FAIL: incr differs from the source"; fail=1; }
t restore-base 0 "$cairn" ckpt restore base "$tmp/r-base"
$tree cmp "$tmp/base-copy" "$tmp/r-base" || { echo "FAIL: base changed"; fail=1; }

[ $fail = 0 ] && echo "ckpt_incr: all cases passed"
exit $fail
