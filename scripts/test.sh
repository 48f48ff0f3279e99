#!/usr/bin/env bash
# The full test suite, from a fresh machine: install, then unit + kernel-level tests (host,
# cgroup v1), cgroup v2 tests (in the run-in-vm VM), and the real-client suites (podman,
# containerd) against the installed pyruntime.
#   bash scripts/test.sh            # everything
#   bash scripts/test.sh -k exec    # extra args go to pytest
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
bash scripts/setup.sh
VENV=${PYRUNTIME_VENV:-/opt/pyruntime/venv}
bash bundles/build-rootfs.sh /var/tmp/pyruntime-test-rootfs
if [[ -f ../shared/vm/run-in-vm.sh ]]; then
  bash ../shared/vm/run-in-vm.sh --setup >/dev/null
fi
exec "$VENV/bin/python" -m pytest tests integration -q -rfEs "$@"
