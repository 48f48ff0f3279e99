"""`pyruntime monitor`: a child monitored with add_monitor() is printed live and continues."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from pyruntime.linux import seccomp as sc
from pyruntime.linux import syscalls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "CACHE_DIR", str(tmp_path / "seccomp-cache"))

PY = sys.executable


def start_monitor(path: str, *extra: str) -> subprocess.Popen:
    p = subprocess.Popen([PY, "-m", "pyruntime.cli.monitor", "--socket", path, *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(200):
        if os.path.exists(path):
            return p
        if p.poll() is not None:
            raise AssertionError(p.stderr.read().decode())
        time.sleep(0.02)
    raise AssertionError("monitor did not create its socket")


def stop_monitor(p: subprocess.Popen) -> tuple[str, str]:
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    return out.decode(), err.decode()


def run_monitored(seccomp, ctr_id: str, body_argv: list[str], nnp: bool = True) -> int:
    """What the runtime does: compile (parent), fork, load + handover (child), fetch the fd and
    send it to listenerPath (parent), then the child runs its workload: open a file and exec."""
    f = sc.compile_filter(seccomp)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            a.close()
            if nnp:
                syscalls.set_no_new_privs()
            fd = sc.load(f)
            sc.handover_notify_fd(b.fileno(), fd)
            b.recv(16)  # the parent's go-ahead (read: may be notified, the agent has the fd)
            b.close()
            with open("/etc/hostname", "rb") as fh:
                fh.read()
            os.execv(body_argv[0], body_argv)
        except BaseException:
            os._exit(99)
    b.close()
    msg = json.loads(a.recv(4096))
    nfd = sc.fetch_notify_fd(pid, msg["fd"])
    state = {"ociVersion": "1.2.0", "id": ctr_id, "status": "creating", "pid": pid, "bundle": "/x"}
    sc.send_to_listener(seccomp.listener_path, nfd, state, seccomp.listener_metadata)
    os.close(nfd)
    a.send(b"go")
    a.close()
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


def test_monitor_prints_openat_and_execve_json(tmp_path):
    path = str(tmp_path / "mon.sock")
    mon = start_monitor(path, "--format", "json")
    try:
        s = sc.add_monitor(None, path, ["openat", "execve"])
        rc = run_monitored(s, "ctr-json", ["/bin/sh", "-c", "exit 7"])
        assert rc == 7
        time.sleep(0.3)
    finally:
        out, err = stop_monitor(mon)
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["event"] == "attach" and events[0]["container"] == "ctr-json"
    calls = [e for e in events if e["event"] == "syscall"]
    assert all(e["decision"] == "continue" and e["container"] == "ctr-json" for e in calls)
    opens = [e for e in calls if e["syscall"] == "openat"]
    assert any(e["args"][1] == "/etc/hostname" and e["args"][0] == "AT_FDCWD" for e in opens), opens
    execs = [e for e in calls if e["syscall"] == "execve"]
    assert execs and execs[0]["args"][0] == "/bin/sh"
    assert execs[0]["args"][1] == ["/bin/sh", "-c", "exit 7"]
    # the exec'd shell's own openat calls (ld.so) are seen too
    assert len(opens) > 1
    assert any(e["event"] == "detach" for e in events)


def test_monitor_text_and_syscall_filter_with_profile(tmp_path):
    """With podman's profile (default ENOSYS, bpf denied) plus monitoring of everything: the
    profile still applies, the fd handover (a write) does not deadlock, --syscalls filters."""
    from pyruntime.spec.model import Seccomp, build

    prof = build(Seccomp, json.load(open("/work/shared/clients/samples/podman-run-echo.config.json"))["linux"]["seccomp"])
    path = str(tmp_path / "mon.sock")
    mon = start_monitor(path, "--syscalls", "execve,openat,write")
    try:
        s = sc.add_monitor(prof, path, "all")
        rc = run_monitored(s, "ctr-text", ["/bin/sh", "-c", "echo hi > /dev/null; exit 3"])
        assert rc == 3
        time.sleep(0.3)
    finally:
        out, err = stop_monitor(mon)
    lines = out.splitlines()
    assert lines[0].startswith("ctr-text attached (pid ") and "monitoring" in lines[0]
    body = lines[1:]
    assert any('execve("/bin/sh", ["/bin/sh", "-c", "echo hi > /dev/null; exit 3"]' in l for l in body), body
    assert any('openat(AT_FDCWD, "/etc/hostname"' in l and l.endswith("-> continue") for l in body)
    assert any(" write(" in l for l in body)  # the shell's echo
    assert all(("execve(" in l or "openat(" in l or " write(" in l) for l in body if "pid=" in l)
    assert lines[-1] == "ctr-text detached"


def test_monitor_does_not_weaken_the_profile(tmp_path):
    """A monitored syscall that the profile denies stays denied (filters combine strictest-wins)."""
    from types import SimpleNamespace as NS

    path = str(tmp_path / "mon.sock")
    mon = start_monitor(path, "--format", "json")
    try:
        prof = NS(default_action="SCMP_ACT_ALLOW", default_errno_ret=None, architectures=None, flags=None,
                  listener_path=None, listener_metadata=None,
                  syscalls=(NS(names=("mkdirat", "mkdir", "seccomp"), action="SCMP_ACT_ERRNO", errno_ret=13, args=None),))
        s = sc.add_monitor(prof, path, ["mkdirat", "mkdir", "openat", "seccomp"])
        target = tmp_path / "newdir"
        rc = run_monitored(s, "ctr-deny", ["/bin/sh", "-c", f"mkdir {target} 2>/dev/null; exit $?"])
        assert rc != 0 and not target.exists()
        time.sleep(0.3)
    finally:
        out, _ = stop_monitor(mon)
    calls = [json.loads(l) for l in out.splitlines()]
    assert not any(c.get("syscall") in ("mkdir", "mkdirat") for c in calls)  # denied before notify
    assert any(c.get("syscall") == "openat" for c in calls)


def test_monitor_cli_usage_error():
    p = subprocess.run([PY, "-m", "pyruntime.cli.monitor", "--format", "xml"], capture_output=True)
    assert p.returncode != 0
