#!/bin/sh
# recover_cli.sh - `cairn recover` as a user runs it: --help, usage and
# store errors (one line on stderr, the documented exit status), and a
# volume rebuilt from its store after its directory was removed, read
# back byte for byte with `cairn get`, fsck clean, and writable.
set -u
cairn=$1
base=${CAIRN_TEST_TMP:-/tmp}
mkdir -p "$base"
tmp=$(mktemp -d "$base/recover_cli.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
t() {
	name=$1 want=$2
	shift 2
	"$@" >"$tmp/.out" 2>"$tmp/.err"
	got=$?
	out=$(cat "$tmp/.out")
	err=$(cat "$tmp/.err")
	[ "$got" = "$want" ] || fail "$name: exit $got, want $want; stderr: $err"
	if [ "$want" != 0 ]; then
		n=$(wc -l <"$tmp/.err")
		[ "$n" = 1 ] || fail "$name: $n lines on stderr, want 1: $err"
		case "$err" in cairn:*) ;; *) fail "$name: stderr does not start 'cairn:': $err" ;; esac
	fi
}
has() {
	case "$out$err" in
	*"$2"*) ;;
	*) fail "$1: output lacks '$2': $out $err" ;;
	esac
}

t help 0 "$cairn" recover --help
has help "usage: cairn recover"
has help "--uuid"
t help2 0 "$cairn" help recover
has help2 "--force"
t nostore 2 "$cairn" --volume "$tmp/r0" recover
has nostore "missing --store"
t badopt 2 "$cairn" recover --nope
t twoargs 2 "$cairn" recover --store "file://$tmp/s" a b
t badstore 3 "$cairn" recover --store "file://$tmp/no/such/store" "$tmp/r1"
has badstore "no/such/store"
[ -e "$tmp/no/such/store" ] && fail "badstore: a missing file:// store was created"
t badscheme 1 "$cairn" recover --store "ftp://x/y" "$tmp/r2"
mkdir -p "$tmp/empty"
t emptystore 3 "$cairn" recover --store "file://$tmp/empty" "$tmp/r3"
has emptystore "no cairn volume"
t baduuid 1 "$cairn" recover --store "file://$tmp/empty" --uuid nope "$tmp/r3"

# a volume with files, shipped, its directory removed
mkdir -p "$tmp/src/d"
for i in 1 2 3 4 5 6 7 8 9; do head -c $((i * 1000 + 17)) /dev/urandom >"$tmp/src/d/f$i"; done
head -c 3000000 /dev/urandom >"$tmp/src/big"
t format 0 "$cairn" --volume "$tmp/vol" format --store "file://$tmp/store"
t put 0 "$cairn" --volume "$tmp/vol" put -r "$tmp/src" /data
t snap 0 "$cairn" --volume "$tmp/vol" snapshot create /data snap1
t status 0 "$cairn" --volume "$tmp/vol" status
has status "log shipping:"
t statusjson 0 "$cairn" --json --volume "$tmp/vol" status
has statusjson '"shipped_lsn"'
# the target holds a volume already
t exists 4 "$cairn" recover --store "file://$tmp/store" "$tmp/vol"
has exists "already holds"
rm -rf "$tmp/vol"
t recover 0 "$cairn" --volume "$tmp/rec" recover --store "file://$tmp/store"
has recover "recovered volume"
has recover "fsck clean"
has recover "log objects in"
t recoverjson 0 "$cairn" --json recover --store "file://$tmp/store" "$tmp/rec2"
has recoverjson '"fsck_clean":true'
has recoverjson '"lsn"'
t get 0 "$cairn" --volume "$tmp/rec" get -r /data "$tmp/back"
diff -r "$tmp/src" "$tmp/back" >/dev/null || fail "recovered files differ from the originals"
t getsnap 0 "$cairn" --volume "$tmp/rec" get -r @snap1 "$tmp/back2"
diff -r "$tmp/src" "$tmp/back2" >/dev/null || fail "recovered snapshot differs from the originals"
t fsck 0 "$cairn" --volume "$tmp/rec" fsck
t write 0 "$cairn" --volume "$tmp/rec" mkdir /after
t ls 0 "$cairn" --volume "$tmp/rec" ls /
has ls after

if [ "$fails" != 0 ]; then
	echo "$fails failures"
	exit 1
fi
echo "recover_cli: all passed"
