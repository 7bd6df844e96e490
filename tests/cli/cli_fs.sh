#!/bin/bash
# cli_fs.sh CAIRN - the direct-access and operations commands on an
# unmounted volume (docs/cli.md): put/get round trip of a generated tree,
# ls/stat/cat/mkdir/rm/mv, one-line errors with the documented exit
# status, --json, get's refusal to write through symlinks, status/fsck/gc.
cairn=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
. "$(dirname "$0")/cli_lib.sh"
mktmp
trap 'rm -rf "$tmp"' EXIT
V=$tmp/vol
c() { "$cairn" --volume "$V" "$@"; }

t1 format 0 c format
make_tree "$tmp/src" 20

# ---- put / get round trip ----
t1 put 0 c put -r "$tmp/src" /ds
has put "put 157 files, 8 directories, 3 symlinks"
t1 get 0 c get -r /ds "$tmp/out"
diff -r --no-dereference "$tmp/src" "$tmp/out" >/dev/null || fail "round trip: contents differ"
tree_meta "$tmp/src" >"$tmp/m1"
tree_meta "$tmp/out" >"$tmp/m2"
diff "$tmp/m1" "$tmp/m2" >"$tmp/mdiff" || fail "round trip: metadata differs: $(head -5 "$tmp/mdiff")"
cmp -s "$tmp/src/big.bin" "$tmp/out/big.bin" || fail "round trip: the 20 MiB file differs"
# get into an existing directory: by name; single file; one thread
mkdir "$tmp/into"
t1 get-into 0 c get -r -j 1 /ds/a "$tmp/into"
diff -r --no-dereference "$tmp/src/a" "$tmp/into/a" >/dev/null || fail "get into dir: differs"
# a source with a trailing '/' or '/.' goes in by its name too
mkdir -p "$tmp/into2" "$tmp/into3"
t1 get-slash 0 c get -r /ds/a/ "$tmp/into2"
diff -r --no-dereference "$tmp/src/a" "$tmp/into2/a" >/dev/null || fail "get -r /ds/a/ DIR: differs"
t1 get-dot 0 c get -r /ds/a/. "$tmp/into3"
diff -r --no-dereference "$tmp/src/a" "$tmp/into3/a" >/dev/null || fail "get -r /ds/a/. DIR: differs"
t1 get-file 0 c get /ds/big.bin "$tmp/one.bin"
cmp -s "$tmp/src/big.bin" "$tmp/one.bin" || fail "get file: differs"
t1 put-file 0 c put "$tmp/src/a/f.txt" /single.txt
t1 put-file-into 0 c put "$tmp/src/empty" /ds/a
# a symlink named on the command line is followed, by its own name
ln -s "$tmp/src/a" "$tmp/alink"
t1 put-link 0 c put -r "$tmp/alink" /ds/a/b
t1 put-link-ls 0 c ls /ds/a/b/alink/b/c
[ "$out" = "also empty" ] || fail "put of a symlinked dir: '$out'"
t1 put-link-rm 0 c rm -r /ds/a/b/alink
t stat-mode 0 c --json stat /single.txt
has stat-mode '"mode":"0600"'
has stat-mode "\"mtime_ns\":$(stat -c %Y "$tmp/src/a/f.txt")123456789"

# ---- ls / stat / cat ----
t1 ls 0 c ls /ds
[ "$out" = "$(cd "$tmp/src" && LC_ALL=C ls -1 --quoting-style=literal)" ] || fail "ls /ds: '$out'"
t1 ls-l 0 c ls -l /ds/a
has ls-l "-rw-------"
has ls-l "dangling -> no such target"
t1 ls-a 0 c ls -a /
has ls-a ds
t1 ls-file 0 c ls /ds/a/f.txt
[ "$out" = f.txt ] || fail "ls of a file: '$out'"
t1 stat 0 c stat /ds/big.bin
has stat "size: 20971520"
has stat "type: file"
t1 stat-link 0 c stat /ds/rel-link
has stat-link "target: a/f.txt"
t1 cat 0 c cat "/ds/ünïcödé ☃/☃.bin"
[ "$out" = snow ] || fail "cat: '$out'"
c cat /ds/big.bin | cmp -s - "$tmp/src/big.bin" || fail "cat of the big file differs"
t1 dot-path 0 c cat ds/./a//f.txt
[ "$out" = hello ] || fail "relative/dotted path: '$out'"

# ---- --json ----
t1 ls-json 0 c --json ls -a /ds
printf '%s' "$out" | python3 -m json.tool >/dev/null || fail "ls --json does not parse: $out"
names=$(printf '%s' "$out" | python3 -c 'import json,sys; print("\n".join(e["name"] for e in json.load(sys.stdin)["entries"]))')
[ "$names" = "$(c ls -a /ds)" ] || fail "ls --json names differ from ls"
t1 stat-json 0 c --json stat /ds/big.bin
printf '%s' "$out" | python3 -c '
import json,sys,os
d=json.load(sys.stdin)
assert d["size"]==20971520 and d["type"]=="file", d
assert d["mode"]==oct(os.stat(sys.argv[1]).st_mode & 0o7777)[2:].zfill(4), d
' "$tmp/src/big.bin" || fail "stat --json: $out"
human_ino=$(c stat /ds/big.bin | sed -n 's/^ino: //p')
printf '%s' "$out" | grep -q "\"ino\":$human_ino," || fail "stat --json ino differs from stat ($human_ino)"
t1 status-json 0 c --json status
printf '%s' "$out" | python3 -c '
import json,sys
d=json.load(sys.stdin)
assert d["logical_bytes"] >= 20971520 and d["segments"] >= 1 and d["mountpoint"] is None, d
' || fail "status --json: $out"

# ---- mkdir / mv / rm ----
t1 mkdir 0 c mkdir /new
t1 mkdir-p 0 c mkdir -p /new/x/y/z
t1 mkdir-p-again 0 c mkdir -p /new/x/y
t1 mv 0 c mv /new/x /moved
t1 mv-into 0 c mv /single.txt /moved
t1 ls-moved 0 c ls /moved
[ "$out" = "$(printf 'single.txt\ny')" ] || fail "mv: '$out'"
t1 rm-file 0 c rm /moved/single.txt
t1 rm-r 0 c rm -r /moved
t1 rm-f 0 c rm -f /moved
t1 gone 3 c stat /moved

# ---- snapshot paths: @SNAP/... read, never written ----
t1 snap 0 c snapshot create /ds s1
t1 snap-ls 0 c ls -l @s1/a
[ "$out" = "$(c ls -l /ds/a)" ] || fail "ls @s1/a differs from ls /ds/a"
t1 snap-cat 0 c cat @s1/a/f.txt
[ "$out" = hello ] || fail "cat @s1/a/f.txt: '$out'"
t1 snap-get 0 c get -r @s1 "$tmp/snapout"
t1 live-get 0 c get -r /ds "$tmp/liveout"
diff -r --no-dereference "$tmp/liveout" "$tmp/snapout" >/dev/null || fail "get -r @s1 differs from get -r /ds"
tree_meta "$tmp/liveout" >"$tmp/m1"
tree_meta "$tmp/snapout" >"$tmp/m2"
cmp -s "$tmp/m1" "$tmp/m2" || fail "get -r @s1: metadata differs from get -r /ds"
t1 e-snap-mkdir 1 c mkdir @s1/new
t1 e-snap-rm 1 c rm @s1/a/f.txt
t1 e-snap-put 1 c put "$tmp/src/empty" @s1/a/new
t1 e-snap-root 1 c rm -r @s1
t1 snap-rm 0 c snapshot rm s1

# ---- errors: one line, documented status ----
t1 e-ls 3 c ls /nope;               has e-ls "'/nope': no such file or directory"
t1 e-deep 3 c ls /ds/a/nope/x;      has e-deep "'/ds/a/nope'"
t1 e-notdir 1 c ls /ds/a/f.txt/x
t1 e-stat 3 c stat /nope
t1 e-cat-dir 1 c cat /ds;           has e-cat-dir "is a directory"
t1 e-cat-none 3 c cat /ds/nope
t1 e-mkdir-exists 4 c mkdir /ds
t1 e-mkdir-parent 3 c mkdir /nope/x
t1 e-rm-dir 1 c rm /ds;             has e-rm-dir "rm -r"
t1 e-rm-none 3 c rm /nope
t1 e-rm-root 1 c rm -r /
t1 e-mv-none 3 c mv /nope /x
t1 e-dotdot 1 c ls /ds/../ds;       has e-dotdot ".."
t1 e-snap 3 c ls @nosnap/x;         has e-snap nosnap
t1 e-put-local 3 c put "$tmp/nope" /x
t1 e-put-exists 4 c put "$tmp/src/a/f.txt" /ds/a/f.txt
t1 e-put-exists-into 4 c put -r "$tmp/src/a" /ds
t1 e-put-dir 1 c put "$tmp/src" /x
t1 e-get-exists 4 c get /ds/a/f.txt "$tmp/one.bin"
t1 e-get-dir 1 c get /ds "$tmp/x"
t1 e-usage-opt 2 c ls --bogus;      has e-usage-opt "unknown option '--bogus'"
t1 e-usage-short 2 c rm -z /x;      has e-usage-short "unknown option '-z'"
t1 e-usage-extra 2 c stat /a /b
t1 e-usage-missing 2 c cat
t1 e-usage-put 2 c put "$tmp/src"
t1 e-usage-jobs 2 c put -j 0 "$tmp/src" /x
t1 e-no-volume 1 "$cairn" --volume "$tmp/none" ls /
t1 e-gc-grace 2 c gc --grace soon
t help-ls 0 c ls --help;            has help-ls "usage: cairn ls"
t help-put 0 "$cairn" help put;     has help-put "usage: cairn put"

# ---- get never writes outside LOCAL ----
mkdir -p "$tmp/elsewhere" "$tmp/g1" "$tmp/g2/ds" "$tmp/g3/ds/a"
ln -s "$tmp/elsewhere" "$tmp/g1/ds"          # the tree's top is a symlink
ln -s "$tmp/elsewhere" "$tmp/g2/ds/a"        # a directory inside it is
ln -s "$tmp/elsewhere/f" "$tmp/g3/ds/a/f.txt" # a file inside it is
t1 e-get-link-top 4 c get -r /ds "$tmp/g1"
t1 e-get-link-top-f 4 c get -r -f /ds "$tmp/g1"
t1 e-get-link-dir 4 c get -r -f /ds "$tmp/g2"
t1 e-get-link-file 4 c get -r -f /ds "$tmp/g3"
t1 e-get-link-one 4 c get -f /ds/a/f.txt "$tmp/g3/ds/a/f.txt"
[ -z "$(ls -A "$tmp/elsewhere")" ] || fail "get wrote through a symlink: $(ls -A "$tmp/elsewhere")"
# -f replaces, never writes through what is planted: a FIFO (would block
# the writer), a hard link to a file outside LOCAL (would overwrite it).
mkdir -p "$tmp/g4" "$tmp/g5"
mkfifo "$tmp/g4/f.txt"
t1 get-f-fifo 0 timeout 30 "$cairn" --volume "$V" get -f /ds/a/f.txt "$tmp/g4/f.txt"
[ -f "$tmp/g4/f.txt" ] && cmp -s "$tmp/src/a/f.txt" "$tmp/g4/f.txt" || fail "get -f onto a FIFO: not replaced"
echo keep >"$tmp/elsewhere/victim"
ln "$tmp/elsewhere/victim" "$tmp/g5/f.txt"
t1 get-f-hardlink 0 c get -f /ds/a/f.txt "$tmp/g5/f.txt"
[ "$(cat "$tmp/elsewhere/victim")" = keep ] || fail "get -f wrote through a hard link to a file outside LOCAL"
cmp -s "$tmp/src/a/f.txt" "$tmp/g5/f.txt" || fail "get -f onto a hard link: not replaced"
rm -f "$tmp/elsewhere/victim"
# a relative LOCAL with no working directory (it was removed): an error, no crash
mkdir "$tmp/gone"
t get-nocwd 3 bash -c 'cd "$1" && rmdir "$1" && exec "$2" --volume "$3" get /ds/a/f.txt rel' _ "$tmp/gone" "$cairn" "$V"

# A deep tree (400 levels) with a small stack: get and put walk it
# without a 4 KiB buffer per level on the stack (they crashed with 1 MiB).
deep=/deep; for _ in $(seq 400); do deep="$deep/d"; done
t1 deep-mkdir 0 c mkdir -p "$deep"
t1 deep-file 0 c put "$tmp/src/a/f.txt" "$deep/f"
t1 deep-get 0 bash -c 'ulimit -s 1024 && exec "$@"' _ "$cairn" --volume "$V" get -r /deep "$tmp/deepout"
[ -f "$tmp/deepout${deep#/deep}/f" ] || fail "deep get: the bottom file is missing"
t1 deep-put 0 bash -c 'ulimit -s 1024 && exec "$@"' _ "$cairn" --volume "$V" put -r "$tmp/deepout" /deep2
t1 deep-rm 0 c rm -r /deep /deep2

# ---- fsck, gc ----
t1 fsck 0 c fsck;                   has fsck "0 problems"
t1 fsck-json 0 c --json fsck
printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["clean"] and d["problems"]==0, d' ||
	fail "fsck --json: $out"
stored() { c --json status | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])'; }
before=$(stored)
t1 rm-all 0 c rm -r /ds /new
t1 gc-dry 0 c --json gc --dry-run --grace 0
would=$(printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["bytes_deleted"]+d["orphan_bytes"]+d["bytes_rewritten"])')
[ "$would" -ge 20971520 ] || fail "gc --dry-run would free only $would bytes after deleting 20 MiB"
[ "$(stored)" = "$before" ] || fail "gc --dry-run changed the stored bytes"
t1 gc-human-dry 0 c gc --dry-run --grace 0; has gc-human-dry "would delete"
t1 gc 0 c gc --grace 0;             has gc deleted
after=$(stored)
[ "$after" -lt $((before - 20971520)) ] || fail "gc freed too little: $before -> $after"
t1 fsck-after 0 c fsck
t1 status 0 c status;               has status "reclaimable:"

[ $fails = 0 ] && echo "cli_fs: all cases passed"
[ $fails = 0 ]
