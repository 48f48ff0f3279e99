"""Harness for the rootfs tests (no tests here): run prepare_rootfs/pivot_root/finalize_rootfs in
a forked child inside fresh namespaces and report back over a pipe.

    res = run_in_container(rootfs, spec_dict, argv=["sh", "-c", "..."])   # exec inside
    res = run_in_container(rootfs, spec_dict, fn=callable)                 # call inside
    res.error  -> the RuntimeFailure line if setting up failed
    res.out    -> stdout of argv / JSON-decoded return value of fn
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import traceback
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parent.parent
# the same cache as conftest.py's base_rootfs fixture
_BASE_ROOTFS = Path(os.environ.get("PYRUNTIME_TEST_ROOTFS", "/var/tmp/pyruntime-test-rootfs"))


def base_rootfs() -> Path:
    if not (_BASE_ROOTFS / ".pyruntime-rootfs").exists():
        subprocess.run(["bash", str(REPO / "bundles" / "build-rootfs.sh"), str(_BASE_ROOTFS)], check=True)
    return _BASE_ROOTFS


def make_rootfs(tmp_path: Path, name: str = "rootfs") -> Path:
    dest = tmp_path / name
    shutil.copytree(base_rootfs(), dest, symlinks=True)
    return dest


def default_spec(**over) -> dict:
    """runc spec's default config (terminal off), mounts and masks included."""
    spec = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sh"], "cwd": "/",
                    "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    spec.update(over)
    return spec


def idmap_supported(path) -> bool:
    """Whether the filesystem of `path` takes idmapped mounts (ext4 does; 9p, overlay on some
    kernels do not)."""
    from pyruntime.linux import syscalls as sc
    from pyruntime.linux.rootfs import make_userns_fd

    class M:
        container_id, host_id, size = 0, 1000, 1

    try:
        tree = sc.open_tree(-100, str(path), sc.OPEN_TREE_CLONE)
    except OSError:
        return False
    try:
        ns = make_userns_fd((M,), (M,))
        try:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH, sc.MOUNT_ATTR_IDMAP, 0, 0, ns)
            return True
        except OSError:
            return False
        finally:
            os.close(ns)
    finally:
        os.close(tree)


@attrs.define
class Result:
    error: str | None
    out: object
    err: str = ""
    status: int = 0


def _build(spec: dict):
    from pyruntime.spec.model import Spec, build

    return build(Spec, spec)


def run_in_container(rootfs: Path | str, spec: dict, *, argv: list[str] | None = None, fn=None,
                     userns: bool = False, uid_map: str = "0 0 65536\n", gid_map: str = "0 0 65536\n",
                     netns: bool = True, cgroupns: bool = False, no_pivot: bool = False,
                     bundle: str | None = None, before=None, host_before=None, mount_fds=None,
                     timeout: float = 60) -> Result:
    """Fork; the child unshares (user ns first, maps written by us), a grandchild (pid 1 of a new
    pid ns) sets up the rootfs and runs argv or fn. `before(rootfs)` runs in the new mount ns
    before prepare_rootfs (to stage host-side mounts that must not touch the host);
    `host_before()` runs first in a private mount namespace of the initial user namespace (its
    mounts get locked flags in the container's user namespace)."""
    model = _build(spec)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    s1_r, s1_w = os.pipe()
    s2_r, s2_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for f in (out_r, err_r, res_r, s1_r, s2_w):
                os.close(f)
            from pyruntime.linux import syscalls as sc

            if host_before is not None:
                sc.unshare(sc.CLONE_NEWNS)
                sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
                host_before()
            if userns:
                sc.unshare(sc.CLONE_NEWUSER)
                os.write(s1_w, b"u")
                os.read(s2_r, 1)
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            flags = sc.CLONE_NEWNS | sc.CLONE_NEWPID | sc.CLONE_NEWIPC | sc.CLONE_NEWUTS
            if netns:
                flags |= sc.CLONE_NEWNET
            if cgroupns:
                flags |= sc.CLONE_NEWCGROUP
            sc.unshare(flags)
            g = os.fork()
            if g == 0:
                _grandchild(model, str(rootfs), argv, fn, userns, no_pivot, bundle, before,
                            out_w, err_w, res_w, mount_fds)
            os.close(out_w)
            os.close(err_w)
            os.close(res_w)
            _, st = os.waitpid(g, 0)
            code = os.waitstatus_to_exitcode(st)
        except BaseException:
            traceback.print_exc()
        os._exit(code & 0xFF if code >= 0 else 128 - code)
    for f in (out_w, err_w, res_w, s1_w, s2_r):
        os.close(f)
    if userns:
        if os.read(s1_r, 1) == b"u":
            Path(f"/proc/{pid}/uid_map").write_text(uid_map)
            Path(f"/proc/{pid}/gid_map").write_text(gid_map)
        os.write(s2_w, b"g")
    os.close(s1_r)
    os.close(s2_w)
    import selectors

    bufs = {out_r: b"", err_r: b"", res_r: b""}
    sel = selectors.DefaultSelector()
    for f in bufs:
        sel.register(f, selectors.EVENT_READ)
    import time

    deadline = time.monotonic() + timeout
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            os.kill(pid, signal.SIGKILL)
            break
        for key, _ in sel.select(left):
            b = os.read(key.fd, 65536)
            if not b:
                sel.unregister(key.fd)
            else:
                bufs[key.fd] += b
    for f in bufs:
        os.close(f)
    _, st = os.waitpid(pid, 0)
    status = os.waitstatus_to_exitcode(st)
    res = json.loads(bufs[res_r] or b'{"error": "no result", "out": null}')
    out = res.get("out")
    if argv is not None and res.get("error") is None:
        out = bufs[out_r].decode(errors="replace")
    return Result(res.get("error"), out, bufs[err_r].decode(errors="replace"), status)


def _grandchild(model, rootfs, argv, fn, userns, no_pivot, bundle, before, out_w, err_w, res_w,
                mount_fds=None):
    code = 0
    try:
        from pyruntime.errors import RuntimeFailure
        from pyruntime.linux import rootfs as rf

        try:
            if before is not None:
                from pyruntime.linux import syscalls as sc

                sc.mount(None, "/", None, sc.MS_SLAVE | sc.MS_REC)
                before(rootfs)
            rf.prepare_rootfs(model, rootfs, bundle=bundle or os.path.dirname(rootfs), in_userns=userns,
                              mount_fds=mount_fds)
            rf.pivot_root(rootfs, no_pivot=no_pivot)
            rf.finalize_rootfs(model)
        except RuntimeFailure as e:
            os.write(res_w, json.dumps({"error": str(e), "out": None}).encode())
            os._exit(3)
        if argv is not None:
            os.write(res_w, json.dumps({"error": None, "out": None}).encode())
            os.close(res_w)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.execve("/bin/busybox", ["busybox"] + argv, {"PATH": "/bin:/sbin:/usr/bin"})
        out = fn() if fn is not None else None
        os.write(res_w, json.dumps({"error": None, "out": out}).encode())
    except BaseException:
        os.write(err_w, traceback.format_exc().encode())
        code = 2
    os._exit(code)
