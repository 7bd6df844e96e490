#!/bin/sh
# first_run.sh - the README's first-run command works: tools/first-run.sh
# on a scratch volume and mount point (small checkpoint), and what it
# saved is really there afterwards.  Skips without FUSE.
set -eu
cairn=$1
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -e /dev/fuse ] || { echo "skip: no /dev/fuse"; exit 77; }
tmp=${CAIRN_TEST_TMP:-/tmp}/first_run.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'fusermount3 -u "$tmp/mnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT
export CAIRN="$cairn" CAIRN_VOLUME="$tmp/vol" FIRST_RUN_MB=24
sh "$src/tools/first-run.sh" "$tmp/mnt" >"$tmp/out" 2>&1 || {
	cat "$tmp/out"; echo "FAIL: first-run.sh exited non-zero"; exit 1; }
cat "$tmp/out"
grep -q "byte for byte" "$tmp/out" || { echo "FAIL: no restore comparison"; exit 1; }
# The checkpoint it saved is listed by a fresh process on the unmounted volume.
n=$("$cairn" --json ckpt list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 1 ] || { echo "FAIL: expected 1 checkpoint, got $n"; exit 1; }
# A second run reuses the volume and adds a second checkpoint.
sleep 1
sh "$src/tools/first-run.sh" "$tmp/mnt" >"$tmp/out2" 2>&1 || {
	cat "$tmp/out2"; echo "FAIL: second first-run.sh exited non-zero"; exit 1; }
n=$("$cairn" --json ckpt list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 2 ] || { echo "FAIL: expected 2 checkpoints, got $n"; exit 1; }
echo "PASS first_run"
