"""Verified access to procfs.

Every write under /proc goes through an fd that fstatfs() says is on procfs, so a volume
mounted over /proc or /proc/sys (CVE-2019-16884, CVE-2025-52881) cannot redirect the write to
an ordinary file. Files are opened with openat2(RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS|
RESOLVE_BENEATH|RESOLVE_NO_XDEV) below a verified /proc directory fd: no symlink and no other
mount (a bind mount of some file over /proc/sys/kernel/x is on another mount, even when it is a
procfs file) is crossed on the way.
"""

from __future__ import annotations

import errno
import os

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc


def check_procfs(fd: int, what: str = "/proc") -> None:
    """Raise RuntimeFailure unless fd is on procfs."""
    try:
        magic = sc.fstatfs_type(fd)
    except OSError as e:
        raise RuntimeFailure(f"statfs {what}: {os.strerror(e.errno or 0).lower()}") from None
    if magic != sc.PROC_SUPER_MAGIC:
        raise RuntimeFailure(f"{what} is not on procfs (filesystem magic {magic:#x}): refusing to use it")


def open_proc_root(proc: str = "/proc") -> int:
    """An O_PATH fd of the procfs mounted on `proc` (verified)."""
    try:
        fd = os.open(proc, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"open {proc}: {os.strerror(e.errno or 0).lower()}") from None
    try:
        check_procfs(fd, proc)
        # The root of a procfs mount has inode 1.
        if os.fstat(fd).st_ino != 1:
            raise RuntimeFailure(f"{proc} is not the root of a procfs mount: refusing to use it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_procfs_file(path: str, flags: int, *, proc: str = "/proc", mode: int = 0) -> int:
    """Open `path` (absolute under /proc, or relative to it) on a verified procfs.

    The lookup may not cross a mount nor follow any symlink except a leading `self`/`thread-self`
    (resolved by hand), so it ends on the very procfs mounted on /proc.
    """
    rel = path
    if rel.startswith(proc + "/"):
        rel = rel[len(proc) + 1:]
    elif rel.startswith("/"):
        raise RuntimeFailure(f"open {path}: not a path under {proc}")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RuntimeFailure(f"open {path}: '..' not allowed in a procfs path")
    if parts and parts[0] == "self":
        parts[0] = str(os.getpid()) if _proc_pid_ok(proc) else "self"
    elif parts and parts[0] == "thread-self":
        parts[0:1] = [str(os.getpid()), "task", str(os.gettid())] if _proc_pid_ok(proc) else parts[0:1]
    root = open_proc_root(proc)
    try:
        resolve = sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_BENEATH | sc.RESOLVE_NO_XDEV
        if parts and parts[0] in ("self", "thread-self"):
            # our pid is not visible in this procfs' pid namespace by number: follow only the
            # self link, then stay beneath it.
            resolve &= ~sc.RESOLVE_NO_SYMLINKS
        try:
            fd = sc.openat2(root, "/".join(parts) or ".", flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode, resolve)
        except OSError as e:
            if e.errno == errno.EXDEV:
                raise RuntimeFailure(f"open {proc}/{'/'.join(parts)}: a mount over procfs is in the way: refusing to use it") from None
            raise RuntimeFailure(f"open {proc}/{'/'.join(parts)}: {os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(root)
    try:
        check_procfs(fd, f"{proc}/{'/'.join(parts)}")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _proc_pid_ok(proc: str) -> bool:
    """True if our pid as seen by os.getpid() names us in that procfs."""
    try:
        return os.readlink(f"{proc}/self") == str(os.getpid())
    except OSError:
        return False


def write_sysctl(key: str, value: str, *, proc: str = "/proc") -> None:
    """Write /proc/sys/<key with dots turned into slashes> through a verified procfs fd.

    Any mount on the way (a volume, a bind of another file, and also the read-only bind mount
    of /proc/sys that finalize_rootfs makes for readonlyPaths) makes it fail: write sysctls
    before finalize_rootfs, as runc does (sysctl, then readonly and masked paths).

    A key using slashes already is accepted as is (like runc: `net/ipv4/ip_forward`).
    """
    if "/" in key:
        rel = key.strip("/")
    else:
        rel = key.replace(".", "/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise RuntimeFailure(f"sysctl {key!r}: invalid key")
    path = f"sys/{rel}"
    fd = open_procfs_file(path, os.O_WRONLY | os.O_TRUNC, proc=proc)
    try:
        data = value.encode()
        try:
            os.write(fd, data)
        except OSError as e:
            raise RuntimeFailure(f"write sysctl {key}={value}: {os.strerror(e.errno or 0).lower()}") from None
    finally:
        os.close(fd)


def read_procfs_file(path: str, *, proc: str = "/proc") -> str:
    fd = open_procfs_file(path, os.O_RDONLY, proc=proc)
    try:
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)
