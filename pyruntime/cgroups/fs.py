"""Small file helpers shared by the v1 and v2 managers: read/write one cgroup file with errors
that name the file, parse the usual formats, remove a cgroup directory with retries."""

from __future__ import annotations

import errno
import os
import time

from pyruntime.errors import RuntimeFailure, Unsupported


class CgroupError(RuntimeFailure):
    """A cgroup file could not be written / read, or a cgroup could not be created/removed."""


def write(path: str, name: str, value: str | int) -> None:
    """Write value to path/name in one write(2), like runc's cgroups.WriteFile."""
    data = str(value).encode()
    fn = os.path.join(path, name)
    try:
        fd = os.open(fn, os.O_WRONLY | os.O_CLOEXEC | os.O_TRUNC)
    except FileNotFoundError:
        if not os.path.isdir(path):
            raise CgroupError(f"cgroup {path} does not exist") from None
        raise Unsupported(f"cannot set {name}: {fn} does not exist (not supported by this kernel or "
                          "controller not enabled)") from None
    except OSError as e:
        raise CgroupError(f"open {fn}: {e.strerror}") from None
    try:
        os.write(fd, data)
    except OSError as e:
        raise WriteError(fn, str(value), e) from None
    finally:
        os.close(fd)


class WriteError(CgroupError):
    def __init__(self, fn: str, value: str, e: OSError):
        super().__init__(f"write {value!r} to {fn}: {e.strerror}")
        self.errno = e.errno
        self.file = fn


def try_write(path: str, name: str, value: str | int) -> bool:
    """write() that returns False when the file does not exist."""
    if not os.path.exists(os.path.join(path, name)):
        return False
    write(path, name, value)
    return True


def read(path: str, name: str) -> str:
    fn = os.path.join(path, name)
    try:
        with open(fn, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError as e:
        raise CgroupError(f"read {fn}: {e.strerror}") from None


def read_or(path: str, name: str, default: str | None = None) -> str | None:
    try:
        with open(os.path.join(path, name), "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return default


def exists(path: str, name: str) -> bool:
    return os.path.exists(os.path.join(path, name))


def parse_uint(s: str) -> int:
    """A cgroup number; "max" (and v1's huge "unlimited" numbers) read as 2**64-1, like runc."""
    s = s.strip()
    if s == "max":
        return (1 << 64) - 1
    v = int(s)
    return 0 if v < 0 else v


def read_uint(path: str, name: str, default: int = 0) -> int:
    s = read_or(path, name)
    if s is None or not s.strip():
        return default
    try:
        return parse_uint(s.split()[0])
    except ValueError:
        return default


def read_keyed(path: str, name: str) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, memory.events, ...)."""
    out: dict[str, int] = {}
    s = read_or(path, name)
    if not s:
        return out
    for line in s.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = parse_uint(parts[1])
            except ValueError:
                pass
    return out


def read_procs(path: str) -> list[int]:
    s = read_or(path, "cgroup.procs", "") or ""
    return [int(x) for x in s.split() if x.isdigit()]


def pids_recursive(path: str) -> list[int]:
    """All processes of the cgroup and its descendants (runc's GetAllPids)."""
    out: list[int] = []
    if not os.path.isdir(path):
        return out
    for dirpath, _dirs, _files in os.walk(path):
        out.extend(read_procs(dirpath))
    return sorted(set(out))


def rmdir_tree(path: str, *, retries: int = 5, delay: float = 0.01) -> None:
    """Remove a cgroup directory and its child cgroups (deepest first), retrying EBUSY with
    backoff as runc's RemovePath/rmdir does. A missing directory is fine (idempotent)."""
    if not os.path.isdir(path):
        return
    subdirs = []
    for dirpath, dirs, _files in os.walk(path, topdown=False):
        subdirs.append(dirpath)
    last: OSError | None = None
    for d in subdirs:
        for i in range(retries + 1):
            try:
                os.rmdir(d)
                last = None
                break
            except FileNotFoundError:
                last = None
                break
            except OSError as e:
                last = e
                if e.errno not in (errno.EBUSY, errno.EAGAIN, errno.ENOTEMPTY):
                    break
                time.sleep(delay * (2 ** i))
        if last is not None:
            raise CgroupError(f"remove cgroup {d}: {last.strerror}")


def mkdir_p(path: str) -> list[str]:
    """mkdir -p; returns the directories it created (top first)."""
    created = []
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
            created.append(d)
        except FileExistsError:
            pass
        except OSError as e:
            raise CgroupError(f"create cgroup {d}: {e.strerror}") from None
    return created


def clean_path(p: str) -> str:
    """runc's utils.CleanPath: lexical clean; a relative path cannot climb out with '..'."""
    if not p:
        return ""
    if os.path.isabs(p):
        return os.path.normpath(p).replace("//", "/")
    # Relative: clean as if absolute, then make it relative again (so ../ cannot escape).
    return os.path.relpath(os.path.normpath("/" + p), "/") if p else ""
