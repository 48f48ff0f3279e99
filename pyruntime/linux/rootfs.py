"""The container's filesystem view: rootfs, mounts, /dev, pivot_root, masked/readonly paths.

Follows runc's libcontainer/rootfs_linux.go (prepareRoot, mountToRootfs, mountPropagate,
createDevices, pivotRoot/msMoveRoot, finalizeRootfs, readonlyPath, maskPath). Runs in the
container init, inside its new mount namespace (and maybe user namespace), as root there.

Every destination is resolved inside the rootfs with pyruntime.linux.paths (symlinks followed
inside the root only) and the mount goes onto the resolved fd through /proc/self/fd/N; after a
mount, the new mount is opened with a one-component lookup from the parent fd (never by
resolving the path string again).
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod
TYPE_CHECKING = False  # not `import typing` (~9 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import devices as devs
from pyruntime.linux import paths
from pyruntime.linux import syscalls as sc
from pyruntime.linux._records import MountEntry as _Entry
from pyruntime.linux._records import RootfsCtx as _Ctx
from pyruntime.linux.mounts import (LOCKABLE, MountOptions, parse_options,
                                    statvfs_mount_flags)
from pyruntime.linux.paths import Resolved, fd_path

DEFAULT_MOUNT_FLAGS = sc.MS_NOEXEC | sc.MS_NOSUID | sc.MS_NODEV
_ATIME_FLAGS = sc.MS_NOATIME | sc.MS_RELATIME | sc.MS_STRICTATIME | sc.MS_NODIRATIME

VALID_PROC_MOUNTS = (
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
)

# runc specconv mountPropagationMapping: the plain names are not recursive.
_ROOT_PROPAGATION = {
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}


def _err(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno).lower()
    return str(e)


def root_propagation(spec: Any) -> int:
    """linux.rootfsPropagation as mount flags (runc: the names map to their recursive form)."""
    linux = getattr(spec, "linux", None)
    name = getattr(linux, "rootfs_propagation", None) if linux is not None else None
    if not name:
        return 0
    try:
        return _ROOT_PROPAGATION[name]
    except KeyError:
        raise RuntimeFailure(f"rootfsPropagation {name!r}: unknown propagation mode") from None


# --- the mount entries -----------------------------------------------------------------------


def _entry(m: Any, bundle: str) -> _Entry:
    opts = parse_options(m.options)
    flags = opts.flags
    device = m.type or ""
    source = m.source or ""
    if device == "bind":
        flags |= sc.MS_BIND
    if flags & sc.MS_BIND:
        device = "bind"
        if source and not source.startswith("/"):
            source = os.path.join(bundle, source)
    if not m.destination:
        raise RuntimeFailure("mount: empty destination")
    for s in (source, m.destination, opts.data_str, device):
        if "\0" in s:
            raise RuntimeFailure(f"mount {m.destination}: NUL byte in mount entry")
    return _Entry(source, paths.clean(m.destination), device, opts, flags,
                  tuple(m.uid_mappings or ()), tuple(m.gid_mappings or ()))


# --- prepare ---------------------------------------------------------------------------------


def prepare_rootfs(spec: Any, rootfs: str, *, bundle: str, in_userns: bool,
                   mount_fds: dict[int, int] | None = None) -> None:
    """Propagation of /, bind rootfs onto itself, every spec mount, /dev (devices, ptmx,
    symlinks, console), the process cwd. Called in the init's new mount namespace before
    pivot_root. `mount_fds` (from open_idmapped_mounts, made outside the user namespace) are
    used for the idmapped bind mounts they cover; they are not closed here."""
    rootfs = os.path.realpath(rootfs)
    prop = root_propagation(spec)
    if not prop or prop & sc.MS_UNBINDABLE:
        # unbindable is applied after pivot_root (finalize_rootfs): the rootfs could not be
        # bind-mounted from an unbindable "/"
        prop = sc.MS_SLAVE | sc.MS_REC
    try:
        sc.mount(None, "/", None, prop)
    except OSError as e:
        raise RuntimeFailure(f"set mount propagation of / ({prop:#x}): {_err(e)}") from None
    _parent_mount_private(rootfs)
    try:
        sc.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC)
    except OSError as e:
        raise RuntimeFailure(f"bind mount rootfs {rootfs} onto itself: {_err(e)}") from None
    try:
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"open rootfs {rootfs}: {_err(e)}") from None
    linux = getattr(spec, "linux", None)
    ns = linux.namespace("cgroup") if linux is not None and hasattr(linux, "namespace") else None
    ctx = _Ctx(root_fd, rootfs, bundle, in_userns, ns is not None, spec, dict(mount_fds or {}))
    try:
        _check_special_dirs(ctx)
        entries = [_entry(m, bundle) for m in (getattr(spec, "mounts", None) or ())]
        for i, e in enumerate(entries):
            ctx.index = i
            _mount_entry(ctx, e)
        ctx.index = None
        if not any(e.dest == "/dev" and e.device == "bind" for e in entries):
            devs.create_devices(root_fd, devs.spec_devices(linux), bind=in_userns)
            devs.setup_ptmx(root_fd)
            devs.setup_dev_symlinks(root_fd)
        proc = getattr(spec, "process", None)
        if proc is not None and getattr(proc, "terminal", False):
            devs.create_console(root_fd)
        while ctx.deferred_rec:
            e, fd = ctx.deferred_rec.pop(0)
            try:
                _apply_rec_attrs(e, fd)
            finally:
                os.close(fd)
        cwd = getattr(proc, "cwd", None) if proc is not None else None
        if cwd:
            try:
                os.close(paths.mkdirall_in_root(root_fd, cwd, 0o755))
            except OSError as err:
                raise RuntimeFailure(f"create cwd {cwd}: {_err(err)}") from None
    finally:
        for _, fd in ctx.deferred_rec:
            os.close(fd)
        os.close(root_fd)


def _check_special_dirs(ctx: _Ctx) -> None:
    for name in ("proc", "dev"):
        try:
            st = os.stat(name, dir_fd=ctx.root_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat_mod.S_ISLNK(st.st_mode):
            raise RuntimeFailure(f"rootfs /{name} is a symlink: refusing to use it")
        if not stat_mod.S_ISDIR(st.st_mode):
            raise RuntimeFailure(f"rootfs /{name} is not a directory: refusing to use it")


def _parent_mount_private(rootfs: str) -> None:
    """runc rootfsParentMountPrivate: pivot_root refuses a shared parent mount."""
    best = None
    for mi in _mountinfo():
        mp = mi["mountpoint"]
        if rootfs == mp or rootfs.startswith(mp.rstrip("/") + "/") or mp == "/":
            if best is None or len(mp) >= len(best["mountpoint"]):
                best = mi
    if best is None:
        return
    if any(f.startswith("shared:") for f in best["optional"]):
        try:
            sc.mount(None, best["mountpoint"], None, sc.MS_PRIVATE)
        except OSError as e:
            raise RuntimeFailure(f"make parent mount {best['mountpoint']} private: {_err(e)}") from None


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _mountinfo(path: str = "/proc/self/mountinfo") -> list[dict]:
    out = []
    with open(path) as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            a = left.split(" ")
            b = right.split(" ")
            out.append({
                "id": int(a[0]), "parent": int(a[1]), "dev": a[2], "root": _unescape(a[3]),
                "mountpoint": _unescape(a[4]), "options": a[5], "optional": a[6:],
                "fstype": b[0], "source": _unescape(b[1]) if len(b) > 1 else "",
                "super": b[2] if len(b) > 2 else "",
            })
    return out


# --- one mount -------------------------------------------------------------------------------


class MountFailure(RuntimeFailure):
    """A mount(2) failed; `errno` is kept for the fallbacks (sysfs, cgroup2)."""

    def __init__(self, msg: str, errno_: int = 0):
        super().__init__(msg)
        self.errno = errno_


def _fail(e: _Entry, err: BaseException, what: str | None = None) -> RuntimeFailure:
    if isinstance(err, RuntimeFailure):
        return err
    return MountFailure(f"{what or e.describe()}: {_err(err)}", getattr(err, "errno", 0) or 0)


def _mount_entry(ctx: _Ctx, e: _Entry) -> None:
    try:
        if e.device in ("proc", "sysfs"):
            _mount_proc_sys(ctx, e)
        elif e.device == "bind":
            _mount_bind(ctx, e)
        elif e.device == "cgroup":
            _mount_cgroup(ctx, e)
        elif e.device == "tmpfs":
            _mount_tmpfs(ctx, e)
        else:
            if e.device != "mqueue":
                _check_proc_mount(ctx, e.dest, e.source)
            with _ensure(ctx, e, is_dir=True) as r:
                _finish(ctx, e, _mount_on(ctx, e, r, e.source, e.device, e.flags, e.data))
    except RuntimeFailure:
        raise
    except OSError as err:
        raise _fail(e, err) from None


def _ensure(ctx: _Ctx, e: _Entry, *, is_dir: bool) -> Resolved:
    try:
        r = paths.ensure_in_root(ctx.root_fd, e.dest, is_dir=is_dir)
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: create mountpoint: {_err(err)}") from None
    st = r.lstat()
    if st is not None and is_dir and not stat_mod.S_ISDIR(st.st_mode):
        r.close()
        raise RuntimeFailure(f"{e.describe()}: mountpoint {r.path} is not a directory")
    return r


def _strip_ro(e: _Entry, flags: int) -> int:
    # runc mountPropagate: tmpfs and /dev are mounted rw and made read-only in finalize_rootfs,
    # after the files they need were created.
    if e.device == "tmpfs" or e.dest == "/dev":
        flags &= ~sc.MS_RDONLY
    return flags


def _mount_on(ctx: _Ctx, e: _Entry, r: Resolved, source: str | None, fstype: str | None,
              flags: int, data: str | None, *, propagate: bool = True) -> int:
    """mount(source, <fd of r>, ...), then the propagation flags on the new mount; returns an
    O_PATH fd of the new mount's root (caller closes)."""
    flags = _strip_ro(e, flags)
    target = r.open(os.O_PATH)
    try:
        sc.mount(source or None, fd_path(target), fstype or None, flags, data or None)
    except OSError as err:
        raise _fail(e, err) from None
    finally:
        os.close(target)
    new = r.open(os.O_PATH)
    if propagate:
        _propagate(e, new)
    return new


def _propagate(e: _Entry, fd: int) -> None:
    for p in e.opts.propagation:
        try:
            sc.mount(None, fd_path(fd), None, p)
        except OSError as err:
            raise RuntimeFailure(f"{e.describe()}: change mount propagation: {_err(err)}") from None


def _apply_rec_attrs(e: _Entry, fd: int) -> None:
    if not e.opts.has_rec_attrs:
        return
    try:
        sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, e.opts.rec_set, e.opts.rec_clr)
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: set recursive mount attributes: {_err(err)}") from None


def _finish(ctx: _Ctx, e: _Entry, fd: int) -> None:
    """Recursive attributes (deferred for /dev until its files exist), then close fd."""
    if e.opts.has_rec_attrs and e.dest == "/dev":
        ctx.deferred_rec.append((e, fd))
        return
    try:
        _apply_rec_attrs(e, fd)
    finally:
        os.close(fd)


def _remount(e: _Entry, fd: int, flags: int, what: str | None = None) -> None:
    """MS_REMOUNT|MS_BIND with `flags`; on EPERM, retry keeping the flags the kernel locked on
    that mount (user namespaces: nosuid/nodev/noexec/ro/atime), read with statvfs (runc)."""
    flags |= sc.MS_REMOUNT | sc.MS_BIND
    try:
        sc.mount(None, fd_path(fd), None, flags & ~sc.MS_REC)
        return
    except OSError as err:
        if err.errno != errno.EPERM:
            raise RuntimeFailure(f"{what or e.describe()}: remount: {_err(err)}") from None
        first = err
    try:
        cur = statvfs_mount_flags(os.statvfs(fd_path(fd)).f_flag)
    except OSError:
        raise RuntimeFailure(f"{what or e.describe()}: remount: {_err(first)}") from None
    keep = cur & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY)
    if not flags & _ATIME_FLAGS:
        keep |= cur & _ATIME_FLAGS
    elif (cur & _ATIME_FLAGS) != (flags & _ATIME_FLAGS):
        flags = (flags & ~_ATIME_FLAGS) | (cur & _ATIME_FLAGS)
    try:
        sc.mount(None, fd_path(fd), None, (flags | keep) & ~sc.MS_REC)
    except OSError:
        raise RuntimeFailure(f"{what or e.describe()}: remount: {_err(first)}") from None


# proc / sysfs ---------------------------------------------------------------------------------


def _mount_proc_sys(ctx: _Ctx, e: _Entry) -> None:
    # runc: procfs and sysfs only on an ordinary directory reached without any symlink.
    try:
        real = paths.resolved_path(ctx.root_fd, e.dest)
        with paths.walk_in_root(ctx.root_fd, e.dest, follow_last=False) as r:
            st = r.lstat()
    except OSError as err:
        raise _fail(e, err) from None
    if real != e.dest or (st is not None and not stat_mod.S_ISDIR(st.st_mode)):
        raise RuntimeFailure(f"{e.describe()}: filesystem {e.device!r} must be mounted on an "
                             f"ordinary directory ({e.dest} is or goes through a symlink or is not a directory)")
    with _ensure(ctx, e, is_dir=True) as r:
        if paths.clean(r.path) != e.dest:
            raise RuntimeFailure(f"{e.describe()}: mountpoint moved to {r.path}")
        try:
            fd = _mount_on(ctx, e, r, e.source or e.device, e.device, e.flags, e.data)
        except MountFailure as err:
            if e.device != "sysfs" or err.errno != errno.EPERM:
                raise
            fd = _sysfs_fallback(ctx, e, r)
        _finish(ctx, e, fd)


def _sysfs_fallback(ctx: _Ctx, e: _Entry, r: Resolved) -> int:
    """sysfs cannot be mounted in a user namespace that does not own the network namespace:
    rbind the host /sys instead (runc), read-only recursively when ro was asked."""
    target = r.open(os.O_PATH)
    try:
        sc.mount("/sys", fd_path(target), None, sc.MS_BIND | sc.MS_REC)
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: rbind /sys fallback: {_err(err)}") from None
    finally:
        os.close(target)
    fd = r.open(os.O_PATH)
    try:
        if e.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT):
            _remount(e, fd, e.flags | sc.MS_BIND)
        if e.flags & sc.MS_RDONLY:
            try:
                sc.mount_setattr(fd, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, sc.MOUNT_ATTR_RDONLY)
            except OSError:
                pass
        elif not ctx.cgroupns:
            _cgroupfs_readonly(e, fd)
        _propagate(e, fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _cgroupfs_readonly(e: _Entry, sys_fd: int) -> None:
    """The host's cgroup hierarchies that came with an rbind of /sys: read-only, recursively
    (CVE-2023-25809: a user namespace without a cgroup namespace must not write them)."""
    try:
        cg = sc.openat2(sys_fd, "fs/cgroup", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0,
                        sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_BENEATH)
    except FileNotFoundError:
        return
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: open fs/cgroup: {_err(err)}") from None
    try:
        sc.mount_setattr(cg, "", sc.AT_EMPTY_PATH | sc.AT_RECURSIVE, sc.MOUNT_ATTR_RDONLY)
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: make the host's cgroupfs read-only: {_err(err)}") from None
    finally:
        os.close(cg)


# tmpfs ----------------------------------------------------------------------------------------


def _mount_tmpfs(ctx: _Ctx, e: _Entry) -> None:
    _check_proc_mount(ctx, e.dest, e.source)
    # runc: a tmpfs on an existing directory gets that directory's mode (stat before creating)
    data = e.data
    try:
        with paths.walk_in_root(ctx.root_fd, e.dest) as r0:
            st = r0.lstat()
    except OSError:
        st = None
    if st is not None and stat_mod.S_ISDIR(st.st_mode):
        data = f"mode={stat_mod.S_IMODE(st.st_mode):04o}" + ("," + data if data else "")
    with _ensure(ctx, e, is_dir=True) as r:
        old = r.open(os.O_RDONLY | os.O_DIRECTORY) if e.opts.tmpcopyup else None
        try:
            fd = _mount_on(ctx, e, r, e.source or "tmpfs", "tmpfs", e.flags, data)
            if old is not None:
                try:
                    new = r.open(os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        _copy_tree(old, new)
                    finally:
                        os.close(new)
                except OSError as err:
                    os.close(fd)
                    raise RuntimeFailure(f"{e.describe()}: tmpcopyup: {_err(err)}") from None
        finally:
            if old is not None:
                os.close(old)
        _finish(ctx, e, fd)


def _copy_tree(src: int, dst: int) -> None:
    """Copy a directory's contents (fd to fd, never following symlinks), keeping modes, owners,
    times (runc tmpcopyup: fileutils.CopyDirectory)."""
    for ent in os.scandir(src):
        name = ent.name
        st = os.stat(name, dir_fd=src, follow_symlinks=False)
        mode = stat_mod.S_IMODE(st.st_mode)
        if stat_mod.S_ISDIR(st.st_mode):
            try:
                os.mkdir(name, 0o700, dir_fd=dst)
            except FileExistsError:
                pass
            s = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            d = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dst)
            try:
                _copy_tree(s, d)
            finally:
                os.close(s)
                os.close(d)
        elif stat_mod.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat_mod.S_ISREG(st.st_mode):
            s = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
            try:
                d = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                            dir_fd=dst)
                try:
                    while True:
                        n = os.sendfile(d, s, None, 1 << 30) if hasattr(os, "sendfile") else 0
                        if n == 0:
                            break
                finally:
                    os.close(d)
            finally:
                os.close(s)
        elif stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode) or stat_mod.S_ISFIFO(st.st_mode):
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        else:
            continue  # sockets: skipped
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat_mod.S_ISLNK(st.st_mode):
            os.chmod(name, mode, dir_fd=dst)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst, follow_symlinks=False)


# bind -----------------------------------------------------------------------------------------


def _mount_bind(ctx: _Ctx, e: _Entry) -> None:
    if not e.source:
        raise RuntimeFailure(f"{e.describe()}: bind mount without a source")
    try:
        st = os.stat(e.source)
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: stat source: {_err(err)}") from None
    is_proc = False
    try:
        fd = os.open(e.source, os.O_PATH | os.O_CLOEXEC)
        try:
            is_proc = sc.fstatfs_type(fd) == sc.PROC_SUPER_MAGIC
        finally:
            os.close(fd)
    except OSError:
        pass
    _check_proc_mount(ctx, e.dest, e.source, source_is_proc=is_proc)
    with _ensure(ctx, e, is_dir=stat_mod.S_ISDIR(st.st_mode)) as r:
        have = r.lstat()
        if have is not None and stat_mod.S_ISDIR(have.st_mode) != stat_mod.S_ISDIR(st.st_mode):
            kind = "a directory" if stat_mod.S_ISDIR(st.st_mode) else "a file"
            raise RuntimeFailure(f"{e.describe()}: mountpoint {r.path} is not {kind}")
        if _is_idmapped(e):
            fd = _idmapped_bind(ctx, e, r)
        else:
            fd = _mount_on(ctx, e, r, e.source, "bind", e.flags & (sc.MS_BIND | sc.MS_REC), None,
                           propagate=False)
        try:
            # a bind mount ignores the other flags: remount to apply them (runc)
            if e.flags & ~(sc.MS_REC | sc.MS_REMOUNT | sc.MS_BIND):
                _remount(e, fd, e.flags)
            _propagate(e, fd)
        except BaseException:
            os.close(fd)
            raise
        _finish(ctx, e, fd)


def _idmap_maps(spec: Any, e: _Entry) -> tuple[tuple, tuple]:
    uid_maps, gid_maps = e.uid_mappings, e.gid_mappings
    if not uid_maps and not gid_maps:
        # "idmap" without mappings: the container's user namespace mappings
        linux = getattr(spec, "linux", None)
        uid_maps = tuple(getattr(linux, "uid_mappings", None) or ())
        gid_maps = tuple(getattr(linux, "gid_mappings", None) or ())
    if not uid_maps or not gid_maps:
        raise RuntimeFailure(f"{e.describe()}: idmapped mount needs uidMappings and gidMappings")
    return uid_maps, gid_maps


def _is_idmapped(e: _Entry) -> bool:
    return e.device == "bind" and bool(e.opts.idmap or e.uid_mappings or e.gid_mappings)


def _idmapped_tree(spec: Any, e: _Entry) -> int:
    """A detached clone of the bind source with MOUNT_ATTR_IDMAP set (runc 1.2 semantics: the
    mount's user namespace gets the mappings as given, so a file owned by containerID on disk
    shows as hostID). "ridmap" idmaps the submounts of an rbind too."""
    uid_maps, gid_maps = _idmap_maps(spec, e)
    flags = sc.OPEN_TREE_CLONE | (sc.AT_RECURSIVE if e.flags & sc.MS_REC else 0)
    try:
        tree = sc.open_tree(-100, e.source, flags)  # AT_FDCWD
    except OSError as err:
        raise RuntimeFailure(f"{e.describe()}: open_tree: {_err(err)}") from None
    try:
        userns = make_userns_fd(uid_maps, gid_maps)
        try:
            sc.mount_setattr(tree, "", sc.AT_EMPTY_PATH | (sc.AT_RECURSIVE if e.opts.ridmap else 0),
                             sc.MOUNT_ATTR_IDMAP, 0, 0, userns)
        except OSError as err:
            hint = " (the filesystem does not support idmapped mounts)" if err.errno == errno.EINVAL else ""
            raise RuntimeFailure(f"{e.describe()}: set idmap: {_err(err)}{hint}") from None
        finally:
            os.close(userns)
    except BaseException:
        os.close(tree)
        raise
    return tree


def open_idmapped_mounts(spec: Any, *, bundle: str) -> dict[int, int]:
    """Detached idmapped mount trees for every idmapped bind mount of the spec, keyed by the
    index in spec.mounts. Call it in the runtime (initial user namespace) before the container
    unshares its user namespace: inside that namespace, the kernel refuses to idmap a mount of
    a filesystem the namespace does not own (EPERM). Pass the result to prepare_rootfs(...,
    mount_fds=...); the fds (O_CLOEXEC) must survive the forks, the caller closes them."""
    out: dict[int, int] = {}
    try:
        for i, m in enumerate(getattr(spec, "mounts", None) or ()):
            e = _entry(m, bundle)
            if _is_idmapped(e):
                out[i] = _idmapped_tree(spec, e)
    except BaseException:
        for fd in out.values():
            os.close(fd)
        raise
    return out


def _idmapped_bind(ctx: _Ctx, e: _Entry, r: Resolved) -> int:
    """open_tree(OPEN_TREE_CLONE) + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount. Returns the
    tree fd, which is the new mount once attached."""
    pre = ctx.mount_fds.pop(ctx.index, None) if ctx.index is not None else None
    tree = os.dup(pre) if pre is not None else _idmapped_tree(ctx.spec, e)
    try:
        target = r.open(os.O_PATH)
        try:
            sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
        except OSError as err:
            raise RuntimeFailure(f"{e.describe()}: move_mount: {_err(err)}") from None
        finally:
            os.close(target)
    except BaseException:
        os.close(tree)
        raise
    return tree


def _map_text(maps: tuple) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps)


def make_userns_fd(uid_maps: tuple, gid_maps: tuple) -> int:
    """An fd of a new user namespace with those mappings: a forked child unshares CLONE_NEWUSER
    and waits; we write its maps and open its ns/user, then let it exit."""
    r1, w1 = os.pipe2(os.O_CLOEXEC)
    r2, w2 = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(r1)
            os.close(w2)
            sc.unshare(sc.CLONE_NEWUSER)
            # our pid as the /proc we are going to be looked up in knows it
            os.write(w1, os.readlink("/proc/self").encode())
            os.close(w1)
            os.read(r2, 1)
        except BaseException:
            pass
        os._exit(0)
    os.close(w1)
    os.close(r2)
    try:
        procpid = os.read(r1, 64).decode()
        os.close(r1)
        if not procpid:
            raise RuntimeFailure("idmapped mount: could not create a user namespace")
        try:
            base = f"/proc/{procpid}"
            with open(f"{base}/uid_map", "w") as f:
                f.write(_map_text(uid_maps))
            with open(f"{base}/setgroups", "w") as f:
                f.write("deny")
            with open(f"{base}/gid_map", "w") as f:
                f.write(_map_text(gid_maps))
            return os.open(f"{base}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            raise RuntimeFailure(f"idmapped mount: set up user namespace: {_err(err)}") from None
    finally:
        os.close(w2)
        os.waitpid(pid, 0)


# cgroup ---------------------------------------------------------------------------------------


def _cgroup2_unified() -> bool:
    try:
        fd = os.open("/sys/fs/cgroup", os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return sc.fstatfs_type(fd) == sc.CGROUP2_SUPER_MAGIC
    finally:
        os.close(fd)


def _own_cgroups() -> dict[str, str]:
    out = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            for c in ctrls.split(",") if ctrls else [""]:
                out[c] = path
    return out


def _mount_cgroup(ctx: _Ctx, e: _Entry) -> None:
    if ctx.in_userns and not ctx.cgroupns:
        # The host's hierarchy (or our cgroup in it) is bound in: read-only whatever the config
        # says, or a rootless container could rewrite its delegated cgroups (CVE-2023-25809).
        e = _Entry(e.source, e.dest, e.device, e.opts, e.flags | sc.MS_RDONLY)
    if _cgroup2_unified():
        _mount_cgroup2(ctx, e)
    else:
        _mount_cgroup1(ctx, e)


def _mount_cgroup2(ctx: _Ctx, e: _Entry) -> None:
    with _ensure(ctx, e, is_dir=True) as r:
        try:
            fd = _mount_on(ctx, e, r, e.source or "cgroup2", "cgroup2", e.flags, e.data)
            _finish(ctx, e, fd)
            return
        except MountFailure as err:
            if err.errno not in (errno.EPERM, errno.EBUSY):
                raise
    # user namespace without cgroup namespace: bind the host hierarchy (or our own cgroup)
    src = "/sys/fs/cgroup"
    own = _own_cgroups().get("")
    if ctx.cgroupns and own:
        cand = "/sys/fs/cgroup" + own
        if os.path.isdir(cand):
            src = cand
    b = _Entry(src, e.dest, "bind", e.opts, sc.MS_BIND | e.flags)
    _mount_bind(ctx, b)


def _mount_cgroup1(ctx: _Ctx, e: _Entry) -> None:
    own = _own_cgroups()
    binds: list[tuple[str, str, str]] = []  # (source, dest, subsystem option)
    seen: set[str] = set()
    for mi in _mountinfo():
        if mi["fstype"] != "cgroup":
            continue
        subs = [o for o in mi["super"].split(",") if o not in ("rw", "ro") and not o.startswith(("release_agent=", "clone_children", "noprefix", "xattr", "cpuset_v2_mode", "nofavordynmods", "favordynmods"))]
        key = ",".join(sorted(subs))
        if not subs or key in seen:
            continue
        seen.add(key)
        path = None
        for s in subs:
            if s in own:
                path = own[s]
                break
        if path is None:
            continue
        rel = os.path.relpath(path, mi["root"])
        if rel.startswith(".."):
            continue  # our cgroup is not visible through that mount
        source = os.path.normpath(os.path.join(mi["mountpoint"], rel))
        binds.append((source, paths.clean(e.dest + "/" + os.path.basename(mi["mountpoint"])),
                      ",".join(subs)))
    tmpfs = _Entry("tmpfs", e.dest, "tmpfs", MountOptions(flags=DEFAULT_MOUNT_FLAGS, propagation=e.opts.propagation,
                                                             data=("mode=755",)), DEFAULT_MOUNT_FLAGS)
    _mount_tmpfs(ctx, tmpfs)
    merged = []
    for source, dest, subs in binds:
        base = os.path.basename(dest)
        if "," in base:
            merged.append(base)
        if ctx.cgroupns:
            b = _Entry("cgroup", dest, "cgroup", e.opts, DEFAULT_MOUNT_FLAGS | (e.flags & sc.MS_RDONLY))
            data = base if base != "systemd" else "none,name=systemd"
            with _ensure(ctx, b, is_dir=True) as r:
                fd = _mount_on(ctx, b, r, "systemd" if base == "systemd" else "cgroup", "cgroup", b.flags, data)
                os.close(fd)
        else:
            b = _Entry(source, dest, "bind", e.opts, sc.MS_BIND | sc.MS_REC | e.flags)
            _mount_bind(ctx, b)
    for mc in merged:
        for ss in mc.split(","):
            try:
                fd = paths.mkdirall_in_root(ctx.root_fd, e.dest)
            except OSError as err:
                raise RuntimeFailure(f"{e.describe()}: {_err(err)}") from None
            try:
                os.symlink(mc, ss, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as err:
                raise RuntimeFailure(f"{e.describe()}: symlink {ss} -> {mc}: {_err(err)}") from None
            finally:
                os.close(fd)


# /proc rules ----------------------------------------------------------------------------------


def _check_proc_mount(ctx: _Ctx, dest: str, source: str, *, source_is_proc: bool | None = None) -> None:
    """runc checkProcMount: nothing may be mounted under /proc except a few lxcfs-emulated files,
    and only procfs onto /proc itself."""
    real = paths.resolved_path(ctx.root_fd, dest)
    if real != "/proc" and not real.startswith("/proc/"):
        return
    if real == "/proc":
        if not source:
            return
        if source_is_proc is None:
            try:
                fd = os.open(source, os.O_PATH | os.O_CLOEXEC)
                try:
                    source_is_proc = sc.fstatfs_type(fd) == sc.PROC_SUPER_MAGIC
                finally:
                    os.close(fd)
            except OSError:
                source_is_proc = False
        if source_is_proc:
            return
        raise RuntimeFailure(f"mount {source} to {dest}: {real!r} cannot be mounted because it is not of type proc")
    if real in VALID_PROC_MOUNTS:
        return
    raise RuntimeFailure(f"mount {source or 'none'} to {dest}: {real!r} cannot be mounted because it is inside /proc")


# --- pivot -----------------------------------------------------------------------------------


def pivot_root(rootfs: str, *, no_pivot: bool = False) -> None:
    """Make the rootfs the root: pivot_root(".", ".") + lazy unmount of the old root (runc), or
    with no_pivot MS_MOVE onto / + chroot. Ends in "/"."""
    try:
        os.chdir(rootfs)
    except OSError as e:
        raise RuntimeFailure(f"chdir to rootfs {rootfs}: {_err(e)}") from None
    if no_pivot:
        _ms_move_root(os.path.realpath(rootfs))
    else:
        _pivot(rootfs)
    _reopen_dev_null()


def _pivot(rootfs: str) -> None:
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            try:
                sc.pivot_root(".", ".")
            except OSError as e:
                raise RuntimeFailure(f"pivot_root {rootfs}: {_err(e)}") from None
        finally:
            os.close(new)
        os.fchdir(old)
        try:
            sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        except OSError as e:
            raise RuntimeFailure(f"make old root rslave: {_err(e)}") from None
        try:
            sc.umount2(".", sc.MNT_DETACH)
        except OSError as e:
            raise RuntimeFailure(f"unmount old root: {_err(e)}") from None
    finally:
        os.close(old)
    os.chdir("/")


def _ms_move_root(rootfs: str) -> None:
    # Hide every full procfs/sysfs outside the rootfs first: the kernel's "mount too revealing"
    # check looks at the whole namespace, and they would stay reachable beside the chroot.
    for mi in sorted(_mountinfo(), key=lambda m: -len(m["mountpoint"])):
        mp = mi["mountpoint"]
        if mi["root"] != "/" or mi["fstype"] not in ("proc", "sysfs"):
            continue
        if mp == rootfs or mp.startswith(rootfs.rstrip("/") + "/"):
            continue
        try:
            sc.mount(None, mp, None, sc.MS_SLAVE | sc.MS_REC)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            raise RuntimeFailure(f"make {mp} rslave: {_err(e)}") from None
        try:
            sc.umount2(mp, sc.MNT_DETACH)
        except OSError as e:
            if e.errno not in (errno.EINVAL, errno.EPERM):
                raise RuntimeFailure(f"unmount {mp}: {_err(e)}") from None
            try:
                sc.mount("tmpfs", mp, "tmpfs", 0)
            except OSError as e2:
                raise RuntimeFailure(f"cover {mp}: {_err(e2)}") from None
    try:
        sc.mount(rootfs, "/", None, sc.MS_MOVE)
    except OSError as e:
        raise RuntimeFailure(f"move rootfs {rootfs} onto /: {_err(e)}") from None
    os.chroot(".")
    os.chdir("/")


def _reopen_dev_null() -> None:
    """runc reOpenDevNull: stdio fds that are the old /dev/null get the container's
    (best effort: on a nodev rootfs the container's cannot be opened)."""
    try:
        st_null = os.stat("/dev/null")
    except OSError:
        return
    if not stat_mod.S_ISCHR(st_null.st_mode):
        return
    for fd in (0, 1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat_mod.S_ISCHR(st.st_mode) and st.st_rdev == st_null.st_rdev and \
                (st.st_dev, st.st_ino) != (st_null.st_dev, st_null.st_ino):
            try:
                nfd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            except OSError:
                return
            os.dup2(nfd, fd, inheritable=True)
            os.close(nfd)


# --- finalize --------------------------------------------------------------------------------


def finalize_rootfs(spec: Any) -> None:
    """After pivot_root, in the container's view: tmpfs and /dev read-only if asked, root
    read-only, readonlyPaths, maskedPaths, then the rootfs propagation on /."""
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for m in getattr(spec, "mounts", None) or ():
            e = _entry(m, "/")
            if not e.flags & sc.MS_RDONLY:
                continue
            if e.device == "tmpfs" or e.dest == "/dev":
                _remount_readonly(root, e)
        r = getattr(spec, "root", None)
        if r is not None and r.readonly:
            set_readonly()
        linux = getattr(spec, "linux", None)
        for p in (getattr(linux, "readonly_paths", None) or ()) if linux is not None else ():
            readonly_path(root, p)
        for p in (getattr(linux, "masked_paths", None) or ()) if linux is not None else ():
            mask_path(root, p)
        prop = root_propagation(spec)
        if prop:
            try:
                sc.mount(None, "/", None, prop)
            except OSError as e:
                raise RuntimeFailure(f"apply rootfs propagation on /: {_err(e)}") from None
    finally:
        os.close(root)


def _remount_readonly(root: int, e: _Entry) -> None:
    try:
        with paths.walk_in_root(root, e.dest) as r:
            fd = r.open(os.O_PATH)
    except OSError as err:
        raise RuntimeFailure(f"remount {e.dest} read-only: {_err(err)}") from None
    try:
        flags = e.flags | sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY
        for _ in range(5):
            try:
                sc.mount(None, fd_path(fd), None, flags & ~sc.MS_REC)
                return
            except OSError as err:
                if err.errno == errno.EBUSY:
                    import time
                    time.sleep(0.1)
                    continue
                if err.errno == errno.EPERM:
                    _remount(e, fd, e.flags | sc.MS_RDONLY, f"remount {e.dest} read-only")
                    return
                raise RuntimeFailure(f"remount {e.dest} read-only: {_err(err)}") from None
        raise RuntimeFailure(f"remount {e.dest} read-only: device or resource busy")
    finally:
        os.close(fd)


def set_readonly() -> None:
    """Remount / read-only keeping its other flags (nosuid, nodev, noexec, atime: read with
    statvfs, as runc does when the plain remount is refused; done up front so that they are
    kept outside a user namespace too)."""
    flags = sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
    try:
        cur = statvfs_mount_flags(os.statvfs("/").f_flag)
    except OSError as e:
        raise RuntimeFailure(f"remount / read-only: statfs /: {_err(e)}") from None
    try:
        sc.mount(None, "/", None, flags | cur)
    except OSError as e:
        try:
            sc.mount(None, "/", None, flags)
        except OSError:
            raise RuntimeFailure(f"remount / read-only: {_err(e)}") from None


def _open_existing(root: int, path: str) -> int | None:
    """O_PATH fd of `path` resolved in the root, None if it does not exist."""
    try:
        return paths.open_in_root(root, path, os.O_PATH)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            return None
        raise RuntimeFailure(f"open {path}: {_err(e)}") from None


def readonly_path(root: int, path: str) -> None:
    """Bind the path onto itself and remount it read-only, keeping nosuid/nodev/noexec."""
    try:
        with paths.walk_in_root(root, path) as r:
            if r.lstat() is None:
                return
            fd = r.open(os.O_PATH)
            try:
                sc.mount(fd_path(fd), fd_path(fd), None, sc.MS_BIND | sc.MS_REC)
            except OSError as e:
                raise RuntimeFailure(f"make {path} read-only: bind mount: {_err(e)}") from None
            finally:
                os.close(fd)
            fd = r.open(os.O_PATH)
    except FileNotFoundError:
        return
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            return
        raise RuntimeFailure(f"make {path} read-only: {_err(e)}") from None
    try:
        cur = statvfs_mount_flags(os.statvfs(fd_path(fd)).f_flag)
        flags = (cur & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)) | sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY
        try:
            sc.mount(None, fd_path(fd), None, flags)
        except OSError as e:
            if e.errno != errno.EPERM:
                raise RuntimeFailure(f"make {path} read-only: remount: {_err(e)}") from None
            sc.mount(None, fd_path(fd), None, flags | (cur & (LOCKABLE)))
    except OSError as e:
        raise RuntimeFailure(f"make {path} read-only: {_err(e)}") from None
    finally:
        os.close(fd)


def _dev_null(root: int, path: str) -> int:
    """O_PATH fd of the container's /dev/null, verified to be the real char device 1:3 (a
    container could have replaced it with a symlink or another file: CVE-2025-31133)."""
    try:
        fd = paths.open_in_root(root, "/dev/null", os.O_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise RuntimeFailure(f"mask {path}: /dev/null is missing in the container") from None
    except OSError as e:
        raise RuntimeFailure(f"mask {path}: open /dev/null: {_err(e)}") from None
    st = os.fstat(fd)
    if not stat_mod.S_ISCHR(st.st_mode) or st.st_rdev != os.makedev(1, 3):
        os.close(fd)
        raise RuntimeFailure(f"mask {path}: /dev/null is not the null device: refusing to use it")
    return fd


def mask_path(root: int, path: str) -> None:
    """Files: bind /dev/null over them; directories: a read-only tmpfs. Missing: ignored. The
    path is resolved inside the root, so a symlink never leads the mask outside."""
    fd = _open_existing(root, path)
    if fd is None:
        return
    try:
        if stat_mod.S_ISDIR(os.fstat(fd).st_mode):
            try:
                sc.mount("tmpfs", fd_path(fd), "tmpfs", sc.MS_RDONLY)
            except OSError as e:
                raise RuntimeFailure(f"mask {path}: mount tmpfs: {_err(e)}") from None
            return
        null = _dev_null(root, path)
        try:
            sc.mount(fd_path(null), fd_path(fd), None, sc.MS_BIND)
        except OSError as e:
            raise RuntimeFailure(f"mask {path}: bind /dev/null: {_err(e)}") from None
        finally:
            os.close(null)
    finally:
        os.close(fd)
