#!/usr/bin/env bash
# Install everything pyruntime and its tests need on a fresh Debian 12 machine (run as root).
# Idempotent: a second run only checks. Creates the venv at $PYRUNTIME_VENV (default
# /opt/pyruntime/venv, outside /root so unprivileged users can run it for rootless tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PYRUNTIME_VENV:-/opt/pyruntime/venv}
APT_PKGS=(busybox-static runc crun podman conmon catatonit containerd uidmap libcap-dev
          libseccomp2 libseccomp-dev python3-venv python3-dev gcc util-linux procps iproute2
          kmod e2fsprogs time strace)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv's interpreter is a private copy with the immutable flag (chattr +i), not a symlink
# to the system's: then create/run/exec can skip their CVE-2019-5736 re-exec when the config
# allows it (pyruntime/container/seal.py: the fast path), and a system python3 without the flag
# is left alone. A venv from an earlier run (symlinks) is converted; an outdated copy (python3
# upgraded by apt) is replaced: rerun this script after upgrading python3.
py_src=$(readlink -f /usr/bin/python3)
py_name=$(basename "$py_src")
py_dst=$VENV/bin/$py_name
unfreeze() { [[ -f $1 && ! -L $1 ]] && chattr -i "$1" 2>/dev/null || true; }
if [[ ! -x $VENV/bin/python ]]; then
  mkdir -p "$(dirname "$VENV")"
  unfreeze "$py_dst"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
fi
if [[ -L $py_dst || ! -f $py_dst ]] || ! cmp -s "$py_src" "$py_dst"; then
  echo "setup: installing a private copy of $py_src as $py_dst" >&2
  unfreeze "$py_dst"
  cp "$py_src" "$py_dst.new"
  chmod 755 "$py_dst.new"
  mv -f "$py_dst.new" "$py_dst"
fi
for n in python python3; do
  [[ -L $VENV/bin/$n && $(readlink "$VENV/bin/$n") == "$py_name" ]] || { unfreeze "$VENV/bin/$n"; ln -sfn "$py_name" "$VENV/bin/$n"; }
done
if ! lsattr -d "$py_dst" 2>/dev/null | cut -d' ' -f1 | grep -q i; then
  chattr +i "$py_dst" || echo "setup: warning: cannot make $py_dst immutable: create/run/exec will always re-execute (slower, as safe)" >&2
fi
# Editable install: a plain .pth path entry (hatchling), cheap at start-up.
"$VENV/bin/pip" install -q -e "$here[test]"
# Byte-compile now: a command that has to compile its modules first is ~15 ms slower.
"$VENV/bin/python" -m compileall -q "$here/pyruntime" >/dev/null || true
# A fast launcher instead of the generic console script: -I -S skips site (and every .pth
# hook in it); the two paths site would have added are written in. ~4 ms per command.
purelib=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$VENV/bin/pyruntime.tmp" <<LAUNCHER
#!$VENV/bin/python -IS
import sys
sys.path[1:1] = ["$here", "$purelib"]
from pyruntime.cli import main
sys.exit(main())
LAUNCHER
chmod 755 "$VENV/bin/pyruntime.tmp"
mv "$VENV/bin/pyruntime.tmp" "$VENV/bin/pyruntime"
ln -sf "$VENV/bin/pyruntime" /usr/local/bin/pyruntime
echo "setup: ok ($("$VENV/bin/pyruntime" --version 2>/dev/null | head -1 || echo 'pyruntime not importable yet'))" >&2
