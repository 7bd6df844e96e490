#!/bin/sh
# layering.sh ROOT - the dependency rule of docs/architecture.md, checked on
# #include lines (CMake's link lines check it at build time):
#   meta/, segments/   may include the runtime only (cairn/runtime.h and its
#                      parts), never the volume API nor each other;
#   fuse/, tools/      may include the volume API and the runtime, never
#                      LMDB, meta/ or segments/ internals;
#   core/runtime/      includes no upper layer at all.
root=${1:-.}
fail=0
bad() { echo "layering: $1"; fail=1; }
check() { # dir pattern why
	hits=$(grep -rnE "$2" "$root/$1" --include='*.c' --include='*.h' 2>/dev/null)
	[ -n "$hits" ] && bad "$1 $3:
$hits"
}
check meta '#include *[<"](cairn/volume\.h|segments/|seg_)' "must not use the volume API or segments"
check segments '#include *[<"](cairn/volume\.h|meta/|meta_|lmdb\.h)' "must not use the volume API, meta or LMDB"
check fuse '#include *[<"](lmdb\.h|meta/|meta_|segments/|seg_|.*_int\.h)' "must use the volume API only"
check tools '#include *[<"](lmdb\.h|meta/|meta_|segments/|seg_|.*_int\.h)' "must use the volume API only"
check core/runtime '#include *[<"](cairn/volume\.h|lmdb\.h|fuse|meta/|segments/)' "must not include an upper layer"
[ $fail = 0 ] && echo "layering: ok"
exit $fail
