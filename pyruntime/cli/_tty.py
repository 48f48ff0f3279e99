"""`run` in the foreground with process.terminal and no --console-socket: we receive the pty
master ourselves and copy between it and our own stdio (raw mode when stdin is a terminal)."""

from __future__ import annotations

import os
import select

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import sockets


class ConsoleProxy:
    def __init__(self) -> None:
        self._mine, self.child_socket = sockets.socketpair(sockets.SOCK_STREAM)
        self.master: int | None = None

    def receive_master(self) -> None:
        _msg, fds = sockets.recv_fds(self._mine, 4096, 1)
        if not fds:
            raise RuntimeFailure("container did not send its pty master")
        self.master = fds[0]
        self._mine.close()
        if os.isatty(0):
            import fcntl
            import termios

            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8))
            except OSError:
                pass

    def copy_until_exit(self, pid: int) -> None:
        old = None
        if os.isatty(0):
            import termios
            import tty

            old = termios.tcgetattr(0)
            tty.setraw(0)
        try:
            fds = [self.master, 0]
            while fds and self.master in fds:
                try:
                    r, _, _ = select.select(fds, [], [])
                except InterruptedError:
                    continue
                if self.master in r:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:
                        data = b""
                    if not data:
                        break
                    os.write(1, data)
                if 0 in r:
                    data = os.read(0, 65536)
                    if not data:
                        fds.remove(0)
                    else:
                        os.write(self.master, data)
        finally:
            if old is not None:
                import termios

                termios.tcsetattr(0, termios.TCSADRAIN, old)
            os.close(self.master)
