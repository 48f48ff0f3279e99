"""Lifecycle (issue 3): create/start/state/kill/delete, pid files, pid reuse, run exit codes,
--detach/--keep, serialisation of concurrent commands, the runtime-tools contract,
--preserve-fds, --no-pivot, session keyrings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_lifecycle_util import (alive as _alive, bundle, cmdline as _cmdline, create, no_pidns,
                                 run_detached, wait_until as _wait_until)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SLEEP = ["sleep", "1000"]




def test_create_start_kill_delete_states(rt, no_leaks):
    """created -> running -> stopped, the pid file, start twice, delete while running."""
    cid = rt.new_id()
    b = rt.bundle(SLEEP)
    pidfile = os.path.join(rt.tmp, "init.pid")
    r = create(rt, b, cid, "--pid-file", pidfile, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid and st["bundle"] == b and st["ociVersion"]
    pid = st["pid"]
    assert pid > 0 and _alive(pid)
    with open(pidfile) as f:
        assert f.read() == str(pid)
    # The init is still the runtime's process (not yet the user's program).
    assert _cmdline(pid)[:2] != SLEEP[:2]
    assert os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))
    # list shows it
    lst = rt.run("list", "--format", "json", check=True)
    assert [c["status"] for c in json.loads(lst.stdout) if c["id"] == cid] == ["created"]

    r = rt.run("start", cid)
    assert r.returncode == 0, r.stderr
    st = rt.state(cid)
    assert st["status"] == "running" and st["pid"] == pid
    assert _wait_until(lambda: _cmdline(pid) == SLEEP)
    assert not os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))

    r = rt.run("start", cid)
    assert r.returncode != 0
    assert "cannot start an already running container" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    r = rt.run("delete", cid)
    assert r.returncode != 0
    assert "is not stopped" in r.stderr and "running" in r.stderr
    assert rt.state(cid)["status"] == "running" and _alive(pid)

    r = rt.run("kill", cid, "KILL")
    assert r.returncode == 0, r.stderr
    assert _wait_until(lambda: rt.state(cid)["status"] == "stopped")
    st = rt.state(cid)
    assert st["pid"] == 0
    assert not _alive(pid)

    r = rt.run("start", cid)
    assert r.returncode != 0 and "cannot start a container that has stopped" in r.stderr
    r = rt.run("kill", cid, "KILL")
    assert r.returncode != 0 and "container not running" in r.stderr

    r = rt.run("delete", cid)
    assert r.returncode == 0, r.stderr
    r = rt.run("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_state_after_process_exits(rt, no_leaks):
    cid = rt.new_id()
    b = rt.bundle(["true"])
    create(rt, b, cid)
    pid = rt.state(cid)["pid"]
    rt.run("start", cid, check=True)
    assert _wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert not _alive(pid)
    assert rt.state(cid)["pid"] == 0
    # runc 1.1: kill of a stopped container fails, kill --all of one succeeds (nothing to do)
    r = rt.run("kill", cid, "KILL")
    assert r.returncode != 0 and "container not running" in r.stderr
    assert rt.run("kill", "--all", cid, "KILL").returncode == 0
    rt.run("delete", cid, check=True)


def test_delete_force_kills_created_and_running(rt, no_leaks):
    created, running = rt.new_id(), rt.new_id()
    create(rt, rt.bundle(SLEEP), created)
    run_detached(rt, rt.bundle(SLEEP), running)
    pids = [rt.state(created)["pid"], rt.state(running)["pid"]]
    assert all(_alive(p) for p in pids)
    # runc deletes a created container without --force (it kills the waiting init)
    r = rt.run("delete", created)
    assert r.returncode == 0, r.stderr
    r = rt.run("delete", running)
    assert r.returncode != 0 and "running" in r.stderr
    r = rt.run("delete", "--force", running)
    assert r.returncode == 0, r.stderr
    assert not any(_alive(p) for p in pids)
    for cid in (created, running):
        assert rt.run("state", cid).returncode != 0
    # --force on an unknown id is not an error (runc)
    assert rt.run("delete", "--force", rt.new_id()).returncode == 0


def test_kill_signal_forms(rt, no_leaks):
    """KILL, SIGKILL, 9, the TERM default and --all; with a shell that traps them."""
    script = ("trap 'echo got-TERM >> /tmp/log' TERM; trap 'echo got-USR1 >> /tmp/log' USR1; "
              "trap 'echo got-HUP >> /tmp/log' HUP; echo ready > /tmp/ready; "
              "while :; do sleep 0.05; done")
    cid = rt.new_id()
    b = rt.bundle(["sh", "-c", script])
    run_detached(rt, b, cid)
    log = os.path.join(b, "rootfs", "tmp", "log")
    assert _wait_until(lambda: os.path.exists(os.path.join(b, "rootfs", "tmp", "ready")))

    def lines():
        try:
            with open(log) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    assert rt.run("kill", cid).returncode == 0  # default TERM
    assert _wait_until(lambda: lines() == ["got-TERM"])
    assert rt.run("kill", cid, "USR1").returncode == 0
    assert rt.run("kill", cid, "SIGHUP").returncode == 0
    assert rt.run("kill", cid, str(signal.SIGTERM.value)).returncode == 0
    assert _wait_until(lambda: len(lines()) == 4)
    assert sorted(lines()) == sorted(["got-TERM", "got-USR1", "got-HUP", "got-TERM"])
    assert rt.run("kill", cid, "0").returncode == 0  # runc: signal 0 checks the init exists
    for bad in ("NOPE", "65", "-1", "RTMIN+99"):
        r = rt.run("kill", cid, bad)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    assert rt.state(cid)["status"] == "running"
    r = rt.run("kill", cid, "9")
    assert r.returncode == 0
    assert _wait_until(lambda: rt.state(cid)["status"] == "stopped")
    rt.run("delete", cid, check=True)

    for form in ("KILL", "SIGKILL", "kill"):
        cid = rt.new_id()
        run_detached(rt, rt.bundle(SLEEP), cid)
        r = rt.run("kill", cid, form)
        assert r.returncode == 0, (form, r.stderr)
        assert _wait_until(lambda: rt.state(cid)["status"] == "stopped"), form
        rt.run("delete", cid, check=True)


def test_kill_all_kills_every_process(rt, no_leaks):
    cid = rt.new_id()
    # No pid namespace: --all must still reach every process of the cgroup.
    b = rt.bundle(["sh", "-c", "sleep 1000 & sleep 1000 & echo started > /tmp/ok; wait"], edit=no_pidns)
    run_detached(rt, b, cid)
    assert _wait_until(lambda: os.path.exists(os.path.join(b, "rootfs", "tmp", "ok")))
    r = rt.run("ps", "--format", "json", cid)
    pids = json.loads(r.stdout) if r.returncode == 0 else []
    assert len(pids) >= 3, r
    r = rt.run("kill", "--all", cid, "KILL")
    assert r.returncode == 0, r.stderr
    assert _wait_until(lambda: not any(_alive(p) for p in pids))
    assert _wait_until(lambda: rt.state(cid)["status"] == "stopped")
    # --all on a stopped container: runc 1.1 accepts it (nothing to signal)
    r = rt.run("kill", "--all", cid, "KILL")
    assert r.returncode == 0, r.stderr
    rt.run("delete", cid, check=True)


def test_pid_reuse_is_not_the_container(rt, no_leaks):
    """A record whose pid is alive but has another start time is a stopped container: state
    says so, kill refuses, delete removes it without touching the unrelated process."""
    cid = rt.new_id()
    b = rt.bundle(["true"])
    rt.run("run", "--keep", "--bundle", b, cid, check=True)
    assert rt.state(cid)["status"] == "stopped"
    victim = subprocess.Popen(["sleep", "1000"])
    try:
        path = os.path.join(rt.root, cid, "state.json")
        with open(path) as f:
            rec = json.load(f)
        rec["pid"] = victim.pid
        rec["init_start_time"] = (rec.get("init_start_time") or 0) + 12345  # not the victim's
        with open(path, "w") as f:
            json.dump(rec, f)
        st = rt.state(cid)
        assert st["status"] == "stopped" and st["pid"] == 0
        r = rt.run("kill", cid, "KILL")
        assert r.returncode != 0 and "not running" in r.stderr
        rt.run("kill", "--all", cid, "KILL")
        r = rt.run("delete", cid)
        assert r.returncode == 0, r.stderr
        assert victim.poll() is None, "delete killed an unrelated process"
    finally:
        victim.kill()
        victim.wait()


def test_run_exit_codes(rt, no_leaks):
    r = rt.run("run", "--bundle", rt.bundle(["sh", "-c", "echo out; echo err >&2; exit 42"]),
               rt.new_id())
    assert (r.returncode, r.stdout, r.stderr) == (42, "out\n", "err\n")
    r = rt.run("run", "--bundle", rt.bundle(["true"]), rt.new_id())
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")

    # Killed by a signal: 128+N. Without a pid namespace the shell is not an init and dies.
    r = rt.run("run", "--bundle", rt.bundle(["sh", "-c", "kill -USR1 $$; sleep 5"], edit=no_pidns),
               rt.new_id())
    assert r.returncode == 128 + signal.SIGUSR1
    # SIGKILL from the host on a container init (pid 1 of its namespace).
    cid = rt.new_id()
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "--bundle", rt.bundle(SLEEP), cid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert _wait_until(lambda: rt.run("state", cid).returncode == 0
                       and rt.state(cid)["status"] == "running")
    rt.run("kill", cid, "KILL", check=True)
    assert p.wait(10) == 137
    # run (without --keep) deletes the container after it exits
    assert rt.run("state", cid).returncode != 0
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_run_forwards_signals(rt, no_leaks):
    cid = rt.new_id()
    b = rt.bundle(["sh", "-c", "trap 'echo bye; exit 7' TERM; echo up > /tmp/up; "
                   "while :; do sleep 0.05; done"])
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "--bundle", b, cid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_until(lambda: os.path.exists(os.path.join(b, "rootfs", "tmp", "up")))
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert (p.returncode, out) == (7, "bye\n"), err


def test_run_detach_and_keep(rt, no_leaks):
    cid = rt.new_id()
    pidfile = os.path.join(rt.tmp, "d.pid")
    t0 = time.monotonic()
    r = run_detached(rt, rt.bundle(SLEEP), cid, "--pid-file", pidfile, check=False)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    assert time.monotonic() - t0 < 5
    st = rt.state(cid)
    assert st["status"] == "running"
    with open(pidfile) as f:
        assert int(f.read()) == st["pid"]
    assert _cmdline(st["pid"]) == SLEEP
    rt.run("delete", "--force", cid, check=True)

    cid = rt.new_id()
    r = rt.run("run", "--keep", "--bundle", rt.bundle(["sh", "-c", "exit 5"]), cid)
    assert r.returncode == 5
    assert rt.state(cid)["status"] == "stopped"
    rt.run("delete", cid, check=True)


def test_concurrent_commands_serialise(rt, no_leaks):
    """Racing creates on one id: exactly one wins; racing deletes/kill/state: one removes it,
    the others fail cleanly (one line, no traceback) or succeed as no-ops (--force)."""
    cid = rt.new_id()
    bundles = [rt.bundle(SLEEP) for _ in range(4)]
    with ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda b: create(rt, b, cid, check=False), bundles))
    ok = [r for r in res if r.returncode == 0]
    bad = [r for r in res if r.returncode != 0]
    assert len(ok) == 1, [r.stderr for r in res]
    for r in bad:
        assert "container with id exists" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.state(cid)["status"] == "created"

    cmds = (["delete", "--force"], ["delete", "--force"], ["kill"], ["state"], ["delete", "--force"])
    with ThreadPoolExecutor(len(cmds)) as ex:
        res = list(ex.map(lambda a: rt.run(*a, cid), cmds))
    for r in res:
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
        assert r.returncode == 0 or ("does not exist" in r.stderr or "not running" in r.stderr), r.stderr
    assert [r.returncode for r in res[:2] + res[4:]] == [0, 0, 0]
    assert rt.run("state", cid).returncode != 0


def test_start_waits_for_lock_and_sees_one_start(rt, no_leaks):
    """Two `start`s at once: exactly one starts the container."""
    cid = rt.new_id()
    create(rt, rt.bundle(SLEEP), cid)
    out = []

    def go():
        out.append(rt.run("start", cid))

    ts = [threading.Thread(target=go) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(r.returncode for r in out)[0] == 0
    assert sum(r.returncode == 0 for r in out) == 1, [r.stderr for r in out]
    assert rt.state(cid)["status"] == "running"
    rt.run("delete", "--force", cid, check=True)


def test_runtime_tools_contract(rt, base_rootfs, tmp_path):
    """runtime-tools' validation: root.path "." (the bundle is the rootfs), no global options
    (default --root), `kill ID SIGNAL` positional, output to create's stdout/stderr files."""
    import shutil

    b = tmp_path / "rtbundle"
    shutil.copytree(base_rootfs, b, symlinks=True)
    from conftest import default_config

    cfg = default_config(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exec sleep 1000"], ".")
    cfg["linux"]["cgroupsPath"] = f"/{rt.cg_parent}/rtools"
    (b / "config.json").write_text(json.dumps(cfg))
    cid = f"rtools-{uuid.uuid4().hex[:10]}"
    out_path, err_path = tmp_path / "out", tmp_path / "err"
    try:
        with open(out_path, "w") as out, open(err_path, "w") as err:
            r = subprocess.run(rt.cmd + ["create", "--bundle", str(b), cid], stdout=out, stderr=err,
                               timeout=30, cwd=str(b))
        assert r.returncode == 0, err_path.read_text()
        st = json.loads(subprocess.run(rt.cmd + ["state", cid], capture_output=True, text=True,
                                       check=True).stdout)
        assert st["status"] == "created" and st["bundle"] == str(b)
        subprocess.run(rt.cmd + ["start", cid], check=True, capture_output=True, timeout=30)
        assert _wait_until(lambda: out_path.read_text() == "to-stdout\n"
                           and err_path.read_text() == "to-stderr\n")
        r = subprocess.run(rt.cmd + ["kill", cid, "KILL"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert _wait_until(lambda: json.loads(subprocess.run(
            rt.cmd + ["state", cid], capture_output=True, text=True).stdout)["status"] == "stopped")
        r = subprocess.run(rt.cmd + ["delete", cid], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run(rt.cmd + ["delete", "--force", cid], capture_output=True)
    assert not os.path.exists(f"/run/pyruntime/{cid}")


def test_run_preserve_fds(rt, no_leaks):
    """--preserve-fds N: fds 3..3+N-1 of the caller reach the container; nothing else does."""
    b = bundle(rt, ["sh", "-c", "ls /proc/$$/fd; cat <&3; cat <&4; true"])
    leak = os.open("/etc/hostname", os.O_RDONLY)
    os.set_inheritable(leak, True)
    try:
        cmd = " ".join(rt.cmd) + f" --root {rt.root} run --preserve-fds 2 --bundle {b} {rt.new_id()}" + \
            " 3</etc/hostname 4</etc/os-release"
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, pass_fds=(leak,), timeout=30)
    finally:
        os.close(leak)
    assert r.returncode == 0, r.stderr
    with open("/etc/hostname") as f, open("/etc/os-release") as g:
        assert r.stdout == "0\n1\n2\n3\n4\n" + f.read() + g.read()


def test_run_no_pivot(rt, no_leaks):
    b = bundle(rt, ["sh", "-c", "cat /etc/hostname; ls /; grep -c . /proc/self/mountinfo; "
                                "ls /work 2>&1 | head -1"])
    r = rt.run("run", "--no-pivot", "--bundle", b, rt.new_id())
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "pyruntime"  # the rootfs' /etc/hostname
    assert "bin" in lines and "work" not in lines
    r2 = rt.run("run", "--bundle", bundle(rt, ["cat", "/etc/hostname"]), rt.new_id())
    assert r2.stdout == "pyruntime\n"


KEYCTL, ADD_KEY = 250, 248
KEY_SPEC_SESSION_KEYRING = -3


def _in_private_session_keyring():
    """preexec_fn: a new session keyring holding a possessor-only key (so it is visible in
    /proc/keys only to a process that possesses our session keyring)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ses = libc.syscall(KEYCTL, 1, b"pyrt-test-session")  # KEYCTL_JOIN_SESSION_KEYRING
    key = libc.syscall(ADD_KEY, b"user", b"pyrt-secret-key", b"x", 1, KEY_SPEC_SESSION_KEYRING)
    if ses < 0 or key < 0:
        os._exit(99)
    libc.syscall(KEYCTL, 5, ctypes.c_long(key), ctypes.c_uint(0x3F000000))  # KEYCTL_SETPERM
    libc.syscall(KEYCTL, 5, ctypes.c_long(ses), ctypes.c_uint(0x3F000000))


def test_session_keyring(rt, no_leaks):
    """Each container gets its own session keyring _ses.<id> (UID-searchable, as runc makes
    it), exec'd processes join it, and neither sees the caller's session keyring; with
    --no-new-keyring the init keeps the caller's."""
    def unmask(cfg):
        cfg["linux"]["maskedPaths"] = [p for p in cfg["linux"]["maskedPaths"] if p != "/proc/keys"]

    def keys(out):
        return {ln.split()[-2].rstrip(":"): ln.split()[4] for ln in out.splitlines() if ln.strip()}

    def run(*args, **kw):
        return subprocess.run(rt.cmd + ["--root", rt.root, *args], capture_output=True, text=True,
                              timeout=30, preexec_fn=_in_private_session_keyring, **kw)

    cid = rt.new_id()
    r = run("run", "--bundle", bundle(rt, ["cat", "/proc/keys"], edit=unmask), cid)
    assert r.returncode == 0, r.stderr
    k = keys(r.stdout)
    assert f"_ses.{cid}" in k and "pyrt-secret-key" not in k and "pyrt-test-session" not in k
    assert k[f"_ses.{cid}"] == "3f1b0000"  # runc: possessor all + UID view/read/search/link

    cid = rt.new_id()
    r = run("run", "--no-new-keyring", "--bundle", bundle(rt, ["cat", "/proc/keys"], edit=unmask), cid)
    assert r.returncode == 0, r.stderr
    k = keys(r.stdout)
    assert "pyrt-secret-key" in k and f"_ses.{cid}" not in k, r.stdout

    cid = rt.new_id()
    with open(os.devnull, "w") as devnull:
        r = subprocess.run(rt.cmd + ["--root", rt.root, "run", "-d", "--bundle",
                                     bundle(rt, ["sleep", "1000"], edit=unmask), cid],
                           stdout=devnull, stderr=devnull, stdin=subprocess.DEVNULL, timeout=30)
    assert r.returncode == 0
    r = run("exec", cid, "cat", "/proc/keys")
    assert r.returncode == 0, r.stderr
    k = keys(r.stdout)
    assert f"_ses.{cid}" in k and "pyrt-secret-key" not in k, r.stdout
    rt.run("delete", "--force", cid, check=True)


def test_kill_created_container(rt, no_leaks):
    cid = rt.new_id()
    create(rt, bundle(rt, SLEEP), cid)
    pid = rt.state(cid)["pid"]
    assert rt.run("kill", cid, "KILL").returncode == 0
    assert _wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert not _alive(pid)
    r = rt.run("start", cid)
    assert r.returncode != 0 and "stopped" in r.stderr
    rt.run("delete", cid, check=True)


def test_create_killed_midway_leaves_a_stopped_container(rt, no_leaks):
    """The `create` process dies (SIGKILL) while a createRuntime hook runs: the record says
    creating, its creator is gone, so the container is stopped; delete cleans up everything."""
    gate = os.path.join(rt.tmp, "hook-started")
    marker = f"30.{uuid.uuid4().int % 10**6:06d}"  # a sleep we can tell apart from any other

    def edit(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": [
            "sh", "-c", f"touch {gate}; exec sleep {marker}"]}]}
    cid = rt.new_id()
    with open(os.devnull, "w") as devnull:
        p = subprocess.Popen(rt.cmd + ["--root", rt.root, "create", "--bundle", bundle(rt, SLEEP, edit=edit), cid],
                             stdout=devnull, stderr=devnull, stdin=subprocess.DEVNULL)
    try:
        assert _wait_until(lambda: os.path.exists(gate), 10)
        assert rt.state(cid)["status"] == "creating"
        r = rt.run("list", "--format", "json")
        assert [c["status"] for c in json.loads(r.stdout) if c["id"] == cid] == ["creating"]
        p.kill()
        p.wait(10)
        assert _wait_until(lambda: rt.state(cid)["status"] == "stopped", 10)
        r = rt.run("start", cid)
        assert r.returncode != 0 and "stopped" in r.stderr
        r = rt.run("delete", cid)
        assert r.returncode == 0, r.stderr
        assert rt.run("state", cid).returncode != 0
    finally:
        # the hook's own process (a host process the killed create left behind)
        for pid in [int(x) for x in os.listdir("/proc") if x.isdigit()]:
            if _cmdline(pid) == ["sleep", marker]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
