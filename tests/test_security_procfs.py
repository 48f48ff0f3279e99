"""Redirectable /proc writes (CVE-2019-16884, CVE-2025-52881).

The runtime writes sysctls (/proc/sys/...), oom_score_adj and the LSM attributes
(/proc/self/attr/...) inside the container. A volume over /proc or /proc/sys (or any mount
over a procfs file) must never receive those writes: the mount is refused, or the write is
(pyruntime.linux.procfs checks that every write lands on the procfs mounted on /proc, with no
symlink and no other mount on the way). The host files behind the volume must not change.
"""

from __future__ import annotations

import os

import pytest

from test_security_util import bind, files, no_leaks_here, one_line_error, volume

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _fake_proc(rt, name: str) -> str:
    """A host directory shaped like /proc (or /proc/sys) with files the runtime writes."""
    d = volume(rt, name)
    for rel in ("sys/kernel/domainname", "kernel/domainname", "self/oom_score_adj",
                "self/attr/apparmor/exec", "self/attr/exec"):
        os.makedirs(os.path.dirname(os.path.join(d, rel)), exist_ok=True)
        with open(os.path.join(d, rel), "w") as f:
            f.write("original\n")
    return d


def _untouched(d: str) -> None:
    for dirpath, _, names in os.walk(d):
        for n in names:
            with open(os.path.join(dirpath, n)) as f:
                text = f.read()
            assert text == "original\n", f"{os.path.join(dirpath, n)} written: {text!r}"


@pytest.mark.parametrize("dest", ["/proc/sys", "/proc"])
def test_volume_over_proc_with_sysctl_and_oom_score_adj(rt, no_leaks_here, dest):
    """config.mounts binds a host directory over /proc/sys (or /proc), and the config asks for a
    sysctl and an oom_score_adj: refused, and the host directory is not written."""
    fake = _fake_proc(rt, "fakeproc")

    def edit(cfg):
        cfg["mounts"].append(bind(fake, dest))
        cfg["linux"]["sysctl"] = {"kernel.domainname": "pwned"}
        cfg["process"]["oomScoreAdj"] = 999
    cid = rt.new_id()
    r = files(rt, "run", "--bundle", rt.bundle(["true"], edit=edit), cid)
    _untouched(fake)
    err = one_line_error(r)
    assert "cannot be mounted because it" in err or "procfs" in err, err


def test_lxcfs_style_bind_over_a_proc_file_is_never_written(rt, no_leaks_here):
    """A file bound over /proc/sys/kernel/ns_last_pid (allowed: lxcfs does such binds) while the
    runtime writes into /proc: the container runs, the host file is unchanged."""
    fake = _fake_proc(rt, "fakeproc")
    f = os.path.join(fake, "sys/kernel/domainname")

    def edit(cfg):
        cfg["mounts"].append({"destination": "/proc/sys/kernel/ns_last_pid", "type": "bind",
                              "source": f, "options": ["bind"]})
        cfg["linux"]["sysctl"] = {"kernel.domainname": "pyruntime.example"}
        cfg["process"]["oomScoreAdj"] = 500
        cfg["process"]["args"] = ["sh", "-c", "cat /proc/sys/kernel/domainname /proc/self/oom_score_adj"]
    cid = rt.new_id()
    r = rt.run("run", "--bundle", rt.bundle(edit=edit), cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pyruntime.example", "500"], r.stdout
    _untouched(fake)


# --- the second line of defence, at the function level ---------------------------------------
# The mount rules above stop every config that could put a volume where the runtime writes. Here
# the volume is put there anyway (in a private mount namespace of a forked child), and the
# writes themselves must refuse it.

def _in_private_ns(fn) -> str:
    """Run fn() in a forked child inside a new mount namespace; its RuntimeFailure text, or
    "ok", or "error: ..."."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            from pyruntime.errors import RuntimeFailure
            from pyruntime.linux import syscalls as sc

            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
            try:
                fn()
                msg = "ok"
            except RuntimeFailure as e:
                msg = str(e)
        except BaseException as e:  # noqa: BLE001
            msg = f"error: {type(e).__name__}: {e}"
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


def test_sysctl_write_refuses_a_bind_over_the_file(tmp_path):
    from pyruntime.linux import syscalls as sc
    from pyruntime.linux.procfs import write_sysctl

    victim = tmp_path / "victim"
    victim.write_text("original\n")

    def go():
        sc.mount(str(victim), "/proc/sys/kernel/domainname", None, sc.MS_BIND)
        write_sysctl("kernel.domainname", "pwned")
    msg = _in_private_ns(go)
    assert "a mount over procfs is in the way" in msg, msg
    assert victim.read_text() == "original\n"


def test_sysctl_write_refuses_a_volume_over_proc_sys(tmp_path):
    from pyruntime.linux import syscalls as sc
    from pyruntime.linux.procfs import write_sysctl

    fake = tmp_path / "fake"
    (fake / "kernel").mkdir(parents=True)
    (fake / "kernel" / "domainname").write_text("original\n")

    def go():
        sc.mount(str(fake), "/proc/sys", None, sc.MS_BIND)
        write_sysctl("kernel.domainname", "pwned")
    msg = _in_private_ns(go)
    assert "refusing" in msg or "in the way" in msg, msg
    assert (fake / "kernel" / "domainname").read_text() == "original\n"


@pytest.mark.parametrize("what", ["oom_score_adj", "apparmor", "selinux"])
def test_proc_self_writes_refuse_a_volume_over_proc(tmp_path, what):
    """oom_score_adj and the LSM attribute files, with a directory (not procfs) over /proc."""
    from pyruntime.linux import syscalls as sc
    from pyruntime.linux.procfs import open_procfs_file
    from pyruntime.linux.process import set_oom_score_adj

    fake = tmp_path / "fake"
    for rel in ("self/oom_score_adj", "self/attr/apparmor/exec", "self/attr/exec"):
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        (fake / rel).write_text("original\n")

    def go():
        sc.mount(str(fake), "/proc", None, sc.MS_BIND)
        if what == "oom_score_adj":
            set_oom_score_adj(999)
            return
        path = "/proc/self/attr/apparmor/exec" if what == "apparmor" else "/proc/self/attr/exec"
        fd = open_procfs_file(path, os.O_WRONLY)
        os.write(fd, b"exec unconfined")
        os.close(fd)
    msg = _in_private_ns(go)
    assert "is not on procfs" in msg, msg
    for rel in ("self/oom_score_adj", "self/attr/apparmor/exec", "self/attr/exec"):
        assert (fake / rel).read_text() == "original\n"


def test_proc_self_writes_refuse_a_procfs_subdirectory_over_proc(tmp_path):
    """A procfs directory that is not the root of a procfs (the host's /proc/sys) over /proc: a
    bind the mount rules let through (the source is procfs)."""
    from pyruntime.linux import syscalls as sc
    from pyruntime.linux.process import set_oom_score_adj

    def go():
        sc.mount("/proc/sys", "/proc", None, sc.MS_BIND | sc.MS_REC)
        set_oom_score_adj(999)
    msg = _in_private_ns(go)
    assert "not the root of a procfs mount" in msg, msg
