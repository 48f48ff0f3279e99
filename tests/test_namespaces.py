"""Namespaces (issue 3): new ones differ from the host's, joining by path, user namespaces with
several id ranges, time namespace offsets, cgroup namespace, loopback, netDevices."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from test_lifecycle_util import (bundle, detached, public_bundle, remove_public_dirs, run_detached,
                                 wait_until)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

@pytest.fixture(autouse=True)
def _public_dirs():
    # autouse: set up before `rt`, so removed after rt's cleanup deleted the containers
    yield
    remove_public_dirs()


NS_FILES = ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts")
ALL_NS = ("pid", "network", "ipc", "uts", "mount", "cgroup", "time", "user")


def _host_ns() -> dict[str, str]:
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in NS_FILES}


def _ns_lines(text: str) -> dict[str, str]:
    out = {}
    for line in text.split():
        if ":[" in line:
            out[line.split(":", 1)[0]] = line
    return out


USERNS_MAPS = {
    "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1000},
                    {"containerID": 1000, "hostID": 300000, "size": 1},
                    {"containerID": 1001, "hostID": 101001, "size": 64535}],
    "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
}

NS_SCRIPT = "for n in " + " ".join(NS_FILES) + "; do readlink /proc/self/ns/$n; done"


def test_every_new_namespace_differs_from_the_host(rt, no_leaks):
    def edit(cfg):
        cfg["linux"]["namespaces"] = [{"type": t} for t in ALL_NS]
        cfg["linux"].update(USERNS_MAPS)
    b = public_bundle(rt, ["sh", "-c", NS_SCRIPT + "; cat /proc/self/uid_map /proc/self/gid_map; id -u"],
                      edit=edit)
    r = rt.run("run", "--bundle", b, rt.new_id())
    assert r.returncode == 0, r.stderr
    inside = _ns_lines(r.stdout)
    host = _host_ns()
    assert set(inside) == set(NS_FILES)
    for n in NS_FILES:
        assert inside[n] != host[n], n
    maps = [ln.split() for ln in r.stdout.splitlines() if ln.strip() and ":[" not in ln]
    assert maps[:3] == [["0", "100000", "1000"], ["1000", "300000", "1"], ["1001", "101001", "64535"]]
    assert maps[3] == ["0", "100000", "65536"]
    assert maps[4] == ["0"]


def test_only_the_listed_namespaces_are_new(rt, no_leaks):
    def edit(cfg):
        cfg["linux"]["namespaces"] = [{"type": "mount"}, {"type": "uts"}]
        cfg.pop("hostname", None)
    r = rt.run("run", "--bundle", bundle(rt, ["sh", "-c", NS_SCRIPT], edit=edit), rt.new_id())
    assert r.returncode == 0, r.stderr
    inside, host = _ns_lines(r.stdout), _host_ns()
    for n in NS_FILES:
        assert (inside[n] != host[n]) == (n in ("mnt", "uts")), n


def test_join_namespaces_by_path(rt, no_leaks):
    """A second container joins the first's net, ipc and uts namespaces by /proc/<pid>/ns
    and sees the same inodes (and the first's hostname)."""
    first = rt.new_id()

    def edit1(cfg):
        cfg["hostname"] = "first-box"
    run_detached(rt, bundle(rt, ["sleep", "1000"], edit=edit1), first)
    pid = rt.state(first)["pid"]
    want = {n: os.readlink(f"/proc/{pid}/ns/{n}") for n in ("net", "ipc", "uts", "pid", "mnt")}

    def edit2(cfg):
        cfg.pop("hostname", None)
        keep = [n for n in cfg["linux"]["namespaces"] if n["type"] not in ("network", "ipc", "uts")]
        cfg["linux"]["namespaces"] = keep + [
            {"type": "network", "path": f"/proc/{pid}/ns/net"},
            {"type": "ipc", "path": f"/proc/{pid}/ns/ipc"},
            {"type": "uts", "path": f"/proc/{pid}/ns/uts"}]
    r = rt.run("run", "--bundle", bundle(rt, ["sh", "-c", NS_SCRIPT + "; hostname"], edit=edit2),
               rt.new_id())
    assert r.returncode == 0, r.stderr
    inside = _ns_lines(r.stdout)
    for n in ("net", "ipc", "uts"):
        assert inside[n] == want[n], n
    for n in ("pid", "mnt"):
        assert inside[n] != want[n], n
    assert r.stdout.split()[-1] == "first-box"
    rt.run("delete", "--force", first, check=True)

    # a path that is not a namespace of that type: one clear error, nothing left
    def bad(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "ipc"] + [
            {"type": "ipc", "path": "/proc/self/ns/net"}]
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=bad), cid)
    assert r.returncode != 0 and "ipc" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.run("state", cid).returncode != 0


def test_join_user_namespace_by_path(rt, no_leaks):
    first = rt.new_id()

    def edit1(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"].update(USERNS_MAPS)
    run_detached(rt, public_bundle(rt, ["sleep", "1000"], edit=edit1), first)
    pid = rt.state(first)["pid"]

    def edit2(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                      if n["type"] not in ("network",)] + [
            {"type": "user", "path": f"/proc/{pid}/ns/user"},
            {"type": "network", "path": f"/proc/{pid}/ns/net"}]
    r = rt.run("run", "--bundle", public_bundle(rt, ["sh", "-c", "readlink /proc/self/ns/user; "
                                                    "cat /proc/self/uid_map; id -u"], edit=edit2),
               rt.new_id())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == os.readlink(f"/proc/{pid}/ns/user")
    assert lines[1].split() == ["0", "100000", "1000"] and lines[-1] == "0"
    rt.run("delete", "--force", first, check=True)


def test_time_namespace_offsets(rt, no_leaks):
    shift = 10 * 86400

    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "time"})
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": shift},
                                       "monotonic": {"secs": 2 * shift, "nanosecs": 5}}
    r = rt.run("run", "--bundle", bundle(rt, ["sh", "-c", "cat /proc/uptime; cat /proc/self/timens_offsets"],
                                         edit=edit), rt.new_id())
    assert r.returncode == 0, r.stderr
    with open("/proc/uptime") as f:
        host_up = float(f.read().split()[0])
    lines = r.stdout.splitlines()
    inside_up = float(lines[0].split()[0])
    assert abs(inside_up - host_up - shift) < 30, (inside_up, host_up)
    offs = {ln.split()[0]: ln.split()[1:] for ln in lines[1:]}
    assert offs["boottime"] == [str(shift), "0"] and offs["monotonic"] == [str(2 * shift), "5"]

    # offsets without a new time namespace: an error (runc: "time namespace not enabled")
    def no_ns(cfg):
        cfg["linux"]["timeOffsets"] = {"boottime": {"secs": 5}}
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=no_ns), cid)
    assert r.returncode != 0 and "time" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.run("state", cid).returncode != 0


def test_cgroup_namespace_root(rt, no_leaks):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "cgroup"})
    r = rt.run("run", "--bundle", bundle(rt, ["cat", "/proc/self/cgroup"], edit=edit), rt.new_id())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert "0::/" in lines, r.stdout
    # every hierarchy shows the container's cgroup as its root
    assert all(ln.rsplit(":", 1)[1] == "/" for ln in lines), r.stdout
    # without one, the full path is visible
    r = rt.run("run", "--bundle", bundle(rt, ["cat", "/proc/self/cgroup"]), rt.new_id())
    assert rt.cg_parent in r.stdout


def test_loopback_up_in_new_netns(rt, no_leaks):
    def edit(cfg):
        for k in ("bounding", "effective", "permitted"):
            cfg["process"]["capabilities"][k].append("CAP_NET_RAW")  # for ping
    r = rt.run("run", "--bundle", bundle(rt, ["sh", "-c", "cat /sys/class/net/lo/flags; ls /sys/class/net; "
                                             "ping -c1 -W2 127.0.0.1 >/dev/null && echo pinged"],
                                         edit=edit), rt.new_id())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert int(lines[0], 16) & 0x1, lines  # IFF_UP
    assert lines[1:] == ["lo", "pinged"]


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def veth():
    """A veth pair on the host (left down: no traffic); deleted afterwards if still there."""
    tag = uuid.uuid4().hex[:6]
    a, b = f"pyrtA{tag}", f"pyrtB{tag}"
    _ip("link", "add", a, "type", "veth", "peer", "name", b)
    try:
        yield a, b
    finally:
        for n in (a, b):
            if _ip("link", "show", n, check=False).returncode == 0:
                _ip("link", "del", n, check=False)


def test_net_devices_moved_renamed_addresses_kept(rt, no_leaks, veth):
    a, b = veth
    _ip("addr", "add", "192.0.2.10/24", "dev", a)
    _ip("addr", "add", "2001:db8::10/64", "dev", a, "nodad")
    _ip("addr", "add", "198.51.100.7/32", "dev", a, "scope", "link")
    _ip("link", "set", a, "mtu", "1400")

    def edit(cfg):
        cfg["linux"]["netDevices"] = {a: {"name": "ctr0"}}
    cid = rt.new_id()
    r = run_detached(rt, bundle(rt, ["sleep", "1000"], edit=edit), cid)
    pid = rt.state(cid)["pid"]
    assert _ip("link", "show", a, check=False).returncode != 0  # gone from the host
    r = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr", "show", "ctr0"],
                       capture_output=True, text=True, check=True)
    (link,) = json.loads(r.stdout)
    assert link["ifname"] == "ctr0" and link["mtu"] == 1400
    assert "UP" in link["flags"]
    addrs = {(x["local"], x["prefixlen"], x.get("scope")) for x in link["addr_info"]}
    assert ("192.0.2.10", 24, "global") in addrs
    assert ("2001:db8::10", 64, "global") in addrs
    # only global-scope addresses are carried over (spec)
    assert not any(x[0] == "198.51.100.7" for x in addrs), addrs
    rt.run("delete", "--force", cid, check=True)
    # the namespace is gone: a veth is destroyed with it (its peer too)
    assert wait_until(lambda: _ip("link", "show", b, check=False).returncode != 0)


def test_net_devices_errors(rt, no_leaks, veth):
    a, _b = veth
    cases = [
        ({a: {"name": "lo"}}, None, "'lo' already exists"),     # name taken inside
        ({"pyrt-none0": {}}, None, "pyrt-none0"),               # no such host device
        ({a: {}}, "no-netns", "network namespace"),             # nowhere to move it
    ]
    for devices, variant, expect in cases:
        def edit(cfg, devices=devices, variant=variant):
            cfg["linux"]["netDevices"] = devices
            if variant == "no-netns":
                cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"]
                                              if n["type"] != "network"]
        cid = rt.new_id()
        r = detached(rt, "run", "--bundle", bundle(rt, ["true"], edit=edit), cid)
        assert r.returncode != 0, (devices, variant)
        assert expect in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert rt.run("state", cid).returncode != 0
        if variant == "no-netns":
            assert _ip("link", "show", a, check=False).returncode == 0, "host device touched"


def test_net_devices_name_template(rt, no_leaks, veth):
    a, _b = veth

    def edit(cfg):
        cfg["linux"]["netDevices"] = {a: {"name": "eth%d"}}
    r = rt.run("run", "--bundle", bundle(rt, ["ls", "/sys/class/net"], edit=edit), rt.new_id())
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["eth0", "lo"]
