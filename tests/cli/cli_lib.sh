# cli_lib.sh - shared by the tests/cli shell tests (sourced, bash).
#
#   t NAME WANT_STATUS CMD...   run CMD; stdout in $out, stderr in $err;
#                               fails unless the status is WANT_STATUS
#   t1 NAME WANT_STATUS CMD...  the same, and an error (WANT_STATUS != 0)
#                               must be exactly one line on stderr,
#                               starting "cairn: "
#   has NAME NEEDLE             $out or $err contains NEEDLE
#   fail MESSAGE                record a failure
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
t() {
	local name=$1 want=$2
	shift 2
	"$@" >"$tmp/.out" 2>"$tmp/.err"
	got=$?
	out=$(cat "$tmp/.out")
	err=$(cat "$tmp/.err")
	[ "$got" = "$want" ] || fail "$name: exit $got, want $want; stderr: $err"
}
t1() {
	t "$@"
	if [ "$2" != 0 ]; then
		local n
		n=$(wc -l <"$tmp/.err")
		[ "$n" = 1 ] || fail "$1: $n lines on stderr, want 1: $err"
		case "$err" in cairn:*) ;; *) fail "$1: stderr does not start 'cairn:': $err" ;; esac
	fi
}
has() {
	case "$out$err" in
	*"$2"*) ;;
	*) fail "$1: output lacks '$2': $out $err" ;;
	esac
}
# A tree's metadata, one line per entry (path, type, mode, size, mtime
# with ns, symlink target), sorted.
tree_meta() {
	# (directory sizes differ between file systems: left out)
	(cd "$1" && find . -mindepth 1 -printf '%P|%y|%m|%s|%T@|%l\n' |
		awk -F'|' -v OFS='|' '$2 == "d" { $4 = "-" } { print }' | LC_ALL=C sort)
}
# A tree with what datasets have: nested directories, odd names (spaces,
# unicode, a leading dash, quotes), empty files, symlinks (relative,
# absolute, dangling), modes, old times, many small files and one of
# $2 MiB.
make_tree() {
	local d=$1 big=$2
	mkdir -p "$d/a/b/c" "$d/with space" "$d/ünïcödé ☃" "$d/-dash" "$d/empty dir"
	echo hello >"$d/a/f.txt"
	printf '' >"$d/empty"
	printf '' >"$d/a/b/c/also empty"
	echo "quote" >"$d/with space/it's \"q\"".txt
	echo snow >"$d/ünïcödé ☃/☃.bin"
	echo dash >"$d/-dash/-f"
	for i in $(seq 1 150); do
		head -c $((i * 37)) /dev/urandom >"$d/a/b/small_$i"
	done
	head -c $((big * 1048576)) /dev/urandom >"$d/big.bin"
	ln -s a/f.txt "$d/rel-link"
	ln -s /etc/hostname "$d/abs-link"
	ln -s "no such target" "$d/a/dangling"
	chmod 600 "$d/a/f.txt"
	chmod 755 "$d/-dash/-f"
	chmod 700 "$d/a/b"
	touch -h -d '2001-02-03 04:05:06.123456789' "$d/rel-link" "$d/a/f.txt" "$d/empty"
	touch -d '1999-12-31 23:59:59.5' "$d/with space" "$d/a/b/c"
}
mktmp() {
	local base=${CAIRN_TEST_TMP:-${TMPDIR:-/tmp}}
	mkdir -p "$base"
	tmp=$(mktemp -d "$base/cli.XXXXXX")
}
