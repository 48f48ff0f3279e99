#!/usr/bin/env bash
# Run pyruntime as an unprivileged USER from a checkout that USER may not be able to read
# (the package is installed editable from the checkout, possibly under /root).
#
#   sudo scripts/rootless-env.sh USER [pyruntime args...]      e.g.  ... alice up ./rootfs -- id
#
# Copies the package (with its schemas) into a world-readable /tmp/pyruntime-rootless-USER/pkg,
# gives USER an XDG_RUNTIME_DIR there if it has none (/run/user/UID), and runs
# `python -m pyruntime ARGS` as USER (runuser) with this venv's interpreter, which must be
# reachable by USER (/opt/pyruntime/venv is; a pyenv python under /root is not).
# The same setup is what tests/test_rootless.py does for its throwaway user.
set -euo pipefail
user=${1:?usage: rootless-env.sh USER [pyruntime args...]}
shift
[[ $(id -u) == 0 ]] || { echo "rootless-env.sh: run as root (it switches to $user)" >&2; exit 1; }
uid=$(id -u "$user")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYRUNTIME_PYTHON:-/opt/pyruntime/venv/bin/python}
top=/tmp/pyruntime-rootless-$user
mkdir -p "$top"
chmod 755 "$top"
rm -rf "$top/pkg.new"
mkdir -p "$top/pkg.new"
cp -r "$here/pyruntime" "$top/pkg.new/pyruntime"
cp -r "$here/schemas" "$top/pkg.new/pyruntime/schemas"
find "$top/pkg.new" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m compileall -q "$top/pkg.new" >/dev/null
chmod -R a+rX "$top/pkg.new"
rm -rf "$top/pkg"
mv "$top/pkg.new" "$top/pkg"
xdg=/run/user/$uid
if [[ ! -d $xdg ]]; then
  xdg=$top/xdg
  mkdir -p "$xdg"
  chown "$user:" "$xdg"
  chmod 700 "$xdg"
fi
exec runuser -u "$user" -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$top" LANG=C.UTF-8 \
  XDG_RUNTIME_DIR="$xdg" PYTHONPATH="$top/pkg" PYTHONDONTWRITEBYTECODE=1 \
  "$python" -m pyruntime "$@"
