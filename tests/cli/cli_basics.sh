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

[ $fail = 0 ] && echo "cli_basics: 15 cases passed"
exit $fail
