#!/bin/sh
# install.sh - install the S3 test server: s3rver 3.7.1 (pinned by
# package-lock.json) with cairn's patch (s3rver.patch, see docs/s3.md).
#
# Idempotent and quick: when node_modules holds exactly this lock file's
# packages with this patch applied (a stamp records both), it does nothing.
# Needs: nodejs (>= 18), npm, patch (Debian packages of those names).
set -eu
cd "$(dirname "$0")"

stamp=node_modules/s3rver/.cairn-patched
want=$(cat package-lock.json s3rver.patch | sha256sum | cut -c1-64)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
for tool in node npm patch; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "install.sh: '$tool' not found (apt-get install nodejs npm patch)" >&2
		exit 1
	fi
done
rm -rf node_modules
npm ci --no-audit --no-fund --loglevel=error
# --forward: never apply twice; a failure leaves no stamp, so the next run
# starts from a clean npm ci again.
patch -p1 --forward --quiet -d node_modules/s3rver < s3rver.patch
echo "$want" > "$stamp"
echo "install.sh: s3rver $(node -p 'require("./node_modules/s3rver/package.json").version') installed and patched"
