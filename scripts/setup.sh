#!/usr/bin/env bash
# Install everything pyruntime and its tests need on a fresh Debian 12 machine (run as root).
# Idempotent: a second run only checks. Creates the venv at $PYRUNTIME_VENV (default
# /opt/pyruntime/venv, outside /root so unprivileged users can run it for rootless tests).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${PYRUNTIME_VENV:-/opt/pyruntime/venv}
APT_PKGS=(busybox-static runc crun podman conmon catatonit containerd uidmap libcap-dev
          libseccomp2 libseccomp-dev python3-venv python3-dev gcc util-linux procps iproute2
          kmod e2fsprogs time)

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

if [[ ! -x $VENV/bin/python ]]; then
  mkdir -p "$(dirname "$VENV")"
  /usr/bin/python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
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
