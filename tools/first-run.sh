#!/bin/sh
# first-run.sh - the README's first run, on the embedded default store:
# format the default volume (a file:// store inside it, no cloud account),
# save a generated checkpoint, list it, restore it and compare, then mount
# the volume and use it through the mount.
#
#   tools/first-run.sh [MOUNTPOINT]      (default /mnt/cairn)
#
# Environment: CAIRN (the binary, default build/cairn), CAIRN_VOLUME (the
# volume, default ~/.local/share/cairn/default), FIRST_RUN_MB (checkpoint
# size in MiB, default 256).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
cairn=${CAIRN:-$here/build/cairn}
mnt=${1:-/mnt/cairn}
mb=${FIRST_RUN_MB:-256}
work=$(mktemp -d /tmp/cairn-first-run.XXXXXX)
mounted=0

cleanup() {
	if [ "$mounted" = 1 ]; then
		"$cairn" umount "$mnt" || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n== %s\n' "$*"; }

[ -x "$cairn" ] || { echo "first-run: $cairn not found; run ./build.sh first" >&2; exit 1; }

step "volume"
if "$cairn" status >/dev/null 2>&1; then
	echo "using the existing volume (cairn status shows it)"
else
	"$cairn" format
fi

step "generate a checkpoint: 4 shards of $((mb / 4)) MiB, 200 small files, a symlink"
python3 - "$work/ckpt" "$mb" <<'PY'
import json, os, sys
root, mb = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(root, "optim"))
shard = max(1, mb // 4) << 20
for i in range(4):
    with open(os.path.join(root, f"model-{i:05d}-of-00004.safetensors"), "wb") as f:
        left = shard
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
for i in range(200):
    with open(os.path.join(root, "optim", f"state-{i:03d}.pt"), "wb") as f:
        f.write(os.urandom(1024 + 97 * i))
with open(os.path.join(root, "config.json"), "w") as f:
    json.dump({"step": 1000, "lr": 3e-4, "shards": 4}, f)
os.symlink("model-00000-of-00004.safetensors", os.path.join(root, "latest"))
PY
name="first-run-$(date -u +%Y%m%dT%H%M%S)"

step "cairn ckpt save $work/ckpt $name"
"$cairn" ckpt save "$work/ckpt" "$name"

step "cairn ckpt list"
"$cairn" ckpt list

step "cairn ckpt restore $name $work/restored"
"$cairn" ckpt restore "$name" "$work/restored"
diff -r --no-dereference "$work/ckpt" "$work/restored"
echo "the restored tree is byte for byte the saved one"

step "cairn mount $mnt"
mkdir -p "$mnt"
"$cairn" mount "$mnt"
mounted=1
cp -r "$work/ckpt/optim" "$mnt/dataset-$name"
echo "wrote $(ls "$mnt/dataset-$name" | wc -l) files through the mount"
echo "commands go through the mount's control socket while it is mounted:"
"$cairn" ckpt list
"$cairn" status

step "cairn umount $mnt"
"$cairn" umount "$mnt"
mounted=0
echo "done: 'cairn mount $mnt' brings the volume back; 'cairn --help' lists the commands"
