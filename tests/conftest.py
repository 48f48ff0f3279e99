"""Shared fixtures: a busybox rootfs, bundles, and a hermetic runtime driver.

Every test gets its own --root state dir, unique container ids, and cgroups under a test-owned
parent (/pyruntime-test-<rand>); cleanup (delete --force, rmdir of the parent cgroup in every
hierarchy) runs even when the test fails.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
# Inside the cgroup v2 VM the host's /var/tmp is not visible: build the rootfs in guest /tmp.
ROOTFS_CACHE = os.environ.get("PYRUNTIME_TEST_ROOTFS") or (
    "/tmp/pyruntime-test-rootfs" if os.environ.get("RUN_IN_VM") else "/var/tmp/pyruntime-test-rootfs")
CGROUP_ROOT = "/sys/fs/cgroup"


def pyruntime_cmd() -> list[str]:
    """The CLI as installed (console script next to this interpreter), else `python -m`."""
    exe = os.path.join(os.path.dirname(sys.executable), "pyruntime")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "pyruntime"]


@pytest.fixture(scope="session")
def base_rootfs() -> str:
    if not os.path.exists(os.path.join(ROOTFS_CACHE, ".pyruntime-rootfs")):
        subprocess.run(["bash", os.path.join(PROJECT, "bundles", "build-rootfs.sh"), ROOTFS_CACHE],
                       check=True)
    return ROOTFS_CACHE


def default_config(args: list[str], rootfs: str) -> dict:
    from pyruntime.spec.default import default_spec

    cfg = default_spec(False)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": rootfs, "readonly": False}
    return cfg


def remove_cgroup_tree(name: str) -> None:
    """rmdir /sys/fs/cgroup/*/<name> bottom-up in every hierarchy (unified one included)."""
    for hier in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, hier, name)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass


class Runtime:
    """Drives the pyruntime CLI hermetically for one test."""

    def __init__(self, tmp_path, rootfs: str) -> None:
        self.tmp = tmp_path
        self.root = str(tmp_path / "state")
        self.base_rootfs = rootfs
        self.cg_parent = f"pyruntime-test-{uuid.uuid4().hex[:8]}"
        self.ids: list[str] = []
        self.cmd = pyruntime_cmd()

    def new_id(self, prefix: str = "t") -> str:
        cid = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        return cid

    def bundle(self, args: list[str] | None = None, *, edit=None, copy_rootfs: bool = True,
               config: dict | None = None) -> str:
        """A bundle dir with its own rootfs copy and config.json; edit(cfg) may change it."""
        b = self.tmp / f"bundle-{uuid.uuid4().hex[:6]}"
        b.mkdir()
        rootfs = str(b / "rootfs")
        if copy_rootfs:
            shutil.copytree(self.base_rootfs, rootfs, symlinks=True)
        else:
            rootfs = self.base_rootfs
        cfg = copy.deepcopy(config) if config else default_config(args or ["true"], rootfs)
        cfg.setdefault("linux", {})["cgroupsPath"] = f"/{self.cg_parent}/{b.name}"
        if edit:
            edit(cfg)
        (b / "config.json").write_text(json.dumps(cfg, indent=1))
        return str(b)

    def run(self, *args: str, check: bool = False, input: str | None = None, timeout: float = 60,
            glob: tuple[str, ...] = (), **kw) -> subprocess.CompletedProcess:
        cmd = self.cmd + ["--root", self.root, *glob, *args]
        r = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed rc={r.returncode}: {r.stderr.strip()}")
        return r

    def state(self, cid: str) -> dict:
        r = self.run("state", cid, check=True)
        return json.loads(r.stdout)

    def cleanup(self) -> None:
        if os.path.isdir(self.root):
            for cid in os.listdir(self.root):
                if not cid.startswith("."):
                    self.run("delete", "--force", cid)
        remove_cgroup_tree(self.cg_parent)


@pytest.fixture
def rt(tmp_path, base_rootfs):
    r = Runtime(tmp_path, base_rootfs)
    try:
        yield r
    finally:
        r.cleanup()


def host_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f}


@pytest.fixture
def no_leaks(rt):
    """Assert the test leaves no mounts, state dirs or cgroups behind."""
    before = host_mounts()
    yield
    after = host_mounts()
    # Containers the test deleted must have taken their cgroups with them: the test-owned
    # parent may exist, but must have no child left in any hierarchy.
    left = []
    for h in os.listdir(CGROUP_ROOT):
        parent = os.path.join(CGROUP_ROOT, h, rt.cg_parent)
        if os.path.isdir(parent):
            left += [os.path.join(parent, d) for d in os.listdir(parent)
                     if os.path.isdir(os.path.join(parent, d))]
    state_left = os.listdir(rt.root) if os.path.isdir(rt.root) else []
    rt.cleanup()
    assert after - before == set(), f"leaked mounts: {after - before}"
    assert not left, f"leaked cgroups: {left}"
    assert not [s for s in state_left if not s.startswith(".")], f"leaked state: {state_left}"
