#!/usr/bin/env bash
# Build a busybox rootfs from Debian's busybox-static: one symlink per applet, /etc/passwd and
# /etc/group, empty /proc /sys /dev /tmp. Usage: build-rootfs.sh DEST   (idempotent)
set -euo pipefail
dest=${1:?usage: build-rootfs.sh DEST}
bb=/bin/busybox
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
fi
[[ -f $dest/.pyruntime-rootfs ]] && exit 0
tmp=$(mktemp -d "$(dirname "$dest")/.rootfs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,root,home/user,var,run}
chmod 1777 "$tmp/tmp"
cp "$bb" "$tmp/bin/busybox"
for applet in $("$bb" --list-full); do
  [[ -e $tmp/$applet ]] || ln -s /bin/busybox "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > "$tmp/etc/group" <<'G'
root:x:0:
user:x:1000:
nogroup:x:65534:
G
echo "pyruntime" > "$tmp/etc/hostname"
chown 1000:1000 "$tmp/home/user"
touch "$tmp/.pyruntime-rootfs"
rm -rf "$dest"
chmod 755 "$tmp"  # mktemp -d makes it 0700: no non-root container user could enter /
mv "$tmp" "$dest"
trap - EXIT
