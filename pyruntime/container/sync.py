"""Parent <-> child synchronisation over an AF_UNIX SOCK_SEQPACKET socketpair.

Each message is one datagram of JSON: {"type": ..., ...}; fds travel with SCM_RIGHTS. A child
that fails sends {"type": "error", "msg": ...} and exits; the parent turns that into a
RuntimeFailure with the child's one-line message.
"""

from __future__ import annotations

from pyruntime import jsonio
from pyruntime.errors import RuntimeFailure
from pyruntime.linux import sockets

MAX = 1 << 20


class Channel:
    def __init__(self, sock: sockets.Socket, peer: str = "container init") -> None:
        self.sock = sock
        self.peer = peer  # who is at the other end, for "... exited unexpectedly"

    @classmethod
    def pair(cls, peer: str = "container init") -> tuple["Channel", "Channel"]:
        a, b = sockets.socketpair(sockets.SOCK_SEQPACKET)
        return cls(a, peer), cls(b, "runtime")

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, type_: str, fds: list[int] | None = None, **data) -> None:
        data["type"] = type_
        payload = jsonio.dumps(data).encode()
        if fds:
            sockets.send_fds(self.sock, payload, fds)
        else:
            self.sock.send(payload)

    def send_to_child(self, type_: str, fds: list[int] | None = None, **data) -> None:
        """send, from a parent whose child may have died meanwhile (a container killed while
        it is created or exec'd into): then the child's own error, still queued, is raised,
        or that it exited, never a bare EPIPE."""
        try:
            self.send(type_, fds, **data)
        except (BrokenPipeError, ConnectionResetError):
            self.expect_any(())  # raises

    def recv(self, *, fds: int = 0) -> tuple[dict, list[int]]:
        try:
            payload, got = self._recv(fds)
        except ConnectionResetError:
            # The peer exited with a message of ours unread (a child that failed before reading
            # "go"): the kernel reports ECONNRESET once, ahead of the messages the child sent
            # before it exited (its error). Those are still queued.
            payload, got = self._recv(fds)
        if not payload:
            raise EOFError("peer closed the sync channel")
        return jsonio.loads(payload), list(got)

    def _recv(self, fds: int) -> tuple[bytes, list[int]]:
        if fds:
            return sockets.recv_fds(self.sock, MAX, fds)
        return self.sock.recv(MAX), []

    def expect(self, type_: str, *, fds: int = 0, what: str = "") -> tuple[dict, list[int]]:
        """Receive one message of type_; a child error becomes a RuntimeFailure."""
        try:
            msg, got = self.recv(fds=fds)
        except EOFError:
            raise RuntimeFailure(f"{self.peer} exited unexpectedly{(' ' + what) if what else ''}") from None
        if msg.get("type") == "error":
            raise RuntimeFailure(msg.get("msg") or "container init failed")
        if msg.get("type") != type_:
            raise RuntimeFailure(f"unexpected sync message {msg.get('type')!r}, want {type_!r}")
        return msg, got

    def close(self) -> None:
        self.sock.close()

    def expect_any(self, types: tuple[str, ...], *, fds: int = 0) -> tuple[dict, list[int]]:
        try:
            msg, got = self.recv(fds=fds)
        except EOFError:
            raise RuntimeFailure(f"{self.peer} exited unexpectedly") from None
        if msg.get("type") == "error":
            raise RuntimeFailure(msg.get("msg") or "container init failed")
        if msg.get("type") not in types:
            raise RuntimeFailure(f"unexpected sync message {msg.get('type')!r}")
        return msg, got
