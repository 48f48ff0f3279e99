"""Leaked file descriptors and dumpable runtime processes (CVE-2016-9962, CVE-2024-21626).

The attacker is the image (process.cwd = /proc/self/fd/N) or a process of the container
(reading /proc/<pid>/ of a runtime process that is joining it). The runtime's caller here leaks
a host directory on fds 3..10 (no --preserve-fds): what runc 1.1.11 leaked itself (a
/sys/fs/cgroup fd), made independent of which fds pyruntime happens to hold.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from test_lifecycle_util import create, run_detached, wait_until
from test_security_util import (bind, clean_output, descendants, files, no_leaks_here, ns_ino,
                                nspid, one_line_error, runs_python, volume, write_exec)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SECRET = "HOST-SECRET-FILE"


@pytest.fixture
def leak(tmp_path):
    """A host directory (with SECRET in it), to leak on fds 3..10 of the runtime's caller."""
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / SECRET).write_text("secret\n")
    return str(host)


def _outcome(r, what: str) -> None:
    """Refused with one clear line, or ran inside the rootfs: never in the host directory."""
    clean_output(r)
    assert SECRET not in r.stdout, f"{what}: the container got a host directory as cwd: {r.stdout}"
    if r.returncode != 0:
        err = one_line_error(r)
        assert "cwd" in err or "working directory" in err, err
    else:
        assert r.stdout.startswith("/"), r.stdout


@pytest.mark.parametrize("mode", ["run", "create-start", "exec"])
def test_cwd_proc_self_fd_never_reaches_the_host(rt, no_leaks_here, leak, mode):
    out = volume(rt, "out")
    script = "pwd; ls -a"
    if mode == "exec":
        cid = rt.new_id()
        run_detached(rt, rt.bundle(["sleep", "1000"]), cid)
    for n in range(3, 11):
        cwd = f"/proc/self/fd/{n}"
        if mode == "exec":
            r = files(rt, "exec", "--cwd", cwd, cid, "sh", "-c", script, leak=leak)
            _outcome(r, f"exec cwd {cwd}")
            continue

        def edit(cfg, cwd=cwd):
            cfg["process"]["cwd"] = cwd
            cfg["process"]["args"] = ["sh", "-c", f"{{ {script}; }} > /out/res 2>&1"]
            cfg["mounts"].append(bind(out, "/out"))
        b = rt.bundle(edit=edit)
        cid = rt.new_id()
        res = os.path.join(out, "res")
        if os.path.exists(res):
            os.unlink(res)
        if mode == "run":
            r = files(rt, "run", "--bundle", b, cid, leak=leak)
        else:
            r = files(rt, "create", "--bundle", b, cid, leak=leak)
            if r.returncode == 0:
                rt.run("start", cid, check=True)
                assert wait_until(lambda: rt.run("state", cid).returncode == 0 and rt.state(cid)["status"] == "stopped")
        if r.returncode == 0:
            r.stdout = open(res).read()
        _outcome(r, f"{mode} cwd {cwd}")
        rt.run("delete", "--force", cid)
    if mode == "exec":
        rt.run("delete", "--force", cid, check=True)


def _fds(listing: str) -> dict[int, str]:
    """`ls -l /proc/PID/fd` -> {fd: target}."""
    out = {}
    for line in listing.splitlines():
        if "->" in line:
            left, _, target = line.partition(" -> ")
            out[int(left.split()[-1])] = target
    return out


@pytest.mark.parametrize("mode", ["run", "create-start", "exec"])
def test_only_stdio_and_preserved_fds_reach_the_container(rt, no_leaks_here, leak, tmp_path, mode):
    """With fds 3..10 open in the caller and --preserve-fds 2: the container process has 0, 1,
    2, 3, 4 and nothing else (no runtime socket, fifo, state dir, cgroup or namespace fd)."""
    out = volume(rt, "out")
    listing = "ls -l /proc/$$/fd > /out/fds"

    def edit(cfg):
        cfg["mounts"].append(bind(out, "/out"))
    cid = rt.new_id()
    if mode == "exec":
        run_detached(rt, rt.bundle(["sleep", "1000"], edit=edit), cid)
        r = files(rt, "exec", "--preserve-fds", "2", cid, "sh", "-c", listing, leak=leak)
        assert r.returncode == 0, r.stderr
    else:
        b = rt.bundle(["sh", "-c", listing], edit=edit)
        if mode == "run":
            r = files(rt, "run", "--preserve-fds", "2", "--bundle", b, cid, leak=leak)
            assert r.returncode == 0, r.stderr
        else:
            r = files(rt, "create", "--preserve-fds", "2", "--bundle", b, cid, leak=leak)
            assert r.returncode == 0, r.stderr
            rt.run("start", cid, check=True)
            assert wait_until(lambda: os.path.exists(os.path.join(out, "fds")) and rt.state(cid)["status"] == "stopped")
    fds = _fds(open(os.path.join(out, "fds")).read())
    assert sorted(fds) == [0, 1, 2, 3, 4], fds
    assert fds[3].endswith("hostdir") and fds[4].endswith("hostdir"), fds
    rt.run("delete", "--force", cid, check=True)


# --- dumpable ---------------------------------------------------------------------------------


class Agent:
    """A seccomp agent at linux.seccomp.listenerPath that takes every notify fd and closes it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                _, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                for fd in fds:
                    os.close(fd)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


WATCH = r"""#!/bin/sh
# A process of the container, same user and capabilities as what `exec` will run: when told a
# pid, try to read that process's /proc files.
while [ ! -s /out/go ]; do sleep 0.02; done
p=$(cat /out/go)
{
  cat /proc/$p/environ >/dev/null 2>&1 && echo "READABLE environ"
  for f in /proc/$p/fd/*; do readlink $f >/dev/null 2>&1 && echo "READABLE $f"; done
  readlink /proc/$p/exe >/dev/null 2>&1 && echo "READABLE exe"
  cat /proc/$p/maps >/dev/null 2>&1 && echo "READABLE maps"
  head -c1 /proc/$p/mem >/dev/null 2>&1 && echo "READABLE mem"
  grep -E '^(Name|Uid|CapPrm|NoNewPrivs)' /proc/$p/status
  echo done
} > /out/res.tmp 2>&1
mv /out/res.tmp /out/res
exec sleep 1000
"""


def _stall_bundle(rt, out, listener_path, args):
    def edit(cfg):
        cfg["mounts"].append(bind(out, "/out"))
        write_exec(os.path.join(cfg["root"]["path"], "watch"), WATCH)
        cfg["process"]["noNewPrivileges"] = True
        cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": listener_path,
                                   "syscalls": [{"names": ["acct"], "action": "SCMP_ACT_NOTIFY"}]}
    return rt.bundle(args, edit=edit)


def _watch_result(out: str, pid: int) -> str:
    with open(os.path.join(out, "go"), "w") as f:
        f.write(f"{pid}\n")
    res = os.path.join(out, "res")
    assert wait_until(lambda: os.path.exists(res), timeout=10), "the watcher did not answer"
    return open(res).read()


def _assert_unreadable(text: str) -> None:
    assert "done" in text, text
    assert "Name:" in text, text  # the watcher did see the process...
    assert "READABLE" not in text, text  # ...but could not read any of it


def test_exec_joining_process_not_dumpable(rt, no_leaks_here, tmp_path):
    """An exec'd process that has dropped to the container's user and capabilities, still the
    runtime (Python, holding the runtime's socket, before its execve), is looked at by another
    process of the container with the same user and capabilities.

    To hold it there: with noNewPrivileges the seccomp filter is loaded last, and a filter with
    a listenerPath makes the process hand its notify fd to the runtime and wait; strace delays
    the runtime's connect() to the agent by a few seconds."""
    assert shutil.which("strace"), "strace is missing: scripts/setup.sh installs it"
    out = volume(rt, "out")
    agent = Agent(str(tmp_path / "agent.sock"))
    cid = rt.new_id()
    log = open(tmp_path / "cmd.log", "w")
    try:
        run_detached(rt, _stall_bundle(rt, out, agent.path, ["/watch"]), cid)
        target = ns_ino(rt.state(cid)["pid"])
        e = subprocess.Popen(["strace", "-o", "/dev/null", "-e", "trace=connect",
                              "-e", "inject=connect:delay_enter=4000000"] +
                             rt.cmd + ["--root", rt.root, "exec", cid, "true"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        joiner = None
        end = time.monotonic() + 10
        while joiner is None and time.monotonic() < end:
            for d in descendants(e.pid):
                try:
                    if ns_ino(d) == target and runs_python(d) and _uid(d) == 0:
                        joiner = d
                except OSError:
                    pass
            time.sleep(0.01)
        assert joiner is not None, "the exec'd process was not found waiting"
        # it is waiting for the runtime, past dropping its privileges
        assert wait_until(lambda: _status(joiner).get("NoNewPrivs") == "1"), _status(joiner)
        text = _watch_result(out, nspid(joiner))
        assert e.wait(timeout=30) == 0, open(tmp_path / "cmd.log").read()
    finally:
        agent.close()
        log.close()
        rt.run("delete", "--force", cid)
    _assert_unreadable(text)


def _status(pid: int) -> dict[str, str]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def _uid(pid: int) -> int:
    return int(_status(pid).get("Uid", "-1 ").split()[0])


def test_created_init_not_dumpable_to_a_shared_pid_namespace(rt, no_leaks_here):
    """A created container's init waits for `start` running the runtime, with the container's
    user and capabilities; a running container sharing its pid namespace looks at it."""
    out = volume(rt, "out")
    a, b = rt.new_id(), rt.new_id()

    def edit(cfg):
        cfg["mounts"].append(bind(out, "/out"))
        write_exec(os.path.join(cfg["root"]["path"], "watch"), WATCH)
    run_detached(rt, rt.bundle(["/watch"], edit=edit), a)
    a_pid = rt.state(a)["pid"]

    def join_pidns(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{a_pid}/ns/pid"
    create(rt, rt.bundle(["true"], edit=join_pidns), b)
    text = _watch_result(out, nspid(rt.state(b)["pid"]))
    rt.run("delete", "--force", b, check=True)
    rt.run("delete", "--force", a, check=True)
    _assert_unreadable(text)
