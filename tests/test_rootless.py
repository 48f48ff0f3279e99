"""Rootless containers, run by a REAL unprivileged user that this module creates (useradd) and
deletes afterwards.

The user cannot read the checkout (it may live under /root or in a private CI dir) nor pytest's
tmp_path (/tmp/pytest-of-root is 0700): everything it needs goes into a world-readable temp dir
of its own: a non-editable copy of the package (PYTHONPATH; the interpreter is this one, or
/opt/pyruntime/venv's, whichever the user can run with the dependencies), a rootfs copy it owns, and its XDG_RUNTIME_DIR (state goes to
$XDG_RUNTIME_DIR/pyruntime, no --root). Commands run through `runuser -u USER --` with an
explicit environment.
"""

from __future__ import annotations

import compileall
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="creates a user: needs root")


class User:
    def __init__(self, name: str, top: str, rootfs: str) -> None:
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid
        self.top = top
        self.rootfs = rootfs
        self.python = sys.executable
        self.xdg = os.path.join(top, "xdg")
        self.state = os.path.join(self.xdg, "pyruntime")
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": top, "LANG": "C.UTF-8",
                    "XDG_RUNTIME_DIR": self.xdg, "PYTHONPATH": os.path.join(top, "pkg"),
                    "PYTHONDONTWRITEBYTECODE": "1"}

    def cmd(self, *args: str) -> list[str]:
        env = [f"{k}={v}" for k, v in self.env.items()]
        return ["runuser", "-u", self.name, "--", "env", "-i", *env, *args]

    def run(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        """pyruntime ARGS as the user."""
        if "stdout" not in kw and "stderr" not in kw:
            kw["capture_output"] = True
        return subprocess.run(self.cmd(self.python, "-m", "pyruntime", *args), text=True,
                              timeout=timeout, cwd=self.top, **kw)

    def run_detached(self, *args: str) -> subprocess.CompletedProcess:
        """For `run -d`: the container keeps our stdio, so no pipes (stderr into a file)."""
        err = os.path.join(self.top, f"err-{uuid.uuid4().hex[:6]}")
        with open(err, "w+") as f:
            r = self.run(*args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
            f.seek(0)
            r.stderr = f.read()
        os.unlink(err)
        return r

    def owned_dir(self, name: str, mode: int = 0o755) -> str:
        d = os.path.join(self.top, name)
        os.mkdir(d, mode)
        os.chown(d, self.uid, self.gid)
        return d


def _chown_tree(top: str, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
            os.lchown(n, uid, gid)


@pytest.fixture(scope="module")
def user(base_rootfs):
    for tool in ("useradd", "userdel", "runuser"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed")
    name = f"pyrt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--home-dir", "/nonexistent",
                    "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True)
    top = tempfile.mkdtemp(prefix="pyruntime-rootless-", dir="/tmp")
    u = None
    try:
        os.chmod(top, 0o755)
        pkg = os.path.join(top, "pkg", "pyruntime")
        shutil.copytree(os.path.join(PROJECT, "pyruntime"), pkg,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copytree(os.path.join(PROJECT, "schemas"), os.path.join(pkg, "schemas"))
        compileall.compile_dir(pkg, quiet=1)
        for dirpath, dirnames, filenames in os.walk(os.path.join(top, "pkg")):
            os.chmod(dirpath, 0o755)
            for f in filenames:
                os.chmod(os.path.join(dirpath, f), 0o644)
        rootfs = os.path.join(top, "rootfs")
        shutil.copytree(base_rootfs, rootfs, symlinks=True)
        u = User(name, top, rootfs)
        _chown_tree(rootfs, u.uid, u.gid)
        os.chmod(rootfs, 0o755)
        u.owned_dir("xdg", 0o700)
        why = []
        for python in dict.fromkeys((sys.executable, "/opt/pyruntime/venv/bin/python")):
            r = subprocess.run(u.cmd(python, "-c", "import attrs, prctl, jsonschema, pyruntime.cli"),
                               capture_output=True, text=True)
            if r.returncode == 0:
                u.python = python
                break
            why.append(f"{python}: {r.stderr.strip().splitlines()[-1:]}")
        else:
            pytest.skip(f"no interpreter with pyruntime's dependencies is usable by another user ({why})")
        yield u
    finally:
        if u is not None and os.path.isdir(u.state):
            r = u.run("list", "-q")
            for cid in r.stdout.split():
                u.run("rm", "--force", cid)
        shutil.rmtree(top, ignore_errors=True)
        subprocess.run(["userdel", name], check=False, capture_output=True)
        subprocess.run(["groupdel", name], check=False, capture_output=True)


def rootless_bundle(user: User, args: list[str], edit=None) -> str:
    """`pyruntime spec --rootless` as the user, then our changes to its config."""
    b = user.owned_dir(f"bundle-{uuid.uuid4().hex[:6]}")
    r = user.run("spec", "--rootless", "--bundle", b)
    assert r.returncode == 0, r.stderr
    path = os.path.join(b, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg["root"] = {"path": user.rootfs, "readonly": False}
    if edit:
        edit(cfg)
    with open(path, "w") as f:
        json.dump(cfg, f)
    os.chmod(path, 0o644)
    return b


def test_rootless_container_is_root_only_inside(user):
    secret = os.path.join(user.top, f"secret-{uuid.uuid4().hex[:6]}")
    with open(secret, "w") as f:
        f.write("host secret\n")
    os.chmod(secret, 0o600)  # owned by the host's root

    def edit(cfg):
        cfg["mounts"].append({"destination": "/secret", "type": "bind", "source": secret,
                              "options": ["rbind", "ro"]})
    b = rootless_bundle(user, ["sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
                                           "cat /secret; echo rc=$?"], edit)
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    r = user.run("run", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0" and lines[1] == "0", r.stdout
    assert lines[2].split() == ["0", str(user.uid), "1"]
    assert lines[3].split() == ["0", str(user.gid), "1"]
    assert "host secret" not in r.stdout and lines[-1] == "rc=1"
    assert "Permission denied" in r.stderr
    assert os.listdir(user.state) == []  # run removed it; the state lives in XDG_RUNTIME_DIR


def test_rootless_lifecycle_list_state_delete(user):
    b = rootless_bundle(user, ["sleep", "1000"])
    cid = f"rl-{uuid.uuid4().hex[:8]}"
    r = user.run_detached("run", "-d", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    try:
        r = user.run("list", "--format", "json")
        assert r.returncode == 0, r.stderr
        items = json.loads(r.stdout)
        assert [(i["id"], i["status"], i["owner"]) for i in items] == [(cid, "running", user.name)]
        state = json.loads(user.run("state", cid).stdout)
        assert state["status"] == "running"
        with open(f"/proc/{state['pid']}/status") as f:  # really the user's on the host
            uids = [line.split()[1:] for line in f if line.startswith("Uid:")][0]
        assert uids == [str(user.uid)] * 4
        r = user.run("exec", cid, "id", "-u")
        assert r.returncode == 0 and r.stdout == "0\n", r.stderr
        from pyruntime.cgroups import detect_layout

        if detect_layout() != "unified":  # rootless on v1/hybrid: no cgroups, said clearly
            r = user.run("pause", cid)
            assert r.returncode != 0 and "cgroup" in r.stderr and r.stderr.count("\n") == 1
        r = user.run("delete", cid)
        assert r.returncode != 0 and "not stopped" in r.stderr
        r = user.run("kill", cid, "KILL")
        assert r.returncode == 0, r.stderr
        for _ in range(100):
            if json.loads(user.run("state", cid).stdout)["status"] == "stopped":
                break
            time.sleep(0.05)
        r = user.run("delete", cid)
        assert r.returncode == 0, r.stderr
        assert user.run("list", "-q").stdout == ""
        # what an unprivileged user cannot do is a clear error
        def no_userns(cfg):
            cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "user"]
            cfg["linux"].pop("uidMappings")
            cfg["linux"].pop("gidMappings")
        b2 = rootless_bundle(user, ["true"], no_userns)
        r = user.run("run", "--bundle", b2, f"rl-{uuid.uuid4().hex[:8]}")
        assert r.returncode != 0 and "require a user namespace" in r.stderr, r.stderr
        assert user.run("list", "-q").stdout == ""
    finally:
        user.run("delete", "--force", cid)


def test_rootless_several_id_ranges_through_newuidmap(user):
    if not shutil.which("newuidmap"):
        pytest.skip("newuidmap not installed (Debian's uidmap)")
    sub = None
    with open("/etc/subuid") as f:
        for line in f:
            n, start, count = line.strip().split(":")
            if n in (user.name, str(user.uid)):
                sub = (int(start), int(count))
    if sub is None:
        pytest.skip("useradd gave the user no /etc/subuid range")
    subg = None
    with open("/etc/subgid") as f:
        for line in f:
            n, start, count = line.strip().split(":")
            if n in (user.name, str(user.gid)):
                subg = (int(start), int(count))

    def edit(cfg):
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                       {"containerID": 1, "hostID": sub[0], "size": 1000}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                       {"containerID": 1, "hostID": subg[0], "size": 1000}]
    b = rootless_bundle(user, ["sh", "-c", "cat /proc/self/uid_map; cat /proc/self/setgroups"], edit)
    r = user.run("run", "--bundle", b, f"rl-{uuid.uuid4().hex[:8]}")
    assert r.returncode == 0, r.stderr
    lines = [x.split() for x in r.stdout.splitlines()]
    assert lines[:2] == [["0", str(user.uid), "1"], ["1", str(sub[0]), "1000"]]
    assert lines[2] == ["allow"]  # newgidmap: groups stay usable


def test_rootless_up_inspect_mountdev_stop_rm(user):
    from test_seed import tree_hash

    before = tree_hash(user.rootfs)
    r = user.run("up", user.rootfs, "--", "sh", "-c",
                 "id -u; cat /proc/self/uid_map; echo x > /etc/new; rm /bin/ls; cat /etc/new")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "0" and lines[1].split() == ["0", str(user.uid), "1"] and lines[2] == "x"
    assert tree_hash(user.rootfs) == before
    assert os.listdir(os.path.join(user.state, ".bundles")) == []

    cid = f"rl-{uuid.uuid4().hex[:8]}"
    r = user.run("up", "-d", "--name", cid, user.rootfs, "--", "sh", "-c", "echo hi > /hi; sleep 1000")
    assert r.returncode == 0 and r.stdout == cid + "\n", r.stderr
    try:
        info = json.loads(user.run("inspect", cid).stdout)
        pid = info["pid"]
        assert info["status"] == "running" and info["rootless"] is True
        assert info["namespaces"]["user"]["inode"] == os.stat(f"/proc/{pid}/ns/user").st_ino
        assert info["namespaces"]["user"]["host"] is False and info["namespaces"]["mnt"]["host"] is False
        assert pid in info["pids"]
        assert info["overlay"]["lower"] == user.rootfs
        bdir = info["bundle"]
        with open("/proc/self/mountinfo") as f:
            assert bdir not in f.read()  # the overlay is in the container's namespace only
        # hot-plug into a user-namespaced container: the host's node is bind-mounted
        r = user.run("mountdev", "/dev/null", "/dev/hot/null", cid)
        assert r.returncode == 0, r.stderr
        r = user.run("exec", cid, "sh", "-c", "echo x > /dev/hot/null && grep -c ' /dev/hot/null ' /proc/self/mountinfo")
        assert r.returncode == 0 and r.stdout == "1\n", r.stderr
        r = user.run("mountdev", "--remove", "/dev/null", "/dev/hot/null", cid)
        assert r.returncode == 0, r.stderr
        assert user.run("exec", cid, "test", "-e", "/dev/hot/null").returncode != 0
        r = user.run("stop", "--time", "0", cid)
        assert r.returncode == 0, r.stderr
        assert user.run("status", cid).stdout == "stopped\n"
        r = user.run("rm", cid)
        assert r.returncode == 0, r.stderr
        assert not os.path.exists(bdir)
        assert os.listdir(os.path.join(user.state, ".bundles")) == []
        assert tree_hash(user.rootfs) == before
        # what needs root says so
        r = user.run("up", "--rt-priority", "10", user.rootfs, "--", "true")
        assert r.returncode != 0 and "RLIMIT_RTPRIO" in r.stderr
    finally:
        user.run("rm", "-f", cid)
