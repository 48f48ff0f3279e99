"""The cgroup v2 manager, in the pure cgroup v2 VM (marker cgroup2_vm): limits are written and
their effects checked with real forked children, the eBPF device filter denies a device, freeze,
kill (cgroup.kill), io.max on a loop device, unified. Few tests: Python is ~20x slower there.

    bash /work/shared/vm/run-in-vm.sh -- /opt/pyruntime/venv/bin/python -m pytest tests/cgroupv2 -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from types import SimpleNamespace as NS

import pytest

from pyruntime import cgroups
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported

pytestmark = pytest.mark.cgroup2_vm


def R(**kw):
    base = dict(memory=None, cpu=None, pids=None, block_io=None, hugepage_limits=None, devices=None,
                network=None, rdma=None, unified=None)
    base.update(kw)
    return NS(**base)


class Child:
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

    def wait(self, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return st
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError("child did not finish")
            time.sleep(0.02)


def rd(path, name):
    with open(os.path.join(path, name)) as f:
        return f.read().strip()


def busy():
    while True:
        pass


@pytest.fixture
def mgr():
    parent = f"/pyruntime-test-{secrets.token_hex(4)}"
    m = cgroups.manager_for("ctr", f"{parent}/ctr")
    m.create()
    try:
        yield m
    finally:
        m.destroy()
        top = cgroups.manager_for("p", parent)
        top.destroy()
        assert not os.path.exists(top.dir)


def test_v2_limits_and_effects(mgr):
    assert cgroups.detect_layout() == "unified"
    assert mgr.version == "v2" and mgr.path.endswith("/ctr")
    d = mgr.dir
    # relative path: under the parent of our own cgroup (runc fs2)
    assert cgroups.manager_for("x", None).dir == "/sys/fs/cgroup/x"
    for c in ("memory", "pids", "cpu", "io", "cpuset", "hugetlb"):
        assert c in rd(os.path.dirname(d), "cgroup.subtree_control").split()

    mgr.set(R(memory=NS(limit=32 << 20, reservation=16 << 20, swap=32 << 20),
              pids=NS(limit=4),
              cpu=NS(shares=1024, quota=20000, period=100000, burst=1000, cpus="0", mems="0", idle=None),
              hugepage_limits=[NS(page_size="2MB", limit=4 << 20)] if os.path.exists(
                  "/sys/kernel/mm/hugepages/hugepages-2048kB") else None,
              unified={"memory.high": "30000000", "pids.max": "5"}))
    assert rd(d, "memory.max") == str(32 << 20)
    assert rd(d, "memory.low") == str(16 << 20)
    assert rd(d, "memory.swap.max") == "0"
    assert rd(d, "memory.high") == "29999104"     # page-aligned
    assert rd(d, "pids.max") == "5"               # unified is written last
    assert rd(d, "cpu.weight") == "39"            # 1 + (1022*9999)//262142
    assert rd(d, "cpu.max") == "20000 100000"
    assert rd(d, "cpu.max.burst") == "1000"
    assert rd(d, "cpuset.cpus") == "0" and rd(d, "cpuset.mems") == "0"
    if os.path.exists("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        assert rd(d, "hugetlb.2MB.max") == str(4 << 20)
        if os.path.exists(os.path.join(d, "hugetlb.2MB.rsvd.max")):
            assert rd(d, "hugetlb.2MB.rsvd.max") == str(4 << 20)
    # conversions and special values
    mgr.set(R(memory=NS(limit=-1), pids=NS(limit=-1), cpu=NS(quota=-1, period=50000)))
    assert rd(d, "memory.max") == "max" and rd(d, "memory.swap.max") == "max"
    assert rd(d, "pids.max") == "max" and rd(d, "cpu.max") == "max 50000"
    mgr.set(R(pids=NS(limit=0)))
    assert rd(d, "pids.max") == "0"
    # refusals
    with pytest.raises(Unsupported, match="swappiness"):
        mgr.set(R(memory=NS(swappiness=10)))
    with pytest.raises(ConfigError):
        mgr.set(R(memory=NS(swap=10 << 20)))
    with pytest.raises(ConfigError):
        mgr.set(R(unified={"../memory.max": "1"}))
    with pytest.raises(Unsupported, match="not available|does not exist"):
        mgr.set(R(unified={"nosuch.file": "1"}))
    with pytest.raises(Unsupported, match="net_cls"):
        mgr.set(R(network=NS(class_id=1, priorities=None)))
    with pytest.raises(Unsupported, match="realtime"):
        mgr.set(R(cpu=NS(realtime_runtime=1000)))
    with pytest.raises(RuntimeFailure):
        mgr.set(R(rdma={"nosuchdev": NS(hca_handles=1, hca_objects=None)}))

    # effects: pids
    mgr.set(R(pids=NS(limit=4)))

    def forker():
        kids = []
        try:
            for _ in range(8):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                kids.append(pid)
        except BlockingIOError:
            pass
        for k in kids:
            os.kill(k, signal.SIGKILL)
        return len(kids)

    c = Child(forker)
    mgr.apply(c.pid)
    c.go()
    assert os.WEXITSTATUS(c.wait()) == 3
    assert mgr.stats()["pids"]["limit"] == 4

    # effects: memory.max + OOM kill
    mgr.set(R(memory=NS(limit=32 << 20, swap=32 << 20), unified={"memory.high": "max"}))
    assert mgr.oom_kill_count() == 0
    c = Child(lambda: len(b"\x01" * (96 << 20)) and 0)
    mgr.apply(c.pid)
    c.go()
    st = c.wait()
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL
    assert mgr.oom_kill_count() >= 1

    # effects: cpu.max throttles a busy child; checkBeforeUpdate
    mgr.set(R(cpu=NS(quota=10000, period=100000)))
    used0 = mgr.stats()["cpu"]["usage"]["total"]     # the children above used CPU too
    c = Child(busy)
    mgr.apply(c.pid)
    c.go()
    time.sleep(1.5)
    try:
        st = mgr.stats()
        assert st["cpu"]["throttling"]["throttledPeriods"] > 0
        assert st["cpu"]["usage"]["total"] - used0 < 0.5e9    # ~10% of 1.5 s
        assert st["memory"]["usage"]["usage"] > 0 and st["pids"]["current"] == 1
        with pytest.raises(RuntimeFailure, match="below current usage"):
            mgr.set(R(memory=NS(limit=4096, check_before_update=True)))
    finally:
        mgr.kill_all(signal.SIGKILL)   # cgroup.kill
        st = c.wait()
    assert os.WTERMSIG(st) == signal.SIGKILL


def test_v2_devices_freezer_kill_destroy(mgr):
    from pyruntime.cgroups.v2 import ebpf

    deny_all = NS(allow=False, type=None, major=None, minor=None, access="rwm")
    mgr.set(R(devices=[deny_all]), linux_devices=[NS(path="/dev/null")])
    fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(ebpf.query(fd)) == 1
    finally:
        os.close(fd)

    def opener(path, flags=os.O_RDONLY):
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

    assert opener("/dev/null") == 1
    assert opener("/dev/zero") == 0
    with open("/dev/null") as f:          # only inside the cgroup
        f.read()
    mgr.allow_device("c", 1, 3, "r")
    fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(ebpf.query(fd)) == 1   # replaced, not added
    finally:
        os.close(fd)
    assert opener("/dev/null") == 0
    assert opener("/dev/null", os.O_WRONLY) == 1
    again = cgroups.manager_from_state(mgr.to_state())
    again.allow_device("c", 1, 3, "w")
    assert opener("/dev/null", os.O_WRONLY) == 0

    # freezer
    kids = [Child(busy) for _ in range(2)]
    for k in kids:
        mgr.apply(k.pid)
        k.go()

    def utime(pid):
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[11])

    time.sleep(0.3)
    mgr.freeze()
    assert mgr.frozen() and "frozen 1" in rd(mgr.dir, "cgroup.events")
    u0 = [utime(k.pid) for k in kids]
    time.sleep(0.5)
    assert [utime(k.pid) for k in kids] == u0
    mgr.thaw()
    assert not mgr.frozen()
    time.sleep(0.5)
    assert sum(utime(k.pid) for k in kids) > sum(u0)
    assert sorted(mgr.pids()) == sorted(k.pid for k in kids)
    # kill_all with a non-KILL signal: freeze, signal, thaw
    mgr.kill_all(signal.SIGTERM)
    for k in kids:
        assert os.WTERMSIG(k.wait()) == signal.SIGTERM
    # destroy kills leftovers and removes nested cgroups
    k = Child(lambda: time.sleep(60) or 0)
    mgr.apply(k.pid)
    k.go()
    os.mkdir(os.path.join(mgr.dir, "nested"))
    import threading
    res = []
    th = threading.Thread(target=lambda: res.append(os.waitpid(k.pid, 0)))
    th.start()
    mgr.destroy()
    th.join(10)
    assert res and os.WTERMSIG(res[0][1]) == signal.SIGKILL
    assert not os.path.exists(mgr.dir)
    mgr.destroy()   # idempotent


def test_v2_io_max_on_loop_device(mgr, tmp_path):
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    if not os.path.exists("/dev/loop-control"):
        subprocess.run(["modprobe", "loop"], check=False)
    try:
        loop = subprocess.run(["losetup", "-f", "--show", str(img)], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"no loop device: {e}")
    try:
        rdev = os.stat(loop).st_rdev
        ma, mi = os.major(rdev), os.minor(rdev)
        dev = lambda rate: NS(major=ma, minor=mi, rate=rate)  # noqa: E731
        mgr.set(R(block_io=NS(weight=None, leaf_weight=None, weight_device=None,
                              throttle_read_bps_device=[dev(1 << 20)], throttle_write_bps_device=[dev(2 << 20)],
                              throttle_read_iops_device=[dev(100)], throttle_write_iops_device=[dev(200)])))
        line = [x for x in rd(mgr.dir, "io.max").splitlines() if x.startswith(f"{ma}:{mi} ")]
        assert line == [f"{ma}:{mi} rbps={1 << 20} wbps={2 << 20} riops=100 wiops=200"]
        try:
            mgr.set(R(block_io=NS(weight=500)))
        except Unsupported:
            assert not os.path.exists(os.path.join(mgr.dir, "io.weight"))
        else:
            if os.path.exists(os.path.join(mgr.dir, "io.bfq.weight")):
                assert "500" in rd(mgr.dir, "io.bfq.weight")
            else:
                assert rd(mgr.dir, "io.weight") == "default 4950"   # 1 + 490*9999//990
        with pytest.raises(Unsupported, match="leafWeight"):
            mgr.set(R(block_io=NS(leaf_weight=10)))
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
