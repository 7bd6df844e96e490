#!/bin/sh
# ckpt_roundtrip.sh CAIRN file|s3 - `cairn ckpt save` then `restore` of a
# generated tree (large streamed files, small, empty and sparse files,
# symlinks, nested directories, odd names), compared byte for byte and in
# metadata; the refusals with their exit codes; --force never follows a
# symlink planted in the destination; --json carries the human output's
# facts.  On file:// (default store) or on s3rver.
. "$(dirname "$0")/ckpt_lib.sh"
backend=${2:-file}
vol=$tmp/vol
export CAIRN_VOLUME=$vol
if [ "$backend" = s3 ]; then
	s3_start cairn-ckpt
	t format 0 "$cairn" format --store s3://cairn-ckpt/v1
else
	t format 0 "$cairn" format
fi
[ $fail = 0 ] || exit 1

src=$tmp/src
seed=${CAIRN_TEST_SEED:-$$}
echo "seed $seed"
$tree gen "$src" "$seed" --big 2 --big-mib 20 --small 120 || exit 1

# save: human output, then the JSON of a second checkpoint of the same tree
t save 0 "$cairn" ckpt save "$src" one; has save "saved checkpoint one"
human=$out
t save-exists 4 "$cairn" ckpt save "$src" one; has save-exists "exists"
t save-badname 2 "$cairn" ckpt save "$src" "a/b"
t save-dotname 2 "$cairn" ckpt save "$src" ".x"
t save-nosrc 3 "$cairn" ckpt save "$tmp/nope" two
tj save-json 0 "$cairn" --json ckpt save "$src" two
files=$(jget files) bytes=$(jget bytes) syml=$(jget symlinks)
[ "$(jget checkpoint)" = two ] || { echo "FAIL save-json: checkpoint $(jget checkpoint)"; fail=1; }
want_bytes=$($tree size "$src")
want_files=$(find "$src" -type f -printf x | wc -c)
want_syml=$(find "$src" -type l -printf x | wc -c)
[ "$bytes" = "$want_bytes" ] || { echo "FAIL save-json: bytes $bytes, want $want_bytes"; fail=1; }
[ "$files" = "$want_files" ] || { echo "FAIL save-json: files $files, want $want_files"; fail=1; }
[ "$syml" = "$want_syml" ] || { echo "FAIL save-json: symlinks $syml, want $want_syml"; fail=1; }
case "$human" in
*": $files files, "*" $syml symlinks, $bytes bytes "*) ;;
*) echo "FAIL save human/json: '$human' lacks $files files, $syml symlinks, $bytes bytes"; fail=1 ;;
esac

# restore both, compare with the source
t restore 0 "$cairn" ckpt restore one "$tmp/r1"; has restore "restored checkpoint one"
human=$out
$tree cmp "$src" "$tmp/r1" || { echo "FAIL restore: tree differs"; fail=1; }
tj restore-json 0 "$cairn" --json ckpt restore two "$tmp/r2"
$tree cmp "$src" "$tmp/r2" || { echo "FAIL restore-json: tree differs"; fail=1; }
[ "$(jget files)" = "$want_files" ] && [ "$(jget bytes)" = "$want_bytes" ] ||
	{ echo "FAIL restore-json: $out"; fail=1; }
case "$human" in
*": $(jget files) files, $(jget dirs) dirs, $(jget symlinks) symlinks, $(jget bytes) bytes "*) ;;
*) echo "FAIL restore human/json: '$human' vs $out"; fail=1 ;;
esac

# refusals
t restore-notempty 4 "$cairn" ckpt restore one "$tmp/r1"; has restore-notempty "not empty"
t restore-missing 3 "$cairn" ckpt restore nosuch "$tmp/r3"
t restore-badname 2 "$cairn" ckpt restore "../x" "$tmp/r3"
t restore-usage 2 "$cairn" ckpt restore one

# --force over a planted symlink: never followed, the outside untouched
mkdir -p "$tmp/outside/dir" "$tmp/r4/a"
echo precious > "$tmp/outside/file"
echo precious > "$tmp/outside/dir/f0001.dat"
ln -s "$tmp/outside/file" "$tmp/r4/sparse_small"      # a stored file's name
ln -s "$tmp/outside/file" "$tmp/r4/a/sparse_big"      # in a subdirectory
ln -s "$tmp/outside/dir" "$tmp/r4/level0"             # a stored directory's name
ln -s "$tmp/outside/file" "$tmp/r4/link_rel"          # a stored symlink's name
t restore-force-refused 4 "$cairn" ckpt restore one "$tmp/r4"
t restore-force 0 "$cairn" ckpt restore --force one "$tmp/r4"
[ "$(cat "$tmp/outside/file")" = precious ] && [ "$(cat "$tmp/outside/dir/f0001.dat")" = precious ] &&
	[ "$(ls "$tmp/outside/dir")" = f0001.dat ] ||
	{ echo "FAIL restore-force: wrote outside DEST"; fail=1; }
$tree cmp "$src" "$tmp/r4" || { echo "FAIL restore-force: tree differs"; fail=1; }

# restore after the volume's caches are gone: reads come from the store
t restore-cold 0 "$cairn" ckpt restore --cold two "$tmp/r5"
$tree cmp "$src" "$tmp/r5" || { echo "FAIL restore-cold: tree differs"; fail=1; }

[ $fail = 0 ] && echo "ckpt_roundtrip $backend: all cases passed"
exit $fail
