#!/usr/bin/env bash
# build.sh - set up, build and test cairn on a Debian 12 machine.
#
#   ./build.sh            install missing Debian packages, configure, build
#                         (the CLI lands at build/cairn)
#   ./build.sh test       build, then run the whole test suite (CTest)
#   ./build.sh asan       build with ASan+UBSan in build-asan/ and run the suite
#   ./build.sh bench ...  build, then run the bench suite (bench/run.py ...)
#   ./build.sh fuzz       build the libFuzzer targets with clang in build-fuzz/
#   ./build.sh deps       only install what is missing
#   ./build.sh clean      remove the build directories
#
# Idempotent: packages are checked with dpkg-query and installed only when
# missing; CMake configures once and then builds incrementally.
#
# Environment: CAIRN_TEST_SCALE scales long randomized and crash tests
# (default 1); CTEST_PARALLEL_LEVEL overrides the number of tests run at
# once (default: number of cores).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

# Everything the build, the tests and the benchmarks need, by Debian name.
PACKAGES=(
	gcc make cmake ninja-build pkg-config ca-certificates
	liblmdb-dev lmdb-utils liburing-dev libcurl4-openssl-dev libssl-dev
	libzstd-dev libexpat1-dev libfuse3-dev fuse3
	python3 fio patch
)

die() { echo "build.sh: $*" >&2; exit 1; }

missing_packages() {
	local p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
			echo "$p"
		fi
	done
}

apt_install() {
	local missing
	missing=$(missing_packages "$@")
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing Debian packages: $(echo $missing); run ./build.sh as root or install them with apt-get"
	fi
	echo "build.sh: installing $(echo $missing)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || die "apt-get update failed; check the network or the apt sources"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		die "apt-get install $(echo $missing) failed"
}

deps() {
	apt_install "${PACKAGES[@]}"
	# Node.js and npm run the S3 test server (s3rver); any Node >= 18 will
	# do, so keep one that is already there (e.g. from NodeSource).
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
		apt_install nodejs npm
	fi
	if [ -x tests/s3/server/install.sh ]; then
		tests/s3/server/install.sh || die "installing the S3 test server (s3rver) failed"
	fi
}

configure() { # dir [cmake args...]
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		cmake -S . -B "$dir" -G Ninja "$@" >/dev/null || die "cmake configure of $dir failed"
	fi
}

build() {
	deps
	configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build || die "build failed"
}

run_tests() { # dir
	local jobs=${CTEST_PARALLEL_LEVEL:-$(nproc)}
	(cd "$1" && ctest --output-on-failure -j "$jobs" --timeout 1200)
}

cmd=${1:-build}
[ $# -gt 0 ] && shift
case "$cmd" in
build)
	build
	;;
test)
	build
	run_tests build
	;;
asan)
	deps
	configure build-asan -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON
	cmake --build build-asan || die "sanitizer build failed"
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	run_tests build-asan
	;;
bench)
	build
	# The bench suite's own setup (bench/suite.py): the AWS CLI and
	# matplotlib for the charts are required; the peers s3fs and rclone are
	# not: if they cannot be installed, the suite reports their cells as
	# skipped with the reason.
	apt_install awscli python3-matplotlib
	(apt_install s3fs rclone) ||
		echo "build.sh: could not install s3fs/rclone; the bench reports them as skipped" >&2
	python3 bench/run.py --build "$ROOT/build" "$@"
	;;
fuzz)
	deps
	apt_install clang libclang-rt-14-dev
	if [ ! -f build-fuzz/build.ninja ]; then
		CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCAIRN_FUZZ=ON >/dev/null ||
			die "cmake configure of build-fuzz failed"
	fi
	cmake --build build-fuzz || die "fuzz build failed"
	;;
deps)
	deps
	;;
clean)
	rm -rf build build-asan build-fuzz
	;;
-h | --help | help)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	die "unknown command '$cmd' (try ./build.sh --help)"
	;;
esac
