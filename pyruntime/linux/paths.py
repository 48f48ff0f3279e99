"""Safe path resolution inside a container root.

Every path inside a rootfs is resolved relative to an fd of that root, never by joining strings:

- `open_in_root` is a single openat2(RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS): absolute symlinks
  and `..` are clamped at the root by the kernel.
- `walk_in_root` resolves component by component with O_PATH|O_NOFOLLOW fds, following symlinks
  by hand (their targets are spliced in and resolved again inside the root), optionally creating
  missing components with mkdirat() on the parent fd. Its result keeps the fd of the *parent*
  and the final name, so a caller that mounted on the final component can open the new mount
  on top of it with a one-component, no-symlink lookup from the parent fd (a mountpoint cannot
  be renamed or unlinked), instead of resolving the path again.

Every fd is O_CLOEXEC.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from pyruntime.linux import syscalls as sc
from pyruntime.linux._records import _ONE, Resolved  # noqa: F401 (Resolved is part of this API)

_IN_ROOT = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS
_MAX_LINKS = 40


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _err(e: OSError) -> str:
    return os.strerror(e.errno or 0).lower() if e.errno else str(e)


def clean(path: str) -> str:
    """Lexically cleaned absolute form of a container path ("a/../b" -> "/b"); relative paths are
    relative to / (OCI 1.2)."""
    out: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if out:
                out.pop()
            continue
        out.append(p)
    return "/" + "/".join(out)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """openat2(root_fd, path, flags|O_CLOEXEC, RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS)."""
    rel = path.lstrip("/") or "."
    return sc.openat2(root_fd, rel, flags | os.O_CLOEXEC, mode, _IN_ROOT)


def walk_in_root(root_fd: int, path: str, *, mkdir_parents: bool = False, mkdir_last: bool = False,
                 mode: int = 0o755, follow_last: bool = True) -> Resolved:
    """Resolve `path` inside the root, following symlinks inside the root (never outside).

    Missing intermediate directories are created (mkdirat on the parent fd) when
    `mkdir_parents`, the final one when `mkdir_last`. A missing final component is fine
    (Resolved.lstat() is None). `follow_last=False` stops at a final symlink.
    Raises OSError (ENOENT for a missing intermediate, ENOTDIR, ELOOP).
    """
    stack: list[int] = [os.dup(root_fd)]
    names: list[str] = []
    todo = [p for p in path.split("/") if p not in ("", ".")]
    todo.reverse()
    links = 0
    final: str | None = None
    try:
        while todo:
            comp = todo.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            last = not todo
            cur = stack[-1]
            try:
                st = os.stat(comp, dir_fd=cur, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is None:
                if not (mkdir_last if last else mkdir_parents):
                    if last:
                        final = comp
                        break
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), "/" + "/".join(names + [comp]))
                try:
                    os.mkdir(comp, mode, dir_fd=cur)
                except FileExistsError:
                    pass  # raced: look again
                todo.append(comp)
                continue
            if stat_mod.S_ISLNK(st.st_mode):
                if last and not follow_last:
                    final = comp
                    break
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), "/" + "/".join(names + [comp]))
                target = os.readlink(comp, dir_fd=cur)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if last:
                final = comp
                break
            if not stat_mod.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "/" + "/".join(names + [comp]))
            try:
                fd = sc.openat2(cur, comp, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, 0, _ONE)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):  # swapped meanwhile: look again
                    todo.append(comp)
                    continue
                raise
            stack.append(fd)
            names.append(comp)
        if final is None:
            if len(stack) > 1:
                os.close(stack.pop())
                final = names.pop()
            else:
                return Resolved(stack.pop(), "", "/")
        parent = stack.pop()
        for f in stack:
            os.close(f)
        stack.clear()
        return Resolved(parent, final, "/" + "/".join(names + [final]))
    except BaseException:
        for f in stack:
            os.close(f)
        raise


def mkdirall_in_root(root_fd: int, path: str, mode: int = 0o755) -> int:
    """Create every missing directory of `path` inside the root; O_PATH fd of the final dir."""
    with walk_in_root(root_fd, path, mkdir_parents=True, mkdir_last=True, mode=mode) as r:
        fd = r.open(os.O_PATH)
        if not stat_mod.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), r.path)
        return fd


def mkfile_in_root(root_fd: int, path: str, mode: int = 0o644) -> int:
    """Create (if missing) an empty regular file at `path` inside the root (parents too); O_PATH
    fd of it. An existing non-directory is accepted (a bind mount onto it works)."""
    r = ensure_in_root(root_fd, path, is_dir=False, mode=mode)
    with r:
        return r.open(os.O_PATH)


def ensure_in_root(root_fd: int, path: str, *, is_dir: bool, mode: int | None = None) -> Resolved:
    """Resolve `path` inside the root, creating missing parents (0755) and the final component
    (a directory, or an empty regular file) if missing. Returns the Resolved (caller closes it).
    An existing final component of another type is left as it is (the caller checks)."""
    for _ in range(_MAX_LINKS):
        r = walk_in_root(root_fd, path, mkdir_parents=True, mkdir_last=is_dir,
                         mode=0o755 if mode is None or not is_dir else mode)
        try:
            if r.lstat() is not None:
                return r
            if not r.name:
                return r
            try:
                fd = os.open(r.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o644 if mode is None else mode, dir_fd=r.parent_fd)
                os.close(fd)
            except FileExistsError:
                pass
        except BaseException:
            r.close()
            raise
        r.close()  # created: resolve again (whatever is there now is resolved inside the root)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def resolved_path(root_fd: int, path: str) -> str:
    """The path inside the root that `path` resolves to (symlinks followed inside the root),
    without creating anything; components after the first missing one are appended lexically."""
    parts = [p for p in clean(path).split("/") if p]
    for i in range(len(parts), -1, -1):
        try:
            with walk_in_root(root_fd, "/" + "/".join(parts[:i])) as r:
                if r.lstat() is None and i:
                    continue
                return clean(r.path + "/" + "/".join(parts[i:]))
        except OSError:
            continue
    return clean(path)
