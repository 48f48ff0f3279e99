"""The state store: one directory per container under --root.

<root>/<id>/state.json   OCI state fields plus what the runtime needs (written atomically)
<root>/<id>/exec.fifo    exists while the container is `created`; `start` consumes it

A per-container flock on the container directory serialises commands on one id; commands on
different ids never block each other. Creation is atomic through mkdir(2).
"""

from __future__ import annotations

import errno
import fcntl
import os

from pyruntime.errors import NotFound, RuntimeFailure, UsageError
from pyruntime import jsonio

# runc: ^[\w+-\.]+$ with Go's ASCII \w
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
MAX_ID_LEN = 1024
STATE_FILE = "state.json"
CLAIM = ".claim"  # made (O_EXCL) by the create that owns the directory
FIFO = "exec.fifo"


def _valid_chars(name: str) -> bool:
    return bool(name) and _ID_CHARS.issuperset(name)


def validate_id(cid: str) -> None:
    """runc's rules: [\\w+-.]+, not '.' or '..', bounded length."""
    if not cid:
        raise UsageError("container id cannot be empty")
    if cid in (".", "..") or not _valid_chars(cid) or len(cid) > MAX_ID_LEN:
        raise UsageError(f"invalid container id format: {cid}")


class Store:
    def __init__(self, root: str) -> None:
        self.root = root

    def path(self, cid: str) -> str:
        return os.path.join(self.root, cid)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        except PermissionError:
            raise RuntimeFailure(f"open {self.root}: permission denied (use --root, or set XDG_RUNTIME_DIR)") from None
        return sorted(n for n in names if not n.startswith(".") and _valid_chars(n))

    def create(self, cid: str) -> "ContainerDir":
        """Make the container's directory (atomic) and return it locked."""
        validate_id(cid)
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
        except OSError as e:
            raise RuntimeFailure(f"cannot create the state directory {self.root}: {e.strerror.lower()}"
                                 " (use --root, or set XDG_RUNTIME_DIR)") from None
        path = self.path(cid)
        for _ in range(10):
            try:
                os.mkdir(path, 0o711)
            except FileExistsError:
                raise RuntimeFailure(f"container with id exists: {cid}") from None
            except OSError as e:
                raise RuntimeFailure(f"cannot create {path}: {e.strerror.lower()}") from None
            d = ContainerDir(cid, path)
            try:
                d.lock()
            except NotFound:
                continue
            if os.fstat(d._fd).st_nlink == 0:
                # Between our mkdir and our lock a `delete --force` took the empty directory for
                # the remains of a killed command (remove_orphan) and removed it: make it again.
                d.close()
                continue
            # The directory we locked may not be the one we made: after such a removal another
            # create can make it anew before our open. Whoever claims it first owns it.
            try:
                os.close(os.open(CLAIM, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                                 dir_fd=d._fd))
            except FileExistsError:
                d.close()
                raise RuntimeFailure(f"container with id exists: {cid}") from None
            return d
        raise RuntimeFailure(f"cannot create {path}: removed repeatedly while being created")

    def remove_orphan(self, cid: str) -> bool:
        """Remove the directory of `cid` if it has no state.json once its lock is taken (a
        command killed between mkdir and its first write, or half-way through a delete).
        True if a state.json is there after all (a create finished meanwhile)."""
        validate_id(cid)
        d = ContainerDir(cid, self.path(cid))
        try:
            d.lock()
        except NotFound:
            return False
        try:
            if os.fstat(d._fd).st_nlink == 0:
                return False
            if os.path.exists(os.path.join(d.path, STATE_FILE)):
                return True
            d.remove()
            return False
        finally:
            d.close()

    def open(self, cid: str, *, lock: bool = True) -> "ContainerDir":
        """Open an existing container, locked unless lock=False. NotFound if absent."""
        validate_id(cid)
        d = ContainerDir(cid, self.path(cid))
        if lock:
            d.lock()
        if not d.exists():
            d.close()
            raise NotFound("container does not exist")
        return d


class ContainerDir:
    def __init__(self, cid: str, path: str) -> None:
        self.id = cid
        self.path = path
        self._fd: int | None = None

    def lock(self, shared: bool = False) -> None:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound("container does not exist") from None
        fcntl.flock(self._fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)

    def exists(self) -> bool:
        if self._fd is not None:
            # The directory may have been removed while we waited for the lock.
            return os.fstat(self._fd).st_nlink > 0 and os.path.exists(os.path.join(self.path, STATE_FILE))
        return os.path.exists(os.path.join(self.path, STATE_FILE))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- state.json -----------------------------------------------------------------------
    def read(self) -> dict:
        try:
            with open(os.path.join(self.path, STATE_FILE), "rb") as f:
                return jsonio.loads(f.read())
        except FileNotFoundError:
            raise NotFound("container does not exist") from None
        except ValueError as e:
            raise RuntimeFailure(f"corrupt state file for {self.id}: {e}") from None

    def write(self, state: dict) -> None:
        """Atomic for every reader and against a killed command: temp file, then rename. No
        fsync (as runc): the state describes processes, which a power loss ends anyway, and the
        root is normally a tmpfs (/run); on disk it cost ~1 ms per write, four per create."""
        data = jsonio.dumps(state, compact=True).encode()
        tmp = os.path.join(self.path, f".{STATE_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(self.path, STATE_FILE))

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, FIFO)

    def remove(self) -> None:
        """Remove the directory and everything in it (state, fifo, runtime files)."""
        # The directory is flat (state.json, exec.fifo, temp files); anything else is a bug.
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        for name in names:
            p = os.path.join(self.path, name)
            if os.path.isdir(p) and not os.path.islink(p):
                import shutil

                shutil.rmtree(p, ignore_errors=True)
            else:
                remove_quietly(p)
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def rfc3339_now() -> str:
    """UTC time with nanoseconds, as runc records `created`."""
    import time

    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 10**9)) + ".%09dZ" % (t % 10**9)


def write_pid_file(path: str, pid: int) -> None:
    """Atomically, as runc does (conmon/shim may be watching the path)."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
