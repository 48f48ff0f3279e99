"""Helpers for the attack, fault and soak tests (no tests here).

Every command whose container outlives it runs with stdout/stderr on files (`files`): a created
container keeps its creator's stdio, so nobody may wait for EOF on a pipe given to `create`.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import struct
import subprocess
import sys
import time
import uuid

import pytest

from conftest import CGROUP_ROOT, host_mounts

# The interpreter the CLI runs on (the venv's python is a symlink to it).
PYTHON = os.path.realpath(sys.executable)
PY_ID = (os.stat(PYTHON).st_dev, os.stat(PYTHON).st_ino)
STDLIB = os.path.dirname(os.__file__)


# Exec ARGV with the directory argv[1] open on fds 3..10 (inheritable): a caller leaking fds.
_LEAK = ("import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
         "hi = os.dup2(fd, 64); os.close(fd)\n"
         "for n in range(3, 11): os.dup2(hi, n)\n"
         "os.close(hi); os.execv(sys.argv[2], sys.argv[2:])")


def files(rt, *args: str, timeout: float = 60, env=None, pass_fds=(), leak: str | None = None,
          stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    """pyruntime ARGS with stdout/stderr on files; returns their text. With `leak`, the command
    gets that directory on fds 3..10 (without --preserve-fds: leaked)."""
    tag = uuid.uuid4().hex[:8]
    out, err = os.path.join(rt.tmp, f"out-{tag}"), os.path.join(rt.tmp, f"err-{tag}")
    cmd = rt.cmd + ["--root", rt.root, *args]
    if leak:
        cmd = [sys.executable, "-IS", "-c", _LEAK, leak] + cmd
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run(cmd, stdout=o, stderr=e, stdin=stdin, timeout=timeout, env=env,
                           pass_fds=pass_fds)
    with open(out) as o, open(err) as e:
        return subprocess.CompletedProcess(args, r.returncode, o.read(), e.read())


def error_lines(stderr: str) -> list[str]:
    """stderr without the warnings (a warning may come before the error)."""
    return [line for line in stderr.strip().splitlines() if "level=warning" not in line]


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The error of a failed command: exactly one line (warnings aside), no traceback, no
    internal error."""
    assert r.returncode != 0, r
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    m = re.search(r'msg="(.*)"$', lines[0])
    return m.group(1) if m else lines[0]


def clean_output(r: subprocess.CompletedProcess) -> None:
    for text in (r.stdout, r.stderr):
        assert "Traceback" not in text and "internal error" not in text, text


# --- the host's view -------------------------------------------------------------------------


def cgroups_left(rt) -> list[str]:
    """Cgroups below the test's parent cgroup, in every hierarchy."""
    left = []
    for h in os.listdir(CGROUP_ROOT):
        parent = os.path.join(CGROUP_ROOT, h, rt.cg_parent)
        if os.path.isdir(parent):
            for dirpath, dirs, _ in os.walk(parent):
                left += [os.path.join(dirpath, d) for d in dirs]
    return left


def processes_in(rt) -> list[int]:
    """Live processes in a cgroup below the test's parent cgroup."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cgroup") as f:
                if f"/{rt.cg_parent}/" not in f.read():
                    continue
            with open(f"/proc/{p}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue
        except OSError:
            continue
        out.append(int(p))
    return out


def state_ids(rt) -> list[str]:
    return sorted(n for n in os.listdir(rt.root) if not n.startswith(".")) if os.path.isdir(rt.root) else []


def zombies_of(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(p))
    return out


def mounts_of(rt, *extra: str) -> set[str]:
    """Host mounts at or below the test's own paths (its tmp dir: bundles, rootfs copies,
    volumes, state root; the rootfs cache) and `extra` paths. The host is shared: other
    people's mounts (a podman harness, ...) come and go meanwhile; pyruntime itself mounts
    nothing in the host's namespace, so a leak would be on one of these paths."""
    prefixes = (str(rt.tmp), rt.base_rootfs, *extra)
    return {m for m in host_mounts() if any(m == p or m.startswith(p.rstrip("/") + "/") for p in prefixes)}


def snapshot(rt) -> dict:
    return {"mounts": mounts_of(rt), "cgroups": sorted(cgroups_left(rt)), "procs": processes_in(rt),
            "state": state_ids(rt), "fds": len(os.listdir("/proc/self/fd")),
            "zombies": zombies_of(os.getpid())}


@pytest.fixture
def no_leaks_here(rt, request):
    """conftest's no_leaks, with the mount check limited to the test's own paths (mounts_of)
    and processes and zombies checked too. Skipped for a test that failed already (what it left
    behind is cleaned up, not reported twice)."""
    before = snapshot(rt)
    failed = request.session.testsfailed
    yield
    try:
        if request.session.testsfailed == failed:
            assert_clean(rt, before)
    finally:
        rt.cleanup()


def assert_clean(rt, before: dict | None = None) -> None:
    """Nothing of the test's containers is left on the host (mounts compared with `before`)."""
    now = snapshot(rt)
    if before is not None:
        assert now["mounts"] - before["mounts"] == set(), f"leaked mounts: {now['mounts'] - before['mounts']}"
        assert now["fds"] <= before["fds"], f"leaked fds in the test process: {before['fds']} -> {now['fds']}"
    assert now["cgroups"] == [], f"leaked cgroups: {now['cgroups']}"
    assert now["procs"] == [], f"leaked processes: {now['procs']}"
    assert now["state"] == [], f"leaked state dirs: {now['state']}"
    assert now["zombies"] == [], f"zombies: {now['zombies']}"


# --- processes -------------------------------------------------------------------------------


def container_pid(rt, cid: str) -> int:
    return rt.state(cid)["pid"]


def ns_ino(pid: int, kind: str = "pid") -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        out += kids
        todo += kids
    return out


def nspid(pid: int) -> int:
    """pid as the innermost pid namespace of the process sees it."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError(f"no NSpid for {pid}")


def runs_python(pid: int) -> bool:
    try:
        st = os.stat(f"/proc/{pid}/exe")
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == PY_ID


def catch_joiner(rt, cid: str, *exec_args: str, tries: int = 20) -> tuple[subprocess.Popen, int]:
    """Start `pyruntime exec CID EXEC_ARGS...` until one of its processes is caught inside the
    container's pid namespace still running the runtime (before its execve), and stop it with
    SIGSTOP. Returns (the exec command, host pid of the stopped process): SIGCONT it, then wait
    for the command."""
    target = ns_ino(container_pid(rt, cid))
    for _ in range(tries):
        log = open(os.path.join(rt.tmp, f"joiner-{uuid.uuid4().hex[:6]}"), "w")
        p = subprocess.Popen(rt.cmd + ["--root", rt.root, "exec", cid, *exec_args],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        end = time.monotonic() + 10
        while p.poll() is None and time.monotonic() < end:
            for d in descendants(p.pid):
                try:
                    if ns_ino(d) != target or not runs_python(d):
                        continue
                except OSError:
                    continue
                os.kill(d, signal.SIGSTOP)
                if runs_python(d):
                    return p, d
                os.kill(d, signal.SIGCONT)
        p.wait(timeout=30)
    raise AssertionError("never caught a runtime process inside the container")


def release(p: subprocess.Popen, pid: int) -> None:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
    p.wait(timeout=30)


# --- images ----------------------------------------------------------------------------------


def elf_interp(path: str) -> str:
    """PT_INTERP of an ELF64 little-endian executable."""
    with open(path, "rb") as f:
        data = f.read(1 << 16)
    assert data[:4] == b"\x7fELF" and data[4] == 2, path
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        off = phoff + i * phentsize
        ptype, = struct.unpack_from("<I", data, off)
        if ptype == 3:  # PT_INTERP
            p_offset, = struct.unpack_from("<Q", data, off + 8)
            p_filesz, = struct.unpack_from("<Q", data, off + 32)
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    raise AssertionError(f"{path}: no PT_INTERP")


def glibc_image(rootfs: str, cfg: dict) -> None:
    """Make a busybox bundle a glibc image able to run the host's interpreter (what the
    CVE-2019-5736 exploit needs: `#!/proc/self/exe` must run): the host's library and stdlib
    directories bound read-only at the same paths, ld.so where PT_INTERP says."""
    interp = elf_interp(PYTHON)
    real = os.path.realpath(interp)
    libdir = os.path.dirname(real)
    os.makedirs(rootfs + os.path.dirname(interp), exist_ok=True)
    if not os.path.lexists(rootfs + interp):
        os.symlink(real, rootfs + interp)
    for d in (libdir, STDLIB):
        cfg["mounts"].append({"destination": d, "type": "bind", "source": d, "options": ["rbind", "ro"]})
    # and the interpreter itself, for probes written in Python (busybox's `test -w` answers
    # yes for root without asking the kernel)
    cfg["mounts"].append({"destination": "/usr/bin/python3", "type": "bind", "source": PYTHON,
                          "options": ["bind", "ro"]})


def write_exec(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)


def add_caps(cfg: dict, *caps: str) -> None:
    c = cfg["process"]["capabilities"]
    for key in ("bounding", "effective", "permitted"):
        c[key] = sorted(set(c.get(key) or ()) | set(caps))


def volume(rt, name: str) -> str:
    d = os.path.join(rt.tmp, name)
    os.makedirs(d, exist_ok=True)
    return d


def bind(src: str, dest: str, *opts: str) -> dict:
    return {"destination": dest, "type": "bind", "source": src, "options": ["rbind", *opts]}


def read_json_lines(path: str) -> list:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def is_chr(path: str) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)
