#!/bin/bash
# The demo: make localhost/busybox:latest from this host's busybox, then run a real
# container that greets with its hostname and its PID (1, as PID 1 of its own namespace).
#
# It uses portside's default state, like a user would: /var/lib/portside (images, layers,
# containers) and /run/portside (run state). Set PORTSIDE_ROOT / PORTSIDE_RUNROOT to
# use other directories.
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
PORTSIDE=${PORTSIDE:-$HERE/.venv/bin/portside}
BUSYBOX=${BUSYBOX:-/bin/busybox}
IMAGE=localhost/busybox:latest

if [ "$(id -u)" != 0 ]; then
    echo "demo: containers need root here; run it as root" >&2
    exit 1
fi
if ! [ -x "$BUSYBOX" ]; then
    echo "demo: $BUSYBOX not found (apt-get install busybox-static)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building a root filesystem from $BUSYBOX"
rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,var,home}
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
cp "$BUSYBOX" "$rootfs/bin/busybox"
"$BUSYBOX" --list-full | while read -r applet; do
    [ "$applet" = "bin/busybox" ] && continue
    mkdir -p "$rootfs/$(dirname "$applet")"
    ln -sf /bin/busybox "$rootfs/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
    >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
tar -C "$rootfs" --numeric-owner -cf "$work/rootfs.tar" .

echo "== portside import -> $IMAGE"
"$PORTSIDE" import --change 'CMD ["sh"]' "$work/rootfs.tar" "$IMAGE"
"$PORTSIDE" images

echo "== portside run --rm $IMAGE sh -c 'echo \"Hello from \$(hostname), PID \$\$\"'"
"$PORTSIDE" run --rm "$IMAGE" sh -c 'echo "Hello from $(hostname), PID $$"'
