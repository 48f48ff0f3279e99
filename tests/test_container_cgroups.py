"""Cgroup limits of REAL containers on the host's cgroup v1 (hybrid) layout, checked from both
sides: the files the runtime wrote under /sys/fs/cgroup/<controller>/<cgroupsPath>/ and the effect
inside the container (OOM kill, failed fork, Cpus_allowed_list, EPERM on a denied device, a frozen
busy loop), plus pause/resume, update (merge semantics), events, ps, kill --all, delete, and
comparisons with runc 1.1 on the same bundle (cgroup files, devices.list, `events --stats` fields).

The cgroup v2 counterpart (in the VM) is tests/cgroupv2/test_container_cgroups_v2.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from pyruntime.cgroups import detect_layout

CG = "/sys/fs/cgroup"
MiB = 1 << 20

pytestmark = pytest.mark.skipif(detect_layout(CG) == "unified",
                                reason="cgroup v1 layout only (v2: tests/cgroupv2/)")

# podman's device rules: deny everything; the runtime adds its default allow list
PODMAN_DEVICES = [{"allow": False, "access": "rwm"}]
# runc 1.1's default allowed devices, as the kernel lists them after deny-all
DEFAULT_DEVICES_LIST = ["b *:* m", "c *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm",
                        "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 10:200 rwm", "c 136:* rwm"]


# --- helpers ---------------------------------------------------------------------------------

def wait_until(fn, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            return v
        time.sleep(step)


def cli(rt, *args, input=None, timeout=60):
    """rt.run with stdout/stderr in files: a detached process (run -d, exec -d, a background
    child) keeps the runtime's stdio open, so pipes would never reach EOF."""
    n = len(os.listdir(rt.tmp))
    out, err = rt.tmp / f"cli-{n}.out", rt.tmp / f"cli-{n}.err"
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run(rt.cmd + ["--root", rt.root, *args], stdout=o, stderr=e,
                           input=input.encode() if input is not None else None,
                           stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
    res = subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), err.read_text())
    res.out_path, res.err_path = out, err  # what a detached process writes later lands here
    return res


def run_d(rt, bundle, cid):
    r = cli(rt, "run", "--detach", "--bundle", bundle, cid)
    assert r.returncode == 0, r.stderr
    return r


def resources_bundle(rt, args, resources, *, caps=(), edit=None):
    def ed(cfg):
        cfg["linux"]["resources"] = json.loads(json.dumps(resources))
        for c in caps:
            for k in ("bounding", "effective", "permitted"):
                cfg["process"]["capabilities"][k].append(c)
        if edit:
            edit(cfg)
    return rt.bundle(args, edit=ed)


def cgroups_path(bundle) -> str:
    with open(os.path.join(bundle, "config.json")) as f:
        return json.load(f)["linux"]["cgroupsPath"]


def cgdir(ctrl: str, bundle) -> str:
    return CG + "/" + ctrl + cgroups_path(bundle)


def rd(ctrl: str, bundle, name: str) -> str:
    with open(os.path.join(cgdir(ctrl, bundle), name)) as f:
        return f.read().strip()


def hierarchies() -> list[str]:
    return sorted(h for h in os.listdir(CG) if os.path.isdir(os.path.join(CG, h)))


def cgroup_dirs_left(bundle) -> list[str]:
    """The container's cgroup in every hierarchy (v1 controllers, name=systemd, unified)."""
    return [cgdir(h, bundle) for h in hierarchies() if os.path.exists(cgdir(h, bundle))]


def recorded_resources(rt, cid) -> dict:
    """linux.resources of the config the runtime recorded for the container (what a later
    update merges into; `state` does not show it)."""
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        return json.load(f)["config"]["linux"].get("resources") or {}


def stats(rt, cid) -> dict:
    r = cli(rt, "events", "--stats", cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1, r.stdout
    ev = json.loads(lines[0])
    assert ev["type"] == "stats" and ev["id"] == cid
    return ev["data"]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def in_container(pid: int, bundle) -> bool:
    """pid is in the container's cgroup (transient processes may be gone: then True)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return any(line.rstrip("\n").endswith(":" + cgroups_path(bundle)) for line in f)
    except FileNotFoundError:
        return True


def one_line_error(r) -> str:
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


HOG = 'x=$(head -c 100m /dev/zero | tr "\\0" a); echo survived'


# --- memory ----------------------------------------------------------------------------------

def test_memory_limit_oom_kill_and_events(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sleep", "1000"], {
        "devices": PODMAN_DEVICES,
        "memory": {"limit": 32 * MiB, "swap": 32 * MiB, "reservation": 16 * MiB}})
    run_d(rt, b, cid)
    # host side
    assert rd("memory", b, "memory.limit_in_bytes") == str(32 * MiB)
    assert rd("memory", b, "memory.soft_limit_in_bytes") == str(16 * MiB)
    if os.path.exists(os.path.join(cgdir("memory", b), "memory.memsw.limit_in_bytes")):
        assert rd("memory", b, "memory.memsw.limit_in_bytes") == str(32 * MiB)
    # inside: the container's own memory cgroup shows the limit
    r = cli(rt, "exec", cid, "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
    assert r.returncode == 0 and r.stdout.strip() == str(32 * MiB), r

    # `events` (streaming) in the background: it must report the OOM kill
    ev_out = rt.tmp / "events.out"
    with open(ev_out, "w") as f:
        ev = subprocess.Popen(rt.cmd + ["--root", rt.root, "events", "--interval", "60s", cid],
                              stdout=f, stderr=subprocess.STDOUT)
    try:
        # its first line (stats) says it has read the baseline OOM count
        assert wait_until(lambda: ev_out.read_text().strip(), timeout=20), "events printed nothing"
        r = cli(rt, "exec", cid, "sh", "-c", HOG)
        assert "survived" not in r.stdout
        assert r.returncode == 128 + signal.SIGKILL, r  # the hog (the exec'd shell) was OOM-killed
        assert wait_until(lambda: '"oom"' in ev_out.read_text(), timeout=10), ev_out.read_text()
    finally:
        ev.kill()
        ev.wait()
    events = [json.loads(line) for line in ev_out.read_text().splitlines() if line.startswith("{")]
    assert {"type": "oom", "id": cid} in events
    assert events[0]["type"] == "stats" and "memory" in events[0]["data"]

    # the kernel's count, through the manager, and the stats
    oom = dict(line.split() for line in rd("memory", b, "memory.oom_control").splitlines())
    assert int(oom["oom_kill"]) >= 1
    from pyruntime.container.lifecycle import cgroup_of
    with open(os.path.join(rt.root, cid, "state.json")) as f:
        assert cgroup_of(json.load(f)).oom_kill_count() >= 1
    st = stats(rt, cid)
    assert st["memory"]["usage"]["limit"] == 32 * MiB
    assert st["memory"]["usage"]["max"] >= 30 * MiB  # the peak reached the limit
    assert st["memory"]["raw"]["hierarchical_memory_limit"] == 32 * MiB
    # the container itself is still running (only the hog was killed)
    assert rt.state(cid)["status"] == "running"
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


# --- pids ------------------------------------------------------------------------------------

FORK_LOOP = ("i=0; while [ $i -lt 20 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); echo $i > /tmp/n; "
             "done; echo all-forked > /tmp/n")


def test_pids_limit_stops_forks(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", FORK_LOOP], {"devices": PODMAN_DEVICES, "pids": {"limit": 5}})
    r = run_d(rt, b, cid)
    assert rd("pids", b, "pids.max") == "5"
    n_file = os.path.join(b, "rootfs", "tmp", "n")
    # the shell (1 task) forks 4 sleeps, the 5th fork fails and ends the shell
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped"), "fork loop never failed"
    with open(n_file) as f:
        assert f.read().strip() == "4"
    assert "can't fork" in r.err_path.read_text()  # the container's stderr
    assert int(rd("pids", b, "pids.events").split()[1]) >= 1  # "max N": forks refused
    assert cli(rt, "delete", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


@pytest.mark.parametrize("limit", [0, 1])
def test_pids_limit_0_and_1(rt, no_leaks, limit):
    """Spec 1.3: pids.limit 0 is a real value (the kernel: no fork at all; a task can still be
    moved in). The container must start; its init (exec, no fork) runs, every fork fails."""
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", "echo started > /tmp/s; sleep 1 & echo forked > /tmp/s"],
                         {"pids": {"limit": limit}})
    r = cli(rt, "run", "--detach", "--bundle", b, cid)
    try:
        assert r.returncode == 0, r.stderr
        assert rd("pids", b, "pids.max") == str(limit)
        s = os.path.join(b, "rootfs", "tmp", "s")
        assert wait_until(lambda: os.path.exists(s) and open(s).read().strip())
        assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
        with open(s) as f:
            assert f.read().strip() == "started"
    finally:
        cli(rt, "delete", "--force", cid)
        assert cgroup_dirs_left(b) == []


# --- cpu / cpuset ----------------------------------------------------------------------------

def test_cpu_and_cpuset(rt, no_leaks):
    cid = rt.new_id()
    ncpu = os.cpu_count() or 1
    last = str(ncpu - 1)
    b = resources_bundle(rt, ["sh", "-c", "while :; do :; done"], {
        "devices": PODMAN_DEVICES,
        "cpu": {"shares": 512, "quota": 10000, "period": 100000, "cpus": last, "mems": "0"}})
    run_d(rt, b, cid)
    assert rd("cpu", b, "cpu.shares") == "512"
    assert rd("cpu", b, "cpu.cfs_quota_us") == "10000"
    assert rd("cpu", b, "cpu.cfs_period_us") == "100000"
    assert rd("cpuset", b, "cpuset.cpus") == last
    assert rd("cpuset", b, "cpuset.mems") == "0"
    r = cli(rt, "exec", cid, "sh", "-c", "grep Cpus_allowed_list /proc/self/status; nproc")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Cpus_allowed_list:", last, "1"]
    # the busy loop gets 10% of a cpu: the kernel throttles it, events --stats says so
    st = wait_until(lambda: (lambda s: s if s["cpu"]["throttling"].get("throttledPeriods") else None)(
        stats(rt, cid)), timeout=5, step=0.2)
    assert st, "never throttled"
    assert st["cpu"]["throttling"]["periods"] >= st["cpu"]["throttling"]["throttledPeriods"] > 0
    assert st["cpu"]["usage"]["total"] > 0 and len(st["cpu"]["usage"]["percpu"]) == ncpu
    assert st["cpuset"]["cpus"] == [ncpu - 1]
    # cpu.idle (Linux 5.15+)
    if os.path.exists(os.path.join(cgdir("cpu", b), "cpu.idle")):
        assert cli(rt, "update", "--cpu-idle", "1", cid).returncode == 0
        assert rd("cpu", b, "cpu.idle") == "1"
        # the kernel refuses cpu.shares while idle: an unrelated update must still work
        r = cli(rt, "update", "--pids-limit", "100", cid)
        assert r.returncode == 0, r.stderr
        assert cli(rt, "update", "--cpu-idle", "0", cid).returncode == 0
        assert rd("cpu", b, "cpu.idle") == "0"
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


# --- devices ---------------------------------------------------------------------------------

DEVICE_SCRIPT = ("echo x > /dev/null && echo null-ok; head -c 3 /dev/zero | wc -c; "
                 "mknod /tmp/blk b 7 0 && echo mknod-ok; head -c1 /tmp/blk; echo blk=$?; "
                 "mknod /tmp/mem c 1 1; head -c1 /tmp/mem; echo mem=$?")


def test_devices_default_rules_deny_and_allow(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", DEVICE_SCRIPT], {"devices": PODMAN_DEVICES},
                         caps=("CAP_MKNOD",))
    created = cli(rt, "create", "--bundle", b, cid)  # the init keeps create's stdout/stderr
    assert created.returncode == 0, created.stderr
    assert sorted(rd("devices", b, "devices.list").splitlines()) == sorted(DEFAULT_DEVICES_LIST)
    assert cli(rt, "start", cid).returncode == 0
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    out = created.out_path.read_text().split()
    err = created.err_path.read_text()
    assert out == ["null-ok", "3", "mknod-ok", "blk=1", "mem=1"], (out, err)
    assert "head: /tmp/blk: Operation not permitted" in err and "head: /tmp/mem: Operation not permitted" in err
    # control: the same node opened on the host (no device cgroup) reads fine (an unbound loop
    # device reads as empty): the EPERM inside is the device cgroup's
    with open(os.path.join(b, "rootfs", "tmp", "blk"), "rb") as f:
        f.read(1)
    assert cli(rt, "delete", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


# --- pause / resume --------------------------------------------------------------------------

def test_pause_resume_freezes_busy_loop(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", "while :; do :; done"], {"devices": PODMAN_DEVICES})
    run_d(rt, b, cid)
    pid = rt.state(cid)["pid"]
    usage = lambda: int(rd("cpuacct", b, "cpuacct.usage"))  # noqa: E731
    assert wait_until(lambda: cpu_ticks(pid) > 0)
    for pause, resume in (("pause", "resume"), ("freeze", "thaw")):
        r = cli(rt, pause, cid)
        assert r.returncode == 0, r.stderr
        assert rt.state(cid)["status"] == "paused"
        assert rd("freezer", b, "freezer.state") == "FROZEN"
        t0, u0 = cpu_ticks(pid), usage()
        time.sleep(0.4)
        assert (cpu_ticks(pid), usage()) == (t0, u0), "frozen container made progress"
        r = cli(rt, "exec", cid, "true")
        assert "paused" in one_line_error(r)
        assert "not running" in one_line_error(cli(rt, pause, cid))
        r = cli(rt, resume, cid)
        assert r.returncode == 0, r.stderr
        assert rt.state(cid)["status"] == "running"
        assert rd("freezer", b, "freezer.state") == "THAWED"
        assert wait_until(lambda: cpu_ticks(pid) > t0 and usage() > u0, timeout=5)
        assert "not paused" in one_line_error(cli(rt, resume, cid))
    # a paused container cannot be deleted without --force; forced, nothing is left
    assert cli(rt, "pause", cid).returncode == 0
    assert "paused" in one_line_error(cli(rt, "delete", cid))
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert wait_until(lambda: not alive(pid))
    assert cgroup_dirs_left(b) == []


# --- update ----------------------------------------------------------------------------------

def test_update_flags_files_and_recorded_config(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sleep", "1000"], {
        "devices": PODMAN_DEVICES,
        "memory": {"limit": 32 * MiB, "swap": 64 * MiB},
        "cpu": {"shares": 1024},
        "pids": {"limit": 100}})
    run_d(rt, b, cid)
    memsw = os.path.exists(os.path.join(cgdir("memory", b), "memory.memsw.limit_in_bytes"))
    blkio_weight = next((f for f in ("blkio.weight", "blkio.bfq.weight")
                         if os.path.exists(os.path.join(cgdir("blkio", b), f))), None)
    r = cli(rt, "update", "--memory", "64m", "--memory-swap", "128m", "--memory-reservation", "32m",
            "--cpu-quota", "20000", "--cpu-period", "50000", "--cpu-share", "512",
            "--cpuset-cpus", "0", "--pids-limit", "30", cid)
    assert r.returncode == 0, r.stderr
    files = {("memory", "memory.limit_in_bytes"): str(64 * MiB),
             ("memory", "memory.soft_limit_in_bytes"): str(32 * MiB),
             ("cpu", "cpu.cfs_quota_us"): "20000", ("cpu", "cpu.cfs_period_us"): "50000",
             ("cpu", "cpu.shares"): "512", ("cpuset", "cpuset.cpus"): "0", ("pids", "pids.max"): "30"}
    if memsw:
        files[("memory", "memory.memsw.limit_in_bytes")] = str(128 * MiB)

    def check_files():
        for (ctrl, name), want in files.items():
            assert rd(ctrl, b, name) == want, (ctrl, name)

    check_files()
    rec = recorded_resources(rt, cid)
    assert rec["memory"] == {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB}
    assert rec["cpu"] == {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0"}
    assert rec["pids"] == {"limit": 30}
    assert rec["devices"] == PODMAN_DEVICES

    # blkio weight: written where the host has a weight file (CFQ or BFQ), else a clear error
    r = cli(rt, "update", "--blkio-weight", "500", cid)
    if blkio_weight:
        assert r.returncode == 0, r.stderr
        assert rd("blkio", b, blkio_weight) == "500"
        files[("blkio", blkio_weight)] = "500"
    else:
        assert "blkio.weight" in one_line_error(r)

    # a second update that names one field: only that changes (runc: an unnamed field is left
    # alone; quota without period keeps the old period), in the files and in the record
    assert cli(rt, "update", "--cpu-quota", "30000", cid).returncode == 0
    files[("cpu", "cpu.cfs_quota_us")] = "30000"
    check_files()
    rec2 = recorded_resources(rt, cid)
    assert rec2["cpu"] == dict(rec["cpu"], quota=30000)
    assert rec2["memory"] == rec["memory"] and rec2["pids"] == rec["pids"]

    # -r FILE with podman's resources JSON
    sample = "/work/shared/clients/samples/podman-update.resources.json"
    if not os.path.exists(sample):
        sample = str(rt.tmp / "podman-update.resources.json")
        with open(sample, "w") as f:
            json.dump({"memory": {"limit": 134217728, "swap": 268435456},
                       "cpu": {"quota": 25000, "period": 100000}}, f)
    r = cli(rt, "update", "-r", sample, cid)
    assert r.returncode == 0, r.stderr
    files.update({("memory", "memory.limit_in_bytes"): str(128 * MiB),
                  ("cpu", "cpu.cfs_quota_us"): "25000", ("cpu", "cpu.cfs_period_us"): "100000"})
    if memsw:
        files[("memory", "memory.memsw.limit_in_bytes")] = str(256 * MiB)
    check_files()  # reservation, shares, cpus, pids untouched
    rec3 = recorded_resources(rt, cid)
    assert rec3["memory"] == {"limit": 128 * MiB, "swap": 256 * MiB, "reservation": 32 * MiB}
    assert rec3["cpu"] == {"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"}

    # -r - (stdin); device rules are never changed by update (runc), nor recorded
    r = cli(rt, "update", "-r", "-", cid, input=json.dumps(
        {"pids": {"limit": 40}, "devices": [{"allow": True, "access": "rwm"}]}))
    assert r.returncode == 0, r.stderr
    files[("pids", "pids.max")] = "40"
    check_files()
    assert recorded_resources(rt, cid)["pids"] == {"limit": 40}
    assert recorded_resources(rt, cid)["devices"] == PODMAN_DEVICES
    assert sorted(rd("devices", b, "devices.list").splitlines()) == sorted(DEFAULT_DEVICES_LIST)

    # refused updates: one clear line, nothing recorded
    before = recorded_resources(rt, cid)
    assert "memory" in one_line_error(cli(rt, "update", "--memory", "64m", "--memory-swap", "32m", cid))
    assert one_line_error(cli(rt, "update", "--cpuset-cpus", "4096", cid))
    assert one_line_error(cli(rt, "update", "-r", "-", cid, input="{not json"))
    assert recorded_resources(rt, cid) == before
    check_files()
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


# --- ps / kill --all -------------------------------------------------------------------------

TRAPS = ('trap "echo init >> /tmp/log" USR1; sleep 1000 >/dev/null 2>&1 & '
         '(trap "echo child >> /tmp/log" USR1; while :; do sleep 0.05; done) & '
         'echo ready > /tmp/ready; while :; do sleep 0.05; done')


def test_ps_and_kill_all(rt, no_leaks):
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", TRAPS], {"devices": PODMAN_DEVICES})
    run_d(rt, b, cid)
    assert wait_until(lambda: os.path.exists(os.path.join(b, "rootfs", "tmp", "ready")))
    init = rt.state(cid)["pid"]
    pidfile = rt.tmp / "exec.pid"
    r = cli(rt, "exec", "--detach", "--pid-file", str(pidfile), cid, "sh", "-c",
            'trap "echo exec >> /tmp/log" USR1; while :; do sleep 0.05; done')
    assert r.returncode == 0, r.stderr
    exec_pid = int(pidfile.read_text())

    r = cli(rt, "ps", "--format", "json", cid)
    assert r.returncode == 0, r.stderr
    pids = json.loads(r.stdout)  # nothing but one JSON array, in runc's bytes
    assert r.stdout == "[" + ",".join(map(str, pids)) + "]\n"
    assert isinstance(pids, list) and all(isinstance(p, int) for p in pids)
    assert init in pids and exec_pid in pids and len(pids) >= 4
    assert all(in_container(p, b) for p in pids if alive(p))
    # table format: ps options pass through, only the container's processes are listed
    r = cli(rt, "ps", cid, "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["PID", "COMMAND"]
    listed = {int(line.split()[0]) for line in lines[1:]}
    assert {init, exec_pid} <= listed
    assert all(in_container(p, b) for p in listed if alive(p))
    r = cli(rt, "ps", cid)
    assert r.stdout.splitlines()[0].split()[:2] == ["UID", "PID"]

    # kill --all USR1: every process gets it (the trapping shells log it, the plain sleep dies)
    log = os.path.join(b, "rootfs", "tmp", "log")
    assert cli(rt, "kill", "--all", cid, "USR1").returncode == 0
    assert wait_until(lambda: os.path.exists(log) and sorted(open(log).read().split()) == ["child", "exec", "init"]), \
        open(log).read() if os.path.exists(log) else "no log"
    assert rt.state(cid)["status"] == "running"
    # kill --all KILL: nothing survives
    assert cli(rt, "kill", "--all", cid, "KILL").returncode == 0
    assert wait_until(lambda: not any(alive(p) for p in pids))
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert cli(rt, "delete", cid).returncode == 0
    assert cgroup_dirs_left(b) == []


# --- delete / failed create ------------------------------------------------------------------

def test_nothing_left_behind(rt, no_leaks):
    # forced delete of a running container with several processes
    cid = rt.new_id()
    b = resources_bundle(rt, ["sh", "-c", "sleep 1000 & sleep 1000 & while :; do sleep 1; done"],
                         {"devices": PODMAN_DEVICES, "memory": {"limit": 64 * MiB}, "pids": {"limit": 20}})
    run_d(rt, b, cid)
    present = {h for h in hierarchies() if os.path.isdir(cgdir(h, b))}
    assert {"memory", "pids", "devices", "freezer", "cpu"} <= present
    if os.path.isdir(os.path.join(CG, "unified")):
        assert "unified" in present  # hybrid: the process joins the unified hierarchy too (runc 1.1)
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs_left(b) == []
    assert rt.run("state", cid).returncode != 0

    # a failed create (a limit the kernel refuses): one line, no cgroup, no state
    for resources, words in (
            ({"cpu": {"cpus": "4096"}}, "cpuset.cpus"),
            # unified key/values are cgroup v2 only (runc: ErrV1NoUnified)
            ({"unified": {"memory.high": "67108864"}, "memory": {"limit": 64 * MiB}}, "unified")):
        cid = rt.new_id()
        b = resources_bundle(rt, ["true"], resources)
        r = cli(rt, "create", "--bundle", b, cid)
        assert words in one_line_error(r), r.stderr
        assert cgroup_dirs_left(b) == [], resources
        assert rt.run("state", cid).returncode != 0
        assert not os.path.exists(os.path.join(rt.root, cid))


# --- runc parity -----------------------------------------------------------------------------

# runc's types.Stats fields tagged omitempty: runc leaves them out when zero, so their presence
# may differ by value, not by format
OMITEMPTY = {"total", "percpu", "percpu_kernel", "percpu_user", "periods", "throttledPeriods",
             "throttledTime", "cache", "usage", "max", "raw", "current", "limit", "cpus", "mems", "psi"}


def shape(d, prefix=""):
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{prefix}/{k}"
            out[p] = type(v).__name__ if v is not None else "null"
            if k not in ("raw",) and not prefix.endswith(("/hugetlb",)):
                out.update(shape(v, p))
    return out


@pytest.fixture
def runc(rt):
    exe = shutil.which("runc")
    assert exe, "runc is not installed: scripts/setup.sh installs it"
    root = str(rt.tmp / "runc-state")
    ids = []

    def call(*args, **kw):
        out = rt.tmp / f"runc-{len(ids)}-{len(args)}.out"
        with open(out, "w") as o:
            r = subprocess.run([exe, "--root", root, *args], stdout=o, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=60, **kw)
        if args and args[0] == "run":
            ids.append(args[-1])
        return subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), "")
    yield call
    for cid in ids:
        subprocess.run([exe, "--root", root, "delete", "--force", cid], capture_output=True)


SETTINGS_SKIP = ("usage", "stat", "failcnt", "max_usage", "pressure", "procs", "tasks", "current",
                 "events", "peak", "numa", "slabinfo", "effective", "parent_freezing", "threads")


def test_same_files_as_runc(rt, no_leaks, runc):
    """Same bundle, another id and cgroupsPath: runc 1.1 and pyruntime leave the same values in
    every settings file of every hierarchy (devices.list included), and `events --stats` has
    runc's fields."""
    resources = {"devices": PODMAN_DEVICES,
                 "memory": {"limit": 64 * MiB, "swap": 128 * MiB, "reservation": 32 * MiB},
                 "cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0", "mems": "0"},
                 "pids": {"limit": 50}}
    if any(os.path.exists(os.path.join(CG, "blkio", f)) for f in ("blkio.weight", "blkio.bfq.weight")):
        resources["blockIO"] = {"weight": 500}
    ours = resources_bundle(rt, ["sleep", "1000"], resources)
    theirs = resources_bundle(rt, ["sleep", "1000"], resources)
    cid, rid = rt.new_id(), rt.new_id("runc")
    run_d(rt, ours, cid)
    r = runc("run", "--detach", "--bundle", theirs, rid)
    assert r.returncode == 0, r.stdout
    compared = 0
    for h in hierarchies():
        a, c = cgdir(h, ours), cgdir(h, theirs)
        assert os.path.isdir(a) == os.path.isdir(c), h
        if not os.path.isdir(a):
            continue
        for name in sorted(os.listdir(a)):
            fa = os.path.join(a, name)
            if any(s in name for s in SETTINGS_SKIP) or not os.path.isfile(fa):
                continue
            try:
                va = open(fa).read()
            except OSError:
                continue
            with open(os.path.join(c, name)) as f:
                assert va == f.read(), f"{h}/{name} differs from runc's"
            compared += 1
    assert compared > 40
    assert sorted(rd("devices", ours, "devices.list").splitlines()) == sorted(DEFAULT_DEVICES_LIST)

    # events --stats: runc's format (same keys, up to omitempty zero values)
    r = runc("events", "--stats", rid)
    assert r.returncode == 0, r.stdout
    runc_ev = json.loads(r.stdout)
    our = stats(rt, cid)
    assert runc_ev["type"] == "stats"
    assert set(our) == set(runc_ev["data"]) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb",
                                                "intel_rdt", "network_interfaces"}
    sa, sb = shape(our), shape(runc_ev["data"])
    diff = {p for p in set(sa) ^ set(sb) if p.rsplit("/", 1)[1] not in OMITEMPTY}
    assert not diff, diff
    assert {p: t for p, t in sa.items() if p in sb} == {p: t for p, t in sb.items() if p in sa}
    assert set(our["memory"]["raw"]) == set(runc_ev["data"]["memory"]["raw"])
    assert our["pids"]["limit"] == runc_ev["data"]["pids"]["limit"] == 50
    assert our["memory"]["usage"]["limit"] == runc_ev["data"]["memory"]["usage"]["limit"] == 64 * MiB
    assert runc("delete", "--force", rid).returncode == 0
    assert cli(rt, "delete", "--force", cid).returncode == 0
    assert cgroup_dirs_left(ours) == [] and cgroup_dirs_left(theirs) == []
