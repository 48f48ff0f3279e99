"""exec (issue 5): output and exit codes, --process, env/cwd/user/groups/caps/no-new-privs,
strict --user parsing, tty through a console socket, --detach --pid-file, user+pid
namespaces, paused/stopped containers, missing binaries, signals, fd hygiene."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from test_console import ConsoleServer
from test_lifecycle_util import (RUNC, alive, bundle, cmdline, detached, public_bundle,
                                 remove_public_dirs, runc, run_detached, status_fields, wait_until)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

SAMPLE = "/work/shared/clients/samples/podman-exec.process.json"
CAP_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@pytest.fixture(autouse=True)
def _public_dirs():
    yield
    remove_public_dirs()


@pytest.fixture
def started(rt, no_leaks):
    """start(edit=None, args=..., public=False) -> (id, bundle) of a running container; every
    container is deleted before no_leaks checks (this fixture is torn down first)."""
    ids = []

    def start(edit=None, args=("sleep", "1000"), public=False):
        cid = rt.new_id()
        b = (public_bundle if public else bundle)(rt, list(args), edit=edit)
        run_detached(rt, b, cid)
        ids.append(cid)
        return cid, b
    yield start
    for cid in ids:
        rt.run("delete", "--force", cid)


def _msg(r) -> str:
    """The error message of a failed command (the text log line unescaped)."""
    line = r.stderr.strip()
    m = re.match(r'^time="[^"]*" level=\w+ msg="(.*)"$', line)
    return m.group(1).replace('\\"', '"') if m else line


def test_exec_output_exit_codes_and_defaults(rt, started):
    def edit(cfg):
        cfg["process"]["env"].append("FROM_CONFIG=yes")
        cfg["process"]["cwd"] = "/tmp"
    cid, _ = started(edit)
    r = rt.run("exec", cid, "sh", "-c", 'echo out; echo err >&2; echo "$FROM_CONFIG $HOME"; pwd; exit 3')
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\nyes /root\n/tmp\n", "err\n")
    r = rt.run("exec", cid, "true")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    # stdin is passed through
    r = rt.run("exec", cid, "cat", input="piped\n")
    assert r.stdout == "piped\n"
    # killed by a signal: 128+N (the exec'd shell is not a pid-namespace init)
    r = rt.run("exec", cid, "sh", "-c", "kill -9 $$")
    assert r.returncode == 137
    r = rt.run("exec", cid, "sh", "-c", "kill -USR2 $$")
    assert r.returncode == 128 + signal.SIGUSR2
    # flags after the command belong to the command
    r = rt.run("exec", cid, "echo", "--cwd", "-u")
    assert r.stdout == "--cwd -u\n"
    # the container keeps running, and nothing is left of the exec'd processes
    assert rt.state(cid)["status"] == "running"
    r = rt.run("ps", "--format", "json", cid)
    assert len(json.loads(r.stdout)) == 1, r.stdout


def test_exec_process_file(rt, started):
    cid, _ = started()
    r = rt.run("exec", "--process", SAMPLE, cid)
    assert (r.returncode, r.stdout) == (0, "from-exec\n"), r.stderr
    with open(SAMPLE) as f:
        proc = json.load(f)
    proc["args"] = ["sh", "-c", "echo $container; pwd; id -u; grep -E '^Cap(Bnd|Eff)' /proc/self/status; "
                    "grep 'open files' /proc/self/limits"]
    proc["cwd"] = "/home/user"
    pf = os.path.join(rt.tmp, "process.json")
    with open(pf, "w") as f:
        json.dump(proc, f)
    r = rt.run("exec", "--process", pf, cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["podman", "/home/user", "0"]
    f = status_fields("\n".join(lines[3:5]))
    assert f["CapBnd"] == f["CapEff"] == "00000000a80425fb"  # podman's 14 default caps
    assert lines[5].split()[3:5] == ["20000", "20000"]

    # an invalid process.json: one clear line
    with open(pf, "w") as f:
        json.dump({"args": "sh", "cwd": "/"}, f)
    r = rt.run("exec", "--process", pf, cid)
    assert r.returncode != 0 and "args" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with open(pf, "w") as f:
        f.write("{")
    r = rt.run("exec", "--process", pf, cid)
    assert r.returncode != 0 and "process.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = rt.run("exec", "--process", os.path.join(rt.tmp, "nope.json"), cid)
    assert r.returncode != 0 and "nope.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_exec_env_cwd_user_groups(rt, started):
    cid, _ = started()
    r = rt.run("exec", "-e", "FOO=bar", "--env", "PATH=/bin", "--cwd", "/home/user", "-u", "1000:1000",
               "-g", "10", "--additional-gids", "65534", cid, "sh", "-c",
               'echo "$FOO $PATH $HOME"; pwd; id; grep -E "^(Uid|Gid|Groups)" /proc/self/status')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "bar /bin /home/user"
    assert lines[1] == "/home/user"
    assert lines[2].startswith("uid=1000(user) gid=1000(user) groups=")
    f = status_fields("\n".join(lines[3:]))
    assert f["Uid"].split() == ["1000"] * 4 and f["Gid"].split() == ["1000"] * 4
    assert sorted(f["Groups"].split()) == ["10", "65534"]
    # uid only: the gid stays the config's
    r = rt.run("exec", "-u", "1000", cid, "sh", "-c", "id -u; id -g")
    assert r.stdout.split() == ["1000", "0"], r.stderr


def test_exec_user_strict_parsing(rt, started):
    cid, _ = started()
    for bad in ("1000:abc", " 1", "1:2:3", "abc", "-1", "1:", ":1", "1 ", "99999999999", "0x10", "+5",
                "1000:", "user", "1000\n", "\u0661", "4294967295"):
        r = rt.run("exec", "-u", bad, cid, "true")
        assert r.returncode != 0, bad
        assert "--user" in r.stderr and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    for bad in ("abc", "1.5", " 2", "+2", "2_0", "2\n"):
        r = rt.run("exec", "-g", bad, cid, "true")
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, (bad, r.stderr)
    r = rt.run("exec", "-u", "4294967294:4294967294", cid, "id", "-u")
    assert r.stdout == "4294967294\n", r.stderr
    assert rt.state(cid)["status"] == "running"
    assert len(json.loads(rt.run("ps", "--format", "json", cid).stdout)) == 1


def _caps(text):
    f = status_fields(text)
    return {k: f[k] for k in CAP_LINES}


def test_exec_cap_matches_runc(rt, started):
    """--cap adds to bounding, effective and permitted, never inheritable/ambient
    (CVE-2022-29162); compared with `runc exec --cap` on a runc container of the same config."""
    def edit(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        caps = cfg["process"]["capabilities"]
        caps["inheritable"] = ["CAP_KILL"]
    cid, _ = started(edit)
    rb = bundle(rt, ["sleep", "1000"], edit=edit)
    rcid = "runc-" + rt.new_id()
    r = detached(rt, "run", "--detach", "--bundle", rb, rcid, cmd=[RUNC])
    assert r.returncode == 0, r.stderr
    try:
        for extra in ([], ["--cap", "CAP_NET_RAW"], ["--cap", "CAP_NET_RAW", "--cap", "CAP_SYS_ADMIN"]):
            ours = rt.run("exec", *extra, cid, "cat", "/proc/self/status")
            theirs = runc(rt, "exec", *extra, rcid, "cat", "/proc/self/status")
            assert ours.returncode == 0 and theirs.returncode == 0, (ours.stderr, theirs.stderr)
            assert _caps(ours.stdout) == _caps(theirs.stdout), extra
        assert _caps(ours.stdout)["CapInh"] == "0000000000000020"  # only the config's CAP_KILL
    finally:
        runc(rt, "delete", "--force", rcid)


def test_exec_no_new_privs(rt, started):
    def edit(cfg):
        cfg["process"]["noNewPrivileges"] = False
    cid, _ = started(edit)
    r = rt.run("exec", cid, "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "0"]
    r = rt.run("exec", "--no-new-privs", cid, "grep", "NoNewPrivs", "/proc/self/status")
    assert r.stdout.split() == ["NoNewPrivs:", "1"]


def test_exec_tty_through_console_socket(rt, started):
    cid, _ = started()
    srv = ConsoleServer()
    try:
        r = rt.run("exec", "-t", "--console-socket", srv.path, cid, "sh", "-c",
                   "tty; readlink /proc/self/fd/0; stty size; exit 6")
        assert r.returncode == 6, r.stderr
        out = srv.wait().split("\n")
        assert out[0].startswith("/dev/pts/") and out[1] == out[0]
        assert out[2].split() != []  # a size was reported
        assert r.stdout == ""
    finally:
        srv.close()
    # -t without a console socket: the pty is proxied to our stdout
    r = rt.run("exec", "-t", cid, "tty", input="")
    assert r.returncode == 0 and r.stdout.strip().startswith("/dev/pts/"), (r.stdout, r.stderr)
    # detached with a tty needs a console socket
    r = rt.run("exec", "-t", "-d", cid, "true")
    assert r.returncode != 0 and "console socket" in r.stderr


def test_exec_detach_pid_file(rt, started):
    cid, b = started()
    pidfile = os.path.join(rt.tmp, "exec.pid")
    t0 = time.monotonic()
    r = detached(rt, "exec", "--detach", "--pid-file", pidfile, cid, "sleep", "999")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    assert time.monotonic() - t0 < 5
    with open(pidfile) as f:
        pid = int(f.read())
    assert alive(pid) and cmdline(pid) == ["sleep", "999"]
    init = rt.state(cid)["pid"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
    with open(f"/proc/{pid}/cgroup") as f, open(f"/proc/{init}/cgroup") as g:
        assert f.read() == g.read()
    # killing the container takes the exec'd process with it
    rt.run("delete", "--force", cid, check=True)
    assert wait_until(lambda: not alive(pid))


def test_exec_user_and_pid_namespace(rt, started):
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 65536}]
    cid, _ = started(edit, public=True)
    init = rt.state(cid)["pid"]
    r = rt.run("exec", cid, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ps -o pid,args; "
               "readlink /proc/self/ns/user; readlink /proc/self/ns/pid; cat /proc/self/uid_map; id -u")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].strip() == "sleep 1000"
    ps = [ln.split(None, 1) for ln in lines[1:] if ln.strip() and ln.split()[0].isdigit()]
    assert ["1", "sleep 1000"] in ps
    assert os.readlink(f"/proc/{init}/ns/user") in r.stdout
    assert "200000" in r.stdout and lines[-1] == "0"
    # the exec'd process is 200000 on the host
    pidfile = os.path.join(rt.tmp, "e.pid")
    detached(rt, "exec", "-d", "--pid-file", pidfile, cid, "sleep", "50")
    with open(pidfile) as f:
        epid = int(f.read())
    with open(f"/proc/{epid}/status") as f:
        assert status_fields(f.read())["Uid"].split()[0] == "200000"


def test_exec_paused_and_stopped(rt, started):
    cid, _ = started()
    rt.run("pause", cid, check=True)
    assert rt.state(cid)["status"] == "paused"
    r = rt.run("exec", cid, "echo", "hi")
    assert r.returncode != 0 and "paused" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # --ignore-paused: accepted; the process joins the frozen cgroup and runs once resumed
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "exec", "--ignore-paused", cid, "echo", "hi"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    assert p.poll() is None  # not refused
    rt.run("resume", cid, check=True)
    out, err = p.communicate(timeout=20)
    assert (p.returncode, out) == (0, "hi\n"), err
    rt.run("kill", cid, "KILL", check=True)
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    r = rt.run("exec", cid, "true")
    assert r.returncode != 0 and "stopped" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    rt.run("delete", cid, check=True)


def test_exec_created_container(rt, no_leaks):
    """runc allows exec into a created container (the init is waiting for start)."""
    cid = rt.new_id()
    detached(rt, "create", "--bundle", bundle(rt, ["sleep", "1000"]), cid)
    r = rt.run("exec", cid, "cat", "/proc/1/cmdline")
    assert r.returncode == 0, r.stderr
    assert rt.state(cid)["status"] == "created"
    rt.run("delete", "--force", cid, check=True)


def test_exec_missing_binary_and_permission_denied(rt, started):
    cid, b = started()
    os.chmod(os.path.join(b, "rootfs", "root"), 0o700)
    r = rt.run("exec", cid, "no-such-binary")
    assert r.returncode != 0
    assert _msg(r) == 'exec: "no-such-binary": executable file not found in $PATH'
    assert len(r.stderr.strip().splitlines()) == 1
    r = rt.run("exec", cid, "/etc/passwd")
    assert r.returncode != 0 and _msg(r) == 'exec: "/etc/passwd": permission denied'
    r = rt.run("exec", "-u", "1000", cid, "/root/x")
    assert r.returncode != 0 and _msg(r) == 'exec: "/root/x": stat /root/x: permission denied', r.stderr
    r = rt.run("exec", "--cwd", "/etc/passwd", cid, "true")
    assert r.returncode != 0 and "not a directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = rt.run("exec", cid)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    # none of these left a process behind
    r = rt.run("ps", "--format", "json", cid)
    assert len(json.loads(r.stdout)) == 1
    assert rt.state(cid)["status"] == "running"


def test_exec_forwards_signals(rt, started):
    cid, b = started()
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "exec", cid, "sh", "-c",
                                   "trap 'echo got-term; exit 9' TERM; touch /tmp/ready; "
                                   "while :; do sleep 0.05; done"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: os.path.exists(os.path.join(b, "rootfs", "tmp", "ready")), 10)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=10)
    assert (p.returncode, out) == (9, "got-term\n"), err
    # SIGKILL of the exec process itself cannot be forwarded: but SIGINT/HUP are
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "exec", cid, "sleep", "100"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert wait_until(lambda: any(cmdline(int(x)) == ["sleep", "100"]
                                  for x in os.listdir("/proc") if x.isdigit()), 10)
    p.send_signal(signal.SIGHUP)
    p.communicate(timeout=10)
    assert p.returncode == 128 + signal.SIGHUP


def test_exec_no_fd_leaks_and_preserve_fds(rt, started):
    cid, _ = started()
    leak = os.open("/etc/hostname", os.O_RDONLY)  # inheritable: pyruntime must not pass it on
    os.set_inheritable(leak, True)
    try:
        # "; true": busybox sh would exec a last simple command (ls would list its own dir fd)
        r = subprocess.run(rt.cmd + ["--root", rt.root, "exec", cid, "sh", "-c", "ls /proc/$$/fd; true"],
                           capture_output=True, text=True, pass_fds=(leak,), timeout=30)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["0", "1", "2"], r.stdout
        # --preserve-fds N: fds 3..3+N-1 are passed on (here set up by a shell), nothing else
        cmd = " ".join(rt.cmd) + f" --root {rt.root} exec --preserve-fds 2 {cid} sh -c " + \
            "'ls /proc/$$/fd; cat <&3; cat <&4' 3</etc/hostname 4</etc/hostname"
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, pass_fds=(leak,), timeout=30)
        assert r.returncode == 0, r.stderr
        with open("/etc/hostname") as f:
            host_name = f.read()
        assert r.stdout == "0\n1\n2\n3\n4\n" + host_name * 2
    finally:
        os.close(leak)


def test_exec_cpu_affinity(rt, started):
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    cid, _ = started()
    init = rt.state(cid)["pid"]
    with open(f"/proc/{init}/status") as f:
        init_cpus = status_fields(f.read())["Cpus_allowed_list"]
    pf = os.path.join(rt.tmp, "p.json")
    # initial only: "the final affinity is determined by the Linux kernel" -- since 6.2 the
    # kernel keeps the requested mask across the cpuset attach, before that the cpuset's
    for aff, want in (({"initial": "0", "final": "1"}, {"1"}), ({"final": "0"}, {"0"}),
                      ({"initial": "1"}, {"1", init_cpus}), ({}, {init_cpus})):
        with open(pf, "w") as f:
            json.dump({"args": ["grep", "Cpus_allowed_list", "/proc/self/status"], "cwd": "/",
                       "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"],
                       "execCPUAffinity": aff}, f)
        r = rt.run("exec", "--process", pf, cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[1] in want, (aff, r.stdout)


def test_exec_runtime_not_readable_from_a_userns_container(rt, started):
    """The exec'd runtime process is non-dumpable before it joins: a root with every
    capability inside a user namespace, scanning /proc/*/environ all the while, never sees the
    runtime's (host) environment."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 210000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 210000, "size": 65536}]
        caps = sorted({"CAP_SYS_PTRACE", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN",
                       "CAP_KILL", "CAP_SETUID", "CAP_SETGID"})
        cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    watcher = ("while :; do for p in /proc/[0-9]*; do grep -qs PYRT_HOST_MARKER $p/environ && "
               "echo leak $p >> /tmp/leaks; done; done")
    cid, b = started(edit, args=("sh", "-c", watcher), public=True)
    env = dict(os.environ, PYRT_HOST_MARKER="1")
    for _ in range(6):
        r = subprocess.run(rt.cmd + ["--root", rt.root, "exec", cid, "true"], env=env,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(b, "rootfs", "tmp", "leaks"))
