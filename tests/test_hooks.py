"""OCI hooks (issue 3): each kind at its spec moment with the right state on stdin, in the right
namespace; env/args/timeout; a hook that does not read stdin; failures: createRuntime,
createContainer and startContainer fail the operation and clean up, poststart fails `start`
and destroys the container (spec lifecycle step 9, runc, crun), poststop is a warning."""

from __future__ import annotations

import json
import os
import time

import pytest

from test_lifecycle_util import bundle, create, detached, run_detached, wait_until, write_hook_script

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# Appends "<name> <status> <pid> <ns>" to LOG: name from $1, status and pid from the state
# JSON on stdin, ns = the hook's own pid namespace inode (container's or the host's).
HOOK = r'''
state=$(cat)
status=$(echo "$state" | sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p')
pid=$(echo "$state" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
id=$(echo "$state" | sed -n 's/.*"id": *"\([^"]*\)".*/\1/p')
ns=$(readlink /proc/self/ns/pid)
echo "$1 $status ${pid:-none} $ns $id" >> LOG
'''


def _hooks_bundle(rt, args, extra=None):
    """A bundle whose every hook appends to <rootfs>/tmp/hooks.log (host-side hooks through
    the host path, the startContainer hook, which resolves in the container, through /tmp)."""
    holder = {}

    def edit(cfg):
        holder["cfg"] = cfg
    b = bundle(rt, args, edit=edit)
    rootfs = os.path.join(b, "rootfs")
    log = os.path.join(rootfs, "tmp", "hooks.log")
    host_hook = write_hook_script(os.path.join(rt.tmp, f"hook-{os.path.basename(b)}.sh"),
                                  HOOK.replace("LOG", log))
    write_hook_script(os.path.join(rootfs, "hook.sh"), HOOK.replace("LOG", "/tmp/hooks.log"))
    cfg = holder["cfg"]
    cfg["hooks"] = {
        kind: [{"path": host_hook, "args": [host_hook, kind]}]
        for kind in ("prestart", "createRuntime", "createContainer", "poststart", "poststop")}
    cfg["hooks"]["startContainer"] = [{"path": "/hook.sh", "args": ["/hook.sh", "startContainer"]}]
    if extra:
        extra(cfg)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b, log


def _read(log):
    try:
        with open(log) as f:
            return [ln.split() for ln in f.read().splitlines()]
    except FileNotFoundError:
        return []


def test_hooks_order_status_pid_namespace(rt, no_leaks):
    cid = rt.new_id()
    b, log = _hooks_bundle(rt, ["sleep", "1000"])
    host_pidns = os.readlink("/proc/self/ns/pid")
    create(rt, b, cid)
    pid = rt.state(cid)["pid"]
    ctr_pidns = os.readlink(f"/proc/{pid}/ns/pid")
    got = _read(log)
    assert [g[0] for g in got] == ["prestart", "createRuntime", "createContainer"]
    assert got[0][1:] == ["creating", str(pid), host_pidns, cid]
    assert got[1][1:] == ["creating", str(pid), host_pidns, cid]
    # createContainer runs in the container's namespaces and sees the container's pid
    assert got[2][1:] == ["creating", "1", ctr_pidns, cid]

    rt.run("start", cid, check=True)
    got = _read(log)
    assert [g[0] for g in got[3:]] == ["startContainer", "poststart"]
    assert got[3][1:] == ["created", "1", ctr_pidns, cid]
    assert got[4][1:] == ["running", str(pid), host_pidns, cid]

    rt.run("kill", cid, "KILL", check=True)
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert len(_read(log)) == 5  # nothing runs on kill
    rt.run("delete", cid, check=True)
    got = _read(log)
    assert [g[0] for g in got[5:]] == ["poststop"]
    assert got[5][1] == "stopped" and got[5][3] == host_pidns


def test_hooks_with_run_and_state_while_creating(rt, no_leaks):
    """`run` fires every hook in order; a createRuntime hook that queries `state` sees the
    container as `creating`."""
    state_out = os.path.join(rt.tmp, "state-during-hook.json")
    query = write_hook_script(os.path.join(rt.tmp, "query.sh"),
                              f"cat >/dev/null\n{' '.join(rt.cmd)} --root {rt.root} state \"$1\" > {state_out}\n")
    cid = rt.new_id()

    def extra(cfg):
        cfg["hooks"]["createRuntime"].append({"path": query, "args": [query, cid]})
    b, log = _hooks_bundle(rt, ["true"], extra)
    r = rt.run("run", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    assert [g[0] for g in _read(log)] == ["prestart", "createRuntime", "createContainer",
                                          "startContainer", "poststart", "poststop"]
    with open(state_out) as f:
        st = json.load(f)
    assert st["status"] == "creating" and st["id"] == cid and st["pid"] > 0


def test_hook_env_args_timeout_and_unread_stdin(rt, no_leaks):
    out = os.path.join(rt.tmp, "env.out")

    def edit(cfg):
        cfg["annotations"] = {"big": "x" * 300000}  # the state JSON overflows a pipe buffer
        cfg["hooks"] = {
            "createRuntime": [
                # exits at once without reading its stdin
                {"path": "/bin/true"},
                {"path": "/bin/sh", "args": ["my-argv0", "-c", f'echo "$0|$1|$FOO" > {out}; /usr/bin/env >> {out}',
                                              "arg-zero", "arg-one"],
                 "env": ["FOO=bar"]},
                {"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.1"], "timeout": 5},
            ]}
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=edit), cid)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        lines = f.read().splitlines()
    assert lines[0] == "arg-zero|arg-one|bar"
    # env replaces the runtime's environment entirely
    assert "FOO=bar" in lines[1:] and not [ln for ln in lines[1:] if ln.startswith(("HOME=", "PYTEST"))]

    def slow(cfg):
        cfg["hooks"] = {"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]}
    t0 = time.monotonic()
    r = detached(rt, "create", "--bundle", bundle(rt, ["true"], edit=slow), cid)
    assert time.monotonic() - t0 < 10
    assert r.returncode != 0 and "timed out" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rt.run("state", cid).returncode != 0


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hooks_fail_create_and_clean_up(rt, no_leaks, kind):
    hook = write_hook_script(os.path.join(rt.tmp, "fail.sh"), "cat >/dev/null\necho broken-hook >&2\nexit 7\n")
    stopped = os.path.join(rt.tmp, "poststop-ran")

    def edit(cfg):
        cfg["hooks"] = {kind: [{"path": hook}],
                        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {stopped}"]}]}
    cid = rt.new_id()
    r = detached(rt, "create", "--bundle", bundle(rt, ["sleep", "1000"], edit=edit), cid)
    assert r.returncode != 0
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and kind in line and "exit status 7" in line, line
    assert "broken-hook" in line
    assert rt.run("state", cid).returncode != 0
    assert not os.listdir(rt.root) if os.path.isdir(rt.root) else True


def test_failing_start_container_hook_stops_the_container(rt, no_leaks):
    """Like runc: the init runs startContainer after `start` released it; a failure stops the
    container before the user process runs, and `run` reports it with a non-zero status."""
    def edit(cfg):
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 5"]}]}
    cid = rt.new_id()
    b = bundle(rt, ["sh", "-c", "echo user-process-ran > /tmp/ran; sleep 1000"], edit=edit)
    create(rt, b, cid)
    rt.run("start", cid)
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    assert not os.path.exists(os.path.join(b, "rootfs", "tmp", "ran"))
    rt.run("delete", cid, check=True)

    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["echo", "nope"], edit=edit), cid)
    assert r.returncode != 0 and "nope" not in r.stdout
    assert "startContainer" in r.stderr and "exit status 5" in r.stderr, r.stderr
    assert rt.run("state", cid).returncode != 0


def test_failing_poststart_fails_start_and_destroys(rt, no_leaks):
    stopped = os.path.join(rt.tmp, "poststop-ran")

    def edit(cfg):
        cfg["hooks"] = {"poststart": [{"path": "/bin/false"}],
                        "poststop": [{"path": "/bin/sh", "args": ["sh", "-c", f"echo x >> {stopped}"]}]}
    cid = rt.new_id()
    create(rt, bundle(rt, ["sleep", "1000"], edit=edit), cid)
    pid = rt.state(cid)["pid"]
    r = rt.run("start", cid)
    assert r.returncode != 0 and "poststart" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert rt.run("state", cid).returncode != 0  # destroyed (lifecycle step 12)
    assert wait_until(lambda: not os.path.exists(f"/proc/{pid}/cmdline") or
                      open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
    with open(stopped) as f:
        assert f.read() == "x\n"  # step 13: poststop hooks still run

    cid = rt.new_id()
    r = run_detached(rt, bundle(rt, ["sleep", "1000"], edit=edit), cid, check=False)
    assert r.returncode != 0 and "poststart" in r.stderr
    assert rt.run("state", cid).returncode != 0


def test_failing_poststop_is_a_warning(rt, no_leaks):
    ran = os.path.join(rt.tmp, "second-ran")

    def edit(cfg):
        cfg["hooks"] = {"poststop": [{"path": "/bin/false"},
                                     {"path": "/bin/sh", "args": ["sh", "-c", f"touch {ran}"]}]}
    cid = rt.new_id()
    create(rt, bundle(rt, ["true"], edit=edit), cid)
    rt.run("start", cid, check=True)
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    r = rt.run("delete", cid)
    assert r.returncode == 0
    assert "level=warning" in r.stderr and "poststop" in r.stderr
    assert os.path.exists(ran)  # the remaining hooks still run
    assert rt.run("state", cid).returncode != 0
