"""Cgroup limits of REAL containers on a pure cgroup v2 host (the VM: marker cgroup2_vm), checked
from both sides: the files the runtime wrote under /sys/fs/cgroup/<cgroupsPath>/ and the effect
inside the container (OOM kill, failed fork, Cpus_allowed_list, EPERM from the eBPF device filter,
a frozen busy loop), plus pause/resume, update (merge semantics), events, ps, kill --all
(cgroup.kill), delete, unified, and runc 1.1 on the same bundle.

Python is ~20x slower in the VM and every CLI call costs 1-5 s there, so the checks are grouped
into three tests with few containers (the host counterpart is tests/test_container_cgroups.py):

    bash /work/shared/vm/run-in-vm.sh -- /opt/pyruntime/venv/bin/python -m pytest \
        tests/cgroupv2/test_container_cgroups_v2.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

pytestmark = pytest.mark.cgroup2_vm

CG = "/sys/fs/cgroup"
MiB = 1 << 20
PODMAN_DEVICES = [{"allow": False, "access": "rwm"}]
T = 180  # per CLI call: generous, the VM is slow


def shares_to_weight(shares: int) -> int:
    """runc 1.1's ConvertCPUSharesToCgroupV2Value, written out independently of pyruntime."""
    return 1 + ((shares - 2) * 9999) // 262142


# --- helpers (see tests/test_container_cgroups.py) --------------------------------------------

def wait_until(fn, timeout=20.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def cli(rt, *args, input=None, timeout=T):
    """The CLI with stdout/stderr in files (detached processes keep the runtime's stdio open)."""
    n = len(os.listdir(rt.tmp))
    out, err = rt.tmp / f"cli-{n}.out", rt.tmp / f"cli-{n}.err"
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run(rt.cmd + ["--root", rt.root, *args], stdout=o, stderr=e,
                           input=input.encode() if input is not None else None,
                           stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
    res = subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), err.read_text())
    res.out_path, res.err_path = out, err
    return res


def ok(r):
    assert r.returncode == 0, (r.args[3:], r.stderr)
    return r


def one_line_error(r) -> str:
    assert r.returncode != 0, r.args
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def bundle(rt, args, resources, *, caps=(), cgroupns=False):
    def ed(cfg):
        cfg["linux"]["resources"] = json.loads(json.dumps(resources))
        for c in caps:
            for k in ("bounding", "effective", "permitted"):
                cfg["process"]["capabilities"][k].append(c)
        if cgroupns:
            cfg["linux"]["namespaces"].append({"type": "cgroup"})
    # the shared base rootfs (copying it costs seconds here): containers write only to tmpfs
    return rt.bundle(args, edit=ed, copy_rootfs=False)


def cgdir(b) -> str:
    with open(os.path.join(b, "config.json")) as f:
        return CG + json.load(f)["linux"]["cgroupsPath"]


def rd(b, name) -> str:
    with open(os.path.join(cgdir(b), name)) as f:
        return f.read().strip()


def keyed(b, name) -> dict:
    return {k: int(v) for k, v in (line.split() for line in rd(b, name).splitlines())}


def state(rt, cid) -> dict:
    return json.loads(ok(cli(rt, "state", cid)).stdout)


def recorded_resources(rt, cid) -> dict:
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        return json.load(f)["config"]["linux"].get("resources") or {}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def tree_left(b) -> bool:
    return os.path.exists(cgdir(b))


SETTINGS_SKIP = ("current", "stat", "events", "pressure", "procs", "threads", "peak", "numa",
                 "effective", "controllers", "subtree_control", "cgroup.type", "cgroup.freeze",
                 "reclaim", "cgroup.kill")


# --- 1. limits of one container, seen from both sides; runc's files for the same bundle -------

LIMITS = {"devices": PODMAN_DEVICES,
          "memory": {"limit": 32 * MiB, "swap": 64 * MiB, "reservation": 16 * MiB},
          "pids": {"limit": 8},
          "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "1", "mems": "0"},
          "unified": {"memory.high": str(48 * MiB)}}

INSIDE = ("grep Cpus_allowed_list /proc/self/status; nproc; "
          "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max; "
          "echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c; "
          "mknod /dev/blk b 7 0 && echo mknod-ok; head -c1 /dev/blk; echo blk=$?; "
          '(x=$(head -c 100m /dev/zero | tr "\\0" a); echo survived); echo hog=$?; '
          # (the hog's orphaned helpers are zombies of the container's init, `sleep`, and
          # still count: read the count with a builtin right before forking)
          "read c < /sys/fs/cgroup/pids.current; echo before=$c; "
          "i=0; while :; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); echo forked=$i; done")


def test_v2_limits_effects_events_and_runc(rt, no_leaks):
    """One retry: under the VM's software emulation the shell's fork/reap timing occasionally
    shifts a count; a real defect fails both attempts (and the failure of the first is shown)."""
    try:
        _limits_effects_events_and_runc(rt)
    except AssertionError as first:
        import sys
        print(f"first attempt failed, retrying once: {first}", file=sys.stderr)
        for cid in list(rt.ids):
            rt.run("delete", "--force", cid)
        _limits_effects_events_and_runc(rt)


def _limits_effects_events_and_runc(rt):
    cid = rt.new_id()
    b = bundle(rt, ["sleep", "1000"], LIMITS, caps=("CAP_MKNOD",), cgroupns=True)
    ok(cli(rt, "run", "--detach", "--bundle", b, cid))
    # host side: runc's conversions
    assert rd(b, "memory.max") == str(32 * MiB)
    assert rd(b, "memory.low") == str(16 * MiB)
    assert rd(b, "memory.swap.max") == str(32 * MiB)          # swap - limit
    assert rd(b, "memory.high") == str(48 * MiB)              # unified
    assert rd(b, "pids.max") == "8"
    assert rd(b, "cpu.weight") == str(shares_to_weight(512)) == "20"
    assert rd(b, "cpu.max") == "20000 50000"
    assert rd(b, "cpuset.cpus") == "1" and rd(b, "cpuset.mems") == "0"

    ev_out = rt.tmp / "events.out"
    with open(ev_out, "w") as f:
        ev = subprocess.Popen(rt.cmd + ["--root", rt.root, "events", "--interval", "600s", cid],
                              stdout=f, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: ev_out.read_text().strip(), timeout=60), "events printed nothing"
        # inside: 1 task (sleep) + the exec'd shell; the shell forks until pids.max stops it
        r = cli(rt, "exec", cid, "sh", "-c", INSIDE)
        out, err = r.stdout.split(), r.stderr
        assert out[:6] == ["Cpus_allowed_list:", "1", "1", str(32 * MiB), "8", "20000"], (out, err)
        assert out[6:8] == ["50000", "null-ok"], (out, err)
        assert out[8:12] == ["3", "mknod-ok", "blk=1", "hog=137"], (out, err)   # EPERM; OOM kill
        assert "head: /dev/blk: Operation not permitted" in err, err
        assert "survived" not in out
        before = int(next(w for w in out if w.startswith("before=")).split("=")[1])
        assert before >= 2                                     # sleep + the shell (+ zombies)
        forked = [int(w.split("=")[1]) for w in out if w.startswith("forked=")]
        # Up to pids.max, not one more. `before` may still count a zombie the kernel reaps
        # while the shell forks, so the exact number can be one higher than 8 - before.
        assert 8 - before <= forked[-1] <= 8 - 2, (out, err)
        assert "can't fork" in err
        assert wait_until(lambda: '"oom"' in ev_out.read_text(), timeout=30), ev_out.read_text()
    finally:
        ev.kill()
        ev.wait()
    assert {"type": "oom", "id": cid} in [json.loads(x) for x in ev_out.read_text().splitlines()
                                          if x.startswith("{")]
    assert keyed(b, "memory.events")["oom_kill"] >= 1
    assert keyed(b, "pids.events")["max"] >= 1
    st = json.loads(ok(cli(rt, "events", "--stats", cid)).stdout)
    assert st["type"] == "stats"
    d = st["data"]
    assert set(d) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                      "network_interfaces"}
    assert d["memory"]["usage"]["limit"] == 32 * MiB and d["memory"]["usage"]["max"] >= 30 * MiB
    assert d["memory"]["usage"]["failcnt"] >= 1                 # memory.events max
    assert d["memory"]["swap"]["limit"] == 64 * MiB            # v1's memory+swap view (runc)
    # The forked sleepers and the init are there (how many of the shells are still alive is
    # timing-dependent under the VM's emulation): within the limit, and not empty.
    assert d["pids"]["limit"] == 8 and 1 <= d["pids"]["current"] <= 8, d["pids"]
    assert d["cpu"]["usage"]["total"] > 0 and d["cpuset"]["cpus"] == [1]
    assert {"usage", "throttling"} <= set(d["cpu"]) and "raw" in d["memory"]

    # runc 1.1 with the same resources (another id and cgroupsPath): the same settings files
    if shutil.which("runc"):
        theirs = bundle(rt, ["sleep", "1000"], LIMITS, caps=("CAP_MKNOD",), cgroupns=True)
        rroot, rid = str(rt.tmp / "runc-state"), rt.new_id("runc")
        try:
            r = subprocess.run(["runc", "--root", rroot, "run", "--detach", "--bundle", theirs, rid],
                               stdout=open(rt.tmp / "runc.out", "w"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=T)
            assert r.returncode == 0, (rt.tmp / "runc.out").read_text()
            compared = []
            for name in sorted(os.listdir(cgdir(b))):
                if any(s in name for s in SETTINGS_SKIP):
                    continue
                try:
                    mine = rd(b, name)
                except OSError:
                    continue
                assert mine == rd(theirs, name), f"{name}: ours {mine!r}, runc {rd(theirs, name)!r}"
                compared.append(name)
            assert {"memory.max", "memory.low", "memory.swap.max", "memory.high", "pids.max",
                    "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems"} <= set(compared)
            # both attach one device program; its effect was checked above
        finally:
            subprocess.run(["runc", "--root", rroot, "delete", "--force", rid], capture_output=True,
                           timeout=T)
        assert not tree_left(theirs)

    # forced delete of the running container: the cgroup goes
    ok(cli(rt, "delete", "--force", cid))
    assert not tree_left(b)


# --- 2. pause/resume, update, ps, kill --all on one busy container ---------------------------

BUSY = 'trap "echo init >> /dev/shm/log" USR1; while :; do :; done'


def test_v2_pause_update_ps_kill(rt, no_leaks):
    cid = rt.new_id()
    b = bundle(rt, ["sh", "-c", BUSY], {"devices": PODMAN_DEVICES, "memory": {"limit": 64 * MiB},
                                        "cpu": {"shares": 1024}, "pids": {"limit": 100}})
    ok(cli(rt, "run", "--detach", "--bundle", b, cid))
    pid = state(rt, cid)["pid"]
    usage = lambda: keyed(b, "cpu.stat")["usage_usec"]  # noqa: E731
    assert wait_until(lambda: cpu_ticks(pid) > 0)

    # pause / resume (and the freeze / thaw aliases)
    for pause, resume, check_state in (("pause", "resume", True), ("freeze", "thaw", False)):
        ok(cli(rt, pause, cid))
        assert rd(b, "cgroup.freeze") == "1" and keyed(b, "cgroup.events")["frozen"] == 1
        if check_state:
            assert state(rt, cid)["status"] == "paused"
            assert "paused" in one_line_error(cli(rt, "exec", cid, "true"))
        t0, u0 = cpu_ticks(pid), usage()
        time.sleep(0.5)
        assert (cpu_ticks(pid), usage()) == (t0, u0), "frozen container made progress"
        ok(cli(rt, resume, cid))
        assert rd(b, "cgroup.freeze") == "0" and keyed(b, "cgroup.events")["frozen"] == 0
        assert wait_until(lambda: cpu_ticks(pid) > t0 and usage() > u0)
    assert state(rt, cid)["status"] == "running"

    # update: flags, then one field (merge), then podman's -r FILE, then cpu.idle
    ok(cli(rt, "update", "--memory", "128m", "--memory-swap", "256m", "--memory-reservation", "32m",
           "--cpu-quota", "20000", "--cpu-period", "50000", "--cpu-share", "512", "--cpuset-cpus", "0",
           "--pids-limit", "30", "--blkio-weight", "500", cid))
    files = {"memory.max": str(128 * MiB), "memory.swap.max": str(128 * MiB),
             "memory.low": str(32 * MiB), "cpu.max": "20000 50000",
             "cpu.weight": str(shares_to_weight(512)), "cpuset.cpus": "0", "pids.max": "30"}
    io_weight = 1 + (500 - 10) * 9999 // 990   # runc ConvertBlkIOToIOWeightValue
    if os.path.exists(os.path.join(cgdir(b), "io.bfq.weight")):
        assert rd(b, "io.bfq.weight").split()[-1] == "500"
    else:
        assert rd(b, "io.weight") == f"default {io_weight}"

    def check_files():
        assert {k: rd(b, k) for k in files} == files

    check_files()
    rec = recorded_resources(rt, cid)
    assert rec["memory"] == {"limit": 128 * MiB, "swap": 256 * MiB, "reservation": 32 * MiB}
    assert rec["cpu"] == {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0"}
    assert rec["pids"] == {"limit": 30} and rec["blockIO"] == {"weight": 500}

    ok(cli(rt, "update", "--cpu-quota", "30000", cid))
    files["cpu.max"] = "30000 50000"
    check_files()
    rec2 = recorded_resources(rt, cid)
    assert rec2["cpu"] == dict(rec["cpu"], quota=30000) and rec2["memory"] == rec["memory"]

    sample = "/work/shared/clients/samples/podman-update.resources.json"
    if os.path.exists(sample):
        r = cli(rt, "update", "-r", sample, cid)
    else:
        r = cli(rt, "update", "-r", "-", cid, input=json.dumps(
            {"memory": {"limit": 134217728, "swap": 268435456}, "cpu": {"quota": 25000, "period": 100000}}))
    ok(r)
    files.update({"memory.max": str(128 * MiB), "memory.swap.max": str(128 * MiB),
                  "cpu.max": "25000 100000"})
    check_files()
    assert recorded_resources(rt, cid)["cpu"] == {"shares": 512, "quota": 25000, "period": 100000,
                                                   "cpus": "0"}
    if os.path.exists(os.path.join(cgdir(b), "cpu.idle")):
        ok(cli(rt, "update", "--cpu-idle", "1", cid))
        assert rd(b, "cpu.idle") == "1"
        ok(cli(rt, "update", "--pids-limit", "40", cid))  # cpu.weight is refused while idle
        files["pids.max"] = "40"
        ok(cli(rt, "update", "--cpu-idle", "0", cid))
        assert rd(b, "cpu.idle") == "0"
        files["cpu.weight"] = "100"  # the kernel's default after idle (runc: not re-written)
    check_files()

    # ps: only a JSON array of host pids, the exec'd process included; table passes options on
    pidfile = rt.tmp / "exec.pid"
    ok(cli(rt, "exec", "--detach", "--pid-file", str(pidfile), cid, "sh", "-c",
           'trap "echo exec >> /dev/shm/log" USR1; while :; do sleep 0.2; done'))
    exec_pid = int(pidfile.read_text())
    pids = json.loads(ok(cli(rt, "ps", "--format", "json", cid)).stdout)
    assert isinstance(pids, list) and {pid, exec_pid} <= set(pids)
    lines = ok(cli(rt, "ps", cid, "-o", "pid,comm")).stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    assert {pid, exec_pid} <= {int(x.split()[0]) for x in lines[1:]}

    # kill --all USR1 reaches every process; kill --all KILL (cgroup.kill) ends them all
    ok(cli(rt, "kill", "--all", cid, "USR1"))
    log = f"/proc/{pid}/root/dev/shm/log"
    assert wait_until(lambda: os.path.exists(log) and sorted(open(log).read().split()) == ["exec", "init"]), \
        open(log).read() if os.path.exists(log) else "no log"
    ok(cli(rt, "kill", "--all", cid, "KILL"))
    assert wait_until(lambda: not any(alive(p) for p in pids))
    assert wait_until(lambda: rd(b, "cgroup.procs") == "")
    assert state(rt, cid)["status"] == "stopped"
    ok(cli(rt, "delete", cid))
    assert not tree_left(b)


# --- 3. failures leave nothing behind ----------------------------------------------------------

def test_v2_failed_create_and_unified_errors(rt, no_leaks):
    for resources, words in (
            ({"cpu": {"cpus": "4096"}}, "cpuset.cpus"),                   # the kernel refuses it
            ({"unified": {"memory.no_such_file": "1"}}, "memory.no_such_file"),
            ({"unified": {"memory.high": "not-a-number"}}, "memory.high")):
        cid = rt.new_id()
        b = bundle(rt, ["true"], resources)
        assert words in one_line_error(cli(rt, "create", "--bundle", b, cid))
        assert not tree_left(b), resources
        assert not os.path.exists(os.path.join(rt.root, cid))
