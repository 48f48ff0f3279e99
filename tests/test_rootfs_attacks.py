"""Hostile images and configs: nothing may be mounted or created outside the rootfs."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from test_rootfs_util import default_spec, idmap_supported, make_rootfs, run_in_container

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _mountinfo(text: str) -> dict[str, dict]:
    out = {}
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        a, b = left.split(), right.split()
        out[a[4]] = {"root": a[3], "opts": set(a[5].split(",")), "fstype": b[0]}
    return out


def _mi():
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.fixture
def rootfs(tmp_path):
    return make_rootfs(tmp_path)


def _spec_with(*mounts, **over):
    spec = default_spec(**over)
    spec["mounts"] = spec["mounts"] + list(mounts)
    return spec


MARK = f"pyruntime-attack-{os.getpid()}"


@pytest.mark.parametrize("no_pivot", [False, True])
@pytest.mark.parametrize("userns", [False, True])
def test_destination_symlink_to_host_etc(rootfs, tmp_path, userns, no_pivot):
    os.symlink("/etc", rootfs / "mnt")
    src = tmp_path / "payload"
    src.write_text("payload\n")
    spec = _spec_with({"destination": f"/mnt/{MARK}", "type": "tmpfs", "source": "tmpfs"},
                      {"destination": f"/mnt/{MARK}-file", "type": "bind", "source": str(src), "options": ["bind"]})

    def probe():
        return {"mi": _mi(), "f": open(f"/etc/{MARK}-file").read()}

    res = run_in_container(rootfs, spec, fn=probe, userns=userns, no_pivot=no_pivot)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert mi[f"/etc/{MARK}"]["fstype"] == "tmpfs"
    assert f"/etc/{MARK}-file" in mi and res.out["f"] == "payload\n"
    assert (rootfs / "etc" / MARK).is_dir()
    assert not os.path.exists(f"/etc/{MARK}") and not os.path.exists(f"/etc/{MARK}-file")


def test_relative_symlink_escape_and_dotdot(rootfs):
    os.symlink("../../../../../../../../tmp", rootfs / "rel")
    spec = _spec_with({"destination": f"/rel/{MARK}", "type": "tmpfs", "source": "tmpfs"},
                      {"destination": f"/../../../../tmp/{MARK}-2", "type": "tmpfs", "source": "tmpfs"},
                      {"destination": f"dir/../../../{MARK}-3", "type": "tmpfs", "source": "tmpfs"})
    res = run_in_container(rootfs, spec, fn=_mi)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert f"/tmp/{MARK}" in mi and f"/tmp/{MARK}-2" in mi and f"/{MARK}-3" in mi
    for p in (f"/tmp/{MARK}", f"/tmp/{MARK}-2", f"/{MARK}-3"):
        assert not os.path.exists(p)


@pytest.mark.parametrize("name", ["proc", "dev"])
def test_symlinked_proc_or_dev_refused(rootfs, name):
    shutil.rmtree(rootfs / name)
    os.symlink("/" + name, rootfs / name)
    res = run_in_container(rootfs, default_spec(), fn=_mi)
    assert res.error == f"rootfs /{name} is a symlink: refusing to use it"


def test_sys_through_symlink_refused(rootfs):
    shutil.rmtree(rootfs / "sys")
    os.mkdir(rootfs / "realsys")
    os.symlink("realsys", rootfs / "sys")
    res = run_in_container(rootfs, default_spec(), fn=_mi)
    assert res.error is not None and "must be mounted on an ordinary directory" in res.error


def test_proc_file_is_refused(rootfs):
    os.rmdir(rootfs / "proc")
    (rootfs / "proc").write_text("")
    res = run_in_container(rootfs, default_spec(), fn=_mi)
    assert res.error is not None and "/proc is not a directory" in res.error


@pytest.mark.parametrize("no_pivot", [False, True])
def test_masked_and_readonly_symlink_stay_inside(rootfs, no_pivot):
    (rootfs / "etc" / "secret").write_text("container secret\n")
    (rootfs / "etc" / "secretdir").mkdir()
    (rootfs / "etc" / "secretdir" / "x").write_text("x")
    os.symlink("/etc/hostname", rootfs / "maskme")  # the host has an /etc/hostname too
    os.symlink("../../../../../../etc/secret", rootfs / "maskme2")
    os.symlink("/etc/secretdir", rootfs / "rome")
    spec = default_spec()
    spec["linux"]["maskedPaths"] = spec["linux"]["maskedPaths"] + ["/maskme", "/maskme2", "/does/not/exist"]
    spec["linux"]["readonlyPaths"] = spec["linux"]["readonlyPaths"] + ["/rome", "/nope"]

    def probe():
        return {"mi": _mi(), "hostname": open("/etc/hostname").read(), "secret": open("/etc/secret").read(),
                "ls": os.listdir("/etc/secretdir")}

    res = run_in_container(rootfs, spec, fn=probe, no_pivot=no_pivot)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert res.out["hostname"] == "" and res.out["secret"] == ""
    assert mi["/etc/hostname"]["root"] == "/null"
    assert "ro" in mi["/etc/secretdir"]["opts"]
    assert res.out["ls"] == ["x"]


def test_fake_dev_null_not_used_for_masking(rootfs):
    # /dev is the image's own directory (no /dev mount) and the image ships /dev/null as a
    # symlink to a file it wants to get mounted read-write somewhere: refuse.
    os.symlink("/proc/sys/kernel/core_pattern", rootfs / "dev" / "null")
    spec = default_spec()
    spec["mounts"] = [m for m in spec["mounts"] if not m["destination"].startswith("/dev")]
    res = run_in_container(rootfs, spec, fn=_mi)
    assert res.error is not None and "/dev/null is not the null device" in res.error


def test_device_path_through_symlink_stays_inside(rootfs):
    spec = default_spec()
    spec["mounts"] = [m for m in spec["mounts"] if not m["destination"].startswith("/dev")]
    os.symlink("/etc", rootfs / "dev" / "sub")
    spec["linux"]["devices"] = [{"path": f"/dev/sub/{MARK}", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}]
    res = run_in_container(rootfs, spec, fn=lambda: stat.S_ISCHR(os.stat(f"/etc/{MARK}").st_mode))
    assert res.error is None, (res.error, res.err)
    assert res.out is True
    assert not os.path.exists(f"/etc/{MARK}")


def test_tmpcopyup_does_not_follow_symlinks(rootfs, tmp_path):
    (rootfs / "data").mkdir()
    os.symlink("/etc/shadow", rootfs / "data" / "shadow")
    spec = _spec_with({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]})
    res = run_in_container(rootfs, spec, fn=lambda: os.readlink("/data/shadow"))
    assert res.error is None, (res.error, res.err)
    assert res.out == "/etc/shadow"


# --- idmapped mounts ---------------------------------------------------------------------------


@pytest.fixture
def idmap_ok(tmp_path):
    if not idmap_supported(tmp_path):
        pytest.skip("the filesystem of the test directory does not take idmapped mounts")


def _owners(paths):
    def probe():
        return {p: [os.stat(p).st_uid, os.stat(p).st_gid] for p in paths}
    return probe


def test_idmapped_bind_shows_mapped_owners(rootfs, tmp_path, idmap_ok):
    # runc 1.2 semantics: the mount's user namespace has the mappings as given, so a file owned
    # by containerID on disk shows as hostID
    src = tmp_path / "vol"
    src.mkdir()
    (src / "f").write_text("x")
    (src / "g").write_text("y")
    os.chown(src / "g", 5003, 6003)
    spec = _spec_with({"destination": "/vol", "type": "bind", "source": str(src), "options": ["rbind", "idmap"],
                       "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                       "gidMappings": [{"containerID": 0, "hostID": 1001, "size": 1}]},
                      {"destination": "/vol2", "type": "bind", "source": str(src), "options": ["rbind", "ro"],
                       "uidMappings": [{"containerID": 5000, "hostID": 1000, "size": 10}],
                       "gidMappings": [{"containerID": 6000, "hostID": 2000, "size": 10}]})

    def probe():
        return {"o": _owners(["/vol/f", "/vol", "/vol/g", "/vol2/g"])(), "mi": _mi()}

    res = run_in_container(rootfs, spec, fn=probe)
    assert res.error is None, (res.error, res.err)
    o = res.out["o"]
    assert o["/vol/f"] == [1000, 1001] and o["/vol"] == [1000, 1001]
    assert o["/vol/g"] == [65534, 65534]  # unmapped
    assert o["/vol2/g"] == [1003, 2003]
    mi = _mountinfo(res.out["mi"])
    assert "idmapped" in mi["/vol"]["opts"]
    assert {"idmapped", "ro"} <= mi["/vol2"]["opts"]
    assert os.stat(src / "f").st_uid == 0  # host view unchanged


def test_ridmap_applies_to_submounts(rootfs, tmp_path, idmap_ok):
    src = tmp_path / "vol"
    (src / "sub").mkdir(parents=True)

    def before(_r):
        from pyruntime.linux import syscalls as sc

        sc.mount("tmpfs", str(src / "sub"), "tmpfs", 0)

    m = {"destination": "/vol", "type": "bind", "source": str(src),
         "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}
    spec = _spec_with(dict(m, options=["rbind", "ridmap"]), dict(m, destination="/vol2", options=["rbind", "idmap"]))
    res = run_in_container(rootfs, spec, fn=_owners(["/vol", "/vol/sub", "/vol2", "/vol2/sub"]), before=before)
    assert res.error is None, (res.error, res.err)
    assert res.out["/vol"] == res.out["/vol/sub"] == [1000, 1000]
    assert res.out["/vol2"] == [1000, 1000] and res.out["/vol2/sub"] == [0, 0]


def test_idmap_without_mappings_uses_container_maps(rootfs, tmp_path, idmap_ok):
    src = tmp_path / "vol"
    src.mkdir()
    spec = _spec_with({"destination": "/vol", "type": "bind", "source": str(src), "options": ["rbind", "idmap"]})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    res = run_in_container(rootfs, spec, fn=_owners(["/vol"]))
    assert res.error is None, (res.error, res.err)
    assert res.out["/vol"] == [100000, 100000]


def test_idmap_in_userns_needs_premade_fds(rootfs, tmp_path, idmap_ok):
    from pyruntime.linux import rootfs as rf
    from pyruntime.spec.model import Spec, build

    src = tmp_path / "vol"
    src.mkdir()
    (src / "f").write_text("x")
    os.chown(src / "f", 7, 8)
    spec = _spec_with({"destination": "/vol", "type": "bind", "source": str(src), "options": ["rbind"],
                       "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1000}],
                       "gidMappings": [{"containerID": 0, "hostID": 2000, "size": 1000}]})
    # made inside the user namespace, the kernel refuses (the ext4 mount is not its own)
    res = run_in_container(rootfs, spec, fn=_owners(["/vol/f"]), userns=True)
    assert res.error == f"mount {src} to /vol (bind): set idmap: operation not permitted"
    # made by the runtime before unsharing: works
    fds = rf.open_idmapped_mounts(build(Spec, spec), bundle=str(tmp_path))
    try:
        assert list(fds) == [len(spec["mounts"]) - 1]
        res = run_in_container(rootfs, spec, fn=_owners(["/vol/f"]), userns=True, mount_fds=fds)
    finally:
        for fd in fds.values():
            os.close(fd)
    assert res.error is None, (res.error, res.err)
    assert res.out["/vol/f"] == [1007, 2008]


def test_idmap_error_is_one_line(rootfs, tmp_path):
    spec = _spec_with({"destination": "/vol", "type": "bind", "source": str(tmp_path), "options": ["rbind", "idmap"]})
    res = run_in_container(rootfs, spec, fn=_mi)
    assert res.error == f"mount {tmp_path} to /vol (bind): idmapped mount needs uidMappings and gidMappings"
