"""CVE-2019-5736: a container overwriting the runtime's own executable or libraries.

pyruntime's processes that enter a container run the host's Python interpreter there until
their execve: the init (until `start`), an exec'd process (until it execs). The published
exploit makes the container's entrypoint `#!/proc/self/exe`, so the runtime's process execs
its own executable inside the container, where the container's processes own it; with
CAP_SYS_PTRACE a container reaches /proc/<pid>/exe of any runtime process in its pid namespace,
and with CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN) its /proc/<pid>/map_files (libc ...).

The bar: every such file is one the container cannot open for writing. The tests never write:
they check access(W_OK) (EROFS on a read-only mount, EPERM on an immutable file; 0 on the
host's writable /usr) and that the file reached is the host's interpreter (same device and
inode).

Both paths of container/seal.py are attacked. The fast path (the default config: no
CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE or CAP_LINUX_IMMUTABLE; the venv's interpreter immutable)
runs without the re-exec: the interpreter is then the only host file the container reaches.
Any of those capabilities (in the container's config, `exec --cap`, `exec --process`) makes the
command seal itself: every file it maps on a read-only mount. Which path a command took is read
from its --debug log, from strace (one execve of the runtime or two), or from the host
(/proc/<pid>/exe on a read-only mount or not).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from pyruntime.container import seal
from test_lifecycle_util import create, public_bundle, remove_public_dirs, run_detached
from test_security_util import (PY_ID, PYTHON, add_caps, bind, catch_joiner, clean_output, files,
                                glibc_image, no_leaks_here, nspid, read_json_lines, release,
                                runs_python, volume, write_exec)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# Run by the host's interpreter inside the container (what `#!/proc/self/exe` gives the
# attacker): report what /proc/self/exe is and whether it could be opened for writing.
EVIL = """#!/proc/self/exe
import fcntl, json, os
st = os.stat("/proc/self/exe")
fd = os.open("/proc/self/exe", os.O_RDONLY)
flags = int.from_bytes(fcntl.ioctl(fd, %d, bytes(8))[:4], "little")
os.close(fd)
out = {"dev": st.st_dev, "ino": st.st_ino, "writable": os.access("/proc/self/exe", os.W_OK),
       "ro_mount": bool(os.statvfs("/proc/self/exe").f_flag & 1), "immutable": bool(flags & 0x10)}
with open("/out/result", "a") as f:
    f.write(json.dumps(out) + "\\n")
""" % seal._getflags_request()

# Each of these capabilities in the container's config makes create/run/exec seal themselves;
# the default config takes the fast path.
SEALING_CAPS = ("CAP_LINUX_IMMUTABLE", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE")
FAST, SEALED = "no re-exec needed", "re-executing from a read-only clone of /"


@pytest.fixture(autouse=True)
def _immutable_interpreter():
    why = seal.interpreter_problem(PYTHON)
    assert why is None, f"{PYTHON}: {why}: run scripts/setup.sh"


def _debug(rt) -> tuple[str, tuple[str, ...]]:
    """A fresh log file and the global flags writing the command's debug log there."""
    path = os.path.join(rt.tmp, f"log-{os.urandom(4).hex()}")
    return path, ("--debug", "--log", path)


def _path_taken(log_path: str) -> str:
    """FAST or SEALED, from a command's --debug log (exactly one of them)."""
    with open(log_path) as f:
        text = f.read()
    taken = [p for p in (FAST, SEALED) if p in text]
    assert len(taken) == 1, text
    return taken[0]


def _sealed(pid: int) -> bool:
    """Seen from the host: the process runs its interpreter from a read-only mount."""
    return bool(os.statvfs(f"/proc/{pid}/exe").f_flag & 1)


def _evil_bundle(rt, args, out, caps=()):
    def edit(cfg):
        rootfs = cfg["root"]["path"]
        glibc_image(rootfs, cfg)
        write_exec(os.path.join(rootfs, "bin", "evil"), EVIL)
        cfg["mounts"].append(bind(out, "/out"))
        if caps:
            add_caps(cfg, *caps)
    return rt.bundle(args, edit=edit)


def _result(out: str) -> dict:
    path = os.path.join(out, "result")
    assert os.path.exists(path), "the exploit did not run"
    with open(path) as f:
        res = [json.loads(line) for line in f]
    assert len(res) == 1, res
    return res[0]


def _assert_reached_but_unwritable(res: dict, path: str) -> None:
    # The attack worked as published: the container's process runs the runtime's executable...
    assert (res["dev"], res["ino"]) == PY_ID, res
    # ...but it cannot be opened for writing: the file is immutable (EPERM), and sealed it is
    # also on the clone's read-only mount (EROFS).
    assert res["immutable"] and not res["writable"], res
    assert res["ro_mount"] == (path == SEALED), res


@pytest.mark.parametrize("caps", [(), *((c,) for c in SEALING_CAPS)],
                         ids=["fast", *(c.lower() for c in SEALING_CAPS)])
def test_entrypoint_shebang_proc_self_exe(rt, no_leaks_here, caps):
    """`run` of an image whose entrypoint is `#!/proc/self/exe`: the init execs the runtime's
    executable (the original exploit path). Fast path by default; sealed when the container
    could clear the immutable flag (CAP_LINUX_IMMUTABLE) or reach map_files."""
    out = volume(rt, "out")
    cid = rt.new_id()
    log, glob = _debug(rt)
    r = rt.run("run", "--bundle", _evil_bundle(rt, ["/bin/evil"], out, caps), cid, glob=glob)
    assert r.returncode == 0, r.stderr
    path = _path_taken(log)
    assert path == (SEALED if caps else FAST)
    _assert_reached_but_unwritable(_result(out), path)


@pytest.mark.parametrize("how", ["fast", "container-cap", "exec-cap", "exec-process"])
def test_exec_shebang_proc_self_exe(rt, no_leaks_here, how):
    """`exec` of `#!/proc/self/exe`: the joining process execs the runtime's executable. Sealed
    when CAP_LINUX_IMMUTABLE comes from the container's config, `exec --cap`, or the
    `exec --process` file (here in its bounding and inheritable sets only)."""
    out = volume(rt, "out")
    cid = rt.new_id()
    caps = ("CAP_LINUX_IMMUTABLE",) if how == "container-cap" else ()
    b = _evil_bundle(rt, ["sleep", "1000"], out, caps)
    run_detached(rt, b, cid)
    log, glob = _debug(rt)
    if how == "exec-cap":
        r = files(rt, *glob, "exec", "--cap", "CAP_LINUX_IMMUTABLE", cid, "/bin/evil")
    elif how == "exec-process":
        with open(os.path.join(b, "config.json")) as f:
            proc = json.load(f)["process"]
        proc["args"] = ["/bin/evil"]
        for key in ("bounding", "inheritable"):
            proc["capabilities"][key] = proc["capabilities"].get(key, []) + ["CAP_LINUX_IMMUTABLE"]
        pfile = os.path.join(rt.tmp, "process.json")
        with open(pfile, "w") as f:
            json.dump(proc, f)
        r = files(rt, *glob, "exec", "--process", pfile, cid)
    else:
        r = files(rt, *glob, "exec", cid, "/bin/evil")
    assert r.returncode == 0, r.stderr
    path = _path_taken(log)
    assert path == (FAST if how == "fast" else SEALED)
    _assert_reached_but_unwritable(_result(out), path)
    rt.run("delete", "--force", cid, check=True)


# A probe run inside a container with CAP_SYS_PTRACE (and CAP_CHECKPOINT_RESTORE: sealed): what
# of runtime process PID can it reach, and could it open any of it for writing (access(2) W_OK:
# EROFS on a read-only mount, EPERM on an immutable file; busybox's `test -w` answers yes for
# root without asking).
PROBE = """#!/usr/bin/python3
import json, os, sys
def ident(d):
    st = os.stat(d + "/exe")
    return st.st_dev, st.st_ino
def reach(pid):
    d = f"/proc/{pid}"
    out = {"exe": None, "maps": 0, "opened": 0, "writable": []}
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
        try:  # following the link needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN
            os.stat(f)
            out["opened"] += 1
        except OSError:
            pass
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


def _ptrace_bundle(rt, args, edit=None, caps=("CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE")):
    def ed(cfg):
        add_caps(cfg, *caps)
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


def _probe_joiner(rt, cid: str, bundle: str):
    """Run the container, catch an `exec` while it runs the runtime inside the container, probe
    it from the container; (exec's process, was it sealed, the probe's findings)."""
    run_detached(rt, bundle, cid)
    p, pid = catch_joiner(rt, cid, "true")
    try:
        sealed = _sealed(pid)
        text = _probe(rt, cid, nspid(pid))
    finally:
        release(p, pid)
    return p, sealed, text


def test_ptrace_container_cannot_write_joining_process_files(rt, no_leaks_here):
    """A process joining the container (`exec`) is stopped while it still runs the runtime's
    interpreter inside the container's pid namespace; the container (CAP_SYS_PTRACE: the
    non-dumpable flag does not stop it; CAP_CHECKPOINT_RESTORE: the command is sealed) opens
    its exe and map_files."""
    cid = rt.new_id()
    p, sealed, text = _probe_joiner(rt, cid, _ptrace_bundle(rt, ["sleep", "1000"]))
    assert p.returncode == 0
    assert sealed
    _assert_probe(text)
    assert text["opened"] > 3, text  # map_files really followed: every file read-only
    rt.run("delete", "--force", cid, check=True)


def test_ptrace_only_container_reaches_nothing_writable_unsealed(rt, no_leaks_here):
    """The fast path under the same attack: CAP_SYS_PTRACE alone reaches the joining process's
    exe (the immutable interpreter), but not its map_files (ld.so, libc, extension modules,
    writable host files here, unsealed: following them needs CAP_CHECKPOINT_RESTORE)."""
    cid = rt.new_id()
    p, sealed, text = _probe_joiner(rt, cid, _ptrace_bundle(rt, ["sleep", "1000"], caps=("CAP_SYS_PTRACE",)))
    assert p.returncode == 0
    assert not sealed
    assert text["exe"] and text["writable"] == [], text
    assert text["opened"] == 0, text
    rt.run("delete", "--force", cid, check=True)


def test_ptrace_container_cannot_write_created_init_files(rt, no_leaks_here):
    """`create` of a container joining the pid namespace of a running one (a pod sharing its
    pid namespace): the new init waits for `start` running the runtime's interpreter, seen by
    the running container. The new container's config has no dangerous capability, but a
    pid namespace joined by path: sealed all the same."""
    a, b = rt.new_id(), rt.new_id()
    run_detached(rt, _ptrace_bundle(rt, ["sleep", "1000"]), a)
    a_pid = rt.state(a)["pid"]

    def join_pidns(cfg):
        for n in cfg["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = f"/proc/{a_pid}/ns/pid"
    create(rt, rt.bundle(["true"], edit=join_pidns), b)
    b_pid = rt.state(b)["pid"]
    assert _sealed(b_pid)
    _assert_probe(_probe(rt, a, nspid(b_pid)))
    rt.run("delete", "--force", b, check=True)
    rt.run("delete", "--force", a, check=True)


@pytest.mark.parametrize("caps", [("CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE"), ("CAP_SYS_PTRACE",)],
                         ids=["sealed", "fast"])
def test_scanning_container_during_repeated_exec(rt, no_leaks_here, caps):
    """The exploit's watcher: a loop inside the container scans /proc/*/exe and map_files for
    a binary that is not the container's while `exec` runs again and again (sealed, or on the
    fast path when the container has CAP_SYS_PTRACE only)."""
    out = volume(rt, "out")
    cid = rt.new_id()

    def edit(cfg):
        cfg["mounts"].append(bind(out, "/out"))
    run_detached(rt, _ptrace_bundle(rt, ["/probe"], edit=edit, caps=caps), cid)
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


# (capability, the sets it is put in) of a container that must be sealed
SEALING_CONFIGS = [("CAP_SYS_ADMIN", ("bounding",)),
                   ("CAP_CHECKPOINT_RESTORE", ("bounding", "effective", "permitted")),
                   ("CAP_LINUX_IMMUTABLE", ("ambient",))]


@pytest.mark.parametrize("cap,sets", SEALING_CONFIGS, ids=[c.lower() for c, _ in SEALING_CONFIGS])
def test_created_init_maps_nothing_from_a_writable_mount(rt, no_leaks_here, cap, sets):
    """The invariant of the slow path, seen from the host: every file mapped by a sealed created
    container's init (the interpreter, ld.so, libc, the extension modules) is on a read-only
    mount."""
    def edit(cfg):
        for key in sets:
            caps = cfg["process"]["capabilities"]
            caps[key] = sorted(set(caps.get(key) or ()) | {cap})
    cid = rt.new_id()
    log, glob = _debug(rt)
    r = files(rt, *glob, "create", "--bundle", rt.bundle(["true"], edit=edit), cid)
    assert r.returncode == 0, r.stderr
    assert _path_taken(log) == SEALED
    pid = rt.state(cid)["pid"]
    assert _writable_mappings_of(pid) == []
    assert runs_python(pid) and _sealed(pid)
    rt.run("delete", "--force", cid, check=True)


def test_created_init_fast_path_maps_only_an_immutable_interpreter(rt, no_leaks_here):
    """The fast path, seen from the host: the created init was not re-executed (its interpreter
    is on the ordinary writable mount, immutable); what else it maps (ld.so, libc, extension
    modules) is reachable only through map_files, which its config cannot give."""
    cid = rt.new_id()
    log, glob = _debug(rt)
    r = files(rt, *glob, "create", "--bundle", rt.bundle(["true"]), cid)
    assert r.returncode == 0, r.stderr
    assert _path_taken(log) == FAST
    pid = rt.state(cid)["pid"]
    assert runs_python(pid) and not _sealed(pid)
    assert seal.interpreter_problem(f"/proc/{pid}/exe") is None
    assert PYTHON in _writable_mappings_of(pid)
    rt.run("delete", "--force", cid, check=True)


def _runtime_execves(rt, cid: str, *args: str) -> int:
    """How many times the command `args` (naming container `cid`) execve'd the runtime: 1 on
    the fast path, 2 when it re-executes itself (strace -f, every execve with `cid` in argv)."""
    assert shutil.which("strace"), "strace is missing: scripts/setup.sh installs it"
    trace = os.path.join(rt.tmp, f"strace-{cid}")
    r = subprocess.run(["strace", "-f", "-qq", "-s", "256", "-e", "trace=execve", "-o", trace,
                        *rt.cmd, "--root", rt.root, *args], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    with open(trace) as f:
        return sum(1 for line in f if "execve(" in line and f'"{cid}"' in line and "= 0" in line)


@pytest.mark.parametrize("sealing", [False, True], ids=["fast", "sealed"])
def test_fast_path_execs_the_runtime_once(rt, no_leaks_here, sealing):
    """The fast path is really taken: `run` and `exec` execve the runtime once, not twice."""
    def edit(cfg):
        if sealing:
            add_caps(cfg, "CAP_SYS_ADMIN")
    once = rt.new_id()
    b = rt.bundle(["true"], edit=edit)
    assert _runtime_execves(rt, once, "run", "--bundle", b, once) == (2 if sealing else 1)
    cid = rt.new_id()
    run_detached(rt, rt.bundle(["sleep", "1000"], edit=edit), cid)
    assert _runtime_execves(rt, cid, "exec", cid, "true") == (2 if sealing else 1)
    assert _runtime_execves(rt, cid, "exec", "--cap", "CAP_SYS_ADMIN", cid, "true") == 2
    rt.run("delete", "--force", cid, check=True)


@pytest.fixture
def public():
    yield
    remove_public_dirs()


def test_user_namespace_takes_the_fast_path(rt, no_leaks_here, public):
    """CAP_SYS_ADMIN inside a user namespace of its own is no capability in the initial one:
    no re-exec, for `run` and for `exec --cap CAP_SYS_ADMIN`."""
    def edit(cfg):
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 220000, "size": 65536}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 220000, "size": 65536}]
        add_caps(cfg, *SEALING_CAPS)
    cid = rt.new_id()
    b = public_bundle(rt, ["sleep", "1000"], edit=edit)
    log, glob = _debug(rt)
    run_detached(rt, b, cid, glob=glob)
    assert _path_taken(log) == FAST
    log, glob = _debug(rt)
    r = files(rt, *glob, "exec", "--cap", "CAP_LINUX_IMMUTABLE", cid, "true")
    assert r.returncode == 0, r.stderr
    assert _path_taken(log) == FAST
    rt.run("delete", "--force", cid, check=True)


def test_mutable_interpreter_still_seals(rt, no_leaks_here):
    """The same CLI on an interpreter without the immutable flag (the system's python3) seals
    itself, default config or not: every file the created init maps is on a read-only mount."""
    system = os.path.realpath("/usr/bin/python3")
    assert seal.interpreter_problem(system), f"{system} is immutable: only the venv's copy may be"
    purelib = sysconfig.get_paths()["purelib"]
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    boot = ("import sys; sys.argv[0] = 'pyruntime'; sys.path[1:1] = sys.argv.pop(1).split(':'); "
            "from pyruntime.cli import main; sys.exit(main())")
    rt.cmd = [system, "-IS", "-c", boot, f"{project}:{purelib}"]
    cid = rt.new_id()
    log, glob = _debug(rt)
    r = files(rt, *glob, "create", "--bundle", rt.bundle(["true"]), cid)
    assert r.returncode == 0, r.stderr
    assert _path_taken(log) == SEALED
    with open(log) as f:
        assert "is not immutable" in f.read()
    pid = rt.state(cid)["pid"]
    assert _writable_mappings_of(pid) == [] and _sealed(pid)
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
