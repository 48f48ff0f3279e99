"""Device nodes in the container's /dev (runc libcontainer/rootfs_linux.go createDevices,
setupPtmx, setupDevSymlinks).

The default devices (runc's specconv AllowedDevices) are created unless config.json lists a
device with the same path. In a user namespace mknod is impossible: an empty file is created and
the host's device node bind-mounted onto it, as runc does.
"""

from __future__ import annotations

import os
import stat as stat_mod

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import paths
from pyruntime.linux import syscalls as sc
from pyruntime.linux._records import DeviceNode  # noqa: F401 (part of this API)


DEFAULT_DEVICES = (
    DeviceNode("/dev/null", "c", 1, 3),
    DeviceNode("/dev/zero", "c", 1, 5),
    DeviceNode("/dev/full", "c", 1, 7),
    DeviceNode("/dev/tty", "c", 5, 0),
    DeviceNode("/dev/urandom", "c", 1, 9),
    DeviceNode("/dev/random", "c", 1, 8),
)


def spec_devices(linux: object | None) -> list[DeviceNode]:
    """config.json linux.devices plus runc's defaults (spec entries win by path)."""
    out: list[DeviceNode] = []
    seen: set[str] = set()
    for d in (getattr(linux, "devices", None) or ()) if linux is not None else ():
        mode = d.file_mode if d.file_mode is not None else 0o666
        out.append(DeviceNode(d.path, d.type, d.major or 0, d.minor or 0, mode & 0o7777,
                              d.uid or 0, d.gid or 0))
        seen.add(paths.clean(d.path))
    for d in DEFAULT_DEVICES:
        if d.path not in seen:
            out.append(d)
    return out


def _type_bits(t: str) -> int:
    if t in ("c", "u"):
        return stat_mod.S_IFCHR
    if t == "b":
        return stat_mod.S_IFBLK
    if t == "p":
        return stat_mod.S_IFIFO
    raise RuntimeFailure(f"device type {t!r} is not supported")


def create_devices(root_fd: int, devices: list[DeviceNode], *, bind: bool) -> None:
    """mknod every device inside the root (umask 0), or bind the host node onto an empty file."""
    old = os.umask(0)
    try:
        for d in devices:
            try:
                _create_one(root_fd, d, bind)
            except OSError as e:
                raise RuntimeFailure(f"create device {d.path}: {paths._err(e)}") from None
    finally:
        os.umask(old)


def _create_one(root_fd: int, d: DeviceNode, bind: bool) -> None:
    if not d.path or paths.clean(d.path) == "/":
        raise RuntimeFailure(f"create device {d.path!r}: invalid device path")
    parent = os.path.dirname(paths.clean(d.path))
    dirfd = paths.mkdirall_in_root(root_fd, parent, 0o755)
    name = os.path.basename(paths.clean(d.path))
    try:
        if bind:
            _bind_node(dirfd, name, d)
            return
        try:
            os.mknod(name, d.file_mode | _type_bits(d.type), os.makedev(d.major, d.minor), dir_fd=dirfd)
        except FileExistsError:
            return
        except PermissionError:
            _bind_node(dirfd, name, d)
            return
        fd = sc.openat2(dirfd, name, os.O_PATH | os.O_NOFOLLOW, 0, paths._ONE)
        try:
            os.chmod(paths.fd_path(fd), d.file_mode)
            os.chown(paths.fd_path(fd), d.uid, d.gid)
        finally:
            os.close(fd)
    finally:
        os.close(dirfd)


def _bind_node(dirfd: int, name: str, d: DeviceNode) -> None:
    try:
        fd = os.open(name, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dirfd)
        os.close(fd)
    except IsADirectoryError:
        raise RuntimeFailure(f"create device {d.path}: a directory is in the way") from None
    target = sc.openat2(dirfd, name, os.O_PATH | os.O_NOFOLLOW, 0, paths._ONE)
    try:
        if not stat_mod.S_ISREG(os.fstat(target).st_mode):
            return  # a device node already there
        try:
            sc.mount(d.path, paths.fd_path(target), "bind", sc.MS_BIND)
        except OSError as e:
            raise RuntimeFailure(f"bind mount device {d.path}: {paths._err(e)}") from None
    finally:
        os.close(target)


def setup_ptmx(root_fd: int) -> None:
    """/dev/ptmx -> pts/ptmx (runc setupPtmx)."""
    dirfd = paths.mkdirall_in_root(root_fd, "/dev")
    try:
        try:
            os.unlink("ptmx", dir_fd=dirfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise RuntimeFailure(f"remove /dev/ptmx: {paths._err(e)}") from None
        try:
            os.symlink("pts/ptmx", "ptmx", dir_fd=dirfd)
        except OSError as e:
            raise RuntimeFailure(f"symlink /dev/ptmx: {paths._err(e)}") from None
    finally:
        os.close(dirfd)


def setup_dev_symlinks(root_fd: int) -> None:
    """fd, stdin, stdout, stderr (and core if /proc/kcore exists) as runc does."""
    links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
             ("/proc/self/fd/2", "stderr")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "core"))
    dirfd = paths.mkdirall_in_root(root_fd, "/dev")
    try:
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dirfd)
            except FileExistsError:
                pass
            except OSError as e:
                raise RuntimeFailure(f"symlink /dev/{name} -> {target}: {paths._err(e)}") from None
    finally:
        os.close(dirfd)


def create_console(root_fd: int) -> None:
    """An empty /dev/console for the pty bind mount (runc mountConsole creates it). An image's
    /dev/console that is not a regular file or a device (a symlink would carry the bind mount of
    the pty onto whatever it names, CVE-2025-52565) is replaced; the lookup never follows it."""
    try:
        dirfd = paths.mkdirall_in_root(root_fd, "/dev")
    except OSError as e:
        raise RuntimeFailure(f"create /dev/console: {paths._err(e)}") from None
    try:
        try:
            st = os.stat("console", dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not (stat_mod.S_ISREG(st.st_mode) or stat_mod.S_ISCHR(st.st_mode)):
            if stat_mod.S_ISDIR(st.st_mode):
                raise RuntimeFailure("create /dev/console: a directory is in the way")
            os.unlink("console", dir_fd=dirfd)
            st = None
        if st is None:
            fd = os.open("console", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o666, dir_fd=dirfd)
            os.close(fd)
    except OSError as e:
        raise RuntimeFailure(f"create /dev/console: {paths._err(e)}") from None
    finally:
        os.close(dirfd)
