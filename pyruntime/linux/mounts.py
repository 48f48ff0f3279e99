"""Mount options of config.json `mounts[]` -> mount(2) flags, propagation, mount_setattr
attributes and the filesystem data string, with runc's table (libcontainer/specconv
parseMountOptions): unknown options go to the data string.
"""

from __future__ import annotations

from pyruntime.linux import syscalls as sc
from pyruntime.linux._records import MountOptions  # noqa: F401 (part of this API)

# option -> (clear, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "acl": (False, sc.MS_POSIXACL),
    "async": (True, sc.MS_SYNCHRONOUS),
    "atime": (True, sc.MS_NOATIME),
    "bind": (False, sc.MS_BIND),
    "defaults": (False, 0),
    "dev": (True, sc.MS_NODEV),
    "diratime": (True, sc.MS_NODIRATIME),
    "dirsync": (False, sc.MS_DIRSYNC),
    "exec": (True, sc.MS_NOEXEC),
    "iversion": (False, sc.MS_I_VERSION),
    "lazytime": (False, sc.MS_LAZYTIME),
    "loud": (True, sc.MS_SILENT),
    "mand": (False, sc.MS_MANDLOCK),
    "noacl": (True, sc.MS_POSIXACL),
    "noatime": (False, sc.MS_NOATIME),
    "nodev": (False, sc.MS_NODEV),
    "nodiratime": (False, sc.MS_NODIRATIME),
    "noexec": (False, sc.MS_NOEXEC),
    "noiversion": (True, sc.MS_I_VERSION),
    "nolazytime": (True, sc.MS_LAZYTIME),
    "nomand": (True, sc.MS_MANDLOCK),
    "norelatime": (True, sc.MS_RELATIME),
    "nostrictatime": (True, sc.MS_STRICTATIME),
    "nosuid": (False, sc.MS_NOSUID),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
    "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "relatime": (False, sc.MS_RELATIME),
    "remount": (False, sc.MS_REMOUNT),
    "ro": (False, sc.MS_RDONLY),
    "rw": (True, sc.MS_RDONLY),
    "silent": (False, sc.MS_SILENT),
    "strictatime": (False, sc.MS_STRICTATIME),
    "suid": (True, sc.MS_NOSUID),
    "sync": (False, sc.MS_SYNCHRONOUS),
}

PROPAGATION: dict[str, int] = {
    "private": sc.MS_PRIVATE,
    "shared": sc.MS_SHARED,
    "slave": sc.MS_SLAVE,
    "unbindable": sc.MS_UNBINDABLE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# recursive mount attributes (mount_setattr AT_RECURSIVE): option -> (clear, MOUNT_ATTR_*)
_REC_ATTRS: dict[str, tuple[bool, int]] = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY),
    "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID),
    "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV),
    "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC),
    "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME),
    "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, sc.MOUNT_ATTR_RELATIME),
    "rnorelatime": (True, sc.MOUNT_ATTR_RELATIME),
    "rnoatime": (False, sc.MOUNT_ATTR_NOATIME),
    "ratime": (True, sc.MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, sc.MOUNT_ATTR_STRICTATIME),
    "rnostrictatime": (True, sc.MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
}
_ATIME_OPTS = {"rrelatime", "rnorelatime", "rnoatime", "ratime", "rstrictatime", "rnostrictatime"}


def parse_options(options: tuple[str, ...] | list[str] | None) -> MountOptions:
    flags = 0
    prop: list[int] = []
    rec_set = rec_clr = 0
    data: list[str] = []
    copyup = idmap = ridmap = False
    for o in options or ():
        if o in _FLAGS:
            clear, f = _FLAGS[o]
            if f == 0:
                continue  # "defaults"
            if clear:
                flags &= ~f
            else:
                flags |= f
        elif o in PROPAGATION:
            prop.append(PROPAGATION[o])
        elif o in _REC_ATTRS:
            clear, f = _REC_ATTRS[o]
            if o in _ATIME_OPTS:
                # the kernel takes the atime mode as one field: clear all of it, set the new one
                # (clearing noatime/strictatime means "back to relatime").
                rec_clr |= sc.MOUNT_ATTR__ATIME
                rec_set &= ~sc.MOUNT_ATTR__ATIME
                if not clear:
                    rec_set |= f
            elif clear:
                rec_clr |= f
                rec_set &= ~f
            else:
                rec_set |= f
                rec_clr &= ~f
        elif o == "tmpcopyup":
            copyup = True
        elif o == "notmpcopyup":
            copyup = False
        elif o == "idmap":
            idmap = True
        elif o == "ridmap":
            idmap = ridmap = True
        else:
            data.append(o)
    return MountOptions(flags, tuple(prop), rec_set, rec_clr, tuple(data), copyup, idmap, ridmap)


# statvfs f_flag bits (ST_*) -> MS_* (same values on Linux for these)
ST_RDONLY, ST_NOSUID, ST_NODEV, ST_NOEXEC = 1, 2, 4, 8
ST_NOATIME, ST_NODIRATIME, ST_RELATIME, ST_NOSYMFOLLOW = 1024, 2048, 4096, 8192

LOCKABLE = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | \
    sc.MS_NODIRATIME | sc.MS_RELATIME | sc.MS_STRICTATIME


def statvfs_mount_flags(f_flag: int) -> int:
    """statvfs().f_flag -> the MS_* flags of that mount (runc: statfs flags)."""
    out = f_flag & (ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME)
    if f_flag & ST_RELATIME:
        out |= sc.MS_RELATIME
    if f_flag & ST_NOSYMFOLLOW:
        out |= sc.MS_NOSYMFOLLOW
    return out
