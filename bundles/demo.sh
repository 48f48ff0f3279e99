#!/usr/bin/env bash
# Set up pyruntime on a fresh machine and run the demo container from bundles/demo (run as root).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
bash "$here/bundles/build-rootfs.sh" "$here/bundles/demo/rootfs"
id="demo-$$"
exec pyruntime run --bundle "$here/bundles/demo" "$id"
