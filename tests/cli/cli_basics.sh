#!/bin/sh
# cli_basics.sh CAIRN - help, version, and the one-line errors with the
# documented exit codes (docs/cli.md).
cairn=$1
fail=0
t() { # name expected-status command... ; output in $out
	name=$1 want=$2
	shift 2
	out=$("$@" 2>&1)
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL $name: exit $got, want $want; output: $out"
		fail=1
	fi
}
has() { # name needle
	case "$out" in
	*"$2"*) ;;
	*) echo "FAIL $1: output lacks '$2': $out"; fail=1 ;;
	esac
}
lines() { # name n
	n=$(printf '%s\n' "$out" | wc -l)
	[ "$n" = "$2" ] || { echo "FAIL $1: $n lines, want $2: $out"; fail=1; }
}

t help 0 "$cairn" --help;                   has help "usage: cairn"; has help "version"
t help-cmd 0 "$cairn" help version;         has help-cmd "usage: cairn version"
t cmd-help 0 "$cairn" version --help;       has cmd-help "usage: cairn version"
t version 0 "$cairn" version;               has version "io engine: "
t version-flag 0 "$cairn" --version;        has version-flag "cairn 0."
t threads 0 env CAIRN_IO_ENGINE=threads "$cairn" version; has threads "io engine: threads"
t json 0 "$cairn" --json version;           has json '"io_engine":"'
if command -v python3 >/dev/null; then
	printf '%s' "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["io_engine"] in ("io_uring","threads")' ||
		{ echo "FAIL json: not valid JSON: $out"; fail=1; }
fi
t no-cmd 2 "$cairn"
t unknown-cmd 2 "$cairn" frobnicate;        has unknown-cmd "cairn: unknown command 'frobnicate' (see 'cairn --help')"; lines unknown-cmd 1
t unknown-opt 2 "$cairn" --frob version;    has unknown-opt "unknown option '--frob'"; lines unknown-opt 1
t help-unknown 2 "$cairn" help nope;        has help-unknown "cairn: help: unknown command 'nope'"; lines help-unknown 1
t extra-arg 2 "$cairn" version extra;       has extra-arg "unexpected argument 'extra'"; lines extra-arg 1
t bad-engine 1 env CAIRN_IO_ENGINE=warp "$cairn" version; has bad-engine "warp"
t bad-logfile 2 "$cairn" --log-file /nonexistent/dir/log version; has bad-logfile "/nonexistent/dir/log"; lines bad-logfile 1

# format: creates parents, refuses a second format, validates flags.
tmp=$(mktemp -d)
t format 0 "$cairn" --volume "$tmp/a/b/vol" format; has format "formatted volume $tmp/a/b/vol"
[ -f "$tmp/a/b/vol/volume.conf" ] || { echo "FAIL format: no volume.conf"; fail=1; }
t format-again 1 "$cairn" --volume "$tmp/a/b/vol" format; has format-again "already holds a cairn volume"; lines format-again 1
t format-env 0 env CAIRN_VOLUME="$tmp/envvol" "$cairn" --json format; has format-env "\"volume\":\"$tmp/envvol\""
t format-compress 2 "$cairn" --volume "$tmp/c" format --compress lz4; has format-compress "--compress takes zstd or none, not 'lz4'"; lines format-compress 1
t format-size 2 "$cairn" --volume "$tmp/c" format --segment-size 12Q; has format-size "--segment-size takes 1M..4G"
t format-level 2 "$cairn" --volume "$tmp/c" format --zstd-level 0; has format-level "--zstd-level takes 1..19"
t format-store 1 "$cairn" --volume "$tmp/d" format --store ftp://x/y; has format-store "ftp://x/y"; lines format-store 1
[ -e "$tmp/c" ] && { echo "FAIL format: a refused format left $tmp/c behind"; fail=1; }
rm -rf "$tmp"

[ $fail = 0 ] && echo "cli_basics: all cases passed"
exit $fail
