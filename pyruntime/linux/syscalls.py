"""All ctypes syscall wrappers in one place.

Python 3.11's os module lacks setns/unshare/mount/pivot_root/openat2 and the new mount API, so
they are called through libc's syscall(2). Every wrapper raises OSError with errno and a short
description of what was attempted, so callers can produce one clear error line.
"""

from __future__ import annotations

import ctypes
import os
import struct

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

_ARCH = os.uname().machine
# x86_64 and aarch64 numbers (the new mount API and openat2 share numbers across arches).
_NR = {
    "x86_64": {
        "pivot_root": 155, "setns": 308, "unshare": 272, "mount": 165, "umount2": 166,
        "sethostname": 170, "setdomainname": 171, "personality": 135, "ioprio_set": 251,
        "sched_setattr": 314, "bpf": 321, "memfd_create": 319, "keyctl": 250,
        "setgroups": 116, "setresuid": 117, "setresgid": 119, "capset": 126,
    },
    "aarch64": {
        "pivot_root": 41, "setns": 268, "unshare": 97, "mount": 40, "umount2": 39,
        "sethostname": 161, "setdomainname": 162, "personality": 92, "ioprio_set": 30,
        "sched_setattr": 274, "bpf": 280, "memfd_create": 279, "keyctl": 219,
        "setgroups": 159, "setresuid": 147, "setresgid": 149, "capset": 91,
    },
}[_ARCH]
_NR.update({
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "pidfd_send_signal": 424, "pidfd_open": 434, "clone3": 435,
    "close_range": 436, "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442,
})

# --- constants -------------------------------------------------------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_I_VERSION = 1 << 23
MS_STRICTATIME = 1 << 24
MS_LAZYTIME = 1 << 25

MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8

# openat2 resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

# new mount API
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x04
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

PROC_SUPER_MAGIC = 0x9FA0
SYSFS_MAGIC = 0x62656572
TMPFS_MAGIC = 0x01021994
CGROUP2_SUPER_MAGIC = 0x63677270
CGROUP_SUPER_MAGIC = 0x27E0EB
OVERLAYFS_SUPER_MAGIC = 0x794C7630


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


# --- namespaces ------------------------------------------------------------------------------
def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, ctypes.c_size_t(len(b))), "sethostname")


def setdomainname(name: str) -> None:
    b = name.encode()
    _check(_libc.setdomainname(b, ctypes.c_size_t(len(b))), "setdomainname")


# --- mounts ----------------------------------------------------------------------------------
def mount(source: str | bytes | None, target: str | bytes, fstype: str | bytes | None,
          flags: int = 0, data: str | bytes | None = None) -> None:
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source!s} to {target!s}: {os.strerror(err)}")


def umount2(target: str | bytes, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target!s}")


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    _check(_syscall(_NR["pivot_root"], _b(new_root), _b(put_old)), "pivot_root")


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str | bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    ret = _syscall(_NR["openat2"], ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                   ctypes.c_size_t(ctypes.sizeof(how)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(_b(path)))
    return ret


def open_tree(dirfd: int, path: str | bytes, flags: int) -> int:
    return _check(_syscall(_NR["open_tree"], ctypes.c_int(dirfd), _b(path),
                           ctypes.c_uint(flags | OPEN_TREE_CLOEXEC)), f"open_tree {path!s}")


def move_mount(from_dirfd: int, from_path: str | bytes, to_dirfd: int, to_path: str | bytes,
               flags: int) -> None:
    _check(_syscall(_NR["move_mount"], ctypes.c_int(from_dirfd), _b(from_path),
                    ctypes.c_int(to_dirfd), _b(to_path), ctypes.c_uint(flags)), "move_mount")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str | bytes, flags: int, attr_set: int = 0,
                  attr_clr: int = 0, propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    _check(_syscall(_NR["mount_setattr"], ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                    ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def fsopen(fstype: str, flags: int = 1) -> int:  # FSOPEN_CLOEXEC
    return _check(_syscall(_NR["fsopen"], _b(fstype), ctypes.c_uint(flags)), f"fsopen {fstype}")


FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6


def fsconfig(fd: int, cmd: int, key: str | None = None, value: str | None = None, aux: int = 0) -> None:
    _check(_syscall(_NR["fsconfig"], ctypes.c_int(fd), ctypes.c_uint(cmd), _b(key), _b(value),
                    ctypes.c_int(aux)), f"fsconfig {key}")


def fsmount(fd: int, flags: int = 1, attr_flags: int = 0) -> int:  # FSMOUNT_CLOEXEC
    return _check(_syscall(_NR["fsmount"], ctypes.c_int(fd), ctypes.c_uint(flags),
                           ctypes.c_uint(attr_flags)), "fsmount")


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


def fstatfs_type(fd: int) -> int:
    """Filesystem magic of an open fd (used to check that /proc writes land on procfs)."""
    buf = _Statfs()
    _check(_libc.fstatfs(ctypes.c_int(fd), ctypes.byref(buf)), "fstatfs")
    return buf.f_type & 0xFFFFFFFF


# --- process ---------------------------------------------------------------------------------
def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(arg4), ctypes.c_ulong(arg5)), f"prctl({option})")


def set_dumpable(on: bool) -> None:
    prctl(PR_SET_DUMPABLE, 1 if on else 0)


def set_child_subreaper() -> None:
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def set_pdeathsig(sig: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def setgroups(gids: list[int]) -> None:
    # os.setgroups goes through libc which is fine; the raw call avoids glibc's
    # setxid broadcast (we are single-threaded anyway).
    arr = (ctypes.c_uint * max(len(gids), 1))(*gids)
    _check(_syscall(_NR["setgroups"], ctypes.c_int(len(gids)), arr), "setgroups")


def personality(persona: int) -> None:
    _check(_syscall(_NR["personality"], ctypes.c_ulong(persona)), "personality")


def ioprio_set(which: int, who: int, ioprio: int) -> None:
    _check(_syscall(_NR["ioprio_set"], ctypes.c_int(which), ctypes.c_int(who), ctypes.c_int(ioprio)),
           "ioprio_set")


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("sched_policy", ctypes.c_uint32),
                ("sched_flags", ctypes.c_uint64), ("sched_nice", ctypes.c_int32),
                ("sched_priority", ctypes.c_uint32), ("sched_runtime", ctypes.c_uint64),
                ("sched_deadline", ctypes.c_uint64), ("sched_period", ctypes.c_uint64),
                ("sched_util_min", ctypes.c_uint32), ("sched_util_max", ctypes.c_uint32)]


def sched_setattr(pid: int, policy: int, flags: int = 0, nice: int = 0, priority: int = 0,
                  runtime: int = 0, deadline: int = 0, period: int = 0) -> None:
    attr = _SchedAttr(ctypes.sizeof(_SchedAttr), policy, flags, nice, priority, runtime, deadline,
                      period, 0, 0)
    _check(_syscall(_NR["sched_setattr"], ctypes.c_int(pid), ctypes.byref(attr), ctypes.c_uint(0)),
           "sched_setattr")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _check(_syscall(_NR["close_range"], ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)),
           "close_range")


CLOSE_RANGE_CLOEXEC = 4


def pidfd_send_signal(pidfd: int, sig: int) -> None:
    _check(_syscall(_NR["pidfd_send_signal"], ctypes.c_int(pidfd), ctypes.c_int(sig), None,
                    ctypes.c_uint(0)), "pidfd_send_signal")


def memfd_create(name: str, flags: int) -> int:
    return _check(_syscall(_NR["memfd_create"], _b(name), ctypes.c_uint(flags)), "memfd_create")


def join_session_keyring(name: str | None) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring per container, as runc does."""
    _check(_syscall(_NR["keyctl"], ctypes.c_int(1), _b(name)), "keyctl(join session keyring)")


def bpf(cmd: int, attr: ctypes.Structure) -> int:
    return _check(_syscall(_NR["bpf"], ctypes.c_int(cmd), ctypes.byref(attr),
                           ctypes.c_uint(ctypes.sizeof(attr))), f"bpf({cmd})")


def pack_u64(*vals: int) -> bytes:
    return struct.pack(f"{len(vals)}Q", *vals)


# --- seccomp (pyruntime.linux.seccomp) -------------------------------------------------------
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277}[_ARCH]


def seccomp_raw(op: int, flags: int, arg: object) -> int:
    """seccomp(2) returning the raw result: >= 0 on success, -errno on failure. No allocation
    beyond ctypes' own, no other syscall: safe to call right after a filter is loaded."""
    ret = _syscall(_NR_SECCOMP, ctypes.c_uint(op), ctypes.c_uint(flags), arg)
    return ret if ret >= 0 else -ctypes.get_errno()


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """A duplicate (O_CLOEXEC) of fd `targetfd` of the process behind `pidfd`."""
    return _check(_syscall(_NR["pidfd_getfd"], ctypes.c_int(pidfd), ctypes.c_int(targetfd),
                           ctypes.c_uint(0)), "pidfd_getfd")


KEY_SPEC_SESSION_KEYRING = -3


def keyring_setperm(key: int, perm: int) -> None:
    """keyctl(KEYCTL_SETPERM) (runc makes the container's session keyring searchable)."""
    _check(_syscall(_NR["keyctl"], ctypes.c_int(5), ctypes.c_int(key), ctypes.c_uint(perm)),
           "keyctl(setperm)")
