"""Terminal: a pty created inside the container's devpts, its master sent to the caller's
--console-socket with SCM_RIGHTS (payload: the pty name, as runc does), the slave bound on
/dev/console and made the controlling terminal and stdio of the process."""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import sockets
from pyruntime.linux import syscalls as sc

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
TIOCGPTPEER = 0x5441


def open_pty() -> tuple[int, int, str]:
    """(master, slave, slave name) from the container's /dev/ptmx (after pivot_root)."""
    try:
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeFailure(f"open /dev/ptmx: {e.strerror}") from None
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))
    n = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, b"\0" * 4))[0]
    # TIOCGPTPEER opens the slave through the master: no path lookup an attacker could redirect.
    slave = fcntl.ioctl(master, TIOCGPTPEER, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    return master, slave, f"/dev/pts/{n}"


def set_size(fd: int, size) -> None:
    if size is None:
        return
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.height, size.width, 0, 0))


def connect(console_socket) -> sockets.Socket:
    """The socket the pty master goes to: `--console-socket PATH` connected, or the socket
    `run`/`exec` in the foreground made for their own pty proxy."""
    if not console_socket:
        raise RuntimeFailure("cannot allocate tty if pyruntime will detach without setting console socket")
    if isinstance(console_socket, sockets.Socket):
        return console_socket
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    try:
        sock.connect(console_socket)
    except OSError as e:
        sock.close()
        raise RuntimeFailure(f"connect to console socket {console_socket}: {e.strerror}") from None
    return sock


def send_master(console_sock: sockets.Socket, master: int, name: str) -> None:
    try:
        sockets.send_fds(console_sock, name.encode(), [master])
    except OSError as e:
        raise RuntimeFailure(f"sending the pty master to the console socket: {e.strerror}") from None


def bind_console(slave_name: str) -> None:
    """Bind the slave onto /dev/console (created empty by the rootfs setup)."""
    try:
        sc.mount(slave_name, "/dev/console", None, sc.MS_BIND)
    except OSError as e:
        raise RuntimeFailure(f"bind {slave_name} to /dev/console: {e.strerror}") from None


def make_controlling(slave: int) -> None:
    """stdio = the pty slave, controlling terminal of this (new) session."""
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)


def setup(console_sock: sockets.Socket, size, *, bind: bool = True) -> None:
    master, slave, name = open_pty()
    try:
        set_size(master, size)
        if bind:
            bind_console(name)
        send_master(console_sock, master, name)
    finally:
        os.close(master)
    make_controlling(slave)
    if slave > 2:
        os.close(slave)
