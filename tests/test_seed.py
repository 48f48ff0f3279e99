"""The seed's own commands with real containers, as root: up (overlay from a rootfs directory,
options mapped to the spec), status, inspect, stop, rm, mountdev.

Every container lives under the test's own --root and cgroup parent (conftest `rt`); `no_leaks`
checks that no mount, state dir or cgroup is left behind, and every test also checks the
generated bundles (<root>/.bundles) are gone."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time

import pytest


def up(rt, *args, **kw):
    return rt.run("up", "--cgroup-parent", f"/{rt.cg_parent}", *args, **kw)


def up_detached(rt, lower, *cmd, extra=()) -> str:
    cid = rt.new_id("up")
    r = up(rt, "-d", "--name", cid, *extra, lower, "--", *cmd)
    assert r.returncode == 0, r.stderr
    assert r.stdout == cid + "\n"
    return cid


def tree_hash(top: str) -> str:
    """Names, types, modes, owners, sizes, mtimes, contents, link targets, device numbers."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in [""] + sorted(dirnames + filenames):
            p = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(p)
            h.update(f"{os.path.relpath(p, top)}\0{st.st_mode:o}\0{st.st_uid}:{st.st_gid}\0{st.st_size}\0"
                     f"{st.st_mtime_ns}\0{st.st_rdev}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(p).encode())
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def bundles(rt) -> list[str]:
    d = os.path.join(rt.root, ".bundles")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def inspect(rt, cid: str) -> dict:
    r = rt.run("inspect", cid, check=True)
    return json.loads(r.stdout)


def status(rt, cid: str) -> str:
    r = rt.run("status", cid, check=True)
    assert r.stdout.count("\n") == 1 and " " not in r.stdout.strip()
    return r.stdout.strip()


def host_mountinfo() -> str:
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.fixture
def lower(tmp_path, base_rootfs) -> str:
    """A private copy of the rootfs to be the lower layer (hashed before and after)."""
    d = str(tmp_path / "lower")
    shutil.copytree(base_rootfs, d, symlinks=True)
    return d


# --- up ------------------------------------------------------------------------------------------

def test_up_writes_go_to_upper_and_lower_is_unchanged(rt, no_leaks, lower):
    before = tree_hash(lower)
    cid = rt.new_id("up")
    script = ("echo new > /etc/newfile; echo more >> /etc/passwd; rm /bin/ls; mkdir -p /newdir/sub; "
              "chmod 700 /etc; touch /bin/busybox; cat /etc/newfile; exit 7")
    r = up(rt, "--name", cid, "--keep", lower, "--", "sh", "-c", script)
    assert r.returncode == 7, r.stderr
    assert r.stdout == "new\n"
    assert status(rt, cid) == "stopped"
    info = inspect(rt, cid)
    layers = info["overlay"]
    bdir = os.path.join(rt.root, ".bundles", cid)
    assert layers["lower"] == os.path.realpath(lower)
    assert layers["upper"] == os.path.join(bdir, "upper") and layers["work"] == os.path.join(bdir, "work")
    assert info["bundle"] == bdir
    upper = layers["upper"]
    with open(os.path.join(upper, "etc", "newfile")) as f:
        assert f.read() == "new\n"
    with open(os.path.join(upper, "etc", "passwd")) as f:
        assert f.read().endswith("more\n")
    wh = os.lstat(os.path.join(upper, "bin", "ls"))  # overlayfs whiteout: char device 0:0
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.path.isdir(os.path.join(upper, "newdir", "sub"))
    assert tree_hash(lower) == before
    # the host's mount table never had the overlay
    assert bdir not in host_mountinfo()

    r = rt.run("rm", cid)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(bdir) and bundles(rt) == []
    assert rt.run("status", cid).returncode != 0
    assert tree_hash(lower) == before


def test_up_foreground_cleans_up_after_itself(rt, no_leaks, lower):
    r = up(rt, lower, "--", "sh", "-c", "echo hi > /x; cat /x; hostname")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == "hi" and len(out[1]) == 12  # a generated id is the default hostname
    assert bundles(rt) == []
    # the exec failure of the user command is the container's exit status, and still cleaned
    r = up(rt, lower, "--", "/no/such/binary")
    assert r.returncode != 0
    assert bundles(rt) == []


def test_up_failures_leave_nothing(rt, no_leaks, lower, tmp_path):
    cid = rt.new_id("up")
    r = up(rt, "--name", cid, "--cpus", "4000", lower, "--", "true")  # cpuset.cpus refuses it
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert bundles(rt) == []
    assert rt.run("status", cid).returncode != 0
    # a failure inside the container's init (its mounts), after the overlay was mounted
    r = up(rt, "--volume", "/etc/hostname:/bin/busybox/x", lower, "--", "true")
    assert r.returncode != 0 and "not a directory" in r.stderr, r.stderr
    assert bundles(rt) == []
    for bad in (["--volume", f"{tmp_path}/missing:/x"], ["--memory", "lots"], ["--rt-priority", "100"],
                ["--cpus", "a-b"]):
        r = up(rt, *bad, lower, "--", "true")
        assert r.returncode != 0 and r.stderr.strip(), bad
    assert up(rt, str(tmp_path / "nope"), "--", "true").returncode != 0
    assert bundles(rt) == []
    # an id in use
    cid = up_detached(rt, lower, "sleep", "1000")
    r = up(rt, "--name", cid, lower, "--", "true")
    assert r.returncode != 0 and "exists" in r.stderr
    assert rt.run("rm", "-f", cid).returncode == 0
    assert bundles(rt) == []


def test_up_options_reach_the_container(rt, no_leaks, lower, tmp_path):
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "file").write_text("volume-data\n")
    cid = rt.new_id("up")
    script = ("cat /proc/self/stat; grep Cpus_allowed_list /proc/self/status; readlink /proc/self/ns/ipc; "
              "hostname; cat /mnt/vol/file; touch /mnt/vol/new 2>/dev/null || echo read-only")
    r = up(rt, "--name", cid, "--keep", "--share-ipc", "--cpus", "0", "--rt-priority", "10",
           "--memory", "64m", "--hostname", "seedhost", "--volume", f"{vol}:/mnt/vol:ro",
           lower, "--", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    fields = lines[0][lines[0].rindex(")") + 2:].split()  # fields from 3 (state) on
    assert int(fields[40 - 3]) == 10, "rt_priority"
    assert int(fields[41 - 3]) == 2, "policy SCHED_RR"
    assert lines[1].split() == ["Cpus_allowed_list:", "0"]
    assert lines[2] == os.readlink("/proc/self/ns/ipc")  # the host's IPC namespace
    assert lines[3:] == ["seedhost", "volume-data", "read-only"]
    assert not (vol / "new").exists()
    info = inspect(rt, cid)
    assert info["cgroup"]["memory"]["limit"] == 64 << 20
    cfg = info["config"]
    assert cfg["limits"]["memory"] == 64 << 20 and cfg["limits"]["cpus"] == "0"
    assert cfg["scheduler"] == {"policy": "SCHED_RR", "priority": 10}
    assert cfg["exec_cpu_affinity"] == {"initial": "0", "final": "0"}
    assert "ipc" not in [n["type"] for n in cfg["namespaces"]]
    assert rt.run("rm", cid).returncode == 0
    assert bundles(rt) == []


# --- status, inspect, stop -----------------------------------------------------------------------

def test_status_is_one_word(rt, no_leaks):
    cid = rt.new_id("st")
    b = rt.bundle(["sleep", "1000"])
    with open(rt.tmp / "create.err", "w+") as err:  # the init keeps create's stdio: no pipes
        r = subprocess.run(rt.cmd + ["--root", rt.root, "create", "--bundle", b, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        assert r.returncode == 0, err.read()
    assert status(rt, cid) == "created"
    rt.run("start", cid, check=True)
    assert status(rt, cid) == "running"
    rt.run("pause", cid, check=True)
    assert status(rt, cid) == "paused"
    rt.run("resume", cid, check=True)
    rt.run("stop", "-t", "0", cid, check=True)
    assert status(rt, cid) == "stopped"
    rt.run("delete", cid, check=True)
    r = rt.run("status", cid)
    assert r.returncode != 0 and r.stdout == "" and "does not exist" in r.stderr


def test_inspect_matches_proc(rt, no_leaks, lower):
    cid = up_detached(rt, lower, "sh", "-c", "sleep 1000 & echo started; wait")
    info = inspect(rt, cid)
    pid = rt.state(cid)["pid"]
    assert info["id"] == cid and info["status"] == "running" and info["pid"] == pid
    for name in ("mnt", "pid", "uts", "ipc", "net", "user", "cgroup"):
        assert info["namespaces"][name]["inode"] == os.stat(f"/proc/{pid}/ns/{name}").st_ino, name
    for name in ("mnt", "pid", "uts", "ipc", "net"):
        assert info["namespaces"][name]["host"] is False, name
    assert info["namespaces"]["user"]["host"] is True
    assert pid in info["pids"] and len(info["pids"]) == 2  # sh and its sleep
    paths = info["cgroup"]["paths"]
    with open(os.path.join(paths.get("pids") or paths[""], "cgroup.procs")) as f:
        assert sorted(int(x) for x in f.read().split()) == info["pids"]
    assert info["cgroup"]["memory"]["usage"] > 0
    assert info["cgroup"]["pids_current"] == 2
    assert info["cgroup"]["path"] == f"/{rt.cg_parent}/{cid}"
    assert info["created"] and info["started"] and info["created"] <= info["started"]
    assert info["config"]["args"] == ["sh", "-c", "sleep 1000 & echo started; wait"]
    assert info["config"]["hostname"] == cid
    assert info["overlay"]["lower"] == os.path.realpath(lower)
    assert info["bundle"] not in host_mountinfo()
    with open(info["overlay"]["log"]) as f:  # a detached container's output
        assert f.read() == "started\n"
    assert rt.run("rm", "-f", cid).returncode == 0
    assert bundles(rt) == []


def test_stop_kills_after_the_grace_time(rt, no_leaks, lower):
    stubborn = up_detached(rt, lower, "sh", "-c", 'trap "" TERM; while :; do sleep 1; done')
    polite = up_detached(rt, lower, "sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done')
    t0 = time.monotonic()
    assert status(rt, stubborn) == "running"
    overhead = time.monotonic() - t0  # one CLI call (large in the TCG VM)
    t0 = time.monotonic()
    r = rt.run("stop", "--time", "1", stubborn)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert 1.0 <= took < 1 + 3 * overhead + 3, (took, overhead)  # well before the default 10 s
    assert status(rt, stubborn) == "stopped"
    assert inspect(rt, stubborn)["pids"] == []
    t0 = time.monotonic()
    r = rt.run("stop", polite)  # default grace of 10 s, but it exits on TERM
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 5
    assert status(rt, polite) == "stopped"
    assert rt.run("stop", polite).returncode == 0  # stopping a stopped container is fine
    assert rt.run("rm", stubborn, polite).returncode == 0
    assert bundles(rt) == []


# --- rm --------------------------------------------------------------------------------------------

def test_rm_force_keep_changes_and_leftovers(rt, no_leaks, lower):
    cid = up_detached(rt, lower, "sh", "-c", "echo kept > /kept; sleep 1000")
    r = rt.run("rm", cid)
    assert r.returncode != 0 and "not stopped" in r.stderr
    assert status(rt, cid) == "running"
    for _ in range(50):
        if os.path.exists(os.path.join(rt.root, ".bundles", cid, "upper", "kept")):
            break
        time.sleep(0.05)
    r = rt.run("rm", "--force", "--keep-changes", cid)
    assert r.returncode == 0, r.stderr
    upper = r.stdout.strip()
    assert upper == os.path.join(rt.root, ".bundles", cid, "upper")
    with open(os.path.join(upper, "kept")) as f:
        assert f.read() == "kept\n"
    # the id's state is gone, the layers are not: up refuses to reuse them, rm removes them
    r = up(rt, "--name", cid, lower, "--", "true")
    assert r.returncode != 0 and "rm" in r.stderr
    assert rt.run("rm", cid).returncode == 0
    assert bundles(rt) == []
    # `delete` of an up container leaves the bundle to rm
    cid = up_detached(rt, lower, "true")
    for _ in range(100):
        if status(rt, cid) == "stopped":
            break
        time.sleep(0.05)
    rt.run("delete", cid, check=True)
    assert bundles(rt) == [cid]
    assert rt.run("rm", cid).returncode == 0
    assert bundles(rt) == []
    assert rt.run("rm", cid).returncode != 0
    assert rt.run("rm", "-f", cid).returncode == 0


# --- mountdev --------------------------------------------------------------------------------------

DATA = b"PYRUNTIME-LOOP-DATA"


@pytest.fixture
def loopdev(tmp_path):
    if not shutil.which("losetup"):
        pytest.skip("losetup not installed")
    if not os.path.exists("/dev/loop-control"):
        subprocess.run(["modprobe", "loop"], capture_output=True)
    img = tmp_path / "disk.img"
    with open(img, "wb") as f:
        f.write(DATA)
        f.truncate(1 << 20)
    r = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        yield dev
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def test_mountdev_hotplugs_into_running_containers(rt, no_leaks, lower, loopdev):
    c1, c2, c3 = (up_detached(rt, lower, "sleep", "1000") for _ in range(3))
    st = os.stat(loopdev)
    major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    read = ["sh", "-c", f"head -c {len(DATA)} /dev/hot/disk"]
    r = rt.run("mountdev", loopdev, "/dev/hot/disk", c1, c2)
    assert r.returncode == 0, r.stderr
    for c in (c1, c2):
        r = rt.run("exec", c, *read)
        assert r.returncode == 0 and r.stdout == DATA.decode(), (c, r.stderr)
        info = inspect(rt, c)
        assert {"path": "/dev/hot/disk", "type": "b", "major": major, "minor": minor,
                "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0} in info["config"]["devices"]
        assert {"allow": True, "type": "b", "major": major, "minor": minor, "access": "rwm"} \
            in info["config"]["device_rules"]
        if "devices" in info["cgroup"]["paths"]:
            with open(os.path.join(info["cgroup"]["paths"]["devices"], "devices.list")) as f:
                assert f"b {major}:{minor} rwm" in f.read().split("\n")
    r = rt.run("exec", c3, *read)
    assert r.returncode != 0 and r.stdout == ""
    assert rt.run("exec", c3, "test", "-e", "/dev/hot").returncode != 0

    r = rt.run("mountdev", "--remove", loopdev, "/dev/hot/disk", c1)
    assert r.returncode == 0, r.stderr
    assert rt.run("exec", c1, "test", "-e", "/dev/hot/disk").returncode != 0
    info = inspect(rt, c1)
    assert not [d for d in info["config"]["devices"] if d["path"] == "/dev/hot/disk"]
    assert not [d for d in info["config"]["device_rules"] if d.get("major") == major and d.get("allow")]
    if "devices" in info["cgroup"]["paths"]:
        with open(os.path.join(info["cgroup"]["paths"]["devices"], "devices.list")) as f:
            assert f"b {major}:{minor} rw" not in f.read()
    r = rt.run("exec", c2, *read)  # the other container keeps it
    assert r.returncode == 0 and r.stdout == DATA.decode()

    # errors: not a device; an unknown container is reported and the others still done
    assert rt.run("mountdev", "/etc/hostname", "/dev/x", c1).returncode != 0
    r = rt.run("mountdev", loopdev, "/dev/hot/disk", "no-such-container", c3)
    assert r.returncode != 0 and "no-such-container" in r.stderr
    assert rt.run("exec", c3, *read).stdout == DATA.decode()
    assert rt.run("rm", "-f", c1, c2, c3).returncode == 0
    assert bundles(rt) == []


@pytest.fixture
def open_dir():
    """A temp dir the container's mapped root can traverse (tmp_path's parents are 0700)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="pyruntime-seed-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_mountdev_into_a_user_namespaced_container_binds_the_host_node(rt, no_leaks, open_dir):
    def userns(cfg):
        cfg["root"]["path"] = "rootfs"
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b = shutil.move(rt.bundle(["sleep", "1000"], edit=userns), open_dir)
    os.chmod(b, 0o755)
    os.chmod(os.path.join(b, "rootfs"), 0o755)
    cid = rt.new_id("un")
    with open(rt.tmp / "run.err", "w+") as err:
        r = subprocess.run(rt.cmd + ["--root", rt.root, "run", "-d", "--bundle", b, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, timeout=60)
        err.seek(0)
        assert r.returncode == 0, err.read()
    r = rt.run("mountdev", "/dev/null", "/dev/hot/null", cid)
    assert r.returncode == 0, r.stderr
    r = rt.run("exec", cid, "sh", "-c", "echo x > /dev/hot/null && grep -c ' /dev/hot/null ' /proc/self/mountinfo")
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr  # a bind mount of the host's node
    r = rt.run("mountdev", "--remove", "/dev/null", "/dev/hot/null", cid)
    assert r.returncode == 0, r.stderr
    assert rt.run("exec", cid, "test", "-e", "/dev/hot/null").returncode != 0
    # /dev/null stays allowed: taking the hot-plugged path away did not deny the device
    r = rt.run("exec", cid, "sh", "-c", "echo x > /dev/null && echo ok")
    assert r.stdout == "ok\n", r.stderr
    assert rt.run("delete", "--force", cid).returncode == 0
