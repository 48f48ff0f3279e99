"""Stage 1 is forked before the parent loads the config, and gets its config by message
(container.init: InitConfig.send/receive): what the init holds must be exactly what the parent
prepared, a config of any size must get through, and a create that fails before the message
must leave no stage 1 behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from pyruntime.container.init import InitConfig
from pyruntime.container.sync import Channel
from pyruntime.linux import sockets
from pyruntime.spec import load_config_bytes
from test_security_util import assert_clean, snapshot

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "clients", "samples")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _same_file(a: int, b: int) -> bool:
    sa, sb = os.fstat(a), os.fstat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def test_init_config_round_trip(tmp_path):
    """Every field and fd of a podman-sized config (with a seccomp filter) arrives intact."""
    from pyruntime import cgroups
    from pyruntime.linux import seccomp

    raw = open(os.path.join(SAMPLES, "podman-run-echo.config.json"), "rb").read()
    spec = load_config_bytes(raw).spec
    assert spec.linux.seccomp is not None
    filt = seccomp.compile_filter(spec.linux.seccomp)
    r, w = os.pipe2(os.O_CLOEXEC)
    con_a, con_b = sockets.socketpair(sockets.SOCK_STREAM)
    join = [("uts", os.open("/proc/self/ns/uts", os.O_RDONLY | os.O_CLOEXEC)),
            ("ipc", os.open("/proc/self/ns/ipc", os.O_RDONLY | os.O_CLOEXEC))]
    mount_fd = os.open(str(tmp_path), os.O_PATH | os.O_CLOEXEC)
    mgr = cgroups.manager_for("round-trip", "/pyruntime-test-roundtrip/x")  # nothing is created
    cfg = InitConfig(cid="c1", spec=spec, rootfs="/r", bundle="/b", join_fds=join, new_ns_flags=0x20000,
                     cgroup=mgr, fifo_fd=r, console_sock=con_a, preserve_fds=2, no_pivot=True,
                     no_new_keyring=True, seccomp_filter=filt, rootless=False, mount_fds={3: mount_fd})
    parent, child = Channel.pair()
    got = None
    try:
        cfg.send(parent)
        got = InitConfig.receive(child)
        assert got.spec == spec
        assert (got.cid, got.rootfs, got.bundle, got.new_ns_flags, got.preserve_fds, got.no_pivot,
                got.no_new_keyring, got.rootless) == ("c1", "/r", "/b", 0x20000, 2, True, True, False)
        assert [t for t, _ in got.join_fds] == ["uts", "ipc"]
        assert all(_same_file(a, b) for (_, a), (_, b) in zip(join, got.join_fds))
        assert list(got.mount_fds) == [3] and _same_file(got.mount_fds[3], mount_fd)
        assert got.fifo_fd != r and _same_file(got.fifo_fd, r)
        assert got.cgroup.to_state() == mgr.to_state()
        assert [(p.insns, p.flags) for p in got.seccomp_filter.programs] == \
            [(p.insns, p.flags) for p in filt.programs]
        assert got.seccomp_filter.notify == filt.notify
        got.console_sock.sendall(b"ping")  # the received socket is the same connection
        assert con_b.recv(4) == b"ping"
        # every received fd is close-on-exec (the init relies on it until its close_range)
        for fd in [got.fifo_fd, got.console_sock.fileno(), *got.mount_fds.values(), *(f for _, f in got.join_fds)]:
            assert not os.get_inheritable(fd)
    finally:
        for fd in [r, w, mount_fd] + [f for _, f in join]:
            os.close(fd)
        for s in (con_a, con_b, parent, child):
            s.close()
        if got is not None:
            for fd in [got.fifo_fd, *got.mount_fds.values(), *(f for _, f in got.join_fds)]:
                os.close(fd)
            got.console_sock.close()


def test_config_larger_than_a_socket_message(rt, no_leaks):
    """A config far larger than one sync datagram (the socket's send buffer, ~200 KiB) reaches
    the init: its annotations are what the createContainer hook sees."""
    out = rt.tmp / "hook-state.json"
    hook = rt.tmp / "hook.sh"
    hook.write_text(f"#!/bin/sh\ncat > {out}\n")
    hook.chmod(0o755)
    big = "x" * (1 << 20)

    def edit(cfg):
        cfg["annotations"] = {"big": big}
        cfg["hooks"] = {"createContainer": [{"path": str(hook)}]}
    b = rt.bundle(["true"], edit=edit)
    assert os.path.getsize(os.path.join(b, "config.json")) > 1 << 20
    cid = rt.new_id()
    r = rt.run("run", "--bundle", b, cid)
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["annotations"]["big"] == big


def test_failed_create_takes_stage1_with_it(rt):
    """Stage 1 is forked before the config is read; a config that fails validation kills and
    reaps it (strace shows the fork and its SIGKILL), and nothing is left."""
    assert shutil.which("strace"), "strace is missing: scripts/setup.sh installs it"
    b = rt.bundle(["true"], edit=lambda cfg: cfg["process"].update(cwd="relative"))
    before = snapshot(rt)
    trace = rt.tmp / "trace"
    r = subprocess.run(["strace", "-f", "-qq", "-o", str(trace), "-e", "trace=clone,clone3,kill,wait4",
                        "-e", "signal=none", *rt.cmd, "--root", rt.root, "create", "--bundle", b,
                        rt.new_id()], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "cwd" in r.stderr, r.stderr
    text = trace.read_text()
    forks = re.findall(r"^(\d+)\s+clone3?\((?!.*CLONE_THREAD).*= (\d+)$", text, re.M)
    assert len(forks) == 1, text  # stage 1 only: the init was never forked
    child = forks[0][1]
    assert re.search(rf"kill\({child}, SIGKILL\)", text), text
    assert re.search(rf"wait4\({child}, \[\{{WIFSIGNALED\(s\) && WTERMSIG\(s\) == SIGKILL\}}\]", text), text
    assert_clean(rt, before)


def test_debug_log_traces_every_process_in_order(rt, no_leaks):
    """`--debug --log F`: the parent, stage 1 and the init (after its pivot_root too) write their
    phases through the one inherited fd, in causal order; bench/timeline.py reads them."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
    from timeline import parse

    b = rt.bundle(["true"])
    cid = rt.new_id()
    log = str(rt.tmp / "debug.log")
    r = subprocess.run([*rt.cmd, "--root", rt.root, "--debug", "--log", log, "create", "--bundle", b, cid],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    assert r.returncode == 0
    first = {}
    for m, t in parse(log):
        first.setdefault(m, t)
    # each pair: the second cannot happen before the first (a message or a fork between them)
    for a, b in [("create: config validated", "create: config sent to stage 1"),
                 ("create: config validated", "stage 1: config received"),
                 ("stage 1: config received", "stage 1: joined the cgroup"),
                 ("stage 1: joined the cgroup", "create: stage 1 forked the init, pid N"),
                 ("stage 1: joined the cgroup", "init: started"),
                 ("init: started", "init: rootfs prepared"),
                 ("init: rootfs prepared", "init: ready, waiting for start"),
                 ("init: ready, waiting for start", "create: init ready")]:
        assert a in first and b in first, (a, b, sorted(first))
        assert first[a] <= first[b], (a, b)
    rt.run("delete", "--force", cid, check=True)
