"""process.terminal (issue 3): the pty master arrives on --console-socket via SCM_RIGHTS, the
container's output is read from it, /dev/console is the pty, consoleSize is applied; `run` in
the foreground proxies the pty itself."""

from __future__ import annotations

import os
import select
import shutil
import socket
import tempfile
import threading

import pytest

from test_lifecycle_util import bundle, create, detached, runc, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


class ConsoleServer:
    """A --console-socket listener: receives one pty master per connection and reads from it
    until the other side closes (EIO when the last slave fd is gone)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pyrt-con-")
        self.path = os.path.join(self.dir, "sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.names: list[str] = []
        self.masters: list[int] = []
        self.output = bytearray()
        self._done = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
            self.names.append(msg.decode(errors="replace"))
            self.masters.extend(fds)
            master = fds[0]
            while True:
                r, _, _ = select.select([master], [], [], 30)
                if not r:
                    break
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd closed
                    break
                if not data:
                    break
                self.output += data
        finally:
            self._done.set()

    def write(self, data: bytes) -> None:
        os.write(self.masters[0], data)

    def wait(self, timeout: float = 20) -> str:
        assert self._done.wait(timeout), "console output did not end"
        return self.output.decode(errors="replace").replace("\r\n", "\n")

    def close(self) -> None:
        self.sock.close()
        for fd in self.masters:
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def console():
    servers: list[ConsoleServer] = []

    def make() -> ConsoleServer:
        servers.append(ConsoleServer())
        return servers[-1]
    yield make
    for s in servers:
        s.close()


TTY_SCRIPT = ("tty; for f in 0 1 2; do readlink /proc/self/fd/$f; done; stty size; "
              "stat -c '%t:%T' /dev/console \"$(tty)\"; ls -l /dev/console | cut -c1; "
              "grep ' /dev/console ' /proc/self/mountinfo | wc -l; echo done")


def _tty_edit(cfg):
    cfg["process"]["terminal"] = True
    cfg["process"]["consoleSize"] = {"height": 33, "width": 101}


def test_console_socket_receives_pty_master(rt, no_leaks, console):
    srv = console()
    cid = rt.new_id()
    b = bundle(rt, ["sh", "-c", TTY_SCRIPT], edit=_tty_edit)
    r = create(rt, b, cid, "--console-socket", srv.path)
    assert r.stdout == "" and r.stderr == ""
    assert wait_until(lambda: srv.masters, 5)
    assert srv.names[0].startswith("/dev/pts/")  # runc sends the pty name as the payload
    rt.run("start", cid, check=True)
    out = srv.wait().split("\n")
    assert out[0] == "/dev/pts/0"
    assert out[1:4] == ["/dev/pts/0"] * 3
    assert out[4] == "33 101"
    assert out[5] == out[6] and out[5].startswith("88:")  # /dev/console is that pty (major 136)
    assert out[7] == "c" and out[8] == "1" and out[9] == "done"
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    rt.run("delete", cid, check=True)


def test_console_matches_runc(rt, no_leaks, console):
    """The same view of the terminal from a runc container on the same bundle."""
    outs = []
    for runtime in ("pyruntime", "runc"):
        srv = console()
        b = bundle(rt, ["sh", "-c", TTY_SCRIPT], edit=_tty_edit)
        if runtime == "pyruntime":
            cid = rt.new_id()
            create(rt, b, cid, "--console-socket", srv.path)
            rt.run("start", cid, check=True)
        else:
            cid = "runc-" + rt.new_id()
            r = runc(rt, "run", "--detach", "--console-socket", srv.path, "--bundle", b, cid,
                     stdin=open(os.devnull))  # noqa: SIM115
            assert r.returncode == 0, r.stderr
        outs.append(srv.wait())
        if runtime == "pyruntime":
            rt.run("delete", "--force", cid)
        else:
            runc(rt, "delete", "--force", cid)
    assert outs[0] == outs[1]


def test_console_input_and_exit(rt, no_leaks, console):
    srv = console()
    cid = rt.new_id()
    b = bundle(rt, ["sh", "-c", "read line; echo got:$line; exit 4"], edit=_tty_edit)
    create(rt, b, cid, "--console-socket", srv.path)
    rt.run("start", cid, check=True)
    assert wait_until(lambda: srv.masters, 5)
    srv.write(b"hello\n")
    out = srv.wait()
    assert "got:hello" in out
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    rt.run("delete", cid, check=True)


def test_terminal_needs_console_socket_when_detached(rt, no_leaks):
    cid = rt.new_id()
    b = bundle(rt, ["true"], edit=_tty_edit)
    for args in (("create", "--bundle", b, cid), ("run", "--detach", "--bundle", b, cid)):
        r = detached(rt, *args)
        assert r.returncode != 0
        assert "cannot allocate tty if pyruntime will detach without setting console socket" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert rt.run("state", cid).returncode != 0
    r = detached(rt, "create", "--console-socket", os.path.join(rt.tmp, "nope.sock"), "--bundle", b, cid)
    assert r.returncode != 0 and "nope.sock" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rt.run("state", cid).returncode != 0


def test_run_foreground_terminal_proxies_output(rt, no_leaks):
    """`run` with process.terminal and no --console-socket copies the pty to its stdout."""
    b = bundle(rt, ["sh", "-c", "tty; stty size; exit 3"], edit=_tty_edit)
    r = rt.run("run", "--bundle", b, rt.new_id(), input="")
    assert r.returncode == 3, r.stderr
    assert r.stdout.replace("\r\n", "\n").split("\n")[:2] == ["/dev/pts/0", "33 101"]
