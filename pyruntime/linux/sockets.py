"""AF_UNIX sockets and SCM_RIGHTS through the `_socket` C module.

The `socket` wrapper module costs ~2.5 ms to import (selectors, and IntEnums for every address
family and socket type, built at import): paid by every create and exec for one socketpair.
These are its `socketpair`, `send_fds` and `recv_fds`, on the C socket objects it wraps.
"""

from __future__ import annotations

import _socket
import struct  # not array: it imports collections.abc (~1.3 ms)

AF_UNIX = _socket.AF_UNIX
AF_INET = _socket.AF_INET
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_SEQPACKET = _socket.SOCK_SEQPACKET
SOCK_CLOEXEC = _socket.SOCK_CLOEXEC
Socket = _socket.socket  # socket.socket is a subclass: either works below


def socketpair(type_: int = SOCK_SEQPACKET) -> tuple[Socket, Socket]:
    """A connected AF_UNIX pair, close-on-exec."""
    a, b = _socket.socketpair(AF_UNIX, type_ | SOCK_CLOEXEC)
    return a, b


def socket(family: int, type_: int) -> Socket:
    """A new close-on-exec socket."""
    return _socket.socket(family, type_ | SOCK_CLOEXEC)


def send_fds(sock: Socket, payload: bytes, fds: list[int]) -> int:
    """socket.send_fds(sock, [payload], fds)."""
    return sock.sendmsg([payload], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])


def recv_fds(sock: Socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """socket.recv_fds without the flags and address: (payload, fds), fds close-on-exec."""
    item = struct.calcsize("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(bufsize, _socket.CMSG_LEN(maxfds * item),
                                               getattr(_socket, "MSG_CMSG_CLOEXEC", 0))
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            n = len(data) // item
            fds.extend(struct.unpack(f"{n}i", data[: n * item]))
    return msg, fds
