"""The README's demo bundle (bundles/demo/config.json) runs and leaves nothing behind: its
config has no cgroupsPath, so its cgroup is <id> under ours, removed with the container."""

from __future__ import annotations

import json
import os

import pytest

from pyruntime import cgroups

DEMO = os.path.join(os.path.dirname(__file__), "..", "bundles", "demo", "config.json")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


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
    where = list(cgroups.manager_for(cid, None).paths().values())  # <id> under ours, everywhere
    r = rt.run("run", "--bundle", b, cid, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "hello from pyruntime" in r.stdout and "I am PID 1" in r.stdout, r.stdout
    assert "memory limit: 67108864" in r.stdout, r.stdout
    assert where and [d for d in where if os.path.exists(d)] == []
