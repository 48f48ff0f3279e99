"""cgroup v1 manager on this (hybrid) host: every resource is set and read back, and the cheap
effects are checked with real forked children. Every cgroup lives under a test-owned parent
`pyruntime-test-<random>` (relative to our own cgroup in each hierarchy) that is always removed."""

from __future__ import annotations

import errno
import os
import secrets
import signal
import time
from types import SimpleNamespace as NS

import pytest

from pyruntime import cgroups
from pyruntime.cgroups import devices as D
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or cgroups.detect_layout() == "unified", reason="needs root on a v1/hybrid host")


def R(**kw):
    """A stand-in for pyruntime.spec.model.Resources (absent fields are None)."""
    base = dict(memory=None, cpu=None, pids=None, block_io=None, hugepage_limits=None, devices=None,
                network=None, rdma=None, unified=None)
    base.update(kw)
    return NS(**base)


@pytest.fixture
def parent():
    name = f"pyruntime-test-{secrets.token_hex(4)}"
    yield name
    m = cgroups.manager_for("parent", name)
    m.destroy()
    assert not any(os.path.exists(d) for d in m.paths().values())


@pytest.fixture
def mgr(parent):
    m = cgroups.manager_for("ctr", f"{parent}/ctr")
    m.create()
    yield m
    m.destroy()


class Child:
    """A forked child that waits for a byte on a pipe, then runs fn() and exits with its result."""

    def __init__(self, fn):
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            code = 99
            try:
                os.close(w)
                os.read(r, 1)
                code = fn()
            except BaseException:
                code = 98
            finally:
                os._exit(code if isinstance(code, int) else 0)
        os.close(r)
        self.w = w

    def go(self):
        os.write(self.w, b"x")
        os.close(self.w)

    def wait(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return st
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError("child did not finish")
            time.sleep(0.01)


def rd(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


# --------------------------------------------------------------------------------------------
def test_layout_and_paths(parent):
    assert cgroups.detect_layout() == "hybrid"
    m = cgroups.manager_for("abc", None)
    own = open("/proc/self/cgroup").read()
    mem_own = [line.split(":", 2)[2] for line in own.splitlines() if line.split(":")[1] == "memory"][0]
    assert m.paths()["memory"] == os.path.normpath(f"/sys/fs/cgroup/memory/{mem_own}/abc")
    assert m.paths()[""].startswith("/sys/fs/cgroup/unified/")
    a = cgroups.manager_for("abc", "/x/../y")
    assert a.paths()["pids"] == "/sys/fs/cgroup/pids/y"
    rel = cgroups.manager_for("abc", "../../escape")
    assert rel.paths()["pids"].startswith("/sys/fs/cgroup/pids")
    with pytest.raises(RuntimeFailure):
        cgroups.manager_for("abc", "/")


def test_default_path_matches_runc_layout(parent):
    """No cgroupsPath: "<id>" relative to our own cgroup in every hierarchy, unified included."""
    m = cgroups.manager_for(f"{parent}", None)
    m.create()
    child = Child(lambda: 0)
    try:
        m.apply(child.pid)
        lines = dict(line.split(":", 2)[1:] for line in open(f"/proc/{child.pid}/cgroup").read().splitlines())
        own = dict(line.split(":", 2)[1:] for line in open("/proc/self/cgroup").read().splitlines())
        for k in ("memory", "pids", "devices", "freezer", "name=systemd", ""):
            assert lines[k] == os.path.join(own[k], parent), k
        assert m.path == os.path.join(own[""], parent)
    finally:
        child.go()
        child.wait()


def test_state_roundtrip_and_destroy_idempotent(parent):
    m = cgroups.manager_for("ctr", f"{parent}/c")
    m.create()
    for d in m.paths().values():
        assert os.path.isdir(d)
    m2 = cgroups.manager_from_state(m.to_state())
    assert m2.paths() == m.paths() and m2.path == m.path
    m2.destroy()
    m2.destroy()
    assert not any(os.path.exists(d) for d in m.paths().values())


def test_manager_from_state_never_makes_the_cgroup(parent):
    """A Manager rebuilt from a container's state joins, never creates: an exec whose container
    was deleted meanwhile fails instead of leaving a new cgroup behind. Only stage 1 of create
    (may_create) makes the directories as it joins."""
    m = cgroups.manager_for("ctr", f"{parent}/gone")
    k = Child(lambda: 0)
    try:
        with pytest.raises(RuntimeFailure, match="does not exist"):
            cgroups.manager_from_state(m.to_state()).apply(k.pid)
        assert not any(os.path.exists(d) for d in m.paths().values())
        cgroups.manager_from_state(m.to_state(), may_create=True).apply(k.pid)
        assert all(os.path.isdir(d) for d in m.paths().values())
    finally:
        k.go()
        k.wait()
    m.destroy()


def test_memory(mgr):
    p = mgr.paths()["memory"]
    mgr.set(R(memory=NS(limit=64 << 20, reservation=32 << 20, swap=64 << 20, swappiness=10,
                        disable_oom_killer=None, kernel=None, kernel_tcp=16 << 20, use_hierarchy=True,
                        check_before_update=None)))
    assert int(rd(p, "memory.limit_in_bytes")) == 64 << 20
    assert int(rd(p, "memory.memsw.limit_in_bytes")) == 64 << 20
    assert int(rd(p, "memory.soft_limit_in_bytes")) == 32 << 20
    assert int(rd(p, "memory.kmem.tcp.limit_in_bytes")) == 16 << 20
    assert rd(p, "memory.swappiness") == "10"
    # raise both (swap must be written first), then lower both (memory first)
    mgr.set(R(memory=NS(limit=128 << 20, swap=256 << 20)))
    assert int(rd(p, "memory.limit_in_bytes")) == 128 << 20
    assert int(rd(p, "memory.memsw.limit_in_bytes")) == 256 << 20
    mgr.set(R(memory=NS(limit=32 << 20, swap=32 << 20)))
    assert int(rd(p, "memory.memsw.limit_in_bytes")) == 32 << 20
    # -1 without swap: both unlimited
    mgr.set(R(memory=NS(limit=-1)))
    assert int(rd(p, "memory.limit_in_bytes")) > 1 << 60
    assert int(rd(p, "memory.memsw.limit_in_bytes")) > 1 << 60
    with pytest.raises(ConfigError):
        mgr.set(R(memory=NS(limit=64 << 20, swap=32 << 20)))
    with pytest.raises(ConfigError):
        mgr.set(R(memory=NS(swappiness=101)))
    with pytest.raises(Unsupported):
        mgr.set(R(memory=NS(use_hierarchy=False)))
    mgr.set(R(memory=NS(disable_oom_killer=True)))
    assert "oom_kill_disable 1" in rd(p, "memory.oom_control")


def test_memory_oom_kill_and_check_before_update(mgr):
    mgr.set(R(memory=NS(limit=32 << 20, swap=32 << 20)))
    assert mgr.oom_kill_count() == 0
    child = Child(lambda: len(b"\x01" * (96 << 20)) and 0)
    mgr.apply(child.pid)
    child.go()
    st = child.wait()
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL
    assert mgr.oom_kill_count() >= 1
    # checkBeforeUpdate: a limit below the current usage is refused
    hold = Child(lambda: (lambda b: time.sleep(30))(b"\x01" * (8 << 20)) or 0)
    mgr.apply(hold.pid)
    hold.go()
    deadline = time.monotonic() + 10
    p = mgr.paths()["memory"]
    while int(rd(p, "memory.usage_in_bytes")) < 8 << 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        with pytest.raises(RuntimeFailure, match="below current usage"):
            mgr.set(R(memory=NS(limit=1 << 20, check_before_update=True)))
        with pytest.raises(RuntimeFailure, match="unable to set memory limit"):
            mgr.set(R(memory=NS(limit=1 << 20, swap=-1)))
    finally:
        os.kill(hold.pid, signal.SIGKILL)
        hold.wait()


def test_cpu_and_cpuset(mgr):
    mgr.set(R(cpu=NS(shares=512, quota=10000, period=100000, burst=5000, realtime_runtime=None,
                     realtime_period=None, cpus="0", mems="0", idle=0)))
    p, cs = mgr.paths()["cpu"], mgr.paths()["cpuset"]
    assert rd(p, "cpu.shares") == "512"
    assert rd(p, "cpu.cfs_quota_us") == "10000"
    assert rd(p, "cpu.cfs_period_us") == "100000"
    assert rd(p, "cpu.cfs_burst_us") == "5000"
    assert rd(cs, "cpuset.cpus") == "0" and rd(cs, "cpuset.mems") == "0"
    with pytest.raises(RuntimeFailure, match="cpu-shares"):
        mgr.set(R(cpu=NS(shares=1)))
    # effect: a busy child gets ~10% of a CPU
    child = Child(lambda: [None for _ in iter(int, 1)] and 0)
    mgr.apply(child.pid)
    child.go()
    try:
        time.sleep(1.0)
        st = mgr.stats()
        assert st["cpu"]["usage"]["total"] < 0.35e9
        assert st["cpu"]["throttling"]["throttledPeriods"] > 0
        assert os.sched_getaffinity(child.pid) == {0}
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    mgr.set(R(cpu=NS(quota=-1)))
    assert rd(p, "cpu.cfs_quota_us") == "-1"


def test_cpuset_copies_parent_values(parent):
    m = cgroups.manager_for("x", f"{parent}/a/b")
    m.create()
    try:
        top = cgroups.manager_for("x", parent).paths()["cpuset"]
        assert rd(top, "cpuset.cpus") == rd("/sys/fs/cgroup/cpuset", "cpuset.cpus")
        assert rd(m.paths()["cpuset"], "cpuset.mems") == rd("/sys/fs/cgroup/cpuset", "cpuset.mems")
    finally:
        m.destroy()


def test_pids(mgr):
    p = mgr.paths()["pids"]
    mgr.set(R(pids=NS(limit=-1)))
    assert rd(p, "pids.max") == "max"
    mgr.set(R(pids=NS(limit=0)))
    assert rd(p, "pids.max") == "0"
    mgr.set(R(pids=NS(limit=4)))
    assert rd(p, "pids.max") == "4"

    def forker():
        kids = []
        try:
            for _ in range(10):
                pid = os.fork()
                if pid == 0:
                    time.sleep(5)
                    os._exit(0)
                kids.append(pid)
        except BlockingIOError:
            pass
        for k in kids:
            os.kill(k, signal.SIGKILL)
        return len(kids)

    child = Child(forker)
    mgr.apply(child.pid)
    child.go()
    st = child.wait()
    assert os.WEXITSTATUS(st) == 3   # the child itself + 3 = 4
    assert mgr.stats()["pids"]["limit"] == 4


def test_freezer_and_kill_all(mgr):
    children = [Child(lambda: [None for _ in iter(int, 1)] and 0) for _ in range(2)]
    for c in children:
        mgr.apply(c.pid)
        c.go()

    def utime(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11])

    try:
        assert not mgr.frozen()
        mgr.freeze()
        assert mgr.frozen()
        assert rd(mgr.paths()["freezer"], "freezer.state") == "FROZEN"
        u0 = [utime(c.pid) for c in children]
        time.sleep(0.4)
        assert [utime(c.pid) for c in children] == u0
        mgr.thaw()
        assert not mgr.frozen()
        time.sleep(0.4)
        assert sum(utime(c.pid) for c in children) > sum(u0)
        assert sorted(mgr.pids()) == sorted(c.pid for c in children)
        mgr.kill_all(signal.SIGTERM)
        for c in children:
            st = c.wait()
            assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGTERM
        assert mgr.pids() == []
    finally:
        for c in children:
            try:
                os.kill(c.pid, signal.SIGKILL)
                c.wait()
            except (ProcessLookupError, ChildProcessError):
                pass


def _open_in_cgroup(mgr, path, flags=os.O_RDONLY):
    def fn():
        try:
            os.close(os.open(path, flags))
            return 0
        except PermissionError:
            return 1
        except OSError:
            return 2
    c = Child(fn)
    mgr.apply(c.pid)
    c.go()
    return os.WEXITSTATUS(c.wait())


def test_devices(mgr):
    p = mgr.paths()["devices"]
    deny_all = NS(allow=False, type=None, major=None, minor=None, access="rwm")
    # linux.devices lists /dev/null: runc then drops its default /dev/null rule
    mgr.set(R(devices=[deny_all]), linux_devices=[NS(path="/dev/null")])
    listed = rd(p, "devices.list").splitlines()
    assert "c 1:5 rwm" in listed and "c 1:3 rwm" not in listed and "c *:* m" in listed
    assert _open_in_cgroup(mgr, "/dev/null") == 1
    assert _open_in_cgroup(mgr, "/dev/zero") == 0
    # hot-plug /dev/null, then take write access away again
    mgr.allow_device("c", 1, 3, "rwm")
    assert _open_in_cgroup(mgr, "/dev/null", os.O_WRONLY) == 0
    mgr.deny_device("c", 1, 3, "w")
    assert _open_in_cgroup(mgr, "/dev/null", os.O_WRONLY) == 1
    assert _open_in_cgroup(mgr, "/dev/null", os.O_RDONLY) == 0
    # state keeps the rules
    rules = cgroups.manager_from_state(mgr.to_state()).to_state()["devices"]
    assert {"type": "c", "major": 1, "minor": 3, "access": "rm", "allow": True} in rules
    # default-allow (black-list) config
    mgr.set(R(devices=[NS(allow=True, type="a", major=None, minor=None, access="rwm"),
                       NS(allow=False, type="c", major=1, minor=11, access="rwm"),
                       # the defaults come after the spec's rules, so this deny is undone
                       NS(allow=False, type="c", major=1, minor=5, access="rwm")]))
    assert rd(p, "devices.list") == "a *:* rwm"
    assert _open_in_cgroup(mgr, "/dev/kmsg") == 1
    assert _open_in_cgroup(mgr, "/dev/zero") == 0
    assert _open_in_cgroup(mgr, "/dev/null") == 0
    # the default config (runc spec): deny all then defaults
    mgr.set(R(devices=[deny_all]))
    assert sorted(rd(p, "devices.list").splitlines()) == sorted(
        ["c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
         "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"])
    with pytest.raises(ConfigError, match="punch a hole"):
        mgr.set(R(devices=[deny_all, NS(allow=True, type="c", major=1, minor=None, access="rwm"),
                           NS(allow=False, type="c", major=1, minor=3, access="rwm")]))


def test_emulator_transition_unit():
    cur = D.Emulator.from_devices_list("c 1:3 rwm\nc 1:5 rw\n")
    tgt = D.Emulator.from_rules([D.make_rule(False), D.make_rule(True, "c", 1, 5, "rwm"),
                                 D.make_rule(True, "b", 8, None, "r")])
    assert [r.cgroup_string() + (" +" if r.allow else " -") for r in cur.transition(tgt)] == [
        "c 1:3 rwm -", "b 8:* r +", "c 1:5 m +"]
    assert tgt.allows("c", 1, 5, "rw") and not tgt.allows("c", 1, 3, "r") and tgt.allows("b", 8, 2, "r")
    black = D.Emulator.from_rules([D.make_rule(True), D.make_rule(False, "c", 1, 3, "w")])
    assert black.allows("c", 1, 5, "rwm") and not black.allows("c", 1, 3, "rw") and black.allows("c", 1, 3, "r")


def test_blkio(mgr):
    p = mgr.paths()["blkio"]
    st = os.stat("/dev/vda") if os.path.exists("/dev/vda") else None
    if st is None:
        pytest.skip("no /dev/vda")
    ma, mi = os.major(st.st_rdev), os.minor(st.st_rdev)
    dev = lambda rate: NS(major=ma, minor=mi, rate=rate)  # noqa: E731
    mgr.set(R(block_io=NS(weight=None, leaf_weight=None, weight_device=None,
                          throttle_read_bps_device=[dev(1 << 20)], throttle_write_bps_device=[dev(2 << 20)],
                          throttle_read_iops_device=[dev(100)], throttle_write_iops_device=[dev(200)])))
    assert rd(p, "blkio.throttle.read_bps_device") == f"{ma}:{mi} {1 << 20}"
    assert rd(p, "blkio.throttle.write_bps_device") == f"{ma}:{mi} {2 << 20}"
    assert rd(p, "blkio.throttle.read_iops_device") == f"{ma}:{mi} 100"
    assert rd(p, "blkio.throttle.write_iops_device") == f"{ma}:{mi} 200"
    if not os.path.exists(os.path.join(p, "blkio.weight")) and not os.path.exists(os.path.join(p, "blkio.bfq.weight")):
        with pytest.raises(Unsupported, match="blkio.weight"):
            mgr.set(R(block_io=NS(weight=500)))
        with pytest.raises(Unsupported, match="leaf_weight"):
            mgr.set(R(block_io=NS(leaf_weight=500)))


def test_unavailable_controllers_are_clear_errors(mgr):
    mounted = set(mgr.paths())
    cases = [("net_cls", R(network=NS(class_id=0x100001, priorities=None))),
             ("net_prio", R(network=NS(class_id=None, priorities=[NS(name="lo", priority=5)]))),
             ("hugetlb", R(hugepage_limits=[NS(page_size="2MB", limit=1 << 21)])),
             ("rdma", R(rdma={"mlx5_1": NS(hca_handles=3, hca_objects=None)}))]
    for ctrl, res in cases:
        if ctrl in mounted:
            continue
        with pytest.raises(Unsupported, match=f"{ctrl} cgroup controller is not mounted"):
            mgr.set(res)
    with pytest.raises(Unsupported, match="cannot use unified on cgroup v1"):
        mgr.set(R(unified={"memory.max": "1"}))


def _spin_then_sleep():
    t = time.monotonic()
    while time.monotonic() - t < 0.05:
        pass
    time.sleep(3)
    return 0


def test_stats_format(mgr):
    mgr.set(R(memory=NS(limit=64 << 20), pids=NS(limit=10)))
    child = Child(_spin_then_sleep)
    mgr.apply(child.pid)
    child.go()
    try:
        time.sleep(0.2)
        st = mgr.stats()
        assert st["pids"] == {"current": 1, "limit": 10}
        assert st["memory"]["usage"]["limit"] == 64 << 20
        assert "failcnt" in st["memory"]["usage"]
        assert isinstance(st["memory"]["raw"], dict) and "rss" in st["memory"]["raw"]
        assert st["cpu"]["usage"]["total"] > 0 and "kernel" in st["cpu"]["usage"]
        assert set(st) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_destroy_kills_leftovers(parent):
    m = cgroups.manager_for("x", f"{parent}/leftover")
    m.create()
    child = Child(lambda: time.sleep(60) or 0)
    m.apply(child.pid)
    child.go()
    # a nested cgroup the "container" made
    nested = os.path.join(m.paths()["pids"], "inner")
    os.mkdir(nested)
    t0 = time.monotonic()
    reaped = []

    import threading
    th = threading.Thread(target=lambda: reaped.append(os.waitpid(child.pid, 0)))
    th.start()
    m.destroy()
    th.join(5)
    assert time.monotonic() - t0 < 5
    assert reaped and os.WTERMSIG(reaped[0][1]) == signal.SIGKILL
    assert not any(os.path.exists(d) for d in m.paths().values())


def test_merge_resources():
    cur = R(memory=NS(limit=10, swap=20), pids=NS(limit=5), unified={"a": "1"})
    new = cgroups.merge_resources(cur, R(memory=NS(limit=30, swap=None), unified={"b": "2"}))
    assert new.memory.limit == 30 and new.memory.swap == 20 and new.pids.limit == 5
    assert new.unified == {"a": "1", "b": "2"}
    assert cur.memory.limit == 10


def test_with_the_spec_model(mgr):
    """The real pyruntime.spec.model Resources, and merge_resources for update."""
    spec = pytest.importorskip("pyruntime.spec")
    r = spec.load_resources({"memory": {"limit": 64 << 20, "swap": 64 << 20}, "pids": {"limit": 7},
                             "cpu": {"shares": 256, "cpus": "0"},
                             "devices": [{"allow": False, "access": "rwm"},
                                         {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    mgr.set(r)
    assert rd(mgr.paths()["pids"], "pids.max") == "7"
    assert rd(mgr.paths()["cpu"], "cpu.shares") == "256"
    assert "c 1:11 r" in rd(mgr.paths()["devices"], "devices.list").splitlines()
    upd = cgroups.merge_resources(r, spec.load_resources({"pids": {"limit": 9}, "memory": {"limit": 32 << 20}}))
    mgr.set(upd, skip_devices=True)
    assert rd(mgr.paths()["pids"], "pids.max") == "9"
    assert int(rd(mgr.paths()["memory"], "memory.limit_in_bytes")) == 32 << 20
    assert int(rd(mgr.paths()["memory"], "memory.memsw.limit_in_bytes")) == 64 << 20
    assert "c 1:11 r" in rd(mgr.paths()["devices"], "devices.list").splitlines()


def test_sub_cgroup_for_exec(mgr):
    from pyruntime.cgroups.v1 import parse_sub_cgroups

    assert parse_sub_cgroups("a/b") == {"": "a/b"}
    assert parse_sub_cgroups(["memory,pids:x", "cpu:y"]) == {"memory": "x", "pids": "x", "cpu": "y"}
    for bad in ("a:b:c", ["x", "y"], "../up", ",:x"):
        with pytest.raises(RuntimeFailure):
            parse_sub_cgroups(bad)
    sub = mgr.sub("memory:inner")
    assert sub.paths()["memory"] == os.path.join(mgr.paths()["memory"], "inner")
    assert sub.paths()["pids"] == mgr.paths()["pids"]
    child = Child(lambda: 0)
    try:
        with pytest.raises(RuntimeFailure, match="does not exist"):
            sub.apply(child.pid)
        os.mkdir(sub.paths()["memory"])
        sub.apply(child.pid)
        assert open(f"/proc/{child.pid}/cgroup").read().count("/inner") == 1
    finally:
        child.go()
        child.wait()
