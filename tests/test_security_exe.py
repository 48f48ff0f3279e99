"""CVE-2019-5736: a container overwriting the runtime's own executable or libraries.

pyruntime's processes that enter a container run the host's Python interpreter there until
their execve: the init (until `start`), an exec'd process (until it execs). The published
exploit makes the container's entrypoint `#!/proc/self/exe`, so the runtime's process execs
its own executable inside the container, where the container's processes own it; with
CAP_SYS_PTRACE a container reaches /proc/<pid>/exe of any runtime process in its pid namespace,
and with CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) its /proc/<pid>/map_files (libc ...).

The bar: every such file is one the container cannot open for writing. The tests never write:
they check access(W_OK) (EROFS on a read-only mount; 0 on the host's writable /usr) and that
the file reached is the host's interpreter (same device and inode).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from test_lifecycle_util import create, run_detached
from test_security_util import (PY_ID, PYTHON, add_caps, bind, catch_joiner, clean_output, files,
                                glibc_image, no_leaks_here, nspid, read_json_lines, release,
                                runs_python, volume, write_exec)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# Run by the host's interpreter inside the container (what `#!/proc/self/exe` gives the
# attacker): report what /proc/self/exe is and whether it could be opened for writing.
EVIL = """#!/proc/self/exe
import json, os
st = os.stat("/proc/self/exe")
out = {"dev": st.st_dev, "ino": st.st_ino, "writable": os.access("/proc/self/exe", os.W_OK),
       "ro_mount": bool(os.statvfs("/proc/self/exe").f_flag & 1)}
with open("/out/result", "a") as f:
    f.write(json.dumps(out) + "\\n")
"""


def _evil_bundle(rt, args, out):
    def edit(cfg):
        rootfs = cfg["root"]["path"]
        glibc_image(rootfs, cfg)
        write_exec(os.path.join(rootfs, "bin", "evil"), EVIL)
        cfg["mounts"].append(bind(out, "/out"))
    return rt.bundle(args, edit=edit)


def _result(out: str) -> dict:
    path = os.path.join(out, "result")
    assert os.path.exists(path), "the exploit did not run"
    with open(path) as f:
        res = [json.loads(line) for line in f]
    assert len(res) == 1, res
    return res[0]


def _assert_reached_but_readonly(res: dict) -> None:
    # The attack worked as published: the container's process runs the runtime's executable...
    assert (res["dev"], res["ino"]) == PY_ID, res
    # ...but it is on a read-only mount: opening it for writing fails (EROFS).
    assert res["ro_mount"] and not res["writable"], res


def test_entrypoint_shebang_proc_self_exe(rt, no_leaks_here):
    """`run` of an image whose entrypoint is `#!/proc/self/exe`: the init execs the runtime's
    executable (the original exploit path)."""
    out = volume(rt, "out")
    cid = rt.new_id()
    r = rt.run("run", "--bundle", _evil_bundle(rt, ["/bin/evil"], out), cid)
    assert r.returncode == 0, r.stderr
    _assert_reached_but_readonly(_result(out))


def test_exec_shebang_proc_self_exe(rt, no_leaks_here):
    """`exec` of `#!/proc/self/exe`: the joining process execs the runtime's executable."""
    out = volume(rt, "out")
    cid = rt.new_id()
    run_detached(rt, _evil_bundle(rt, ["sleep", "1000"], out), cid)
    r = files(rt, "exec", cid, "/bin/evil")
    assert r.returncode == 0, r.stderr
    _assert_reached_but_readonly(_result(out))
    rt.run("delete", "--force", cid, check=True)


# A probe run inside a container with CAP_SYS_PTRACE and CAP_CHECKPOINT_RESTORE: what of
# runtime process PID can it reach, and could it open any of it for writing (access(2) W_OK:
# EROFS on a read-only mount; busybox's `test -w` answers yes for root without asking).
PROBE = """#!/usr/bin/python3
import json, os, sys
def ident(d):
    st = os.stat(d + "/exe")
    return st.st_dev, st.st_ino
def reach(pid):
    d = f"/proc/{pid}"
    out = {"exe": None, "maps": 0, "writable": []}
    try:
        before = ident(d)
        out["exe"] = os.readlink(d + "/exe")
    except OSError as e:
        out["exe_error"] = e.strerror
        return out
    if os.access(d + "/exe", os.W_OK):
        out["writable"].append(out["exe"])
    try:
        names = os.listdir(d + "/map_files")
    except OSError:
        names = []
    for n in names:
        f = f"{d}/map_files/{n}"
        out["maps"] += 1
        if os.access(f, os.W_OK):
            out["writable"].append(os.readlink(f))
    try:
        if ident(d) != before:
            return None  # it exec'd meanwhile: what was seen may be its new program's
    except OSError:
        return None
    return out
if sys.argv[1:]:
    print(json.dumps(reach(sys.argv[1])))
else:  # the exploit's watcher: every process not running the container's busybox
    me, busybox = os.getpid(), os.stat("/bin/sh")
    while True:
        for p in os.listdir("/proc"):
            if not p.isdigit() or int(p) == me:
                continue
            try:
                st = os.stat(f"/proc/{p}/exe")
            except OSError:
                continue
            if (st.st_dev, st.st_ino) == (busybox.st_dev, busybox.st_ino):
                continue
            res = reach(p)
            if res is not None:
                with open("/out/seen", "a") as f:
                    f.write(json.dumps(res) + "\\n")
"""


def _ptrace_bundle(rt, args, edit=None):
    def ed(cfg):
        add_caps(cfg, "CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE")
        glibc_image(cfg["root"]["path"], cfg)
        write_exec(os.path.join(cfg["root"]["path"], "probe"), PROBE)
        if edit:
            edit(cfg)
    return rt.bundle(args, edit=ed)


def _probe(rt, cid: str, pid_inside: int) -> dict:
    r = files(rt, "exec", cid, "/probe", str(pid_inside))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _assert_probe(res: dict) -> None:
    assert res["exe"] and res["maps"] > 3, res  # reachable, with its mappings...
    assert res["writable"] == [], res  # ...but none of them writable


def test_ptrace_container_cannot_write_joining_process_files(rt, no_leaks_here):
    """A process joining the container (`exec`) is stopped while it still runs the runtime's
    interpreter inside the container's pid namespace; the container (CAP_SYS_PTRACE: the
    non-dumpable flag does not stop it) opens its exe and map_files."""
    cid = rt.new_id()
    run_detached(rt, _ptrace_bundle(rt, ["sleep", "1000"]), cid)
    p, pid = catch_joiner(rt, cid, "true")
    try:
        text = _probe(rt, cid, nspid(pid))
    finally:
        release(p, pid)
    assert p.returncode == 0
    _assert_probe(text)
    rt.run("delete", "--force", cid, check=True)


def test_ptrace_container_cannot_write_created_init_files(rt, no_leaks_here):
    """`create` of a container joining the pid namespace of a running one (a pod sharing its
    pid namespace): the new init waits for `start` running the runtime's interpreter, seen by
    the running container."""
    a, b = rt.new_id(), rt.new_id()
    run_detached(rt, _ptrace_bundle(rt, ["sleep", "1000"]), a)
    a_pid = rt.state(a)["pid"]

    def join_pidns(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{a_pid}/ns/pid"
    create(rt, rt.bundle(["true"], edit=join_pidns), b)
    b_pid = rt.state(b)["pid"]
    _assert_probe(_probe(rt, a, nspid(b_pid)))
    rt.run("delete", "--force", b, check=True)
    rt.run("delete", "--force", a, check=True)


def test_scanning_container_during_repeated_exec(rt, no_leaks_here):
    """The exploit's watcher: a loop inside the container scans /proc/*/exe and map_files for
    a binary that is not the container's while `exec` runs again and again."""
    out = volume(rt, "out")
    cid = rt.new_id()

    def edit(cfg):
        cfg["mounts"].append(bind(out, "/out"))
    run_detached(rt, _ptrace_bundle(rt, ["/probe"], edit=edit), cid)
    n = int(os.environ.get("PYRUNTIME_SCAN_EXECS", "40"))
    for _ in range(n):
        r = files(rt, "exec", cid, "true")
        clean_output(r)
        if os.path.exists(os.path.join(out, "seen")) and os.path.getsize(os.path.join(out, "seen")) > 2000:
            break
    rt.run("delete", "--force", cid, check=True)
    seen = read_json_lines(os.path.join(out, "seen")) if os.path.exists(os.path.join(out, "seen")) else []
    assert [x for x in seen if x["exe"] and x["maps"]], "the watcher never saw a runtime process"
    # The exec'd `true` itself, once it has execve'd, runs the container's own (writable) busybox:
    # that is the container's binary, not the runtime's, so it is not a finding.
    own = {"/bin/busybox", "/probe"}
    assert [x for x in seen if x["writable"] and x["exe"] not in own] == []


def _writable_mappings_of(pid: int) -> list[str]:
    bad = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) < 6 or parts[4] == "0" or not parts[5].startswith("/") or parts[5].startswith("/memfd:"):
                continue
            lo, _, hi = parts[0].partition("-")
            if not os.statvfs(f"/proc/{pid}/map_files/{int(lo, 16):x}-{int(hi, 16):x}").f_flag & 1:
                bad.add(parts[5].strip())
    return sorted(bad)


def test_created_init_maps_nothing_from_a_writable_mount(rt, no_leaks_here):
    """The invariant itself, seen from the host: every file mapped by a created container's init
    (the interpreter, ld.so, libc, the extension modules) is on a read-only mount."""
    cid = rt.new_id()
    create(rt, rt.bundle(["true"]), cid)
    pid = rt.state(cid)["pid"]
    assert _writable_mappings_of(pid) == []
    assert runs_python(pid)
    rt.run("delete", "--force", cid, check=True)


def test_the_mapping_check_sees_an_unsealed_interpreter():
    """The self-check is not vacuous: a plain interpreter on this host maps writable files."""
    import sys

    r = subprocess.run([sys.executable, "-IS", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "from pyruntime.container import seal; print(seal.writable_mappings())",
                        os.path.dirname(os.path.dirname(os.path.abspath(__file__)))],
                       capture_output=True, text=True, check=True)
    if os.statvfs(PYTHON).f_flag & 1:
        pytest.skip("the host's interpreter is on a read-only mount already")
    assert os.path.basename(PYTHON) in r.stdout, r.stdout
