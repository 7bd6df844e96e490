# ckpt_lib.sh - shared by the tests/ckpt scripts (sourced; POSIX sh).
#   $cairn, $tree (ckpt_tree.py), $tmp (work dir, removed at exit),
#   fail=0/1, t NAME WANT CMD... (exit status check; output in $out),
#   has NAME NEEDLE, s3_start / s3_stop (s3rver for an s3:// volume).
fail=0
cairn=$1
here=$(cd "$(dirname "$0")" && pwd)
tree="python3 $here/ckpt_tree.py"
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
base=${CAIRN_TEST_TMP:-/tmp}
mkdir -p "$base"
tmp=$(mktemp -d "$base/ckpt.XXXXXX")
s3pid=
cleanup() {
	s3_stop
	chmod -R u+rwx "$tmp" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

t() { # name expected-status command... ; stdout+stderr in $out
	name=$1 want=$2
	shift 2
	out=$("$@" 2>&1)
	got=$?
	if [ "$got" != "$want" ]; then
		echo "FAIL $name: exit $got, want $want; output: $out"
		fail=1
	fi
}
# like t, but stdout only in $out (stderr in $err)
tj() {
	name=$1 want=$2
	shift 2
	out=$("$@" 2>"$tmp/stderr")
	got=$?
	err=$(cat "$tmp/stderr")
	if [ "$got" != "$want" ]; then
		echo "FAIL $name: exit $got, want $want; stdout: $out stderr: $err"
		fail=1
	fi
}
has() { # name needle
	case "$out" in
	*"$2"*) ;;
	*) echo "FAIL $1: output lacks '$2': $out"; fail=1 ;;
	esac
}
jget() { # key: field of the JSON in $out
	printf '%s' "$out" | $tree json-get "$1"
}

# s3rver on a free port, environment for `cairn format --store s3://...`.
s3_start() {
	server=$here/../s3/server
	[ -f "$server/node_modules/s3rver/.cairn-patched" ] ||
		{ echo "SKIP: s3rver is not installed (tests/s3/server/install.sh)"; exit 77; }
	command -v node >/dev/null || { echo "SKIP: node not found"; exit 77; }
	mkdir -p "$tmp/s3"
	NODE_OPTIONS=--openssl-legacy-provider node "$server/run.js" --dir "$tmp/s3" \
		--bucket "$1" >"$tmp/s3.out" 2>"$tmp/s3.err" &
	s3pid=$!
	i=0
	while ! grep -q READY "$tmp/s3.out" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 300 ] && { echo "FAIL: s3rver did not start: $(cat "$tmp/s3.err")"; exit 1; }
		sleep 0.1
	done
	port=$(awk '/READY/ {print $2}' "$tmp/s3.out")
	export AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port
	export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
	export AWS_REGION=us-east-1 CAIRN_S3_ALLOW_HTTP=1
	export AWS_SHARED_CREDENTIALS_FILE=/nonexistent/cairn/credentials
	export AWS_CONFIG_FILE=/nonexistent/cairn/config
	echo "s3rver on port $port"
}
s3_stop() {
	if [ -n "$s3pid" ]; then
		kill "$s3pid" 2>/dev/null
		wait "$s3pid" 2>/dev/null
		s3pid=
	fi
}
