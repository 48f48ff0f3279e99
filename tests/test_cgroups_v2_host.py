"""The parts of the v2 manager that work on this hybrid host's controller-less cgroup2 hierarchy
(/sys/fs/cgroup/unified): the eBPF device filter (enforced there too), cgroup.freeze,
cgroup.kill, pids, destroy. The limits themselves are tested in the VM (tests/cgroupv2)."""

from __future__ import annotations

import os
import secrets
import signal
import time
from types import SimpleNamespace as NS

import pytest

from pyruntime import cgroups
from pyruntime.cgroups import devices as D
from pyruntime.cgroups.v2 import V2Manager
from pyruntime.errors import Unsupported

UNIFIED = "/sys/fs/cgroup/unified"
pytestmark = pytest.mark.skipif(os.geteuid() != 0 or cgroups.detect_layout() != "hybrid",
                                reason="needs root on a hybrid host")


def R(**kw):
    base = dict(memory=None, cpu=None, pids=None, block_io=None, hugepage_limits=None, devices=None,
                network=None, rdma=None, unified=None)
    base.update(kw)
    return NS(**base)


@pytest.fixture
def mgr():
    parent = os.path.join(UNIFIED, f"pyruntime-test-{secrets.token_hex(4)}")
    m = V2Manager("ctr", os.path.join(parent, "ctr"), UNIFIED)
    m.create()
    try:
        yield m
    finally:
        m.destroy()
        V2Manager("p", parent, UNIFIED).destroy()
        assert not os.path.exists(parent)


def _run_in(mgr, fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.close(w)
            os.read(r, 1)
            code = fn()
        finally:
            os._exit(code)
    os.close(r)
    mgr.apply(pid)
    os.write(w, b"x")
    os.close(w)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _open(path, flags=os.O_RDONLY):
    def fn():
        try:
            os.close(os.open(path, flags))
            return 0
        except PermissionError:
            return 1
        except OSError:
            return 2
    return fn


def test_ebpf_device_filter(mgr):
    from pyruntime.cgroups.v2 import ebpf

    deny_all = NS(allow=False, type=None, major=None, minor=None, access="rwm")
    mgr.set(R(devices=[deny_all]), linux_devices=[NS(path="/dev/null")])
    assert _run_in(mgr, _open("/dev/null")) == 1
    assert _run_in(mgr, _open("/dev/zero")) == 0
    assert _run_in(mgr, _open("/dev/kmsg")) == 1
    mgr.allow_device("c", 1, 3, "r")
    assert _run_in(mgr, _open("/dev/null")) == 0
    assert _run_in(mgr, _open("/dev/null", os.O_WRONLY)) == 1
    fd = os.open(mgr.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(ebpf.query(fd)) == 1
        # a foreign second program: the next install replaces both
        extra = ebpf.load(ebpf.build_program(D.Emulator(default_allow=True)))
        ebpf.attach(fd, extra)
        os.close(extra)
        assert len(ebpf.query(fd)) == 2
        m2 = cgroups.manager_from_state(mgr.to_state())
        m2.deny_device("c", 1, 5, "w")
        assert len(ebpf.query(fd)) == 1
    finally:
        os.close(fd)
    assert _run_in(mgr, _open("/dev/zero", os.O_WRONLY)) == 1
    assert _run_in(mgr, _open("/dev/zero")) == 0
    # black-list mode: deny exceptions match on any overlapping access bit
    mgr.set(R(devices=[NS(allow=True, type="a", major=None, minor=None, access="rwm"),
                       NS(allow=False, type="c", major=1, minor=11, access="w")]))
    assert _run_in(mgr, _open("/dev/kmsg", os.O_RDWR)) == 1
    assert _run_in(mgr, _open("/dev/kmsg")) == 0
    assert _run_in(mgr, _open("/dev/zero", os.O_RDWR)) == 0


def test_program_matches_emulator():
    """Every rule shape compiles, and the verifier accepts it."""
    from pyruntime.cgroups.v2 import ebpf

    rules = [D.make_rule(False), D.make_rule(True, "c", 1, None, "r"), D.make_rule(True, "b", None, 3, "rw"),
             D.make_rule(True, "c", 136, None), D.make_rule(True, "b", 8, 0, "m")]
    for emu in (D.Emulator.from_rules(rules), D.Emulator.from_rules([D.make_rule(True)] + [
            D.make_rule(False, r.type, r.major, r.minor, r.access) for r in rules[1:]])):
        prog = ebpf.build_program(emu)
        os.close(ebpf.load(prog))


def test_v2_freeze_kill_destroy(mgr):
    kids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            while True:
                pass
        kids.append(pid)
        mgr.apply(pid)
    try:
        mgr.freeze()
        assert mgr.frozen()
        mgr.thaw()
        assert not mgr.frozen()
        assert mgr.pids() == sorted(kids)
        mgr.kill_all(signal.SIGKILL)      # cgroup.kill
        for k in kids:
            assert os.WTERMSIG(os.waitpid(k, 0)[1]) == signal.SIGKILL
    finally:
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
                os.waitpid(k, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    assert mgr.pids() == []
    fd = mgr.cgroup_fd_v2()
    os.close(fd)
    with pytest.raises(Unsupported, match="memory controller is not available"):
        mgr.set(R(memory=NS(limit=1 << 20)))
    with pytest.raises(Unsupported, match="net_cls"):
        mgr.set(R(network=NS(class_id=1)))
    mgr.destroy()
    assert not os.path.exists(mgr.dir)
