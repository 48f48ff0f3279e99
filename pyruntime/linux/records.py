"""Records of the rootfs work (pyruntime.linux.rootfs, mounts, devices, paths), as attrs classes.

They live together, apart from the code using them, because the runtime imports the compiled
form, pyruntime/linux/_records.py (scripts/gen-model.py; importing attrs would cost ~30 ms on
every create). Edit this file, then run the generator.
"""

from __future__ import annotations

import os
from typing import Any

import attrs

from pyruntime.linux import syscalls as sc

# openat2 resolve flags for one path component: no symlinks, no magic links, no escape.
_ONE = sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_BENEATH


@attrs.define
class Resolved:
    """Result of walk_in_root: `parent_fd` is an O_PATH fd of the directory holding `name`
    (`name` is "" when the path is the root itself; parent_fd is then a dup of the root fd)."""

    parent_fd: int
    name: str
    path: str  # the resolved path inside the root, absolute ("/" for the root)

    def open(self, flags: int = os.O_PATH, mode: int = 0) -> int:
        """Open the final component (mounts on it are crossed, symlinks are not followed)."""
        if not self.name:
            return os.open(".", flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode, dir_fd=self.parent_fd)
        return sc.openat2(self.parent_fd, self.name, flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode, _ONE)

    def lstat(self) -> os.stat_result | None:
        try:
            if not self.name:
                return os.stat(self.parent_fd)
            return os.stat(self.name, dir_fd=self.parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def close(self) -> None:
        os.close(self.parent_fd)

    def __enter__(self) -> "Resolved":
        return self

    def __exit__(self, *a: object) -> None:
        self.close()


@attrs.frozen
class MountOptions:
    flags: int = 0
    propagation: tuple[int, ...] = ()
    rec_set: int = 0
    rec_clr: int = 0
    data: tuple[str, ...] = ()
    tmpcopyup: bool = False
    idmap: bool = False
    ridmap: bool = False

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)

    @property
    def data_str(self) -> str:
        return ",".join(self.data)

    @property
    def has_rec_attrs(self) -> bool:
        return bool(self.rec_set or self.rec_clr)


@attrs.define
class MountEntry:
    """One config.json mount, normalised."""

    source: str
    dest: str  # absolute, lexically cleaned
    device: str  # fs type; "bind" for bind mounts (runc's convention)
    opts: MountOptions
    flags: int
    uid_mappings: tuple = ()
    gid_mappings: tuple = ()

    @property
    def data(self) -> str:
        return self.opts.data_str

    def describe(self) -> str:
        return f"mount {self.source or 'none'} to {self.dest} ({self.device or 'none'})"


@attrs.define
class RootfsCtx:
    """What the rootfs steps of one container share."""

    root_fd: int
    rootfs: str  # host path of the rootfs (real path)
    bundle: str
    in_userns: bool
    cgroupns: bool
    spec: Any
    mount_fds: dict = attrs.field(factory=dict)
    index: int | None = None  # index in spec.mounts of the entry being mounted
    deferred_rec: list = attrs.field(factory=list)


@attrs.frozen
class DeviceNode:
    path: str
    type: str  # c, b, u, p
    major: int = 0
    minor: int = 0
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0
