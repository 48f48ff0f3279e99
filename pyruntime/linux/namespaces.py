"""Namespaces: the spec's type names, joining by path, unsharing, id maps and time offsets."""

from __future__ import annotations

import os

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc

# Spec type -> (clone flag, /proc/<pid>/ns name). Joining order follows runc: user first.
NS = {
    "user": (sc.CLONE_NEWUSER, "user"),
    "ipc": (sc.CLONE_NEWIPC, "ipc"),
    "uts": (sc.CLONE_NEWUTS, "uts"),
    "network": (sc.CLONE_NEWNET, "net"),
    "pid": (sc.CLONE_NEWPID, "pid"),
    "mount": (sc.CLONE_NEWNS, "mnt"),
    "cgroup": (sc.CLONE_NEWCGROUP, "cgroup"),
    "time": (sc.CLONE_NEWTIME, "time"),
}
ORDER = ("user", "ipc", "uts", "network", "pid", "mount", "cgroup", "time")


def split(namespaces) -> tuple[dict[str, str], int]:
    """({type: path} to join, clone flags of the new ones) from the spec's namespace list."""
    join: dict[str, str] = {}
    flags = 0
    for ns in namespaces or ():
        if ns.path:
            join[ns.type] = ns.path
        else:
            flags |= NS[ns.type][0]
    return join, flags


def open_join_fds(join: dict[str, str]) -> list[tuple[str, int]]:
    """Open every namespace path up front (in the runtime's mount namespace), in join order."""
    fds = []
    try:
        for t in ORDER:
            if t in join:
                try:
                    fd = os.open(join[t], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise RuntimeFailure(f"open {t} namespace {join[t]}: {e.strerror}") from None
                fds.append((t, fd))
    except BaseException:
        for _, fd in fds:
            os.close(fd)
        raise
    return fds


def join_all(fds: list[tuple[str, int]]) -> None:
    for t, fd in fds:
        try:
            sc.setns(fd, NS[t][0])
        except OSError as e:
            raise RuntimeFailure(f"failed to join {t} namespace: {e.strerror}") from None
        os.close(fd)


def format_idmap(mappings) -> str:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)


def write_id_maps(pid: int, uid_mappings, gid_mappings, *, rootless: bool) -> None:
    """Write uid_map/gid_map of pid (a child that has just unshared its user namespace).

    Root writes the files directly. A non-root caller writes a single mapping of itself, or uses
    newuidmap/newgidmap (Debian's uidmap, /etc/subuid) for several ranges, as runc does.
    """
    uid_map, gid_map = format_idmap(uid_mappings), format_idmap(gid_mappings)
    if rootless:
        _rootless_maps(pid, uid_mappings, gid_mappings)
        return
    for name, data in (("uid_map", uid_map), ("gid_map", gid_map)):
        if not data:
            continue
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(data)
        except OSError as e:
            raise RuntimeFailure(f"writing {name} ({data.strip()!r}): {e.strerror}") from None


def _rootless_maps(pid: int, uid_mappings, gid_mappings) -> None:
    import shutil
    import subprocess

    uid, gid = os.geteuid(), os.getegid()
    simple_u = len(uid_mappings) == 1 and uid_mappings[0].host_id == uid and uid_mappings[0].size == 1
    simple_g = len(gid_mappings) == 1 and gid_mappings[0].host_id == gid and gid_mappings[0].size == 1
    if simple_u and simple_g:
        with open(f"/proc/{pid}/setgroups", "w") as f:
            f.write("deny")
        for name, m in (("uid_map", uid_mappings), ("gid_map", gid_mappings)):
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(format_idmap(m))
        return
    for tool, maps in (("newuidmap", uid_mappings), ("newgidmap", gid_mappings)):
        exe = shutil.which(tool)
        if not exe:
            raise RuntimeFailure(f"{tool} not found (install Debian's uidmap) and the config maps more than the caller's own id")
        args = [exe, str(pid)]
        for m in maps:
            args += [str(m.container_id), str(m.host_id), str(m.size)]
        r = subprocess.run(args, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeFailure(f"{tool} failed: {(r.stderr or r.stdout).strip().splitlines()[-1] if (r.stderr or r.stdout).strip() else r.returncode}")


def write_time_offsets(offsets: dict) -> None:
    """After unshare(CLONE_NEWTIME), before the first child: /proc/self/timens_offsets."""
    lines = []
    for clock, off in offsets.items():
        secs = off.get("secs", 0) if isinstance(off, dict) else getattr(off, "secs", 0) or 0
        nsecs = off.get("nanosecs", 0) if isinstance(off, dict) else getattr(off, "nanosecs", 0) or 0
        lines.append(f"{clock} {secs} {nsecs}\n")
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write("".join(lines))
    except OSError as e:
        raise RuntimeFailure(f"writing time namespace offsets: {e.strerror}") from None


def ns_inode(pid: int, t: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/{NS[t][1]}").st_ino
    except OSError:
        return None
