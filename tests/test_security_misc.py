"""Capabilities, cgroupfs and user parsing: CVE-2022-29162, CVE-2023-25809, CVE-2026-30892."""

from __future__ import annotations

import os

import pytest

from test_lifecycle_util import public_bundle, remove_public_dirs, run_detached
from test_security_util import files, no_leaks_here, one_line_error

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def _caps(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, _, v in (line.partition(":\t") for line in text.splitlines())
            if k.startswith("Cap")}


@pytest.mark.parametrize("user", ["0:0", "1000:1000"])
def test_exec_cap_never_inheritable_or_ambient(rt, no_leaks_here, user):
    """CVE-2022-29162: `exec --cap` put the capability in the inheritable set, so a non-root
    process exec'ing a file with inheritable file capabilities gained it. Only bounding,
    effective and permitted may get it; inheritable and ambient stay empty."""
    cid = rt.new_id()
    b = rt.bundle(["sleep", "1000"])
    os.chmod(os.path.join(b, "rootfs"), 0o755)
    run_detached(rt, b, cid)
    r = files(rt, "exec", "-u", user, "--cap", "CAP_NET_ADMIN", "--cap", "SYS_ADMIN", cid,
              "grep", "^Cap", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    caps = _caps(r.stdout)
    assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, r.stdout
    assert caps["CapBnd"] & (1 << CAP_NET_ADMIN) and caps["CapBnd"] & (1 << CAP_SYS_ADMIN), r.stdout
    if user == "0:0":
        assert caps["CapEff"] & (1 << CAP_NET_ADMIN) and caps["CapEff"] & (1 << CAP_SYS_ADMIN), r.stdout
    else:  # a non-root user keeps nothing across its execve (no inheritable, no ambient)
        assert caps["CapPrm"] == 0 and caps["CapEff"] == 0, r.stdout
    rt.run("delete", "--force", cid, check=True)


BAD_USERS = ("1000:abc", "0 ", " 0", "-1", "1000:1000:1", "4294967295", "0:4294967295", "1e3",
             "0x0", "+0", "٠", "0\n", ":", "0:", ":0", "root")


def test_exec_user_parsed_strictly(rt, no_leaks_here):
    """CVE-2026-30892: `exec -u` accepted malformed ids (trailing junk, signs, overflow, a third
    field) and ran the process as an unintended user (often root). Each is refused with one
    line, and nothing runs."""
    cid = rt.new_id()
    b = rt.bundle(["sleep", "1000"])
    os.chmod(os.path.join(b, "rootfs"), 0o755)
    run_detached(rt, b, cid)
    for i, bad in enumerate(BAD_USERS):
        r = files(rt, "exec", "-u", bad, cid, "touch", f"/tmp/ran-{i}")
        err = one_line_error(r)
        assert "user" in err, (bad, err)
        assert not os.path.exists(os.path.join(b, "rootfs", "tmp", f"ran-{i}")), f"-u {bad!r} ran the process"
    r = files(rt, "exec", "-u", "1000:1000", cid, "sh", "-c", "id -u; id -g")
    assert r.returncode == 0 and r.stdout.split() == ["1000", "1000"], (r.stdout, r.stderr)
    rt.run("delete", "--force", cid, check=True)


@pytest.fixture
def public():
    yield
    remove_public_dirs()


def _cgroup_mounts(mountinfo: str) -> list[tuple[str, set[str], str]]:
    out = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        a, b = left.split(), right.split()
        if b and b[0] in ("cgroup", "cgroup2"):
            out.append((a[4], set(a[5].split(",")), b[0]))
    return out


@pytest.mark.parametrize("netns", [True, False])
@pytest.mark.parametrize("cgroup_mount", [True, False])
def test_userns_without_cgroupns_gets_readonly_cgroupfs(rt, no_leaks_here, public, netns, cgroup_mount):
    """CVE-2023-25809: a container in a user namespace without a cgroup namespace has the host's
    cgroup hierarchies bound in (the `cgroup` mount, or the rbind of /sys when sysfs cannot be
    mounted without a network namespace): they must be read-only even when the config does not
    say `ro`, or a rootless container rewrites its delegated cgroups."""
    def edit(cfg):
        linux = cfg["linux"]
        linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] not in ("cgroup", "network")]
        linux["namespaces"].append({"type": "user"})
        if netns:
            linux["namespaces"].append({"type": "network"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": 220000, "size": 65536}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": 220000, "size": 65536}]
        mounts = []
        for m in cfg["mounts"]:
            if m["destination"] == "/sys/fs/cgroup" and not cgroup_mount:
                continue
            if m["destination"] in ("/sys", "/sys/fs/cgroup"):
                m["options"] = [o for o in m["options"] if o != "ro"]
            mounts.append(m)
        cfg["mounts"] = mounts
        cfg["process"]["args"] = ["cat", "/proc/self/mountinfo"]
    b = public_bundle(rt, edit=edit)
    cid = rt.new_id()
    r = rt.run("run", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    cg = _cgroup_mounts(r.stdout)
    if netns and not cgroup_mount:
        assert cg == [], cg  # sysfs of its own: no hierarchy at all
        return
    assert cg, r.stdout  # the host's hierarchies are there...
    assert [m for m in cg if "ro" not in m[1]] == [], cg  # ...read-only
