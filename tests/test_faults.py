"""Reliability under faults: the runtime SIGKILLed at any point of create, start, exec, run and
delete. Afterwards `state` answers sensibly (a JSON state or one clear line, no traceback) and
`delete --force` returns the host to clean: no mounts, no cgroups below the test's parent, no
process of the container, no state directory.

Counts come from the environment (CI runs fewer): PYRUNTIME_CRASH_RUNS per operation (default
12), PYRUNTIME_STRACE_POINTS per syscall (default 6); PYRUNTIME_SEED makes a run repeatable.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from test_lifecycle_util import create, run_detached, wait_until
from test_security_util import assert_clean, clean_output, error_lines, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

RUNS = int(os.environ.get("PYRUNTIME_CRASH_RUNS", "12"))
POINTS = int(os.environ.get("PYRUNTIME_STRACE_POINTS", "6"))
SEED = int(os.environ.get("PYRUNTIME_SEED", str(random.randrange(1 << 30))))
STATUSES = {"creating", "created", "running", "paused", "stopped"}


@pytest.fixture
def rng():
    print(f"PYRUNTIME_SEED={SEED}")
    return random.Random(SEED)


def _start(rt, *args: str, prefix: list[str] = ()) -> subprocess.Popen:
    log = open(os.path.join(rt.tmp, f"cmd-{uuid.uuid4().hex[:6]}"), "w")
    p = subprocess.Popen([*prefix, *rt.cmd, "--root", rt.root, *args], stdin=subprocess.DEVNULL,
                         stdout=log, stderr=log)
    log.close()
    return p


def _left_processes(cid: str) -> list[int]:
    """Runtime processes still carrying the container id on their command line (a create's
    init is a fork of the runtime until it execs)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except OSError:
            continue
        if cid.encode() in args:
            out.append(int(p))
    return out


def check_after_crash(rt, cid: str, before: dict) -> str | None:
    """state is sensible; delete --force cleans everything. Returns the status seen."""
    r = rt.run("state", cid)
    clean_output(r)
    status = None
    if r.returncode == 0:
        st = json.loads(r.stdout)
        assert st["id"] == cid and st["status"] in STATUSES, st
        status = st["status"]
    else:
        assert len(error_lines(r.stderr)) == 1, r.stderr
        assert "does not exist" in r.stderr, r.stderr
    lst = rt.run("list", "--format", "json")
    assert lst.returncode == 0, lst.stderr
    json.loads(lst.stdout or "[]")
    d = rt.run("delete", "--force", cid)
    clean_output(d)
    assert d.returncode == 0, d.stderr
    assert rt.run("state", cid).returncode != 0
    assert wait_until(lambda: not _left_processes(cid), timeout=10), _left_processes(cid)
    assert_clean(rt, before)
    return status


def _kill_after(p: subprocess.Popen, delay: float) -> None:
    time.sleep(delay)
    try:
        p.send_signal(signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)


OPS = ["create", "run", "start", "exec", "delete"]


@pytest.mark.parametrize("op", OPS)
def test_sigkill_at_random_points(rt, rng, op):
    """RUNS times: prepare the container for `op`, run `op`, SIGKILL it after 0-150 ms."""
    rootfs = os.path.join(rt.bundle(), "rootfs")
    before = snapshot(rt)
    seen: dict[str | None, int] = {}
    for i in range(RUNS):
        cid = rt.new_id(f"k{i}")

        def edit(cfg):
            cfg["root"]["path"] = rootfs
        b = rt.bundle(["sleep", "1000"], edit=edit, copy_rootfs=False)
        if op in ("start", "exec", "delete"):
            create(rt, b, cid)
            if op in ("exec", "delete"):
                rt.run("start", cid, check=True)
        args = {"create": ("create", "--bundle", b, cid), "run": ("run", "--detach", "--bundle", b, cid),
                "start": ("start", cid), "exec": ("exec", cid, "sh", "-c", "sleep 1000"),
                "delete": ("delete", "--force", cid)}[op]
        _kill_after(_start(rt, *args), rng.uniform(0, 0.15))
        status = check_after_crash(rt, cid, before)
        seen[status] = seen.get(status, 0) + 1
    print(f"{op}: status after the kill: {seen}")


def _strace_kill_points(rt, args: list[str], syscalls: list[str], prepare, rng) -> None:
    """For each syscall and a few of its invocation numbers N: the runtime (strace without -f:
    the runtime's own process only) gets SIGKILL on entering its N-th call of it."""
    before = snapshot(rt)
    # calibration: how many times the runtime itself makes each call in a normal run
    cid = rt.new_id("cal")
    summary = os.path.join(rt.tmp, "strace-c")
    p = _start(rt, *[a.replace("{cid}", cid) for a in args], *prepare(cid),
               prefix=["strace", "-c", "-o", summary, "-e", "trace=" + ",".join(syscalls)])
    assert p.wait(timeout=60) == 0
    check_after_crash(rt, cid, before)
    counts = {}
    for line in open(summary):
        f = line.split()
        if len(f) >= 5 and f[-1] in syscalls and f[3].isdigit():
            counts[f[-1]] = int(f[3])  # % time, seconds, usecs/call, calls, [errors,] syscall
    killed = total = 0
    for name in syscalls:
        calls = counts.get(name, 0)
        for n in sorted(rng.sample(range(1, calls + 1), min(POINTS, calls))):
            total += 1
            cid = rt.new_id("s")
            cmd_args = prepare(cid)
            p = _start(rt, *[a.replace("{cid}", cid) for a in args], *cmd_args,
                       prefix=["strace", "-o", "/dev/null", "-e", f"trace={name}",
                               "-e", f"inject={name}:signal=KILL:when={n}"])
            # strace exits as its tracee did: killed by SIGKILL, or finished (fewer N calls)
            killed += p.wait(timeout=60) in (-signal.SIGKILL, 128 + signal.SIGKILL)
            check_after_crash(rt, cid, before)
    print(f"{args[0]}: {killed} of {total} runs killed at a syscall; calls: {counts}")
    assert killed, "no run was killed: the syscall names or counts are wrong"


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_sigkill_at_syscall_boundaries_of_create(rt, rng):
    rootfs = os.path.join(rt.bundle(), "rootfs")

    def prepare(cid):
        def edit(cfg):
            cfg["root"]["path"] = rootfs
        return ["--bundle", rt.bundle(["sleep", "1000"], edit=edit, copy_rootfs=False), cid]
    _strace_kill_points(rt, ["create"], ["openat", "write", "mkdir", "rename", "clone", "wait4",
                                         "recvfrom", "sendto", "mount_setattr", "execve"], prepare, rng)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_sigkill_at_syscall_boundaries_of_delete(rt, rng):
    rootfs = os.path.join(rt.bundle(), "rootfs")

    def prepare(cid):
        def edit(cfg):
            cfg["root"]["path"] = rootfs
        run_detached(rt, rt.bundle(["sleep", "1000"], edit=edit, copy_rootfs=False), cid)
        return ["--force", cid]
    _strace_kill_points(rt, ["delete"], ["openat", "unlink", "rmdir", "kill", "write", "rename"],
                        prepare, rng)
