"""Benchmark plumbing: spawning runtime commands, bundles, containers, cgroups and cleanup.

Everything here is stdlib-only so the harness runs with any Python >= 3.11 on Linux.

The harness process makes itself a child subreaper (like containerd-shim or conmon): a
container's init, orphaned when `create` exits, is re-parented to us, so we can wait for its
exit through a pidfd and reap it, and no zombie is left behind.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

PR_SET_CHILD_SUBREAPER = 36
MNT_DETACH = 2

DEFAULT_EXES = {
    "pyruntime": "/usr/local/bin/pyruntime",
    "runc": "/usr/sbin/runc",
    # crun 1.8 refuses hybrid cgroup hosts; the wrapper gives each call a private mount
    # namespace without /sys/fs/cgroup/unified (and simply execs crun elsewhere).
    "crun": "/work/shared/clients/wrappers/crun-hybrid/crun",
}
FALLBACK_EXES = {"crun": "/usr/bin/crun"}

# Lines in a runtime's stderr that point at lock contention between concurrent invocations.
LOCK_RE = re.compile(
    r"lock|resource temporarily unavailable|EAGAIN|EWOULDBLOCK|device or resource busy|EBUSY",
    re.IGNORECASE,
)


# Failure messages caused by a timeout contain this; a timeout ends the runtime's series at
# once (a hung runtime would otherwise cost 2 x --timeout per round).
TIMEOUT_MARK = "timed out after"
# After this many timed-out commands a runtime is treated as hung: its further commands are
# not run at all (failed immediately), so a hung runtime cannot stretch the run unboundedly.
HUNG_AFTER = 4


WORKDIR_RE = re.compile(r"/\S*/pyruntime-bench-[a-z0-9_]{8}")


class RoundFailed(Exception):
    """One measurement round of one runtime failed; the message says which step and why."""


# --------------------------------------------------------------------------------------------
# process spawning


@dataclass
class Result:
    argv: list[str]
    rc: int | None  # exit status, or -signal
    wall_ms: float
    maxrss_kib: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    spawn_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out and self.spawn_error is None

    def describe(self) -> str:
        """One line: what ran and how it failed."""
        cmd = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(self.argv))
        cmd = WORKDIR_RE.sub("$WORK", cmd)
        if len(cmd) > 160:
            cmd = cmd[:157] + "..."
        if self.spawn_error:
            return f"`{cmd}`: {self.spawn_error}"
        if self.timed_out:
            return f"`{cmd}`: {TIMEOUT_MARK} {self.wall_ms / 1000:.0f}s (killed)"
        lines = [ln.strip() for ln in (self.stderr or self.stdout).splitlines() if ln.strip()]
        # Skip -X importtime noise when picking the message.
        lines = [ln for ln in lines if not ln.startswith("import time:")]
        why = lines[-1] if lines else "(no output)"
        if len(why) > 300:
            why = why[:297] + "..."
        status = f"exit {self.rc}" if self.rc is not None and self.rc >= 0 else f"signal {-self.rc}"
        return f"`{cmd}` {status}: {why}"


def _read_all(f) -> str:
    f.seek(0)
    return f.read().decode("utf-8", "replace")


def rss_tool() -> list[str] | None:
    """A small fork+exec+wait4 program that reports its child's ru_maxrss (KiB) to a file.

    Our own wait4 rusage is useless for this: ru_maxrss survives execve, and a child forked
    (or vforked) from this ~20 MiB Python process starts with our RSS as its high-water mark.
    GNU time (~1 MiB floor) is preferred; busybox's time works with a higher floor (~5 MiB).
    """
    if os.access("/usr/bin/time", os.X_OK):
        return ["/usr/bin/time", "-f", "%M", "-o"]
    bb = shutil.which("busybox")
    if bb:
        return [bb, "time", "-f", "%M", "-o"]
    return None


def spawn(argv: list[str], *, env: dict[str, str], timeout: float, tmpdir: str | None = None,
          stdin: str = os.devnull, rss: list[str] | None = None) -> Result:
    """Run argv to completion; measure its wall time.

    stdout/stderr go to anonymous files, never pipes: a container started by `create` inherits
    the runtime's stdio and would otherwise keep a pipe open. The files are opened before the
    clock starts so only the runtime's own work is timed. With `rss` (from rss_tool()) the
    command runs under that tool and maxrss_kib is the command's real peak RSS (the timing
    then includes the tool's fork, so don't use both from one call); without it maxrss_kib is 0.
    """
    out = tempfile.TemporaryFile(dir=tmpdir)
    err = tempfile.TemporaryFile(dir=tmpdir)
    rss_file = None
    shown_argv = argv
    if rss:
        fd, rss_file = tempfile.mkstemp(dir=tmpdir, prefix="rss.")
        os.close(fd)
        argv = [*rss, rss_file, *argv]
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, stdin, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ]
        t0 = time.perf_counter()
        try:
            # Own process group: a timeout kills the command and whatever it started.
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
        except OSError as e:
            return Result(shown_argv, None, 0.0, 0, spawn_error=f"cannot execute: {e}")
        timed_out = False
        pidfd = os.pidfd_open(pid)
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll(timeout * 1000):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                timed_out = True
            _, status, ru = os.wait4(pid, 0)
        finally:
            os.close(pidfd)
        wall = (time.perf_counter() - t0) * 1000
        rc = os.waitstatus_to_exitcode(status)
        maxrss = 0
        if rss_file:
            with open(rss_file) as f:  # GNU time may add "Command exited with ..." first
                nums = [ln.strip() for ln in f if ln.strip().isdigit()]
            maxrss = int(nums[-1]) if nums else 0
        return Result(shown_argv, rc, wall, maxrss, _read_all(out), _read_all(err), timed_out)
    finally:
        out.close()
        err.close()
        if rss_file:
            os.unlink(rss_file)


def wait_exit(pid: int, timeout: float) -> None:
    """Wait until process `pid` exits (pidfd, works for non-children); reap it if it is ours."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            raise RoundFailed(f"container process {pid} {TIMEOUT_MARK} {timeout:.0f}s without exiting")
    finally:
        os.close(pidfd)
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def reap_zombies() -> int:
    """Reap every exited child (orphaned container processes re-parented to us)."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        n += 1


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def our_children() -> list[int]:
    me = os.getpid()
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == me:
            kids.append(int(name))
    return kids


def read_kib(pid: int) -> dict[str, int]:
    """VmRSS/VmHWM from /proc/<pid>/status and Pss from smaps_rollup, in KiB (missing -> absent)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, val = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(val.split()[0])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


# --------------------------------------------------------------------------------------------
# mounts and cgroups


def _unescape(path: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of this mount namespace."""
    res = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            res.append((_unescape(left.split()[4]), right.split()[0]))
    return res


def cgroup_hierarchies() -> list[str]:
    """Mount points of every cgroup hierarchy (v1 controllers, name=systemd, the unified v2)."""
    return sorted(mp for mp, fs in mounts() if fs in ("cgroup", "cgroup2")
                  and (mp == "/sys/fs/cgroup" or mp.startswith("/sys/fs/cgroup/")))


def cgroup_mode() -> str:
    kinds = {fs for mp, fs in mounts() if mp.startswith("/sys/fs/cgroup")}
    if "cgroup" in kinds and "cgroup2" in kinds:
        return "hybrid"
    return "v1" if "cgroup" in kinds else "v2" if "cgroup2" in kinds else "none"


def remove_cgroup_tree(parent: str) -> list[str]:
    """Kill what is left in <hierarchy>/<parent>/** and rmdir it bottom-up. Returns problems."""
    problems = []
    for h in cgroup_hierarchies():
        top = h + parent
        if not os.path.isdir(top):
            continue
        dirs = [d for d, _, _ in os.walk(top)]
        for d in reversed(dirs):  # children before parents
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    pids = [int(x) for x in f.read().split()]
            except (OSError, ValueError):
                pids = []
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for attempt in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or attempt == 49:
                        problems.append(f"rmdir {d}: {e.strerror}")
                        break
                    reap_zombies()
                    time.sleep(0.02)
    return problems


# --------------------------------------------------------------------------------------------
# the harness


@dataclass
class Runtime:
    name: str
    exe: str
    root: str  # private --root state directory

    def argv(self, *args: str, launcher: list[str] | None = None) -> list[str]:
        return [*(launcher or [self.exe]), "--root", self.root, *args]


def python_launcher(exe: str, *xopts: str) -> list[str] | None:
    """argv that runs a Python console script like its shebang does, plus interpreter options.

    Needed for -X importtime: a launcher with `#!python -I` ignores PYTHON* variables, so
    PYTHONPROFILEIMPORTTIME=1 alone would measure nothing. None if exe is not a Python script.
    """
    interp = python_interpreter(exe)
    return None if interp is None else [*interp, *xopts, os.path.realpath(exe)]


def python_interpreter(exe: str) -> list[str] | None:
    """The interpreter and options of a Python script's shebang, e.g. [venv/bin/python, -IS]."""
    path = os.path.realpath(exe)
    try:
        with open(path, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    interp, _, arg = first[2:].strip().partition(" ")  # Linux: one optional argument
    if interp.endswith("/env"):
        interp, _, arg = arg.strip().partition(" ")
        interp = shutil.which(interp) or interp
    if not os.path.basename(interp).startswith("python"):
        return None
    return [interp, *([arg.strip()] if arg.strip() else [])]


@dataclass
class Harness:
    workdir: str
    runtimes: dict[str, Runtime]
    rootfs: str
    template: dict
    timeout: float = 30.0
    cgroup_parent: str = field(default_factory=lambda: f"/pyruntime-bench-{secrets.token_hex(4)}")
    env: dict[str, str] = field(default_factory=dict)
    rss_tool: list[str] | None = field(default_factory=rss_tool)
    timeouts: dict[str, int] = field(default_factory=dict)  # runtime -> timed-out commands
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # containers that may still exist: (runtime, id) -> init pid (or None)
    live: dict[tuple[str, str], int | None] = field(default_factory=dict)

    # ---- construction

    @classmethod
    def setup(cls, names: list[str], exes: dict[str, str], *, rootfs: str | None,
              timeout: float, workdir_base: str | None = None, log=print) -> "Harness":
        workdir = tempfile.mkdtemp(prefix="pyruntime-bench-", dir=workdir_base)
        try:
            runtimes = {}
            for n in names:
                exe = exes.get(n) or DEFAULT_EXES.get(n) or shutil.which(n)
                if n in FALLBACK_EXES and not (exe and os.access(exe, os.X_OK)):
                    exe = FALLBACK_EXES[n]
                if not exe:
                    raise SystemExit(f"bench: no executable for runtime {n!r}; use --exe {n}=PATH")
                root = os.path.join(workdir, "root", n)
                os.makedirs(root)
                runtimes[n] = Runtime(n, exe, root)
            for sub in ("bundles", "pids", "tmp"):
                os.makedirs(os.path.join(workdir, sub))
            if rootfs is None:
                rootfs = os.path.join(workdir, "rootfs")
                here = os.path.dirname(os.path.abspath(__file__))
                script = os.path.join(here, "..", "bundles", "build-rootfs.sh")
                log(f"bench: building busybox rootfs in {rootfs}")
                subprocess.run(["bash", script, rootfs], check=True)
            rootfs = os.path.abspath(rootfs)
            template = cls._spec_template(workdir)
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        env = dict(os.environ)
        env["PATH"] = env.get("PATH", "") + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        for k in [k for k in env if k.startswith("PYTHON")]:
            del env[k]  # no inherited importtime/dev-mode noise in the runtimes' timings
        return cls(workdir=workdir, runtimes=runtimes, rootfs=rootfs, template=template,
                   timeout=timeout, env=env)

    @staticmethod
    def _spec_template(workdir: str) -> dict:
        """runc's default config (`runc spec`), the base of every bundle."""
        d = os.path.join(workdir, "spec-template")
        os.makedirs(d)
        for tool in (DEFAULT_EXES["runc"], "runc", "/usr/bin/crun", "crun"):
            exe = tool if os.path.isabs(tool) else shutil.which(tool)
            if exe and os.access(exe, os.X_OK):
                subprocess.run([exe, "spec", "--bundle", d], check=True, capture_output=True)
                with open(os.path.join(d, "config.json")) as f:
                    return json.load(f)
        raise SystemExit("bench: need runc or crun to generate the default config (`runc spec`)")

    # ---- ids, bundles, commands

    def new_id(self, tag: str, rt: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{tag}-{rt}-{self._seq:05d}"

    def bundle(self, cid: str, args: list[str]) -> str:
        cfg = json.loads(json.dumps(self.template))
        cfg["process"]["terminal"] = False
        cfg["process"]["args"] = list(args)
        cfg["root"]["path"] = self.rootfs  # shared read-only rootfs (runc's default readonly)
        cfg["linux"]["cgroupsPath"] = f"{self.cgroup_parent}/{cid}"
        path = os.path.join(self.workdir, "bundles", cid)
        os.mkdir(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f)
        return path

    def pidfile(self, cid: str) -> str:
        return os.path.join(self.workdir, "pids", cid)

    def cmd(self, rt: str, *args: str, timeout: float | None = None,
            env: dict[str, str] | None = None, rss: bool = False,
            launcher: list[str] | None = None) -> Result:
        """Run one runtime command. rss=True: measure its peak RSS (not its time).
        launcher: argv replacing the runtime's executable (see python_launcher)."""
        argv = self.runtimes[rt].argv(*args, launcher=launcher)
        if self.timeouts.get(rt, 0) >= HUNG_AFTER:
            return Result(argv, None, 0.0, 0, spawn_error=f"not run: {rt} is hung "
                          f"({self.timeouts[rt]} commands {TIMEOUT_MARK} the limit)")
        r = spawn(argv, env=env or self.env, timeout=timeout or self.timeout,
                  tmpdir=os.path.join(self.workdir, "tmp"), rss=self.rss_tool if rss else None)
        if r.timed_out:
            with self._lock:
                self.timeouts[rt] = self.timeouts.get(rt, 0) + 1
        return r

    def must(self, rt: str, *args: str, **kw) -> Result:
        r = self.cmd(rt, *args, **kw)
        if not r.ok:
            raise RoundFailed(r.describe())
        return r

    # ---- container operations (each raises RoundFailed)

    def create(self, rt: str, cid: str, bundle: str, **kw) -> tuple[Result, int]:
        pidf = self.pidfile(cid)
        with self._lock:
            self.live[(rt, cid)] = None
        r = self.must(rt, "create", "--bundle", bundle, "--pid-file", pidf, cid, **kw)
        try:
            with open(pidf) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            raise RoundFailed(f"create {cid}: exit 0 but no usable --pid-file ({e})") from None
        if not os.path.exists(f"/proc/{pid}"):
            raise RoundFailed(f"create {cid}: init pid {pid} from --pid-file is not running")
        with self._lock:
            self.live[(rt, cid)] = pid
        return r, pid

    def delete(self, rt: str, cid: str, **kw) -> Result:
        r = self.must(rt, "delete", cid, **kw)
        with self._lock:
            self.live.pop((rt, cid), None)
        return r

    def force_delete(self, rt: str, cid: str) -> None:
        """Best-effort teardown after a failed round (untimed)."""
        with self._lock:
            pid = self.live.get((rt, cid))
        r = self.cmd(rt, "delete", "--force", cid, timeout=min(self.timeout, 10))
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                wait_exit(pid, 5)
            except RoundFailed:
                pass
        if r.ok or "not exist" in r.stderr or "not found" in r.stderr.lower():
            with self._lock:
                self.live.pop((rt, cid), None)

    def start_sleeper(self, rt: str, tag: str) -> tuple[str, int]:
        """A running `sleep 1000` container (untimed setup)."""
        cid = self.new_id(tag, rt)
        try:
            _, pid = self.create(rt, cid, self.bundle(cid, ["sleep", "1000"]))
            self.must(rt, "start", cid)
            return cid, pid
        except BaseException:
            self.force_delete(rt, cid)
            raise

    def stop_sleeper(self, rt: str, cid: str, pid: int) -> None:
        try:
            self.must(rt, "kill", cid, "KILL")
            wait_exit(pid, self.timeout)
            self.delete(rt, cid)
        except RoundFailed:
            self.force_delete(rt, cid)

    # ---- cleanup

    def cleanup(self, keep_workdir: bool = False, log=print) -> list[str]:
        problems = []
        for (rt, cid) in list(self.live):
            self.force_delete(rt, cid)
        # Anything still re-parented to us (orphaned inits, stuck runtime helpers) is ours.
        for pid in our_children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
        reap_zombies()
        problems += remove_cgroup_tree(self.cgroup_parent)
        reap_zombies()
        if keep_workdir:
            log(f"bench: kept {self.workdir}")
            return problems
        # Never rmtree across a mount point (a buggy runtime could leave a host mount in the
        # rootfs, e.g. /dev bound over rootfs/dev): detach our own leftovers first.
        wd = os.path.realpath(self.workdir)
        stale = sorted((mp for mp, _ in mounts() if mp == wd or mp.startswith(wd + "/")),
                       key=len, reverse=True)
        if stale:
            libc = ctypes.CDLL(None, use_errno=True)
            for mp in stale:
                if libc.umount2(mp.encode(), MNT_DETACH) != 0:
                    problems.append(f"umount {mp}: {os.strerror(ctypes.get_errno())}")
            if any(mp == wd or mp.startswith(wd + "/") for mp, _ in mounts()):
                problems.append(f"mounts left under {wd}; not removing it")
                return problems
            problems.append(f"detached {len(stale)} leftover mount(s) under {wd}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        return problems
