"""The README's demo bundle (bundles/demo/config.json) runs and leaves nothing behind: its
config has no cgroupsPath, so its cgroup is <id> under ours, removed with the container."""

from __future__ import annotations

import json
import os

import pytest

DEMO = os.path.join(os.path.dirname(__file__), "..", "bundles", "demo", "config.json")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _own_cgroup_dirs(name: str) -> list[str]:
    """Where a cgroup `name` below our own cgroup would be, in every hierarchy."""
    out = []
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in (ctrls.split(",") if ctrls else ["unified"]):
                out.append(os.path.join("/sys/fs/cgroup", c.replace("name=", ""), path.lstrip("/"), name))
    return out


def test_demo_bundle_runs_and_leaves_no_cgroup(rt):
    with open(DEMO) as f:
        cfg = json.load(f)
    assert "cgroupsPath" not in cfg.get("linux", {})
    b = rt.bundle(config=cfg)
    with open(os.path.join(b, "config.json")) as f:
        mine = json.load(f)
    del mine["linux"]["cgroupsPath"]  # rt.bundle sets one; the demo's point is to have none
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(mine, f)
    cid = rt.new_id("demo")
    r = rt.run("run", "--bundle", b, cid, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "hello from pyruntime" in r.stdout and "I am PID 1" in r.stdout, r.stdout
    assert "memory limit: 67108864" in r.stdout, r.stdout
    assert [d for d in _own_cgroup_dirs(cid) if os.path.exists(d)] == []
