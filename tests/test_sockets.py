"""pyruntime.linux.sockets: SCM_RIGHTS through the C socket module, as socket.send_fds/recv_fds."""

import fcntl
import os
import socket

import pytest

from pyruntime.container.sync import Channel
from pyruntime.errors import RuntimeFailure
from pyruntime.linux import sockets


def test_fds_travel_and_arrive_close_on_exec():
    a, b = sockets.socketpair(sockets.SOCK_SEQPACKET)
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        sockets.send_fds(a, b"hello", [r1, r2])
        msg, fds = sockets.recv_fds(b, 64, 4)
        assert msg == b"hello" and len(fds) == 2
        for fd, orig in zip(fds, (r1, r2)):
            assert os.fstat(fd).st_ino == os.fstat(orig).st_ino
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            os.close(fd)
        a.send(b"plain")
        assert sockets.recv_fds(b, 64, 1) == (b"plain", [])
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)
        a.close()
        b.close()


def test_interoperates_with_the_socket_module():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    r, w = os.pipe()
    try:
        sockets.send_fds(a, b"x", [w])
        msg, fds, _, _ = socket.recv_fds(b, 16, 1)
        assert msg == b"x" and os.fstat(fds[0]).st_ino == os.fstat(w).st_ino
        os.close(fds[0])
        socket.send_fds(b, [b"y"], [r])
        msg, fds = sockets.recv_fds(a, 16, 1)
        assert msg == b"y" and os.fstat(fds[0]).st_ino == os.fstat(r).st_ino
        os.close(fds[0])
    finally:
        os.close(r)
        os.close(w)
        a.close()
        b.close()


def test_sync_channel_reports_the_childs_error_not_a_reset():
    """A child that fails before reading our "go" exits with it unread: the kernel then reports
    ECONNRESET once, ahead of the error message the child sent. The parent must read the message."""
    parent, child = Channel.pair()
    try:
        parent.send("go")  # never read by the child
        child.send("error", msg="mount /proc: permission denied")
        child.close()
        with pytest.raises(RuntimeFailure, match="mount /proc: permission denied"):
            parent.expect("ready")
        with pytest.raises(RuntimeFailure, match="exited unexpectedly"):
            parent.expect("ready")
    finally:
        parent.close()


def test_send_to_a_child_that_died_raises_its_error():
    """A parent's message to a child that is gone (a container killed while exec'd into) is not
    an EPIPE traceback: the child's queued error, or that it exited, named after the peer."""
    parent, child = Channel.pair(peer="the exec'd process")
    try:
        child.send("error", msg="setns mnt: operation not permitted")
        child.close()
        with pytest.raises(RuntimeFailure, match="setns mnt: operation not permitted"):
            parent.send_to_child("go")
        with pytest.raises(RuntimeFailure, match="^the exec'd process exited unexpectedly$"):
            parent.send_to_child("go")
    finally:
        parent.close()
