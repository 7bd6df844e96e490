#!/bin/sh
# mkpatch.sh - maintainers only: regenerate s3rver.patch from a patched
# node_modules/s3rver, against a pristine copy fetched with npm pack.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent s3rver@3.7.1 >/dev/null && tar xzf s3rver-3.7.1.tgz)
mkdir -p "$tmp/a" "$tmp/b"
cp -r "$tmp/package/lib" "$tmp/a/lib"
cp -r node_modules/s3rver/lib "$tmp/b/lib"
(cd "$tmp" && diff -ruN a b) > s3rver.patch || true
echo "s3rver.patch: $(wc -l < s3rver.patch) lines"
