#!/bin/sh
# ckpt_mount.sh CAIRN - `ckpt save` of a tree inside the mounted volume:
# runs in the mount daemon (control socket), copies nothing, and freezes
# the tree at the save: writes after it do not reach the checkpoint.
# `ckpt restore` through the socket too; a DEST_DIR inside the mount is
# refused.  Skipped without FUSE.
. "$(dirname "$0")/ckpt_lib.sh"
export CAIRN_VOLUME=$tmp/vol
mnt=$tmp/mnt
mkdir -p "$mnt"
[ -e /dev/fuse ] || { echo "SKIP: no /dev/fuse"; exit 77; }
t format 0 "$cairn" format
[ $fail = 0 ] || exit 1
if ! "$cairn" mount "$mnt" >"$tmp/mount.out" 2>&1; then
	echo "SKIP: cannot mount: $(cat "$tmp/mount.out")"
	exit 77
fi
umnt() { "$cairn" umount "$mnt" >/dev/null 2>&1; }
trap 'umnt; cleanup' EXIT
seed=${CAIRN_TEST_SEED:-$$}
$tree gen "$tmp/src" "$seed" --big 1 --big-mib 17 --small 30 || exit 1
cp -r "$tmp/src" "$mnt/tree" || { echo "FAIL: copy into the mount"; exit 1; }

tj save 0 "$cairn" --json ckpt save "$mnt/tree" m1
[ "$(jget mode)" = in-volume ] || { echo "FAIL save: mode $(jget mode), want in-volume"; fail=1; }
[ "$(jget files)" = "$(find "$tmp/src" -type f -printf x | wc -c)" ] || { echo "FAIL save: files $(jget files)"; fail=1; }
# relative SRC_DIR: resolved against the caller's directory
t save-rel 0 sh -c "cd '$mnt' && '$cairn' ckpt save tree m2"; has save-rel "(in-volume)"
t restore 0 "$cairn" ckpt restore m1 "$tmp/r1"
$tree cmp "$mnt/tree" "$tmp/r1" || { echo "FAIL restore: differs from the tree in the mount"; fail=1; }
# later writes do not reach the checkpoint
echo changed > "$mnt/tree/a/f0001.dat" 2>/dev/null || echo changed > "$mnt/tree/added"
rm -rf "$mnt/tree/level0"
t restore-again 0 "$cairn" ckpt restore m1 "$tmp/r2"
$tree cmp "$tmp/r1" "$tmp/r2" || { echo "FAIL: checkpoint m1 changed after later writes"; fail=1; }
t restore-into-mount 2 "$cairn" ckpt restore m1 "$mnt/x"; has restore-into-mount "inside the mounted volume"
t save-exists 4 "$cairn" ckpt save "$mnt/tree" m1
umnt
# unmounted: the same checkpoint, read by the CLI itself
t restore-unmounted 0 "$cairn" ckpt restore m2 "$tmp/r3"
$tree cmp "$tmp/r1" "$tmp/r3" || { echo "FAIL: m2 differs from m1"; fail=1; }

[ $fail = 0 ] && echo "ckpt_mount: all cases passed"
exit $fail
