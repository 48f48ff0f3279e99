"""Issue 7: the real-client suites (../shared/clients) drive podman 4.3 + conmon and
containerd 1.6 + containerd-shim-runc-v2 + ctr against the installed pyruntime, exactly as
they drive runc. Each suite must end `N passed, 0 failed`.

The podman suite runs twice: once as podman treats an unknown runtime (errors from stderr),
once with pyruntime in `runtime_supports_json` (conmon passes --log-format=json --log FILE)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = os.path.join(os.path.dirname(PROJECT), "shared", "clients")

pytestmark = [
    pytest.mark.clients,
    pytest.mark.skipif(not os.path.isdir(CLIENTS), reason="../shared/clients is not present"),
]


def runtime_binary() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "pyruntime")
    return exe if os.path.exists(exe) else shutil.which("pyruntime")


def run_suite(script: str, env_extra: dict | None = None) -> tuple[str, int, int]:
    env = dict(os.environ, **(env_extra or {}))
    r = subprocess.run(["bash", os.path.join(CLIENTS, script), runtime_binary()],
                       capture_output=True, text=True, env=env, timeout=1800)
    out = r.stdout + r.stderr
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m, f"{script} printed no closing line (rc={r.returncode}):\n{out[-4000:]}"
    return out, int(m.group(1)), int(m.group(2))


def _failures(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))


def test_podman_suite():
    out, passed, failed = run_suite("podman-scenarios.sh")
    assert failed == 0, _failures(out)
    assert passed == 52


def test_podman_suite_json_logs():
    out, passed, failed = run_suite("podman-scenarios.sh", {"PODMAN_RUNTIME_SUPPORTS_JSON": "1"})
    assert failed == 0, _failures(out)
    assert passed == 52


CGROUP_ROOT = "/sys/fs/cgroup"


def _namespace_cgroups() -> set[str]:
    """The containerd suite's namespace cgroups, /sys/fs/cgroup/<hierarchy>/rth-<random>: its
    containers' cgroupsPath is /<namespace>/<id>, and the runtime removes only <id> (as runc
    does), so the suite itself leaves the namespace's directory behind."""
    out = set()
    for hier in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, hier)
        if os.path.isdir(top) and not os.path.islink(top):
            out.update(os.path.join(top, d) for d in os.listdir(top) if d.startswith("rth-"))
    return out


def test_containerd_suite():
    before = _namespace_cgroups()
    try:
        out, passed, failed = run_suite("containerd-scenarios.sh")
    finally:
        # Remove the namespace directories this run made: rmdir fails on one that still holds a
        # container's cgroup, which would be a cgroup the runtime left behind.
        leaked = []
        for d in sorted(_namespace_cgroups() - before):
            try:
                os.rmdir(d)
            except OSError as e:
                leaked.append(f"{d}: {e.strerror}: {os.listdir(d)}")
    assert failed == 0, _failures(out)
    assert passed == 28
    assert not leaked, leaked
