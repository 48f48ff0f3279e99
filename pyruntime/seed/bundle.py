"""The bundle `up` generates, its overlay root, and its removal.

Layout, in the state directory (so `rm` finds it from the id alone, and `delete`, which removes
only <root>/<id>/, leaves it intact; `rm` of an id whose state is already gone still cleans it):

    <root>/.bundles/<id>/config.json   the generated OCI config
    <root>/.bundles/<id>/rootfs/       empty: the overlay's mount point
    <root>/.bundles/<id>/upper/        the overlay's upper layer (the container's changes)
    <root>/.bundles/<id>/work/         the overlay's work dir
    <root>/.bundles/<id>/console.log   stdout+stderr of a detached (-d) container

The read-only lower layer is the user's ROOTFS directory; overlayfs never writes to it.

Where the overlay is mounted: never in the host's mount namespace. As root, `up` first moves
itself into a private mount namespace (unshare(CLONE_NEWNS), "/" made rslave so nothing
propagates back) and mounts the overlay on <bundle>/rootfs there; the container's mount
namespace, created by `create` as a copy of that one, gets its own copy of the mount, and
`up` unmounts its copy as soon as `create` returns. The host never sees the mount, so no path
(a failed create, a crash, SIGKILL of `up`) can leak one: the overlay lives exactly as long as
the container's mount namespace. Without root (see holder.py) a child in a new user+mount
namespace mounts it, and the container joins both namespaces.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat as stat_mod

import attrs

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc

BUNDLES = ".bundles"
ANNOTATION = "org.pyruntime.up"  # "<key>" = "true"; "<key>.lower" / ".upper" / ".work" / ".log"


@attrs.frozen
class Layout:
    bundle: str
    lower: str

    @property
    def config(self) -> str:
        return os.path.join(self.bundle, "config.json")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.bundle, "rootfs")

    @property
    def upper(self) -> str:
        return os.path.join(self.bundle, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.bundle, "work")

    @property
    def log(self) -> str:
        return os.path.join(self.bundle, "console.log")

    def annotations(self, detached: bool) -> dict[str, str]:
        out = {ANNOTATION: "true", f"{ANNOTATION}.lower": self.lower,
               f"{ANNOTATION}.upper": self.upper, f"{ANNOTATION}.work": self.work}
        if detached:
            out[f"{ANNOTATION}.log"] = self.log
        return out


def bundle_dir(root: str, cid: str) -> str:
    from pyruntime.container.state import validate_id

    validate_id(cid)
    return os.path.join(root, BUNDLES, cid)


def layers_of(record: dict) -> dict | None:
    """The overlay layers `up` recorded in the container's annotations, or None."""
    ann = record.get("annotations") or {}
    if ann.get(ANNOTATION) != "true":
        return None
    out = {k: ann.get(f"{ANNOTATION}.{k}") for k in ("lower", "upper", "work")}
    out["merged"] = record.get("rootfs", "")
    if ann.get(f"{ANNOTATION}.log"):
        out["log"] = ann[f"{ANNOTATION}.log"]
    return out


def make(root: str, cid: str, lower: str) -> Layout:
    """Create the bundle directory (atomically: a second `up` of the same id fails here)."""
    lay = Layout(bundle_dir(root, cid), lower)
    try:
        os.makedirs(root, mode=0o711, exist_ok=True)
        os.makedirs(os.path.join(root, BUNDLES), mode=0o711, exist_ok=True)
    except OSError as e:
        hint = " (set XDG_RUNTIME_DIR or pass --root)" if os.geteuid() != 0 else ""
        raise RuntimeFailure(f"cannot create the state directory {root}: {e.strerror.lower()}{hint}") from None
    try:
        os.mkdir(lay.bundle, 0o711)
    except FileExistsError:
        if os.path.exists(os.path.join(root, cid)):
            raise RuntimeFailure(f"container with id exists: {cid}") from None
        raise RuntimeFailure(f"{lay.bundle} is left over from a removed container {cid} (kept by "
                             f"`rm --keep-changes` or removed with `delete`): `pyruntime rm {cid}` "
                             f"removes it") from None
    try:
        os.mkdir(lay.rootfs, 0o755)
        os.mkdir(lay.upper, 0o755)
        os.mkdir(lay.work, 0o700)
        # The merged root directory takes its attributes from the upper one: copy the lower's.
        st = os.stat(lower)
        os.chmod(lay.upper, stat_mod.S_IMODE(st.st_mode))
        if os.geteuid() == 0:
            os.chown(lay.upper, st.st_uid, st.st_gid)
    except BaseException:
        remove(lay.bundle)
        raise
    return lay


def write_config(lay: Layout, cfg: dict) -> None:
    fd = os.open(lay.config, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(cfg, f, indent=1)


def _escape(path: str) -> str:
    """overlayfs option syntax: ',' separates options, ':' separates lower layers."""
    if "\n" in path:
        raise RuntimeFailure(f"overlay layer path {path!r}: newline in path")
    return path.replace("\\", "\\\\").replace(",", "\\,").replace(":", "\\:")


def overlay_options(lay: Layout, *, userxattr: bool) -> str:
    data = f"lowerdir={_escape(lay.lower)},upperdir={_escape(lay.upper)},workdir={_escape(lay.work)}"
    # In a user namespace trusted.* xattrs are out of reach: overlayfs keeps its metadata in
    # user.overlay.* instead (kernel >= 5.11).
    return data + (",userxattr" if userxattr else "")


def mount_overlay(lay: Layout, *, userxattr: bool = False) -> None:
    try:
        sc.mount("overlay", lay.rootfs, "overlay", 0, overlay_options(lay, userxattr=userxattr))
    except OSError as e:
        hint = ""
        if e.errno == errno.EPERM and userxattr:
            hint = " (unprivileged overlay mounts need Linux >= 5.11)"
        elif e.errno == errno.EINVAL:
            hint = " (is the upper/work filesystem usable by overlayfs? the state directory must not be on an overlay)"
        raise RuntimeFailure(f"mount overlay (lower {lay.lower}) on {lay.rootfs}: "
                             f"{os.strerror(e.errno).lower()}{hint}") from None


def enter_private_mount_ns() -> None:
    """Move this (single-threaded) process into its own mount namespace whose mounts never
    propagate back to the host's."""
    try:
        sc.unshare(sc.CLONE_NEWNS)
        sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
    except OSError as e:
        raise RuntimeFailure(f"private mount namespace for the overlay: {os.strerror(e.errno).lower()}") from None


def unmount_overlay(lay: Layout) -> None:
    try:
        sc.umount2(lay.rootfs, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOENT):
            raise RuntimeFailure(f"unmount overlay {lay.rootfs}: {os.strerror(e.errno).lower()}") from None


def _mounts_under(path: str) -> list[str]:
    from pyruntime.linux.rootfs import _mountinfo

    prefix = path.rstrip("/") + "/"
    return sorted((m["mountpoint"] for m in _mountinfo()
                   if m["mountpoint"] == path or m["mountpoint"].startswith(prefix)),
                  key=len, reverse=True)


def remove(path: str) -> None:
    """Remove a generated bundle (layers included). Never crosses a mount point: whatever is
    mounted below it (there should be nothing) is detached first, or the removal refused."""
    if not os.path.lexists(path):
        return
    for mp in _mounts_under(path):
        try:
            sc.umount2(mp, sc.MNT_DETACH | sc.UMOUNT_NOFOLLOW)
        except OSError as e:
            raise RuntimeFailure(f"{mp} is mounted and cannot be unmounted ({os.strerror(e.errno).lower()}): "
                                 f"not removing {path}") from None

    retried: set[str] = set()

    def onerror(func, p, exc_info):
        err = exc_info[1]
        if isinstance(err, FileNotFoundError):
            return
        # overlayfs leaves work/work mode 000: its owner (rootless) makes it usable and retries.
        if isinstance(err, PermissionError) and p not in retried:
            retried.add(p)
            is_dir_op = func in (os.open, os.scandir, os.listdir)
            try:
                os.chmod(p if is_dir_op else os.path.dirname(p), 0o700)
                if is_dir_op:
                    shutil.rmtree(p, onerror=onerror)
                else:
                    func(p)
                return
            except FileNotFoundError:
                return
            except OSError:
                pass
        _fail(func, p, exc_info)

    shutil.rmtree(path, onerror=onerror)


def _fail(func, p, exc_info) -> None:
    err = exc_info[1]
    raise RuntimeFailure(f"remove {p}: {getattr(err, 'strerror', None) or err}") from None
