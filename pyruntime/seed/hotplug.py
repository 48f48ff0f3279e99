"""`mountdev`: hot-plug a host device node into running containers (and take it away).

For each container, with its lock held:

1. the device cgroup allows the device (Manager.allow_device, "rwm") before the node appears;
   on --remove it is denied (deny_device) before the node goes, unless the container's other
   rules still allow it (runc's default devices, another path of the same device). A rootless
   container's device cgroup is not touched (not the user's to program; its device access is
   bounded by the user's own permissions on the host's nodes);
2. a forked child enters the container's mount namespace through a pidfd of its init (verified
   against the recorded start time: no pid-reuse race; for a user-namespaced container its user
   namespace too, in the same setns, as its root: files on its filesystems can only be created
   by ids mapped there) and, with every path resolved inside the container's root by
   pyruntime.linux.paths (component by component from the root's fd, symlinks resolved inside
   the root, parents created with mkdirat on directory fds, the final component never followed):
   - without a user namespace: mknod(2) of the node (host mode, uid/gid 0);
   - in a user-namespaced container mknod is useless (a node on a filesystem mounted in a user
     namespace cannot be opened): an empty file is created and the *host's* node bind-mounted
     onto it. The host node is cloned as a detached mount (open_tree(OPEN_TREE_CLONE), see
     clone_host_node) before entering, and attached with move_mount() onto an O_PATH fd of the
     target, so no path is looked up through the container's /proc (where /proc/self does not
     exist for a process outside its pid namespace);
   - --remove: the node (or the bind mount and its empty file) is removed, only if it is this
     device;
3. the container's recorded config says so: linux.devices gets (or loses) the node,
   linux.resources.devices the allow rule, and the cgroup state is saved again (v2 device rules
   live there).
"""

from __future__ import annotations

import copy
import errno
import os
import stat as stat_mod

import attrs

from pyruntime.errors import RuntimeFailure, WrongState
from pyruntime.linux import paths
from pyruntime.linux import syscalls as sc


@attrs.frozen
class HostDevice:
    path: str
    type: str  # "c" or "b"
    major: int
    minor: int
    mode: int

    @property
    def rdev(self) -> int:
        return os.makedev(self.major, self.minor)

    @property
    def type_bits(self) -> int:
        return stat_mod.S_IFCHR if self.type == "c" else stat_mod.S_IFBLK


def host_device(path: str) -> HostDevice:
    try:
        st = os.stat(path)
    except OSError as e:
        raise RuntimeFailure(f"host device {path}: {e.strerror.lower()}") from None
    if stat_mod.S_ISCHR(st.st_mode):
        t = "c"
    elif stat_mod.S_ISBLK(st.st_mode):
        t = "b"
    else:
        raise RuntimeFailure(f"{path} is not a character or block device")
    return HostDevice(os.path.abspath(path), t, os.major(st.st_rdev), os.minor(st.st_rdev),
                      stat_mod.S_IMODE(st.st_mode))


def container_path(path: str) -> str:
    p = paths.clean(path)
    if p == "/" or not path.startswith("/"):
        raise RuntimeFailure(f"invalid container path {path!r}: must be an absolute path to a file")
    return p


# --- the record --------------------------------------------------------------------------------
def _record_add(record: dict, dev: HostDevice, cpath: str) -> None:
    linux = record.setdefault("config", {}).setdefault("linux", {})
    devs = [d for d in linux.get("devices") or [] if paths.clean(d.get("path", "")) != cpath]
    devs.append({"path": cpath, "type": dev.type, "major": dev.major, "minor": dev.minor,
                 "fileMode": dev.mode, "uid": 0, "gid": 0})
    linux["devices"] = devs
    rule = {"allow": True, "type": dev.type, "major": dev.major, "minor": dev.minor, "access": "rwm"}
    res = linux.setdefault("resources", {})
    rules = res.get("devices") or []
    if rule not in rules:
        rules.append(rule)
    res["devices"] = rules


def _record_remove(record: dict, dev: HostDevice, cpath: str) -> None:
    linux = record.setdefault("config", {}).setdefault("linux", {})
    devs = linux.get("devices") or []
    linux["devices"] = [d for d in devs if paths.clean(d.get("path", "")) != cpath]
    if not linux["devices"]:
        linux.pop("devices")
    # The allow rule goes only when no other path of the container uses the same device.
    still = any(d.get("type") == dev.type and d.get("major") == dev.major and d.get("minor") == dev.minor
                for d in linux.get("devices") or [])
    res = linux.get("resources") or {}
    if not still and res.get("devices"):
        rule = {"allow": True, "type": dev.type, "major": dev.major, "minor": dev.minor, "access": "rwm"}
        res["devices"] = [r for r in res["devices"] if r != rule]


def _allowed_by_config(record: dict, dev: HostDevice) -> bool:
    """Whether the container's recorded rules (resources.devices, then runc's default allowed
    devices) let it read and write the device: then taking it away must not deny it (a hot-plug
    of /dev/null must not break the container's /dev/null; another path may use the device)."""
    from types import SimpleNamespace

    from pyruntime.cgroups.devices import Emulator, container_rules

    linux = record.get("config", {}).get("linux", {})
    rules = [SimpleNamespace(**d) for d in (linux.get("resources") or {}).get("devices") or []]
    devs = [SimpleNamespace(path=d.get("path")) for d in linux.get("devices") or []]
    return Emulator.from_rules(container_rules(rules, devs)).allows(dev.type, dev.major, dev.minor, "rw")


def _user_namespaced(record: dict) -> bool:
    return any(n.get("type") == "user" for n in record.get("config", {}).get("linux", {}).get("namespaces") or [])


# --- one container -----------------------------------------------------------------------------
def plug(ctx, cid: str, dev: HostDevice, cpath: str, *, remove: bool = False) -> None:
    from pyruntime.container.lifecycle import cgroup_of, load, pidfd_of
    from pyruntime.container.status import CREATED, PAUSED, RUNNING
    from pyruntime.log import debug

    cdir, record, stat = load(ctx, cid)
    with cdir:
        if stat not in (RUNNING, PAUSED, CREATED):
            raise WrongState(f"container {cid} is not running ({stat})")
        pidfd = pidfd_of(record)
        if pidfd is None:
            raise WrongState(f"container {cid} is not running")
        try:
            mgr = cgroup_of(record)
            if mgr is not None and (ctx.rootless or mgr.rootless or not mgr.paths()):
                # As runc: a rootless container's device access is bounded by the user's own
                # permissions (nodes are bind mounts of the host's); the device cgroup (v1
                # devices.allow, v2 eBPF) is not the user's to program.
                debug(f"{cid}: rootless: the device cgroup is left as it is")
                mgr = None
            bind = _user_namespaced(record)
            if not remove:
                undo = mgr is not None and not _allowed_by_config(record, dev)
                if mgr is not None:
                    _cgroup(ctx, mgr, "allow", dev)
                try:
                    _in_container(pidfd, dev, cpath, bind=bind, remove=False)
                except BaseException:
                    if undo:
                        try:
                            _cgroup(ctx, mgr, "deny", dev)
                        except RuntimeFailure:
                            pass
                    raise
                _record_add(record, dev, cpath)
            else:
                after = copy.deepcopy(record)
                _record_remove(after, dev, cpath)
                deny = mgr is not None and not _allowed_by_config(after, dev)
                if deny:
                    _cgroup(ctx, mgr, "deny", dev)
                try:
                    _in_container(pidfd, dev, cpath, bind=bind, remove=True)
                except BaseException:
                    if deny:
                        try:
                            _cgroup(ctx, mgr, "allow", dev)
                        except RuntimeFailure:
                            pass
                    raise
                record = after
            if mgr is not None:
                record["cgroup"] = mgr.to_state()
            cdir.write(record)
        finally:
            os.close(pidfd)


def _cgroup(ctx, mgr, what: str, dev: HostDevice) -> None:
    try:
        if what == "allow":
            mgr.allow_device(dev.type, dev.major, dev.minor, "rwm")
        else:
            mgr.deny_device(dev.type, dev.major, dev.minor, "rw")
            # mknod may stay allowed by a wildcard rule ("b *:* m", runc's default): the devices
            # cgroup cannot take "m" from one device then, and mknod alone gives no access.
            try:
                mgr.deny_device(dev.type, dev.major, dev.minor, "m")
            except RuntimeFailure:
                pass
    except OSError as e:
        raise RuntimeFailure(f"{what} device {dev.type} {dev.major}:{dev.minor} in the cgroup: {e.strerror}") from None


# --- inside the container's mount namespace ----------------------------------------------------
def _in_container(pidfd: int, dev: HostDevice, cpath: str, *, bind: bool, remove: bool) -> None:
    """Fork, enter the container's mount namespace, do the work; errors come back as one line."""
    tree = clone_host_node(dev.path) if bind and not remove else None
    # A user-namespaced container's filesystems (its /dev tmpfs) accept new files only from ids
    # mapped in its user namespace: join it too and act as its root.
    nstype = sc.CLONE_NEWNS | (sc.CLONE_NEWUSER if bind else 0)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.close(r)
                try:
                    sc.setns(pidfd, nstype)
                except OSError as e:
                    raise RuntimeFailure(f"enter the container's mount namespace: {os.strerror(e.errno).lower()}") from None
                if nstype & sc.CLONE_NEWUSER:
                    os.setresgid(0, 0, 0)
                    os.setresuid(0, 0, 0)
                root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                if remove:
                    _remove_node(root, dev, cpath)
                elif bind:
                    _bind_node(root, dev, cpath, tree)
                else:
                    _mknod(root, dev, cpath)
                code = 0
            except BaseException as e:  # noqa: BLE001 - one line to the parent
                msg = str(e) if isinstance(e, RuntimeFailure) else \
                    (f"{cpath}: {e.strerror.lower()}" if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}")
                try:
                    os.write(w, msg.encode()[:4000])
                except OSError:
                    pass
            os._exit(code)
        os.close(w)
        w = -1
        data = b""
        while chunk := os.read(r, 4096):
            data += chunk
        _, status = os.waitpid(pid, 0)
        if data or status != 0:
            raise RuntimeFailure(data.decode(errors="replace") or f"device helper failed (status {status})")
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        if tree is not None:
            os.close(tree)


def _open_tree(path: str) -> int:
    src = os.open(path, os.O_PATH | os.O_CLOEXEC)
    try:
        return sc.open_tree(src, "", sc.OPEN_TREE_CLONE | sc.AT_EMPTY_PATH)
    except OSError as e:
        raise RuntimeFailure(f"clone a mount of {path}: {os.strerror(e.errno).lower()}") from None
    finally:
        os.close(src)


def clone_host_node(path: str) -> int:
    """A detached mount of the host's node (open_tree(OPEN_TREE_CLONE)), to attach later inside
    a container. Cloning needs CAP_SYS_ADMIN over the mount namespace it is cloned from: an
    unprivileged caller clones it in a mount namespace of its own (a helper child in a new
    user+mount namespace, a copy of the host's) and gets the fd over a socket."""
    if os.geteuid() == 0:
        return _open_tree(path)
    import socket

    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    uid, gid = os.geteuid(), os.getegid()
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
            for name, data in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"), ("gid_map", f"0 {gid} 1\n")):
                with open(f"/proc/self/{name}", "w") as f:
                    f.write(data)
            socket.send_fds(theirs, [b"ok"], [_open_tree(path)])
        except BaseException as e:  # noqa: BLE001 - one line to the parent
            try:
                theirs.send(str(e).encode()[:4000] or b"error")
            except OSError:
                pass
        os._exit(0)
    theirs.close()
    try:
        msg, fds, _, _ = socket.recv_fds(mine, 4096, 1)
    finally:
        mine.close()
        os.waitpid(pid, 0)
    if msg != b"ok" or not fds:
        for fd in fds:
            os.close(fd)
        raise RuntimeFailure(msg.decode(errors="replace") or f"clone a mount of {path}: helper died")
    return fds[0]


def _parent(root: int, cpath: str) -> tuple[int, str]:
    dirfd = paths.mkdirall_in_root(root, os.path.dirname(cpath), 0o755)
    return dirfd, os.path.basename(cpath)


def _is_this_device(st: os.stat_result | None, dev: HostDevice) -> bool:
    return st is not None and (stat_mod.S_ISCHR(st.st_mode) or stat_mod.S_ISBLK(st.st_mode)) and \
        stat_mod.S_IFMT(st.st_mode) == dev.type_bits and st.st_rdev == dev.rdev


def _lstat(dirfd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _mknod(root: int, dev: HostDevice, cpath: str) -> None:
    dirfd, name = _parent(root, cpath)
    try:
        st = _lstat(dirfd, name)
        if _is_this_device(st, dev):
            return
        if st is not None:
            raise RuntimeFailure(f"{cpath} already exists in the container (and is not {dev.path})")
        old = os.umask(0)
        try:
            os.mknod(name, dev.mode | dev.type_bits, dev.rdev, dir_fd=dirfd)
        finally:
            os.umask(old)
        os.chown(name, 0, 0, dir_fd=dirfd, follow_symlinks=False)
    finally:
        os.close(dirfd)


def _bind_node(root: int, dev: HostDevice, cpath: str, tree: int) -> None:
    dirfd, name = _parent(root, cpath)
    try:
        st = _lstat(dirfd, name)
        if _is_this_device(st, dev):
            return
        made = st is None
        if made:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=dirfd)
            os.close(fd)
        elif not stat_mod.S_ISREG(st.st_mode) or st.st_size != 0:
            raise RuntimeFailure(f"{cpath} already exists in the container (and is not {dev.path})")
        try:
            target = sc.openat2(dirfd, name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, 0, paths._ONE)
            try:
                sc.move_mount(tree, "", target, "", sc.MOVE_MOUNT_F_EMPTY_PATH | sc.MOVE_MOUNT_T_EMPTY_PATH)
            except OSError as e:
                raise RuntimeFailure(f"bind mount {dev.path} on {cpath}: {os.strerror(e.errno).lower()}") from None
            finally:
                os.close(target)
        except BaseException:
            if made:
                try:
                    os.unlink(name, dir_fd=dirfd)
                except OSError:
                    pass
            raise
    finally:
        os.close(dirfd)


def _remove_node(root: int, dev: HostDevice, cpath: str) -> None:
    try:
        r = paths.walk_in_root(root, cpath, follow_last=False)
    except FileNotFoundError:
        return
    with r:
        if not r.name:
            raise RuntimeFailure(f"invalid container path {cpath!r}")
        st = r.lstat()
        if st is None:
            return
        if not _is_this_device(st, dev):
            raise RuntimeFailure(f"{cpath} in the container is not {dev.path}: left alone")
        # A bind mount of the host node: detach it (cwd = the parent, one component, no symlink
        # followed), then remove the empty file under it; a node made by mknod: unlink it.
        os.fchdir(r.parent_fd)
        try:
            sc.umount2(r.name, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise RuntimeFailure(f"unmount {cpath}: {os.strerror(e.errno).lower()}") from None
        st = r.lstat()
        if st is not None and (_is_this_device(st, dev) or (stat_mod.S_ISREG(st.st_mode) and st.st_size == 0)):
            os.unlink(r.name, dir_fd=r.parent_fd)
