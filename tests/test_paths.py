"""pyruntime.linux.paths and procfs: resolution inside a root never escapes it; /proc writes only
land on procfs."""

from __future__ import annotations

import errno
import json
import os
import traceback

import pytest

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import paths, procfs
from pyruntime.linux import syscalls as sc


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "passwd").write_text("inside\n")
    fd = os.open(r, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    yield r, fd
    os.close(fd)


def _name(fd: int) -> str:
    return os.readlink(paths.fd_path(fd))


def test_fd_path():
    fd = os.open("/", os.O_PATH)
    try:
        assert paths.fd_path(fd) == f"/proc/self/fd/{fd}"
        assert os.readlink(paths.fd_path(fd)) == "/"
    finally:
        os.close(fd)


def test_open_in_root_clamps_absolute_symlink(root):
    r, fd = root
    os.symlink("/etc", r / "mnt")
    f = paths.open_in_root(fd, "/mnt/passwd", os.O_RDONLY)
    try:
        assert os.read(f, 100) == b"inside\n"
        assert os.get_inheritable(f) is False
        assert _name(f) == str(r / "etc" / "passwd")
    finally:
        os.close(f)


def test_open_in_root_clamps_dotdot(root):
    r, fd = root
    f = paths.open_in_root(fd, "../../../../etc/passwd", os.O_RDONLY)
    try:
        assert os.read(f, 100) == b"inside\n"
    finally:
        os.close(f)


def test_mkdirall_through_symlink_to_host_etc(root, tmp_path):
    r, fd = root
    os.symlink("/etc", r / "mnt")
    d = paths.mkdirall_in_root(fd, "/mnt/pyruntime-test-x/y", 0o700)
    try:
        assert _name(d) == str(r / "etc" / "pyruntime-test-x" / "y")
    finally:
        os.close(d)
    assert not os.path.exists("/etc/pyruntime-test-x")
    assert (r / "etc" / "pyruntime-test-x" / "y").is_dir()


def test_mkdirall_dangling_and_relative_symlinks(root):
    r, fd = root
    os.symlink("/nonexistent/deeper", r / "dangling")
    os.symlink("../../../../../etc", r / "rel")
    d = paths.mkdirall_in_root(fd, "dangling/z")
    os.close(d)
    assert (r / "nonexistent" / "deeper" / "z").is_dir()
    d = paths.mkdirall_in_root(fd, "/rel/q")
    os.close(d)
    assert (r / "etc" / "q").is_dir()


def test_mkdirall_dotdot_clamped(root):
    r, fd = root
    d = paths.mkdirall_in_root(fd, "/a/../../../b")
    os.close(d)
    assert (r / "b").is_dir()
    assert paths.clean("../x/./y/..") == "/x"


def test_mkdirall_not_a_dir(root):
    r, fd = root
    with pytest.raises(OSError) as ei:
        paths.mkdirall_in_root(fd, "/etc/passwd/x")
    assert ei.value.errno == errno.ENOTDIR


def test_symlink_loop(root):
    r, fd = root
    os.symlink("b", r / "a")
    os.symlink("a", r / "b")
    with pytest.raises(OSError) as ei:
        paths.mkdirall_in_root(fd, "/a/x")
    assert ei.value.errno == errno.ELOOP


def test_mkfile_in_root(root):
    r, fd = root
    os.symlink("/etc/newfile", r / "lnk")
    f = paths.mkfile_in_root(fd, "/lnk")
    os.close(f)
    assert (r / "etc" / "newfile").is_file()
    assert not os.path.exists("/etc/newfile")
    f = paths.mkfile_in_root(fd, "/deep/dir/file")
    os.close(f)
    assert (r / "deep" / "dir" / "file").is_file()


def test_resolved_path(root):
    r, fd = root
    os.symlink("/etc", r / "mnt")
    assert paths.resolved_path(fd, "/mnt/passwd") == "/etc/passwd"
    assert paths.resolved_path(fd, "/mnt/missing/x") == "/etc/missing/x"
    assert paths.resolved_path(fd, "/../..") == "/"


def test_walk_keeps_parent_and_name(root):
    r, fd = root
    os.symlink("etc/passwd", r / "pw")
    with paths.walk_in_root(fd, "/pw") as res:
        assert res.name == "passwd"
        assert res.path == "/etc/passwd"
        assert _name(res.parent_fd) == str(r / "etc")
    with paths.walk_in_root(fd, "/pw", follow_last=False) as res:
        assert res.name == "pw"


# --- procfs ----------------------------------------------------------------------------------


def test_check_procfs_refuses_other_fs(tmp_path):
    fd = os.open(tmp_path, os.O_PATH)
    try:
        with pytest.raises(RuntimeFailure, match="not on procfs"):
            procfs.check_procfs(fd, str(tmp_path))
    finally:
        os.close(fd)
    fd = procfs.open_procfs_file("/proc/sys/kernel/ostype", os.O_RDONLY)
    try:
        assert os.read(fd, 100) == b"Linux\n"
    finally:
        os.close(fd)
    assert procfs.read_procfs_file("self/comm").strip()


@pytest.mark.parametrize("key", ["../../etc/passwd", "kernel/../../x", "", "kernel..hostname"])
def test_write_sysctl_refuses_dotdot(key):
    with pytest.raises(RuntimeFailure):
        procfs.write_sysctl(key, "x")


def test_open_procfs_refuses_dotdot():
    with pytest.raises(RuntimeFailure, match=r"'\.\.'"):
        procfs.open_procfs_file("/proc/sys/../../etc/passwd", os.O_RDONLY)


def _in_child(fn):
    """Run fn in a forked child with new mount + uts namespaces; return (ok, value)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            sc.unshare(sc.CLONE_NEWNS | sc.CLONE_NEWUTS)
            sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
            out = {"ok": True, "value": fn()}
        except BaseException as e:  # noqa: BLE001
            out = {"ok": False, "value": f"{type(e).__name__}: {e}", "tb": traceback.format_exc()}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def test_sysctl_write_works_on_procfs():
    def fn():
        procfs.write_sysctl("kernel.hostname", "pyrt-test")
        return os.uname().nodename

    res = _in_child(fn)
    assert res == {"ok": True, "value": "pyrt-test"}, res


def test_sysctl_refused_with_volume_over_proc_sys(tmp_path):
    def fn():
        sc.mount("tmpfs", "/proc/sys", "tmpfs", 0, "mode=755")
        os.makedirs("/proc/sys/kernel", exist_ok=True)
        with open("/proc/sys/kernel/hostname", "w") as f:
            f.write("before\n")
        try:
            procfs.write_sysctl("kernel.hostname", "evil")
        except RuntimeFailure as e:
            return "refused: " + str(e)
        return "written"

    res = _in_child(fn)
    assert res["ok"], res
    assert res["value"].startswith("refused:"), res


def test_sysctl_refused_with_volume_over_proc(tmp_path):
    def fn():
        sc.mount("tmpfs", "/proc", "tmpfs", 0, "mode=755")
        try:
            procfs.write_sysctl("kernel.hostname", "evil")
        except RuntimeFailure as e:
            return "refused: " + str(e)
        return "written"

    res = _in_child(fn)
    assert res["ok"], res
    assert "not on procfs" in res["value"], res


def test_sysctl_refused_with_file_bound_over_sysctl(tmp_path):
    # CVE-2025-52881 style: another procfs file (or any file) bind-mounted over the target
    victim = tmp_path / "victim"
    victim.write_text("orig\n")

    def fn():
        sc.mount(str(victim), "/proc/sys/kernel/domainname", None, sc.MS_BIND)
        try:
            procfs.write_sysctl("kernel.domainname", "evil")
        except RuntimeFailure as e:
            return "refused: " + str(e)
        return "written"

    res = _in_child(fn)
    assert res["ok"], res
    assert res["value"].startswith("refused:"), res
    assert victim.read_text() == "orig\n"
