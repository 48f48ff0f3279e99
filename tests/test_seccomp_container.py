"""Seccomp with real containers (`pyruntime run`, busybox rootfs)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_rootfs_util import base_rootfs, default_spec  # noqa: E402

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

PYRUNTIME = str(Path(sys.executable).parent / "pyruntime")
PODMAN = "/work/shared/clients/samples/podman-run-echo.config.json"


@pytest.fixture
def bundle(tmp_path):
    b = tmp_path / "bundle"
    b.mkdir()
    shutil.copytree(base_rootfs(), b / "rootfs", symlinks=True)
    return b


def run(bundle: Path, tmp_path: Path, args: list[str], seccomp: dict, nnp: bool = True, timeout: float = 30):
    spec = default_spec()
    spec["process"]["args"] = args
    spec["process"]["noNewPrivileges"] = nnp
    spec.setdefault("linux", {})["seccomp"] = seccomp
    (bundle / "config.json").write_text(json.dumps(spec))
    cid = "sc-" + uuid.uuid4().hex[:10]
    p = subprocess.run([PYRUNTIME, "--root", str(tmp_path / "state"), "run", "-b", str(bundle), cid],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode(), cid


def test_errno_profile_in_container(bundle, tmp_path):
    rc, out, err, _ = run(bundle, tmp_path, ["sh", "-c", "echo hello; mkdir /tmp/x 2>&1; exit 3"],
                          {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]})
    assert rc == 3, err
    assert "hello" in out and "Permission denied" in out


@pytest.mark.parametrize("nnp", [True, False])
def test_podman_profile_in_container(bundle, tmp_path, nnp):
    prof = json.load(open(PODMAN))["linux"]["seccomp"]
    rc, out, err, _ = run(bundle, tmp_path, ["sh", "-c", "echo hello; hostname foo 2>&1; cat /etc/hostname; exit 5"],
                          prof, nnp=nnp)
    assert rc == 5, err
    assert "hello" in out and "Operation not permitted" in out


def test_profile_denying_runtime_syscalls_still_starts(bundle, tmp_path):
    """getcwd, close_range, capset, prctl, setgroups... are the runtime's business before the
    filter is loaded; denying them must not stop the container from starting."""
    deny = ["getcwd", "close_range", "capset", "capget", "prctl", "setgroups", "setresuid", "setresgid",
            "chdir", "fchdir", "newfstatat", "statx", "umask", "sethostname", "pivot_root", "mount",
            "personality", "keyctl", "ioctl", "setsid", "fcntl", "dup3"]
    rc, out, err, _ = run(bundle, tmp_path, ["/bin/echo", "started"],
                          {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": deny, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]})
    assert rc == 0, err
    assert out.strip() == "started"


def test_kill_process_in_container(bundle, tmp_path):
    rc, out, err, _ = run(bundle, tmp_path, ["mkdir", "/tmp/y"],
                          {"defaultAction": "SCMP_ACT_ALLOW",
                           "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]})
    assert rc == 128 + signal.SIGSYS, (rc, err)


def test_bad_profile_is_one_line_error(bundle, tmp_path):
    rc, out, err, _ = run(bundle, tmp_path, ["true"], {"defaultAction": "SCMP_ACT_ALLOW",
                                                        "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}],
                                                        "listenerPath": "/nonexistent.sock"})
    assert rc != 0
    assert "SCMP_ACT_NOTIFY cannot be used for the write syscall" in err


def test_notify_listener_with_monitor(bundle, tmp_path):
    sock = str(tmp_path / "mon.sock")
    mon = subprocess.Popen([sys.executable, "-m", "pyruntime.cli.monitor", "--socket", sock, "--format", "json"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        rc, out, err, cid = run(bundle, tmp_path, ["sh", "-c", "cat /etc/hostname; exit 4"],
                                {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": sock, "listenerMetadata": "m1",
                                 "syscalls": [{"names": ["openat", "execve"], "action": "SCMP_ACT_NOTIFY"}]})
        assert rc == 4, err
        assert out.strip()  # the file was read through the notified openat
        time.sleep(0.3)
    finally:
        mon.send_signal(signal.SIGTERM)
        mout, merr = mon.communicate(timeout=10)
    events = [json.loads(line) for line in mout.decode().splitlines()]
    assert events[0] == {**events[0], "event": "attach", "container": cid, "metadata": "m1"}
    calls = [(e["syscall"], e["args"]) for e in events if e["event"] == "syscall"]
    assert any(name == "execve" and args[0] == "/bin/sh" for name, args in calls), calls
    assert any(name == "openat" and args[1] == "/etc/hostname" for name, args in calls), calls


def test_notify_listener_unreachable_fails_create(bundle, tmp_path):
    rc, out, err, _ = run(bundle, tmp_path, ["true"],
                          {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": str(tmp_path / "nobody.sock"),
                           "syscalls": [{"names": ["openat"], "action": "SCMP_ACT_NOTIFY"}]}, timeout=30)
    assert rc != 0
    assert "cannot send the seccomp fd" in err
