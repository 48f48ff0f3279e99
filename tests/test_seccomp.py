"""pyruntime.linux.seccomp: compile in the parent, load in a forked child, check effects there."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace as NS

import pytest

from pyruntime.errors import ConfigError, RuntimeFailure
from pyruntime.linux import seccomp as sc
from pyruntime.linux import syscalls

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(sc, "CACHE_DIR", str(tmp_path / "seccomp-cache"))

PODMAN = "/work/shared/clients/samples/podman-run-echo.config.json"
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

NR = {"getcwd": 79, "getppid": 110, "getpgid": 121, "getpriority": 140, "personality": 135,
      "bpf": 321, "setns": 308, "keyctl": 250, "userfaultfd": 323, "getpid": 39, "uname": 63,
      "close_range": 436, "kcmp": 312, "futex_waitv": 449}


def raw(name_or_nr, *args) -> int:
    """A raw syscall with unsigned long args: result or -errno."""
    nr = NR[name_or_nr] if isinstance(name_or_nr, str) else name_or_nr
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return r if r >= 0 else -ctypes.get_errno()


def prof(default="SCMP_ACT_ALLOW", syscalls=(), **kw):
    return NS(default_action=default, default_errno_ret=kw.get("default_errno_ret"),
              architectures=kw.get("architectures"), flags=kw.get("flags"),
              listener_path=kw.get("listener_path"), listener_metadata=kw.get("listener_metadata"),
              syscalls=tuple(syscalls))


def rule(names, action, errno_ret=None, args=None):
    return NS(names=tuple(names), action=action, errno_ret=errno_ret,
              args=None if args is None else tuple(NS(index=a[0], value=a[1], value_two=a[3] if len(a) > 3 else None,
                                                      op=a[2]) for a in args))


def in_child(filt, body, nnp=True, before=None):
    """Fork; the child sets nnp, loads `filt`, runs body() -> dict sent back over a pipe.
    Returns (wait status, dict or None)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            if before:
                before()
            if nnp:
                syscalls.set_no_new_privs()
            sc.load(filt)
            res = body()
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        except BaseException as e:  # noqa: BLE001
            try:
                os.write(w, json.dumps({"exc": f"{type(e).__name__}: {e}"}).encode())
            finally:
                os._exit(3)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, (json.loads(data) if data else None)


# --- actions ---------------------------------------------------------------------------------


def test_errno_with_errnoret():
    f = sc.compile_filter(prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO", 42)]))
    st, res = in_child(f, lambda: {"getcwd": raw("getcwd", 0, 0), "getpid": raw("getpid")})
    assert os.waitstatus_to_exitcode(st) == 0, res
    assert res["getcwd"] == -42
    assert res["getpid"] > 0


def test_errno_default_is_eperm_and_default_errnoret():
    f = sc.compile_filter(prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO")]))
    _, res = in_child(f, lambda: {"getcwd": raw("getcwd", 0, 0)})
    assert res["getcwd"] == -errno.EPERM
    # defaultAction ERRNO with defaultErrnoRet: everything not listed fails with it
    f = sc.compile_filter(prof("SCMP_ACT_ERRNO", default_errno_ret=errno.EXDEV,
                               syscalls=[rule(["write", "exit_group", "exit", "getpid"], "SCMP_ACT_ALLOW")]))
    _, res = in_child(f, lambda: {"uname": raw("uname", 0), "getpid": raw("getpid")})
    assert res == {"uname": -errno.EXDEV, "getpid": res["getpid"]} and res["getpid"] > 0


def test_kill_process_and_kill():
    for act in ("SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        f = sc.compile_filter(prof(syscalls=[rule(["getppid"], act)]))
        st, res = in_child(f, lambda: {"ppid": raw("getppid")})
        assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGSYS, (act, st, res)
        assert res is None


def test_trap_delivers_sigsys():
    f = sc.compile_filter(prof(syscalls=[rule(["getppid"], "SCMP_ACT_TRAP")]))
    got = []

    def before():
        signal.signal(signal.SIGSYS, lambda s, fr: got.append(s))

    def body():
        r = raw("getppid")
        return {"ret": r, "sigsys": got}

    st, res = in_child(f, body, before=before)
    assert os.waitstatus_to_exitcode(st) == 0, res
    assert res["sigsys"] == [signal.SIGSYS]


def test_log_allows_and_trace_without_tracer_is_enosys():
    f = sc.compile_filter(prof(syscalls=[rule(["getppid"], "SCMP_ACT_LOG"),
                                         rule(["getpgid"], "SCMP_ACT_TRACE", 7)]))
    _, res = in_child(f, lambda: {"ppid": raw("getppid"), "pgid": raw("getpgid", 0)})
    assert res["ppid"] == os.getpid()
    assert res["pgid"] == -errno.ENOSYS  # no tracer attached


# --- argument conditions ---------------------------------------------------------------------


def test_arg_eq_only_denies_matching_value():
    f = sc.compile_filter(prof(syscalls=[rule(["personality"], "SCMP_ACT_ERRNO", 13,
                                              [(0, 0xFFFFFFFF, "SCMP_CMP_EQ")])]))
    _, res = in_child(f, lambda: {"query": raw("personality", 0xFFFFFFFF), "zero": raw("personality", 0)})
    assert res["query"] == -13
    assert res["zero"] >= 0


def test_arg_masked_eq():
    # deny getpgid(pid) when (pid & 0xff) == 0x42
    f = sc.compile_filter(prof(syscalls=[rule(["getpgid"], "SCMP_ACT_ERRNO", 7,
                                              [(0, 0xFF, "SCMP_CMP_MASKED_EQ", 0x42)])]))
    _, res = in_child(f, lambda: {"m": raw("getpgid", 0x7FF42), "n": raw("getpgid", 0x7FF43)})
    assert res["m"] == -7
    assert res["n"] == -errno.ESRCH


def test_args_same_index_are_or_different_index_are_and():
    f = sc.compile_filter(prof(syscalls=[
        rule(["getpgid"], "SCMP_ACT_ERRNO", 7, [(0, 0x7FF01, "SCMP_CMP_EQ"), (0, 0x7FF02, "SCMP_CMP_EQ")]),
        rule(["getpriority"], "SCMP_ACT_ERRNO", 9, [(0, 0, "SCMP_CMP_EQ"), (1, 0x7FF01, "SCMP_CMP_EQ")]),
    ]))

    def body():
        return {"a": raw("getpgid", 0x7FF01), "b": raw("getpgid", 0x7FF02), "c": raw("getpgid", 0x7FF03),
                "both": raw("getpriority", 0, 0x7FF01), "first": raw("getpriority", 1, 0x7FF01),
                "self": raw("getpriority", 0, 0)}

    _, res = in_child(f, body)
    assert res["a"] == -7 and res["b"] == -7 and res["c"] == -errno.ESRCH
    assert res["both"] == -9
    assert res["first"] == -errno.ESRCH
    assert res["self"] >= 0


@pytest.mark.parametrize("op,hits,misses", [
    ("SCMP_CMP_NE", [0x7FF02], [0x7FF01]),
    ("SCMP_CMP_LT", [0x7FF00], [0x7FF01, 0x7FF02]),
    ("SCMP_CMP_LE", [0x7FF00, 0x7FF01], [0x7FF02]),
    ("SCMP_CMP_GE", [0x7FF01, 0x7FF02], [0x7FF00]),
    ("SCMP_CMP_GT", [0x7FF02], [0x7FF00, 0x7FF01]),
])
def test_operators(op, hits, misses):
    f = sc.compile_filter(prof(syscalls=[rule(["getpgid"], "SCMP_ACT_ERRNO", 7, [(0, 0x7FF01, op)])]))
    _, res = in_child(f, lambda: {str(v): raw("getpgid", v) for v in hits + misses})
    for v in hits:
        assert res[str(v)] == -7, (op, v)
    for v in misses:
        assert res[str(v)] == -errno.ESRCH, (op, v)


# --- real profiles ---------------------------------------------------------------------------


def _podman_seccomp():
    data = json.load(open(PODMAN))["linux"]["seccomp"]
    from pyruntime.spec._model import Seccomp, build  # the form the runtime builds

    return build(Seccomp, data)


def test_podman_default_profile():
    f = sc.compile_filter(_podman_seccomp())

    def body():
        return {"bpf": raw("bpf", 0, 0, 0), "setns": raw("setns", 99, 0), "kcmp": raw("kcmp", 0, 0, 0, 0, 0),
                "userfaultfd": raw("userfaultfd", 0), "getpid": raw("getpid"), "cwd": os.getcwd(),
                "personality_query": raw("personality", 0xFFFFFFFF), "personality_5": raw("personality", 5),
                "unlisted": raw("futex_waitv", 0, 0, 0, 0, 0), "uname": os.uname().sysname,
                "keyctl": raw("keyctl", 0, 0)}

    st, res = in_child(f, body)
    assert os.waitstatus_to_exitcode(st) == 0, res
    assert res["bpf"] == res["kcmp"] == res["userfaultfd"] == -errno.EPERM  # errnoRet 1
    # setns is both in the ALLOW list and in an ERRNO rule: libseccomp keeps the first (as in runc)
    assert res["setns"] == -errno.EBADF
    assert res["unlisted"] == -errno.ENOSYS  # defaultErrnoRet 38
    assert res["personality_5"] == -errno.ENOSYS
    assert res["personality_query"] >= 0
    assert res["getpid"] > 0 and res["uname"] == "Linux" and res["cwd"]
    assert res["keyctl"] not in (-errno.EPERM, -errno.ENOSYS)  # allowed by this profile: the kernel answers


def test_enosys_stub_for_syscalls_newer_than_the_profile():
    # EPERM by default; syscalls above the largest listed one (close_range 436) get ENOSYS
    allow = ["write", "exit_group", "exit", "getpid", "close_range", "rt_sigreturn", "munmap", "mmap", "brk"]
    f = sc.compile_filter(prof("SCMP_ACT_ERRNO", architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
                               syscalls=[rule(allow, "SCMP_ACT_ALLOW")]))

    def body():
        return {"new": raw(NR["futex_waitv"]), "huge": raw(1000), "old": raw("getppid"), "ok": raw("getpid")}

    _, res = in_child(f, body)
    assert res["new"] == -errno.ENOSYS and res["huge"] == -errno.ENOSYS
    assert res["old"] == -errno.EPERM
    assert res["ok"] > 0
    # a permissive default needs no stub
    f2 = sc.compile_filter(prof("SCMP_ACT_ALLOW", architectures=("SCMP_ARCH_X86_64",),
                                syscalls=[rule(["getppid"], "SCMP_ACT_ERRNO")]))
    assert len(f2.programs[0]) < len(sc.compile_filter(prof("SCMP_ACT_ERRNO", architectures=("SCMP_ARCH_X86_64",),
                                                           syscalls=[rule(["getppid"], "SCMP_ACT_ALLOW")])).programs[0])


def test_after_load_only_the_documented_syscalls_are_needed():
    """Default KILL_PROCESS, only write + exit_group allowed: load() itself must make no other
    syscall, and the caller can still write its result and exit."""
    f = sc.compile_filter(prof("SCMP_ACT_KILL_PROCESS", syscalls=[rule(["write", "exit_group"], "SCMP_ACT_ALLOW")]))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        syscalls.set_no_new_privs()
        sc.load(f)
        os.write(w, b"ok")
        os._exit(0)
    os.close(w)
    got = os.read(r, 10)
    os.close(r)
    _, st = os.waitpid(pid, 0)
    assert got == b"ok" and os.waitstatus_to_exitcode(st) == 0


def test_denying_getcwd_and_close_range_does_not_matter_to_load():
    f = sc.compile_filter(prof(syscalls=[rule(["getcwd", "close_range", "close", "openat"], "SCMP_ACT_KILL_PROCESS")]))
    st, res = in_child(f, lambda: {"pid": raw("getpid")})
    assert os.waitstatus_to_exitcode(st) == 0 and res["pid"] > 0


def test_load_without_nnp_needs_cap_sys_admin_and_works_as_root():
    f = sc.compile_filter(prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO", 5)]))
    st, res = in_child(f, lambda: {"getcwd": raw("getcwd", 0, 0)}, nnp=False)
    assert res == {"getcwd": -5}


def test_unknown_syscalls_skipped_and_redundant_rules_skipped():
    f = sc.compile_filter(prof(syscalls=[rule(["no_such_syscall", "getcwd"], "SCMP_ACT_ERRNO", 3),
                                         rule(["getpid"], "SCMP_ACT_ALLOW")]))
    _, res = in_child(f, lambda: {"getcwd": raw("getcwd", 0, 0), "getpid": raw("getpid")})
    assert res["getcwd"] == -3 and res["getpid"] > 0


def test_flags():
    f = sc.compile_filter(prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO")],
                               flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                      "SECCOMP_FILTER_FLAG_TSYNC")))
    assert f.programs[-1].flags == sc.FLAG_LOG | sc.FLAG_SPEC_ALLOW
    _, res = in_child(f, lambda: {"getcwd": raw("getcwd", 0, 0)})
    assert res["getcwd"] == -errno.EPERM


def test_features():
    feats = sc.features()
    assert feats["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in feats["actions"] and "SCMP_ACT_KILL_PROCESS" in feats["actions"]
    assert "SCMP_CMP_MASKED_EQ" in feats["operators"]
    assert "SCMP_ARCH_X86_64" in feats["archs"] and "SCMP_ARCH_SH" not in feats["archs"]
    assert set(feats["supportedFlags"]) <= set(feats["knownFlags"])
    assert "SECCOMP_FILTER_FLAG_LOG" in feats["supportedFlags"]


# --- bad profiles ----------------------------------------------------------------------------


@pytest.mark.parametrize("p,msg", [
    (prof("SCMP_ACT_BOGUS"), "unknown action"),
    (prof(syscalls=[rule(["getcwd"], "SCMP_ACT_NOPE")]), "unknown action"),
    (prof(architectures=("SCMP_ARCH_VAX",)), "unknown architecture"),
    (prof(architectures=("SCMP_ARCH_SH",)), "not supported by libseccomp"),
    (prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO", args=[(0, 1, "SCMP_CMP_ALMOST")])]), "unknown operator"),
    (prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ERRNO", args=[(6, 1, "SCMP_CMP_EQ")])]), "out of range"),
    (prof(syscalls=[rule(["getcwd"], "SCMP_ACT_ALLOW", errno_ret=5)]), "takes no errno"),
    (prof("SCMP_ACT_KILL", default_errno_ret=5), "takes no errno"),
    (prof("SCMP_ACT_NOTIFY"), "default action"),
    (prof(syscalls=[rule(["write"], "SCMP_ACT_NOTIFY")]), "write syscall"),
    (prof(flags=("SECCOMP_FILTER_FLAG_BOGUS",)), "not known"),
    (prof(syscalls=[rule([""], "SCMP_ACT_ERRNO")]), "empty string"),
])
def test_bad_profiles(p, msg):
    with pytest.raises(ConfigError) as ei:
        sc.compile_filter(p)
    assert msg in str(ei.value) and "\n" not in str(ei.value)


# --- SCMP_ACT_NOTIFY and the listener ----------------------------------------------------------


def _agent(path: str, got: dict, ready: threading.Event):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    ready.set()
    conn, _ = srv.accept()
    data, fds = b"", []
    while True:
        chunk, f, _fl, _a = socket.recv_fds(conn, 65536, 4)
        fds += f
        if not chunk:
            break
        data += chunk
    conn.close()
    srv.close()
    got["msg"] = json.loads(data)
    got["fds"] = fds


def test_notify_listener_receives_state_and_fd(tmp_path):
    import fcntl
    import struct

    from pyruntime import monitor as mon

    path = str(tmp_path / "agent.sock")
    p = prof(syscalls=[rule(["getppid"], "SCMP_ACT_NOTIFY")], listener_path=path, listener_metadata="hello")
    f = sc.compile_filter(p)
    assert f.notify
    got: dict = {}
    ready = threading.Event()
    t = threading.Thread(target=_agent, args=(path, got, ready))
    t.start()
    ready.wait(5)
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            a.close()
            syscalls.set_no_new_privs()
            fd = sc.load(f)
            sc.handover_notify_fd(b.fileno(), fd)
            r = raw("getppid")  # notified: the agent answers 4242
            os._exit(0 if r == 4242 else 1)
        except BaseException:
            os._exit(2)
    b.close()
    msg = json.loads(a.recv(4096))
    assert msg["type"] == "seccomp-fd"
    nfd = sc.fetch_notify_fd(pid, msg["fd"])
    state = {"ociVersion": "1.2.0", "id": "ctr1", "status": "creating", "pid": pid, "bundle": "/b"}
    sc.send_to_listener(path, nfd, state, "hello")
    os.close(nfd)
    t.join(5)
    assert got["msg"] == {"ociVersion": "1.2.0", "fds": ["seccompFd"], "pid": pid, "metadata": "hello", "state": state}
    (sfd,) = got["fds"]
    buf = bytearray(mon._NOTIF.size)
    fcntl.ioctl(sfd, mon.NOTIF_RECV, buf, True)
    nid, npid, _fl, nr, _arch, _ip, *_args = mon._NOTIF.unpack(buf)
    assert npid == pid and sc.syscall_name(nr) == "getppid"
    fcntl.ioctl(sfd, mon.NOTIF_SEND, mon._RESP.pack(nid, 4242, 0, 0))
    _, st = os.waitpid(pid, 0)
    os.close(sfd)
    a.close()
    assert os.waitstatus_to_exitcode(st) == 0


def test_send_to_listener_failure_is_an_error(tmp_path):
    r, w = os.pipe()
    with pytest.raises(RuntimeFailure, match="cannot send the seccomp fd"):
        sc.send_to_listener(str(tmp_path / "nobody.sock"), r, {"pid": 1}, None)
    os.close(r)
    os.close(w)


# --- add_monitor -------------------------------------------------------------------------------


def test_add_monitor_keeps_profile_and_records_syscalls():
    base = _podman_seccomp()
    m = sc.add_monitor(base, "/run/mon.sock", ["openat", "execve"])
    assert m.listener_path == "/run/mon.sock"
    assert sc.monitored_syscalls(m) == ("openat", "execve")
    assert m.syscalls == base.syscalls and m.default_action == base.default_action
    f = sc.compile_filter(m)
    assert f.notify and len(f.programs) == 2
    only = sc.add_monitor(None, "/s", ["openat"])
    assert only.default_action == "SCMP_ACT_ALLOW" and sc.monitored_syscalls(only) == ("openat",)
    assert len(sc.compile_filter(only).programs) == 1  # no profile: only the (permissive) monitor filter
    assert len(sc.monitored_syscalls(sc.add_monitor(None, "/s", "all"))) > 300
    with pytest.raises(ConfigError, match="unknown syscall"):
        sc.add_monitor(None, "/s", ["openat", "nonsense"])
    with pytest.raises(ConfigError, match="already has a seccomp agent"):
        sc.add_monitor(m, "/other", ["openat"])


def test_compiled_program_cache(tmp_path, monkeypatch):
    p = _podman_seccomp()
    monkeypatch.setattr(sc, "CACHE_DIR", None)
    ref = sc.compile_filter(p).programs[0].insns
    cache = tmp_path / "cache"
    monkeypatch.setattr(sc, "CACHE_DIR", str(cache))
    assert sc.compile_filter(p).programs[0].insns == ref  # miss: built and stored
    (entry,) = [e for e in cache.iterdir() if e.name != sc.LIB_LINK]
    lib = cache / sc.LIB_LINK  # the libseccomp the entry was built with (part of the key)
    assert lib.resolve() == Path(sc._libseccomp_path()).resolve()
    assert sc.compile_filter(p).programs[0].insns == ref  # hit
    # a hit needs no libseccomp: a fresh process does not even import pyseccomp
    code = ("import json, sys; from pyruntime.linux import seccomp as sc; from pyruntime.spec.model import Seccomp, build; "
            f"sc.CACHE_DIR = {str(cache)!r}; "
            f"f = sc.compile_filter(build(Seccomp, json.load(open({PODMAN!r}))['linux']['seccomp'])); "
            "print(f.programs[0].insns.hex(), 'pyseccomp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == [ref.hex(), "False"]
    # a cache directory others can write to is not trusted
    entry.write_bytes(b"\0" * 8)
    cache.chmod(0o777)
    assert sc.compile_filter(p).programs[0].insns == ref
    cache.chmod(0o700)
    assert sc.compile_filter(p).programs[0].insns == b"\0" * 8  # (trusted again: proves the lookup)
    # another libseccomp file is another key: a miss, built again and the link re-pointed
    lib.unlink()
    lib.symlink_to("/bin/true")
    assert sc.compile_filter(p).programs[0].insns == ref
    assert lib.resolve() == Path(sc._libseccomp_path()).resolve()
    # so is a library that is gone (upgraded)
    lib.unlink()
    lib.symlink_to(cache / "gone")
    assert sc.compile_filter(p).programs[0].insns == ref
    assert lib.resolve() == Path(sc._libseccomp_path()).resolve()


# --- the BPF itself, for architectures this host cannot run -------------------------------------


def _bpf_run(insns: bytes, nr: int, arch: int, args=(0,) * 6) -> int:
    """A classic-BPF interpreter for what libseccomp and the -ENOSYS stub emit."""
    import struct

    prog = list(struct.iter_unpack("=HBBI", insns))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *args)
    a, pc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == 0x20:  # ld [k]
            a = struct.unpack_from("=I", data, k)[0]
        elif code == 0x54:  # and #k
            a &= k
        elif code == 0x05:  # ja
            pc += k
        elif code in (0x15, 0x25, 0x35, 0x45):
            cond = {0x15: a == k, 0x25: a > k, 0x35: a >= k, 0x45: bool(a & k)}[code]
            pc += jt if cond else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x}")


def test_bpf_for_x86_and_x32_with_enosys_stub(monkeypatch):
    monkeypatch.setattr(sc, "CACHE_DIR", None)
    f = sc.compile_filter(_podman_seccomp())
    bpf = f.programs[0].insns
    errno_ret = lambda e: sc.ACT_ERRNO | e  # noqa: E731
    I386, X86_64 = sc.AUDIT_ARCH_I386, sc.AUDIT_ARCH_X86_64
    # x86_64: getpid allowed, bpf EPERM, unlisted (futex_waitv) ENOSYS (default), beyond max ENOSYS
    assert _bpf_run(bpf, 39, X86_64) == sc.ACT_ALLOW
    assert _bpf_run(bpf, 321, X86_64) == errno_ret(1)
    assert _bpf_run(bpf, 1000, X86_64) == errno_ret(38)
    # i386: getpid is 20, bpf is 357
    assert _bpf_run(bpf, 20, I386) == sc.ACT_ALLOW
    assert _bpf_run(bpf, 357, I386) == errno_ret(1)
    assert _bpf_run(bpf, 2000, I386) == errno_ret(38)
    # x32: getpid is 0x40000000 + 39
    assert _bpf_run(bpf, 0x40000000 + 39, X86_64) == sc.ACT_ALLOW
    # an architecture the profile does not list: libseccomp's bad-arch action (KILL)
    assert _bpf_run(bpf, 20, 0xC00000B7) == sc.ACT_KILL_THREAD  # aarch64
    # a profile with an EPERM default: the stub answers ENOSYS only above the newest syscall
    p = prof("SCMP_ACT_ERRNO", architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86"),
             syscalls=[rule(["getpid", "read"], "SCMP_ACT_ALLOW")])
    bpf = sc.compile_filter(p).programs[0].insns
    assert _bpf_run(bpf, 39, X86_64) == sc.ACT_ALLOW
    assert _bpf_run(bpf, 38, X86_64) == errno_ret(1)      # below getpid (39): EPERM
    assert _bpf_run(bpf, 40, X86_64) == errno_ret(38)     # above: ENOSYS
    assert _bpf_run(bpf, 3, I386) == sc.ACT_ALLOW          # read on i386
    assert _bpf_run(bpf, 19, I386) == errno_ret(1)
    assert _bpf_run(bpf, 21, I386) == errno_ret(38)       # above i386 getpid (20)
