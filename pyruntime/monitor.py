"""The syscall monitor: a seccomp agent that prints the syscalls of monitored containers live.

It listens on a unix socket (the config's `linux.seccomp.listenerPath`, see config-linux.md
"The Container Process State"): each connection brings one JSON container process state and the
seccomp notify fd (SCM_RIGHTS, the fd named "seccompFd" in `fds`). Every notification read from
such an fd (SECCOMP_IOCTL_NOTIF_RECV) is printed (container id, pid, syscall, decoded arguments,
decision) and answered with SECCOMP_USER_NOTIF_FLAG_CONTINUE, so the syscall runs as if
unmonitored. One thread, poll(2) over the listening socket, pending connections and notify fds.

Output: text lines, or JSON lines (`--format json`), events "attach", "syscall", "detach".
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import signal
import socket
import stat
import struct
import time
from pyruntime import jsonio
from typing import Any

# linux/seccomp.h
_NOTIF = struct.Struct("=QIIiIQ6Q")  # struct seccomp_notif (80 bytes)
_RESP = struct.Struct("=QqiI")  # struct seccomp_notif_resp (24 bytes)
NOTIF_RECV = 0xC0000000 | (_NOTIF.size << 16) | (ord("!") << 8) | 0
NOTIF_SEND = 0xC0000000 | (_RESP.size << 16) | (ord("!") << 8) | 1
NOTIF_ID_VALID = 0x40000000 | (8 << 16) | (ord("!") << 8) | 2
USER_NOTIF_FLAG_CONTINUE = 1

AT_FDCWD = 2**64 - 100

# syscall -> indices of NUL-terminated path arguments
_PATH_ARGS: dict[str, tuple[int, ...]] = {
    "open": (0,), "openat": (1,), "openat2": (1,), "creat": (0,), "execve": (0,), "execveat": (1,),
    "stat": (0,), "lstat": (0,), "newfstatat": (1,), "statx": (1,), "access": (0,),
    "faccessat": (1,), "faccessat2": (1,), "readlink": (0,), "readlinkat": (1,), "mkdir": (0,),
    "mkdirat": (1,), "unlink": (0,), "unlinkat": (1,), "rmdir": (0,), "chdir": (0,), "chroot": (0,),
    "chmod": (0,), "fchmodat": (1,), "chown": (0,), "lchown": (0,), "fchownat": (1,),
    "rename": (0, 1), "renameat": (1, 3), "renameat2": (1, 3), "link": (0, 1), "linkat": (1, 3),
    "symlink": (0, 1), "symlinkat": (0, 2), "truncate": (0,), "mknod": (0,), "mknodat": (1,),
    "utimensat": (1,), "mount": (0, 1, 2), "umount2": (0,), "pivot_root": (0, 1),
    "statfs": (0,), "getxattr": (0, 1), "setxattr": (0, 1), "listxattr": (0,), "swapon": (0,),
    "inotify_add_watch": (1,), "uselib": (0,), "acct": (0,),
}
_DIRFD_ARG0 = {"openat", "openat2", "execveat", "newfstatat", "statx", "faccessat", "faccessat2",
               "readlinkat", "mkdirat", "unlinkat", "fchmodat", "fchownat", "renameat", "renameat2",
               "linkat", "mknodat", "utimensat"}
_NARGS = {"getpid": 0, "getppid": 0, "gettid": 0, "getuid": 0, "geteuid": 0, "getgid": 0,
          "getegid": 0, "sync": 0, "sched_yield": 0, "fork": 0, "vfork": 0, "pause": 0,
          "close": 1, "exit": 1, "exit_group": 1, "dup": 1, "chdir": 1, "fchdir": 1, "umask": 1,
          "brk": 1, "unlink": 1, "rmdir": 1, "uname": 1, "setuid": 1, "setgid": 1,
          "open": 3, "openat": 4, "openat2": 4, "read": 3, "write": 3, "pread64": 4,
          "pwrite64": 4, "execve": 3, "execveat": 5, "newfstatat": 4, "statx": 5, "stat": 2,
          "lstat": 2, "fstat": 2, "access": 2, "faccessat": 3, "faccessat2": 4, "mkdir": 2,
          "mkdirat": 3, "unlinkat": 3, "readlink": 3, "readlinkat": 4, "mmap": 6, "munmap": 2,
          "mprotect": 3, "ioctl": 3, "fcntl": 3, "dup2": 2, "dup3": 3, "kill": 2, "socket": 3,
          "connect": 3, "bind": 3, "lseek": 3, "getdents64": 3, "wait4": 4, "clone": 5,
          "clone3": 2, "mount": 5, "umount2": 2, "chmod": 2, "fchmodat": 3, "rename": 2,
          "renameat2": 5, "link": 2, "symlink": 2, "truncate": 2, "ftruncate": 2}


_O_FLAGS = ((0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
            (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o200000, "O_DIRECTORY"),
            (0o400000, "O_NOFOLLOW"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
            (0o20200000, "O_TMPFILE"))
_OPEN_FLAGS_ARG = {"open": 1, "openat": 2, "creat": -1}
_MODE_ARG = {"open": 2, "openat": 3, "creat": 1, "mkdir": 1, "mkdirat": 2, "chmod": 1, "fchmodat": 2}


def open_flags(v: int) -> str:
    parts = [("O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE")[v & 3]]
    rest = v & ~3
    for bit, name in _O_FLAGS:
        if rest & bit == bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(hex(rest))
    return "|".join(parts)


class Sym(str):
    """An argument shown bare in text output (AT_FDCWD, O_RDONLY|O_CLOEXEC, 0x7ff...), unlike
    strings read from the process (paths), which are quoted."""


def _text(a: Any) -> str:
    if isinstance(a, Sym) or not isinstance(a, (str, list)):
        return str(a)
    if isinstance(a, list):
        return "[" + ", ".join(_text(x) for x in a) + "]"
    return jsonio.dumps(a)


class _Conn:
    __slots__ = ("sock", "buf", "fds")

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buf, self.fds = sock, b"", []


class _Container:
    __slots__ = ("fd", "id", "pid", "metadata", "state")

    def __init__(self, fd: int, msg: dict) -> None:
        self.fd = fd
        st = msg.get("state") or {}
        self.id = st.get("id") or "?"
        self.pid = msg.get("pid") or st.get("pid")
        self.metadata = msg.get("metadata")
        self.state = st


class Monitor:
    def __init__(self, socket_path: str, fmt: str = "text", only: set[str] | None = None,
                 out_fd: int = 1) -> None:
        self.path = socket_path
        self.fmt = fmt
        self.only = only
        self.out = out_fd
        self.poll = select.poll()
        self.conns: dict[int, _Conn] = {}
        self.containers: dict[int, _Container] = {}
        self.listener: socket.socket | None = None
        self._names: dict[tuple[int, int], str] = {}
        self._stop = False

    # --- setup ---------------------------------------------------------------------------
    def open(self) -> None:
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                os.unlink(self.path)  # stale socket of a previous monitor
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        old = os.umask(0o177)
        try:
            s.bind(self.path)
        finally:
            os.umask(old)
        s.listen(128)
        self.listener = s
        self.poll.register(s.fileno(), select.POLLIN)

    def close(self) -> None:
        for c in list(self.containers.values()):
            self._detach(c, quiet=True)
        for fd in list(self.conns):
            self._drop_conn(fd)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def stop(self) -> None:
        self._stop = True

    # --- main loop -----------------------------------------------------------------------
    def serve(self, max_seconds: float | None = None) -> None:
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        assert self.listener is not None
        lfd = self.listener.fileno()
        while not self._stop:
            timeout = 500
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                timeout = int(min(left, 0.5) * 1000) + 1
            for fd, ev in self.poll.poll(timeout):
                if fd == lfd:
                    self._accept()
                elif fd in self.conns:
                    self._read_conn(fd)
                elif fd in self.containers:
                    c = self.containers[fd]
                    if ev & select.POLLIN:
                        self._notification(c)
                    elif ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                        self._detach(c)

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                s, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            s.setblocking(False)
            self.conns[s.fileno()] = _Conn(s)
            self.poll.register(s.fileno(), select.POLLIN)

    def _drop_conn(self, fd: int) -> None:
        c = self.conns.pop(fd)
        self.poll.unregister(fd)
        c.sock.close()
        for x in c.fds:
            os.close(x)

    def _read_conn(self, fd: int) -> None:
        c = self.conns[fd]
        try:
            data, fds, _flags, _addr = socket.recv_fds(c.sock, 1 << 16, 8)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._emit({"event": "error", "error": f"listener connection: {e.strerror}"})
            self._drop_conn(fd)
            return
        for x in fds:
            os.set_inheritable(x, False)
        c.fds.extend(fds)
        c.buf += data
        if data and len(c.buf) < 1 << 20:
            return
        # EOF: one container process state per connection
        fds, c.fds = c.fds, []
        buf = c.buf
        self._drop_conn(fd)
        try:
            msg = jsonio.loads(buf)
            names = msg.get("fds") or []
            seccomp_fd = fds[names.index("seccompFd")]
        except (ValueError, IndexError, AttributeError):
            self._emit({"event": "error", "error": "malformed container process state"})
            for x in fds:
                os.close(x)
            return
        for x in fds:
            if x != seccomp_fd:
                os.close(x)
        ctr = _Container(seccomp_fd, msg)
        self.containers[seccomp_fd] = ctr
        self.poll.register(seccomp_fd, select.POLLIN)
        ev: dict[str, Any] = {"event": "attach", "container": ctr.id, "pid": ctr.pid}
        if ctr.metadata:
            ev["metadata"] = ctr.metadata
        self._emit(ev)

    def _detach(self, c: _Container, quiet: bool = False) -> None:
        self.containers.pop(c.fd, None)
        try:
            self.poll.unregister(c.fd)
        except KeyError:
            pass
        os.close(c.fd)
        if not quiet:
            self._emit({"event": "detach", "container": c.id})

    # --- notifications -------------------------------------------------------------------
    def _notification(self, c: _Container) -> None:
        buf = bytearray(_NOTIF.size)
        try:
            fcntl.ioctl(c.fd, NOTIF_RECV, buf, True)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                return  # the task was killed or the syscall interrupted before we read it
            self._detach(c)
            return
        nid, pid, _flags, nr, arch, _ip, *args = _NOTIF.unpack(buf)
        name = self._name(nr, arch)
        shown = self.only is None or name in self.only
        decoded = self._decode(c.fd, nid, pid, name, args) if shown else None
        # answer first: the monitored process waits for us
        resp = _RESP.pack(nid, 0, 0, USER_NOTIF_FLAG_CONTINUE)
        decision = "continue"
        try:
            fcntl.ioctl(c.fd, NOTIF_SEND, resp)
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise
            decision = "gone"  # the process died or the syscall was interrupted
        if shown:
            self._emit({"event": "syscall", "container": c.id, "pid": pid, "syscall": name,
                        "args": decoded, "decision": decision})

    def _name(self, nr: int, arch: int) -> str:
        key = (nr, arch)
        n = self._names.get(key)
        if n is None:
            from pyruntime.linux.seccomp import syscall_name

            n = self._names[key] = syscall_name(nr, arch)
        return n

    def _decode(self, nfd: int, nid: int, pid: int, name: str, args: list[int]) -> list[Any]:
        n = _NARGS.get(name, 6)
        out: list[Any] = []
        paths = _PATH_ARGS.get(name, ())
        for i, v in enumerate(args[:n]):
            if i in paths:
                out.append(self._read_str(pid, v))
            elif i == 0 and name in _DIRFD_ARG0 and v in (AT_FDCWD, AT_FDCWD & 0xFFFFFFFF):
                out.append(Sym("AT_FDCWD"))
            elif name in ("execve", "execveat") and i == (1 if name == "execve" else 2):
                out.append(self._read_argv(pid, v))
            elif _OPEN_FLAGS_ARG.get(name) == i:
                out.append(Sym(open_flags(v)))
            elif _MODE_ARG.get(name) == i:
                out.append(Sym(oct(v & 0o7777)))
            else:
                out.append(v if v < 1 << 16 else Sym(hex(v)))
        fi = _OPEN_FLAGS_ARG.get(name, -1)
        if fi >= 0 and len(out) > fi + 1 and not args[fi] & 0o20000100:  # no O_CREAT/O_TMPFILE: no mode
            del out[fi + 1:]
        # the memory read is only meaningful if the notification is still pending
        try:
            fcntl.ioctl(nfd, NOTIF_ID_VALID, struct.pack("=Q", nid))
        except OSError:
            return [Sym("?") if isinstance(a, (list, str)) and not isinstance(a, Sym) else a for a in out]
        return out

    @staticmethod
    def _mem(pid: int, addr: int, size: int) -> bytes | None:
        if addr == 0:
            return None
        try:
            fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            # stay within the page first (the next one may be unmapped)
            first = min(size, 4096 - (addr % 4096))
            try:
                data = os.pread(fd, first, addr)
            except OSError:
                return None
            if len(data) == first and size > first and b"\0" not in data:
                try:
                    data += os.pread(fd, size - first, addr + first)
                except OSError:
                    pass
            return data
        finally:
            os.close(fd)

    def _read_str(self, pid: int, addr: int) -> Any:
        data = self._mem(pid, addr, 4096)
        if data is None:
            return Sym("NULL" if addr == 0 else hex(addr))
        s = data.split(b"\0", 1)[0]
        return s.decode(errors="backslashreplace")

    def _read_argv(self, pid: int, addr: int) -> Any:
        data = self._mem(pid, addr, 8 * 64)
        if data is None:
            return Sym(hex(addr))
        argv = []
        for (ptr,) in struct.iter_unpack("=Q", data[: len(data) // 8 * 8]):
            if ptr == 0:
                break
            argv.append(self._read_str(pid, ptr))
        return argv

    # --- output --------------------------------------------------------------------------
    def _emit(self, ev: dict[str, Any]) -> None:
        if self.fmt == "json":
            ev = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", **ev}
            line = jsonio.dumps(ev)
        else:
            kind = ev["event"]
            if kind == "syscall":
                args = ", ".join(_text(a) for a in ev["args"] or ())
                line = f"{ev['container']} pid={ev['pid']} {ev['syscall']}({args}) -> {ev['decision']}"
            elif kind == "attach":
                meta = ev.get("metadata") or ""
                if meta.startswith("pyruntime-monitor"):
                    syscalls = meta.split(":", 1)[1].split(",")
                    meta = f" monitoring {len(syscalls)} syscalls" if len(syscalls) > 8 else f" monitoring {','.join(syscalls)}"
                elif meta:
                    meta = f" metadata={meta!r}"
                line = f"{ev['container']} attached (pid {ev['pid']}){meta}"
            elif kind == "detach":
                line = f"{ev['container']} detached"
            else:
                line = f"error: {ev.get('error')}"
        try:
            os.write(self.out, (line + "\n").encode())
        except BrokenPipeError:
            self._stop = True


def serve(socket_path: str, fmt: str = "text", only: set[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM."""
    m = Monitor(socket_path, fmt, only)
    m.open()

    def _stop(_sig: int, _frame: Any) -> None:
        m.stop()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        m.serve()
    finally:
        m.close()
        for s, h in old.items():
            signal.signal(s, h)
    return 0
