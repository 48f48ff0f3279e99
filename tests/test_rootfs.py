"""prepare_rootfs / pivot_root / finalize_rootfs in a forked child with its own namespaces."""

from __future__ import annotations

import os
import re
import stat

import pytest

from pyruntime.linux import syscalls as sc
from pyruntime.linux.mounts import parse_options
from test_rootfs_util import default_spec, make_rootfs, run_in_container

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _mountinfo(text: str) -> dict[str, dict]:
    out = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        a = left.split()
        b = right.split()
        out[a[4]] = {"root": a[3], "opts": set(a[5].split(",")), "optional": a[6:], "fstype": b[0],
                     "source": b[1], "super": set(b[2].split(","))}
    return out


def _fn_mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read()


@pytest.fixture
def rootfs(tmp_path):
    return make_rootfs(tmp_path)


def _devinfo():
    out = {}
    for name in sorted(os.listdir("/dev")):
        st = os.lstat("/dev/" + name)
        out[name] = {"mode": st.st_mode, "rdev": [os.major(st.st_rdev), os.minor(st.st_rdev)],
                     "uid": st.st_uid, "gid": st.st_gid,
                     "link": os.readlink("/dev/" + name) if stat.S_ISLNK(st.st_mode) else None}
    return out


def _check_default_view(res, userns: bool):
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mountinfo"])
    assert mi["/"]["opts"] >= {"ro"}
    assert mi["/proc"]["fstype"] == "proc"
    assert mi["/dev"]["fstype"] == "tmpfs" and "nosuid" in mi["/dev"]["opts"]
    assert "mode=755" in mi["/dev"]["super"] and "size=65536k" in mi["/dev"]["super"]
    assert mi["/dev/pts"]["fstype"] == "devpts" and {"nosuid", "noexec"} <= mi["/dev/pts"]["opts"]
    assert {"gid=5", "mode=620", "ptmxmode=666"} <= mi["/dev/pts"]["super"]
    assert mi["/dev/shm"]["fstype"] == "tmpfs" and {"nosuid", "nodev", "noexec"} <= mi["/dev/shm"]["opts"]
    assert mi["/dev/mqueue"]["fstype"] == "mqueue"
    assert mi["/sys"]["fstype"] == "sysfs" and {"ro", "nosuid", "nodev", "noexec"} <= mi["/sys"]["opts"]
    assert mi["/sys/fs/cgroup"]["fstype"] in ("tmpfs", "cgroup2")
    # readonly paths / masked paths
    for p in ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"):
        assert "ro" in mi[p]["opts"], p
    assert mi["/proc/acpi"]["fstype"] == "tmpfs" and "ro" in mi["/proc/acpi"]["opts"]
    assert mi["/proc/keys"]["root"] == "/null"
    assert mi["/sys/firmware"]["fstype"] == "tmpfs"
    dev = res.out["dev"]
    for name, (ma, mi_) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                            "urandom": (1, 9), "tty": (5, 0)}.items():
        assert stat.S_ISCHR(dev[name]["mode"]), name
        assert dev[name]["rdev"] == [ma, mi_], name
        assert stat.S_IMODE(dev[name]["mode"]) == 0o666, name
        if userns:
            assert mi["/dev/" + name]["root"] == "/" + name  # bind-mounted host node
        else:
            assert "/dev/" + name not in mi
    assert dev["ptmx"]["link"] == "pts/ptmx"
    assert dev["fd"]["link"] == "/proc/self/fd"
    assert dev["stdin"]["link"] == "/proc/self/fd/0"
    assert dev["stdout"]["link"] == "/proc/self/fd/1"
    assert dev["stderr"]["link"] == "/proc/self/fd/2"
    assert "console" not in dev


def _default_probe():
    return {"mountinfo": _fn_mountinfo(), "dev": _devinfo(), "cwd": os.getcwd()}


def test_default_bundle(rootfs):
    res = run_in_container(rootfs, default_spec(), fn=_default_probe)
    _check_default_view(res, userns=False)
    assert res.out["cwd"] == "/"


def test_default_bundle_userns(rootfs):
    res = run_in_container(rootfs, default_spec(), fn=_default_probe, userns=True)
    _check_default_view(res, userns=True)


def test_default_bundle_exec_busybox(rootfs):
    res = run_in_container(rootfs, default_spec(), argv=["sh", "-c", "echo hi > /dev/null; ls /dev/pts; "
                                                           "touch /x 2>&1; touch /dev/shm/y && echo shm-ok"])
    assert res.error is None, (res.error, res.err)
    assert "ptmx" in res.out
    assert "Read-only file system" in res.out
    assert "shm-ok" in res.out


def test_sysfs_userns_without_netns_falls_back_to_rbind(rootfs):
    res = run_in_container(rootfs, default_spec(), fn=_fn_mountinfo, userns=True, netns=False)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert mi["/sys"]["fstype"] == "sysfs"
    assert "ro" in mi["/sys"]["opts"]
    # the host's submounts came along with the rbind and are read-only too
    subs = [p for p in mi if p.startswith("/sys/") and p != "/sys/firmware"]
    assert subs
    assert all("ro" in mi[p]["opts"] for p in subs if not p.startswith("/sys/fs/cgroup"))


def test_terminal_creates_console(rootfs):
    spec = default_spec()
    spec["process"]["terminal"] = True
    res = run_in_container(rootfs, spec, fn=_devinfo)
    assert res.error is None, (res.error, res.err)
    assert stat.S_ISREG(res.out["console"]["mode"])


def test_cwd_created(rootfs):
    spec = default_spec()
    spec["process"]["cwd"] = "/work/dir"
    res = run_in_container(rootfs, spec, fn=os.getcwd)
    assert res.error is None
    assert (rootfs / "work" / "dir").is_dir()


# --- cgroup ----------------------------------------------------------------------------------

_MEMCG = "/sys/fs/cgroup/memory"


@pytest.mark.skipif(not os.path.exists(_MEMCG + "/memory.limit_in_bytes"), reason="no cgroup v1 memory")
def test_cgroup_v1_shows_own_cgroup(rootfs, tmp_path):
    cg = f"{_MEMCG}/pyruntime-test-{os.getpid()}"
    os.mkdir(cg)
    try:
        with open(cg + "/memory.limit_in_bytes", "w") as f:
            f.write("123456789")

        def before(_rootfs):
            with open(cg + "/cgroup.procs", "w") as f:
                f.write("0")

        def probe():
            with open("/sys/fs/cgroup/memory/memory.limit_in_bytes") as f:
                limit = f.read().strip()
            return {"limit": limit, "mountinfo": _fn_mountinfo(), "ls": sorted(os.listdir("/sys/fs/cgroup"))}

        res = run_in_container(rootfs, default_spec(), fn=probe, before=before)
        assert res.error is None, (res.error, res.err)
        assert res.out["limit"] == str(123456789 // 4096 * 4096)
        mi = _mountinfo(res.out["mountinfo"])
        assert mi["/sys/fs/cgroup/memory"]["root"].endswith(f"/pyruntime-test-{os.getpid()}")
        assert {"ro", "nosuid", "nodev", "noexec"} <= mi["/sys/fs/cgroup/memory"]["opts"]
        assert "memory" in res.out["ls"] and "unified" not in res.out["ls"]
    finally:
        os.rmdir(cg)


# --- mounts and options ------------------------------------------------------------------------


def _spec_with(*mounts, **over):
    spec = default_spec(**over)
    spec["mounts"] = spec["mounts"] + list(mounts)
    return spec


def test_bind_ro_and_flags(rootfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("data")
    spec = _spec_with({"destination": "/mnt/a", "type": "bind", "source": str(src),
                       "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "noatime"]},
                      {"destination": "/mnt/file", "type": "none", "source": str(src / "f"),
                       "options": ["bind", "ro"]})

    def probe():
        return {"mi": _fn_mountinfo(), "f": open("/mnt/a/f").read(), "g": open("/mnt/file").read()}

    res = run_in_container(rootfs, spec, fn=probe)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert {"ro", "nosuid", "nodev", "noexec", "noatime"} <= mi["/mnt/a"]["opts"]
    assert "ro" in mi["/mnt/file"]["opts"]
    assert res.out["f"] == res.out["g"] == "data"
    assert (rootfs / "mnt" / "file").is_file()


def test_bind_relative_source_and_destination(rootfs, tmp_path):
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "hello").write_text("rel")
    spec = _spec_with({"destination": "data/vol", "type": "bind", "source": "vol", "options": ["bind"]},
                      {"destination": "run/test", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]})

    def probe():
        return {"mi": _fn_mountinfo(), "hello": open("/data/vol/hello").read()}

    res = run_in_container(rootfs, spec, fn=probe, bundle=str(tmp_path))
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert res.out["hello"] == "rel"
    assert mi["/run/test"]["fstype"] == "tmpfs" and "size=1024k" in mi["/run/test"]["super"]


def test_bind_userns_keeps_locked_flags(rootfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()

    def host_before():
        from pyruntime.linux import syscalls as sc

        # a nosuid,nodev,noatime source: in the user namespace those flags are locked
        sc.mount("tmpfs", str(src), "tmpfs", sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOATIME)

    spec = _spec_with({"destination": "/mnt", "type": "bind", "source": str(src), "options": ["rbind", "ro"]},
                      {"destination": "/mnt2", "type": "bind", "source": str(src), "options": ["bind", "rw", "exec"]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, userns=True, host_before=host_before)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert {"ro", "nosuid", "nodev", "noatime"} <= mi["/mnt"]["opts"]
    assert {"rw", "nosuid", "nodev", "noatime"} <= mi["/mnt2"]["opts"]
    # without a user namespace the remount sets exactly what was asked
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, host_before=host_before)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert "ro" in mi["/mnt"]["opts"] and "nosuid" not in mi["/mnt"]["opts"]


def test_tmpfs_options_and_mode_of_existing_dir(rootfs):
    (rootfs / "opt").mkdir()
    os.chmod(rootfs / "opt", 0o710)
    spec = _spec_with({"destination": "/opt", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "strictatime", "ro", "size=2m"]},
                      {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                       "options": ["mode=700", "nodiratime", "sync", "dirsync", "lazytime"]})

    def probe():
        return {"mi": _fn_mountinfo(), "mode": stat.S_IMODE(os.stat("/opt").st_mode),
                "run": stat.S_IMODE(os.stat("/run").st_mode)}

    res = run_in_container(rootfs, spec, fn=probe)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert {"ro", "nosuid", "nodev", "noexec"} <= mi["/opt"]["opts"]
    assert "relatime" not in mi["/opt"]["opts"]
    assert res.out["mode"] == 0o710
    assert res.out["run"] == 0o700
    assert "nodiratime" in mi["/run"]["opts"]
    assert {"sync", "dirsync", "lazytime"} <= mi["/run"]["super"]


def test_tmpcopyup(rootfs):
    base = rootfs / "srv"
    (base / "sub").mkdir(parents=True)
    (base / "a.txt").write_text("A")
    (base / "sub" / "b.txt").write_text("B")
    os.chmod(base / "sub" / "b.txt", 0o640)
    os.chown(base / "sub" / "b.txt", 1000, 1000)
    os.symlink("a.txt", base / "link")
    spec = _spec_with({"destination": "/srv", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "nosuid"]})

    def probe():
        st = os.stat("/srv/sub/b.txt")
        with open("/srv/a.txt", "a") as f:
            f.write("changed")
        return {"mi": _fn_mountinfo(), "a": open("/srv/a.txt").read(), "b": open("/srv/sub/b.txt").read(),
                "link": os.readlink("/srv/link"), "bmode": stat.S_IMODE(st.st_mode), "buid": st.st_uid}

    res = run_in_container(rootfs, spec, fn=probe)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert mi["/srv"]["fstype"] == "tmpfs"
    assert res.out["a"] == "Achanged" and res.out["b"] == "B" and res.out["link"] == "a.txt"
    assert res.out["bmode"] == 0o640 and res.out["buid"] == 1000
    assert (base / "a.txt").read_text() == "A"  # the image is untouched


def test_rro_makes_submounts_readonly(rootfs, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)

    def before(_r):
        from pyruntime.linux import syscalls as sc

        sc.mount("tmpfs", str(src / "sub"), "tmpfs", 0)

    spec = _spec_with({"destination": "/m1", "type": "bind", "source": str(src), "options": ["rbind", "rro"]},
                      {"destination": "/m2", "type": "bind", "source": str(src), "options": ["rbind", "ro"]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, before=before)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert "ro" in mi["/m1"]["opts"] and "ro" in mi["/m1/sub"]["opts"]
    assert "ro" in mi["/m2"]["opts"] and "rw" in mi["/m2/sub"]["opts"]


@pytest.mark.parametrize("opt,flag", [("rnosuid", "nosuid"), ("rnodev", "nodev"), ("rnoexec", "noexec"),
                                      ("rnoatime", "noatime"), ("rnosymfollow", "nosymfollow")])
def test_recursive_attrs(rootfs, tmp_path, opt, flag):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)

    def before(_r):
        from pyruntime.linux import syscalls as sc

        sc.mount("tmpfs", str(src / "sub"), "tmpfs", 0)

    spec = _spec_with({"destination": "/m", "type": "bind", "source": str(src), "options": ["rbind", opt]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, before=before)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert flag in mi["/m"]["opts"] and flag in mi["/m/sub"]["opts"]


def test_nosymfollow_and_propagation(rootfs, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    spec = _spec_with({"destination": "/m", "type": "bind", "source": str(src),
                       "options": ["bind", "nosymfollow", "shared"]},
                      {"destination": "/p", "type": "tmpfs", "source": "tmpfs", "options": ["private"]},
                      {"destination": "/u", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert "nosymfollow" in mi["/m"]["opts"]
    assert any(o.startswith("shared:") for o in mi["/m"]["optional"])
    assert not mi["/p"]["optional"]
    assert "unbindable" in mi["/u"]["optional"]


def test_rootfs_propagation_shared(rootfs):
    res = run_in_container(rootfs, default_spec(linux={"rootfsPropagation": "shared"}), fn=_fn_mountinfo)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert any(o.startswith("shared:") for o in mi["/"]["optional"])


@pytest.mark.parametrize("prop", ["private", "rprivate", "slave", "rslave", "unbindable", "runbindable"])
def test_rootfs_propagation_modes(rootfs, prop):
    res = run_in_container(rootfs, default_spec(linux={"rootfsPropagation": prop}), fn=_fn_mountinfo)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    if prop == "unbindable":
        assert "unbindable" in mi["/"]["optional"]
    else:
        assert not any(o.startswith("shared:") for o in mi["/"]["optional"])


def test_readonly_root_keeps_nosuid(rootfs):
    def before(r):
        from pyruntime.linux import syscalls as sc

        sc.mount(r, r, None, sc.MS_BIND)
        sc.mount(None, r, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_NOSUID | sc.MS_NODEV)

    res = run_in_container(rootfs, default_spec(), fn=_fn_mountinfo, before=before)
    assert res.error is None, (res.error, res.err)
    assert {"ro", "nosuid", "nodev"} <= _mountinfo(res.out)["/"]["opts"]
    res = run_in_container(rootfs, default_spec(), fn=_fn_mountinfo, before=before, userns=True)
    assert res.error is None, (res.error, res.err)
    assert {"ro", "nosuid", "nodev"} <= _mountinfo(res.out)["/"]["opts"]


def test_devices(rootfs):
    spec = default_spec()
    spec["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o620, "uid": 7, "gid": 8},
        {"path": "/dev/sub/loopx", "type": "b", "major": 7, "minor": 200, "fileMode": 0o600},
        {"path": "/dev/fifo", "type": "p", "fileMode": 0o644},
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
    ]

    def probe():
        out = {}
        for p in ("/dev/fuse", "/dev/sub/loopx", "/dev/fifo", "/dev/null", "/dev/zero"):
            st = os.lstat(p)
            out[p] = [st.st_mode, os.major(st.st_rdev), os.minor(st.st_rdev), st.st_uid, st.st_gid]
        return out

    res = run_in_container(rootfs, spec, fn=probe)
    assert res.error is None, (res.error, res.err)
    o = res.out
    assert o["/dev/fuse"] == [stat.S_IFCHR | 0o620, 10, 229, 7, 8]
    assert o["/dev/sub/loopx"] == [stat.S_IFBLK | 0o600, 7, 200, 0, 0]
    assert o["/dev/fifo"][0] == stat.S_IFIFO | 0o644
    assert o["/dev/null"][0] == stat.S_IFCHR | 0o600
    assert o["/dev/zero"][:3] == [stat.S_IFCHR | 0o666, 1, 5]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this host")
def test_devices_userns_bind(rootfs):
    spec = default_spec()
    spec["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o666}]

    def probe():
        st = os.stat("/dev/fuse")
        return [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev), _fn_mountinfo()]

    res = run_in_container(rootfs, spec, fn=probe, userns=True)
    assert res.error is None, (res.error, res.err)
    assert res.out[:3] == [True, 10, 229]
    assert "/dev/fuse" in _mountinfo(res.out[3])


def test_dev_bind_mount_skips_device_setup(rootfs, tmp_path):
    devdir = tmp_path / "devdir"
    devdir.mkdir()
    spec = default_spec()
    spec["mounts"] = [m for m in spec["mounts"] if not m["destination"].startswith("/dev")]
    spec["mounts"].append({"destination": "/dev", "type": "bind", "source": str(devdir), "options": ["rbind"]})
    res = run_in_container(rootfs, spec, fn=lambda: sorted(os.listdir("/dev")))
    # files are masked with the container's /dev/null: there is none
    assert re.fullmatch(r"mask /proc/\w+: /dev/null is missing in the container", res.error or ""), res.error
    spec["linux"]["maskedPaths"] = ["/proc/acpi"]
    res = run_in_container(rootfs, spec, fn=lambda: sorted(os.listdir("/dev")))
    assert res.error is None, (res.error, res.err)
    assert res.out == []


def test_no_pivot(rootfs):
    res = run_in_container(rootfs, default_spec(), fn=_default_probe, no_pivot=True)
    _check_default_view(res, userns=False)


def test_mqueue_and_devpts_types(rootfs):
    res = run_in_container(rootfs, default_spec(), argv=["sh", "-c", "ls -ld /dev/mqueue /dev/pts"])
    assert res.error is None
    assert "/dev/mqueue" in res.out


# --- errors --------------------------------------------------------------------------------


def test_error_line_unknown_fstype(rootfs):
    spec = _spec_with({"destination": "/run/test", "type": "nosuchfs", "source": "/x"})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo)
    assert res.error == "mount /x to /run/test (nosuchfs): no such device"


def test_error_bind_missing_source(rootfs, tmp_path):
    spec = _spec_with({"destination": "/m", "type": "bind", "source": str(tmp_path / "nope"), "options": ["bind"]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo)
    assert res.error is not None and "no such file or directory" in res.error and "\n" not in res.error


def test_error_bad_tmpfs_option(rootfs):
    spec = _spec_with({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["bogus=1"]})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo)
    assert res.error == "mount tmpfs to /t (tmpfs): invalid argument"


# --- /proc rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("dest,ok", [("/proc/cpuinfo", True), ("/proc/sys/kernel/ns_last_pid", True),
                                     ("/proc/sys", False), ("/proc/self/x", False), ("/proc", False)])
def test_check_proc_mount(rootfs, tmp_path, dest, ok):
    src = tmp_path / "f"
    src.write_text("fake\n")
    spec = _spec_with({"destination": dest, "type": "bind", "source": str(src), "options": ["bind"]})
    res = run_in_container(rootfs, spec, fn=lambda: "ok")
    if ok:
        assert res.error is None, (res.error, res.err)
    else:
        assert res.error is not None and ("inside /proc" in res.error or "not of type proc" in res.error)


def test_tmpfs_over_proc_sys_refused(rootfs):
    spec = _spec_with({"destination": "/proc/sys", "type": "tmpfs", "source": "tmpfs"})
    res = run_in_container(rootfs, spec, fn=lambda: "ok")
    assert res.error is not None and "inside /proc" in res.error


def test_proc_bind_of_procfs_allowed(rootfs):
    spec = default_spec()
    spec["mounts"][0] = {"destination": "/proc", "type": "bind", "source": "/proc", "options": ["rbind"]}
    res = run_in_container(rootfs, spec, fn=lambda: "ok")
    assert res.error is None, (res.error, res.err)


def test_symlink_to_proc_destination_refused(rootfs):
    os.symlink("/proc/sys", rootfs / "sneaky")
    spec = _spec_with({"destination": "/sneaky", "type": "tmpfs", "source": "tmpfs"})
    res = run_in_container(rootfs, spec, fn=lambda: "ok")
    assert res.error is not None and "inside /proc" in res.error


@pytest.mark.skipif(not os.path.exists(_MEMCG + "/memory.limit_in_bytes"), reason="no cgroup v1 memory")
@pytest.mark.parametrize("userns", [False, True])
def test_cgroup_v1_with_cgroupns(rootfs, userns):
    spec = default_spec()
    spec["linux"]["namespaces"].append({"type": "cgroup"})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, cgroupns=True, userns=userns)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert mi["/sys/fs/cgroup/memory"]["fstype"] == "cgroup"
    assert mi["/sys/fs/cgroup/memory"]["root"] == "/"
    assert {"ro", "nosuid", "nodev", "noexec"} <= mi["/sys/fs/cgroup/memory"]["opts"]
    assert mi["/sys/fs/cgroup/systemd"]["source"] == "systemd"


@pytest.mark.parametrize("opts,present,absent", [
    (["noatime"], {"noatime"}, {"relatime"}),
    (["strictatime"], set(), {"relatime", "noatime"}),
    (["relatime", "nodiratime"], {"relatime", "nodiratime"}, set()),
    (["noatime", "atime"], {"relatime"}, {"noatime"}),
    (["ro", "rw"], {"rw"}, {"ro"}),
    (["nosuid", "suid", "nodev", "dev", "noexec", "exec"], set(), {"nosuid", "nodev", "noexec"}),
    (["nosymfollow"], {"nosymfollow"}, set()),
    (["rnoatime"], {"noatime"}, {"relatime"}),
    (["rstrictatime"], set(), {"relatime", "noatime"}),
    (["noatime", "rrelatime"], {"relatime"}, {"noatime"}),
    (["rro", "rrw"], {"rw"}, {"ro"}),
    (["rnodiratime", "rdiratime"], set(), {"nodiratime"}),
])
def test_option_matrix(rootfs, tmp_path, opts, present, absent):
    src = tmp_path / "src"
    src.mkdir()
    spec = _spec_with({"destination": "/b", "type": "bind", "source": str(src), "options": ["rbind"] + opts},
                      {"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": opts})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    # options that cancel out leave a bind mount as its source is (runc does not remount)
    cancel = not (parse_options(opts).flags & ~(sc.MS_BIND | sc.MS_REC))
    for p in ("/t",) if cancel else ("/b", "/t"):
        assert present <= mi[p]["opts"], (p, mi[p]["opts"])
        assert not (absent & mi[p]["opts"]), (p, mi[p]["opts"])


def test_dev_tmpfs_ro_is_made_readonly_after_devices(rootfs):
    spec = default_spec()
    spec["mounts"][1]["options"] = spec["mounts"][1]["options"] + ["ro"]
    res = run_in_container(rootfs, spec, fn=lambda: {"mi": _fn_mountinfo(), "dev": sorted(os.listdir("/dev"))})
    assert res.error is None, (res.error, res.err)
    assert "ro" in _mountinfo(res.out["mi"])["/dev"]["opts"]
    assert "null" in res.out["dev"] and "ptmx" in res.out["dev"]


def test_dev_rro_deferred_until_devices_exist(rootfs):
    spec = default_spec()
    spec["mounts"][1]["options"] = spec["mounts"][1]["options"] + ["rro"]
    res = run_in_container(rootfs, spec, fn=lambda: {"mi": _fn_mountinfo(), "dev": sorted(os.listdir("/dev"))})
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out["mi"])
    assert "ro" in mi["/dev"]["opts"] and "ro" in mi["/dev/pts"]["opts"]
    assert "null" in res.out["dev"]


def test_no_mounts_at_all(rootfs):
    spec = default_spec(mounts=[])
    spec["root"]["readonly"] = False
    res = run_in_container(rootfs, spec, fn=lambda: sorted(os.listdir("/dev")))
    assert res.error is None, (res.error, res.err)
    assert {"null", "zero", "ptmx", "fd"} <= set(res.out)
    assert stat.S_ISCHR(os.stat(rootfs / "dev" / "null").st_mode)  # created in the image's /dev
