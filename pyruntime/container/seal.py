"""CVE-2019-5736: keep the host's interpreter and libraries out of the container's reach.

The runtime processes that enter a container -- the init until it execs the user's program,
an exec'd process until its execve -- run the host's Python interpreter inside the container's
pid namespace. A container process can reach the files they map: /proc/<pid>/exe of a process
that exec'd `#!/proc/self/exe` (the published exploit: the container's own child then runs the
runtime's executable), of any runtime process with CAP_SYS_PTRACE, and /proc/<pid>/map_files/*
with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE. Opened for writing, they are the host's
/usr/bin/python3 and libc.

Defence (`seal`, called first by the commands that enter containers): the command re-executes
itself with every file it maps coming from a read-only mount. A recursive clone of the host's
`/` (open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)), made read-only (mount_setattr), never attached
anywhere, is the root (chroot) for the execve: the interpreter, ld.so, libc and the extension
modules the runtime needs are mapped from it; then the process goes back to the real root and
closes the clone. The clone's mounts, detached from every namespace, stay only as references of
those mappings: opening one of those files for writing fails with EROFS, and nobody can make
them writable again (mount_setattr/remount need the mount to be in the caller's namespace).
It costs one interpreter start (~10 ms); the clone itself is ~0.1 ms.

`check_mappings` runs in every runtime process just before it forks into a container's pid
namespace and before it reports ready: a file mapped from a writable mount (an extension module
imported after the return to the real root) fails the command, closed.
"""

from __future__ import annotations

import errno
import os
import sys

from pyruntime.errors import RuntimeFailure

_ENV = "_PYRUNTIME_SEALED"
_ST_RDONLY = 1
# Extension modules (and shared libraries) the runtime may load before a process of it enters
# a container: loaded while the root is the read-only clone. A missing one is caught by
# check_mappings (the command fails), never silently mapped from a writable mount.
PRELOAD = (
    "_ctypes", "_json", "_typing", "resource", "termios", "_prctl", "_hashlib", "_bz2", "_lzma",
    "_uuid",
)
PRELOAD_LIBS = ("libseccomp.so.2",)

sealed = False  # this process re-executed from the read-only clone


def seal() -> None:
    """Re-execute this command from a read-only clone of / (see the module doc); in the
    re-executed process, load what the runtime needs and go back to the real root."""
    global sealed
    marker = os.environ.pop(_ENV, None)
    fds = _marker_fds(marker) if marker is not None else None
    if fds is not None:
        _finish(*fds)
        sealed = True
        return
    # Without privileges nothing can be cloned, and the container (mapped onto our unprivileged
    # user) cannot write the root-owned interpreter and libraries anyway.
    if os.geteuid() != 0 or not sys.executable or not getattr(sys, "orig_argv", None):
        return
    _reexec()


def _syscall(nr: int, *args) -> int:
    """The two calls this needs, without pyruntime.linux.syscalls (its import costs ~7 ms, paid
    again after the re-exec). open_tree and mount_setattr have the same number on every arch."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _clone_root_readonly() -> int:
    """open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE), then
    mount_setattr(tree, "", AT_EMPTY_PATH|AT_RECURSIVE, {MOUNT_ATTR_RDONLY})."""
    import ctypes

    tree = _syscall(428, ctypes.c_int(-100), b"/", ctypes.c_uint(1 | os.O_CLOEXEC | 0x8000))
    attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)  # attr_set, attr_clr, propagation, userns_fd
    try:
        _syscall(442, ctypes.c_int(tree), b"", ctypes.c_uint(0x1000 | 0x8000), ctypes.byref(attr),
                 ctypes.c_size_t(ctypes.sizeof(attr)))
    except BaseException:
        os.close(tree)
        raise
    return tree


def _initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def _reexec() -> None:
    try:
        tree = _clone_root_readonly()
    except OSError as e:
        if e.errno == errno.EPERM and not _initial_userns():
            # root of a user namespace without the right to clone its mounts: the files are
            # not the host's, and we cannot do better; say so once, in debug logs
            from pyruntime.log import log

            log.debug("not sealing the runtime: cannot clone / in this user namespace")
            return
        raise RuntimeFailure(f"seal the runtime (CVE-2019-5736): clone / read-only: {os.strerror(e.errno or 0).lower()}") from None
    fds = [tree]
    chrooted = False
    try:
        root = os.open("/", os.O_PATH | os.O_DIRECTORY)
        fds.append(root)
        try:
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
            fds.append(cwd)
        except OSError:
            cwd = -1
        for fd in fds:
            os.set_inheritable(fd, True)
        try:
            here = os.getcwd()
        except OSError:
            here = "/"
        env = dict(os.environ)
        env[_ENV] = f"{root},{cwd},{tree}"
        os.fchdir(tree)
        os.chroot(".")
        chrooted = True
        try:
            os.chdir(here)  # relative script paths in argv resolve as before
        except OSError:
            pass
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as e:
        if chrooted:
            _back(fds[1], cwd)
        raise RuntimeFailure(f"seal the runtime (CVE-2019-5736): {os.strerror(e.errno or 0).lower()}") from None
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _back(root: int, cwd: int) -> None:
    os.fchdir(root)
    os.chroot(".")
    if cwd >= 0:
        os.fchdir(cwd)
    else:
        os.chdir("/")


def _marker_fds(marker: str) -> tuple[int, int, int] | None:
    """The (root, cwd, tree) fds the re-executing process passed, if this process is really
    running from a read-only mount (a marker in the environment alone proves nothing: it is
    ignored, and the command seals itself as usual)."""
    try:
        root, cwd, tree = (int(x) for x in marker.split(","))
        import stat

        if not (stat.S_ISDIR(os.fstat(root).st_mode) and stat.S_ISDIR(os.fstat(tree).st_mode)):
            return None
        if not os.statvfs("/proc/self/exe").f_flag & _ST_RDONLY:
            return None
    except (ValueError, OSError):
        return None
    return root, cwd, tree


def _finish(root: int, cwd: int, tree: int) -> None:
    try:
        preload()
    finally:
        try:
            _back(root, cwd)
        except OSError as e:
            raise RuntimeFailure(f"seal the runtime: return to the root: {os.strerror(e.errno or 0).lower()}") from None
        for fd in (root, cwd, tree):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import ctypes

    for lib in PRELOAD_LIBS:
        try:
            ctypes.CDLL(lib)
        except OSError:
            pass


def writable_mappings() -> list[str]:
    """Files mapped by this process from a mount that is not read-only (memfds and other
    process-private objects aside). [] when the check cannot be made (no CAP_SYS_ADMIN in the
    initial user namespace: then the host's root-owned files are not writable by the caller)."""
    bad: dict[str, None] = {}
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    seen: set[str] = set()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or parts[4] == "0" or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path in seen or path.startswith(("/memfd:", "/SYSV", "/dev/zero")):
            continue
        seen.add(path)
        lo, _, hi = parts[0].partition("-")
        try:
            flags = os.statvfs(f"/proc/self/map_files/{int(lo, 16):x}-{int(hi, 16):x}").f_flag
        except PermissionError:
            return []
        except OSError:
            continue
        if not flags & _ST_RDONLY:
            bad[path] = None
    return list(bad)


def check_mappings() -> None:
    """Fail unless every file this process maps is on a read-only mount (only in a sealed
    process: see seal)."""
    if not sealed:
        return
    bad = writable_mappings()
    if bad:
        raise RuntimeFailure(f"runtime self-check (CVE-2019-5736): {', '.join(bad)} mapped from a "
                             "writable mount: refusing to enter the container")
