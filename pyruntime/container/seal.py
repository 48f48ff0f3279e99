"""CVE-2019-5736: keep the host's interpreter and libraries out of the container's reach.

The runtime processes that enter a container -- the init until it execs the user's program,
an exec'd process until its execve -- run the host's Python interpreter inside the container's
pid namespace. A container process can reach the files they map: /proc/<pid>/exe of a process
that exec'd `#!/proc/self/exe` (the published exploit: the container's own child then runs the
runtime's executable), of any runtime process with CAP_SYS_PTRACE, and /proc/<pid>/map_files/*
with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (in the initial user namespace). Opened for
writing, they are the host's interpreter and libc.

`seal` (called first by the commands that enter containers) takes one of two paths.

Slow path, the general defence: the command re-executes itself with every file it maps coming
from a read-only mount. A recursive clone of the host's `/` (open_tree(OPEN_TREE_CLONE|
AT_RECURSIVE)), made read-only (mount_setattr), never attached anywhere, is the root (chroot)
for the execve: the interpreter, ld.so, libc and the extension modules the runtime needs are
mapped from it; then the process goes back to the real root and closes the clone. The clone's
mounts, detached from every namespace, stay only as references of those mappings: opening one
of those files for writing fails with EROFS, and nobody can make them writable again
(mount_setattr/remount need the mount to be in the caller's namespace). It costs one
interpreter start and the preloads (~12-15 ms); the clone itself is ~0.1 ms.

Fast path, no re-exec, taken only when it is provably enough (`fast_path`), i.e. when ALL hold:
- the running interpreter (/proc/self/exe) has FS_IMMUTABLE_FL (scripts/setup.sh installs a
  private copy in the venv and sets it): opening it for writing fails with EPERM, for anybody,
  and only CAP_LINUX_IMMUTABLE (in the initial user namespace) can clear the flag;
- nothing but the container's own processes can see the runtime's processes: the container has
  a pid namespace of its own (not the host's, not one joined by path);
- none of those processes can hold, in the initial user namespace, CAP_LINUX_IMMUTABLE (clear
  the flag through /proc/<pid>/exe), CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (open
  /proc/<pid>/map_files/*: ld.so, libc, the extension modules stay ordinary writable host
  files): the container has a user namespace of its own (its capabilities are not in the
  initial one), or none of the three is in any capability set of its process (nor, for
  `exec`, of the exec'd process: `--cap`, `--process`). Without them, the only host file a
  container process reaches is the interpreter (/proc/<pid>/exe), and it is immutable.
Anything that cannot be determined (no config, unreadable, unexpected shape) takes the slow
path; the command then reports the error itself. `up` always takes the slow path. The soundness
rests on the flag set at install time: if a host administrator clears it, every command takes
the slow path again by itself. `reason` says which path was taken and why (logged with --debug).

`check_mappings` runs in every runtime process just before it forks into a container's pid
namespace and before it reports ready: in a sealed process, a file mapped from a writable mount
(an extension module imported after the return to the real root) fails the command, closed.
In the fast path there is nothing to check: the writable mappings are out of reach by design.
"""

from __future__ import annotations

import errno
import os
import sys

from pyruntime.errors import RuntimeFailure

_ENV = "_PYRUNTIME_SEALED"
_ST_RDONLY = 1
# Extension modules (and shared libraries) the runtime may load before a process of it enters
# a container: loaded while the root is the read-only clone. A missing one is caught by
# check_mappings (the command fails), never silently mapped from a writable mount.
PRELOAD = (
    "_ctypes", "_json", "_typing", "resource", "termios", "_prctl", "_hashlib", "_bz2", "_lzma",
    "_uuid",
)
PRELOAD_LIBS = ("libseccomp.so.2",)

sealed = False  # this process re-executed from the read-only clone
fast = False  # this process skipped the re-exec on the fast path's decision
reason = ""  # which path `seal` took in this process, and why (see the module doc)

# What defeats the fast path when a container process can hold it in the initial user namespace.
DANGEROUS_CAPS = ("CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE", "CAP_LINUX_IMMUTABLE")
FS_IMMUTABLE_FL = 0x10
FAST_COMMANDS = ("create", "run", "exec")


def seal(command: str = "", argv=(), root: str = "") -> None:
    """Make the host's files this command maps unwritable from the container: re-execute it
    from a read-only clone of / unless the fast path is provably enough (see the module doc).
    `argv` is the command's own arguments (after its name), `root` the state directory."""
    global sealed, reason
    marker = os.environ.pop(_ENV, None)
    fds = _marker_fds(marker) if marker is not None else None
    if fds is not None:
        _finish(*fds)
        sealed = True
        reason = "sealed: re-executed from a read-only clone of /"
        return
    # Without privileges nothing can be cloned, and the container (mapped onto our unprivileged
    # user) cannot write the root-owned interpreter and libraries anyway.
    if os.geteuid() != 0 or not sys.executable or not getattr(sys, "orig_argv", None):
        reason = "not sealed: not root, or no interpreter to re-execute"
        return
    ok, why = fast_path(command, argv, root)
    from pyruntime.log import log

    if ok:
        globals()["fast"] = True
        reason = f"not sealed (fast path): {why}"
        log.debug(f"CVE-2019-5736 seal: no re-exec needed: {why}")
        return
    reason = f"sealing: {why}"
    log.debug(f"CVE-2019-5736 seal: re-executing from a read-only clone of /: {why}")
    _reexec()


# --- the fast path's decision -------------------------------------------------------------

def _getflags_request() -> int | None:
    """FS_IOC_GETFLAGS, _IOR('f', 1, long), on this architecture (None: unknown here)."""
    m = os.uname().machine
    size = 8 if sys.maxsize > 2**32 else 4
    if m in ("x86_64", "aarch64", "riscv64", "s390x", "loongarch64") or \
            m.startswith(("i386", "i486", "i586", "i686", "arm")):
        return (2 << 30) | (size << 16) | (0x66 << 8) | 1
    if m.startswith(("ppc", "powerpc", "mips", "sparc")):  # 3 direction bits, 13 size bits
        return (2 << 29) | (size << 16) | (0x66 << 8) | 1
    return None


def interpreter_problem(path: str = "/proc/self/exe") -> str | None:
    """None if the file (by default the running interpreter) is immutable, else why not."""
    req = _getflags_request()
    if req is None:
        return f"FS_IOC_GETFLAGS unknown on {os.uname().machine}"
    try:
        name = os.readlink(path) if path.startswith("/proc/") else path
    except OSError:
        name = path
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
    except OSError as e:
        return f"open the interpreter: {os.strerror(e.errno or 0).lower()}"
    try:
        import fcntl

        flags = int.from_bytes(fcntl.ioctl(fd, req, bytes(8))[:4], sys.byteorder)
    except OSError as e:
        return f"the interpreter's flags ({name}): {os.strerror(e.errno or 0).lower()}"
    finally:
        os.close(fd)
    if not flags & FS_IMMUTABLE_FL:
        return f"the interpreter {name} is not immutable (chattr +i: scripts/setup.sh)"
    return None


def _cap_name(name: str) -> str:
    n = name.strip().upper()
    return n if n.startswith("CAP_") else "CAP_" + n


def caps_problem(caps, what: str) -> str | None:
    """None if no set of `caps` (a process's "capabilities" object) holds a dangerous one."""
    if caps is None:
        return None
    if not isinstance(caps, dict):
        return f"{what}: capabilities is not an object"
    for key, names in caps.items():  # every set (bounding, effective, permitted, inheritable, ambient)
        if names is None:
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            return f"{what}: capabilities.{key} is not a list of names"
        for n in names:
            c = _cap_name(n)
            if c in DANGEROUS_CAPS or c == "CAP_ALL":
                return f"{what} has {c} in capabilities.{key}"
    return None


def _namespaces(config: dict) -> list[dict] | str:
    linux = config.get("linux")
    if linux is None:
        return []
    if not isinstance(linux, dict):
        return "linux is not an object"
    nss = linux.get("namespaces") or []
    if not isinstance(nss, list) or not all(isinstance(n, dict) for n in nss):
        return "linux.namespaces is not a list of objects"
    return nss


def _userns_is_ours(path) -> bool | None:
    """Is the namespace file `path` the user namespace this runtime runs in (None: unknown)?"""
    if not isinstance(path, str):
        return None
    try:
        a, b = os.stat(path), os.stat("/proc/self/ns/user")
    except OSError:
        return None
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def config_verdict(config, *, exec_caps=(), exec_process=None) -> tuple[bool, str]:
    """(True, why) if no process that can see this container's runtime processes can hold, in
    the initial user namespace, a capability in DANGEROUS_CAPS; else (False, why not).
    `config` is the container's config.json; for `exec`, `exec_caps` the --cap flags and
    `exec_process` the --process file's object."""
    if not isinstance(config, dict):
        return False, "the config is not an object"
    nss = _namespaces(config)
    if isinstance(nss, str):
        return False, nss
    pid = [n for n in nss if n.get("type") == "pid"]
    if not pid or any(n.get("path") for n in pid):
        # the host's pid namespace, or another container's: processes we know nothing about
        # could reach /proc/<pid>/map_files of the runtime's processes
        return False, "the container has no pid namespace of its own"
    users = [n for n in nss if n.get("type") == "user"]
    if users and all(not n.get("path") or _userns_is_ours(n.get("path")) is False for n in users):
        return True, "the container has its own user namespace"
    proc = config.get("process")
    if proc is not None and not isinstance(proc, dict):
        return False, "process is not an object"
    why = caps_problem((proc or {}).get("capabilities"), "the container's process")
    if why:
        return False, why
    if isinstance(exec_caps, str) or not all(isinstance(c, str) for c in exec_caps):
        return False, "exec --cap: not a list of names"
    for c in exec_caps:
        if _cap_name(c) in DANGEROUS_CAPS or _cap_name(c) == "CAP_ALL":
            return False, f"exec --cap {c}"
    if exec_process is not None:
        if not isinstance(exec_process, dict):
            return False, "exec --process: not an object"
        why = caps_problem(exec_process.get("capabilities"), "the exec'd process")
        if why:
            return False, why
    return True, "no container process can hold " + ", ".join(DANGEROUS_CAPS)


def confirm(config, *, exec_process=None) -> None:
    """Check again, on the config the command really uses (`create`: the validated config.json;
    `exec`: the container's recorded config and the final process), that the fast path was
    allowed: the decision read the files before the command did, and a bundle or container
    replaced in between must not run a privileged config unsealed. No-op when sealed."""
    if not fast:
        return
    ok, why = config_verdict(config, exec_process=exec_process)
    if not ok:
        raise RuntimeFailure(f"the configuration changed while starting ({why}): refusing to enter "
                             "the container unsealed (CVE-2019-5736); run the command again")


def fast_path(command: str, argv, root: str) -> tuple[bool, str]:
    """(True, why) if `command argv` may skip the re-exec (see the module doc), else
    (False, why not). Never raises: whatever cannot be determined means (False, ...)."""
    if command not in FAST_COMMANDS:
        return False, f"{command or 'this command'} always re-executes"
    why = interpreter_problem()
    if why:
        return False, why
    try:
        from pyruntime.cli._flags import parse
        from pyruntime.jsonio import load_file

        flags = __import__(f"pyruntime.cli.{command}", fromlist=["FLAGS"]).FLAGS
        opts, rest = parse(flags, list(argv), command=command)
        if command == "exec":
            if not rest:
                return False, "no container id"
            from pyruntime.container.state import Store

            cdir = Store(root).open(rest[0], lock=False)
            try:
                config = cdir.read().get("config")
            finally:
                cdir.close()
            proc = load_file(opts["process"]) if opts["process"] else None
            ok, why = config_verdict(config, exec_caps=opts["cap"], exec_process=proc)
        else:
            config = load_file(os.path.join(opts["bundle"] or ".", "config.json"))
            ok, why = config_verdict(config)
    except Exception as e:  # noqa: BLE001 -- the command itself will report it, sealed
        return False, f"cannot tell ({type(e).__name__}: {e})"
    if not ok:
        return False, why
    return True, f"the interpreter is immutable and {why}"


# --- the slow path: re-execute from a read-only clone of / ------------------------------------

def _syscall(nr: int, *args) -> int:
    """The two calls this needs, without pyruntime.linux.syscalls (its import costs ~7 ms, paid
    again after the re-exec). open_tree and mount_setattr have the same number on every arch."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _clone_root_readonly() -> int:
    """open_tree(AT_FDCWD, "/", OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC|AT_RECURSIVE), then
    mount_setattr(tree, "", AT_EMPTY_PATH|AT_RECURSIVE, {MOUNT_ATTR_RDONLY})."""
    import ctypes

    tree = _syscall(428, ctypes.c_int(-100), b"/", ctypes.c_uint(1 | os.O_CLOEXEC | 0x8000))
    attr = (ctypes.c_uint64 * 4)(1, 0, 0, 0)  # attr_set, attr_clr, propagation, userns_fd
    try:
        _syscall(442, ctypes.c_int(tree), b"", ctypes.c_uint(0x1000 | 0x8000), ctypes.byref(attr),
                 ctypes.c_size_t(ctypes.sizeof(attr)))
    except BaseException:
        os.close(tree)
        raise
    return tree


def _initial_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return f.read().split() == ["0", "0", "4294967295"]
    except OSError:
        return True


def _reexec() -> None:
    global reason
    try:
        tree = _clone_root_readonly()
    except OSError as e:
        if e.errno == errno.EPERM and not _initial_userns():
            # root of a user namespace without the right to clone its mounts: the files are
            # not the host's, and we cannot do better; say so once, in debug logs
            from pyruntime.log import log

            reason = "not sealed: cannot clone / in this user namespace"
            log.debug("not sealing the runtime: cannot clone / in this user namespace")
            return
        raise RuntimeFailure(f"seal the runtime (CVE-2019-5736): clone / read-only: {os.strerror(e.errno or 0).lower()}") from None
    fds = [tree]
    chrooted = False
    try:
        root = os.open("/", os.O_PATH | os.O_DIRECTORY)
        fds.append(root)
        try:
            cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
            fds.append(cwd)
        except OSError:
            cwd = -1
        for fd in fds:
            os.set_inheritable(fd, True)
        try:
            here = os.getcwd()
        except OSError:
            here = "/"
        env = dict(os.environ)
        env[_ENV] = f"{root},{cwd},{tree}"
        os.fchdir(tree)
        os.chroot(".")
        chrooted = True
        try:
            os.chdir(here)  # relative script paths in argv resolve as before
        except OSError:
            pass
        os.execve(sys.executable, sys.orig_argv, env)
    except OSError as e:
        if chrooted:
            _back(fds[1], cwd)
        raise RuntimeFailure(f"seal the runtime (CVE-2019-5736): {os.strerror(e.errno or 0).lower()}") from None
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _back(root: int, cwd: int) -> None:
    os.fchdir(root)
    os.chroot(".")
    if cwd >= 0:
        os.fchdir(cwd)
    else:
        os.chdir("/")


def _marker_fds(marker: str) -> tuple[int, int, int] | None:
    """The (root, cwd, tree) fds the re-executing process passed, if this process is really
    running from a read-only mount (a marker in the environment alone proves nothing: it is
    ignored, and the command seals itself as usual)."""
    try:
        root, cwd, tree = (int(x) for x in marker.split(","))
        import stat

        if not (stat.S_ISDIR(os.fstat(root).st_mode) and stat.S_ISDIR(os.fstat(tree).st_mode)):
            return None
        if not os.statvfs("/proc/self/exe").f_flag & _ST_RDONLY:
            return None
    except (ValueError, OSError):
        return None
    return root, cwd, tree


def _finish(root: int, cwd: int, tree: int) -> None:
    try:
        preload()
    finally:
        try:
            _back(root, cwd)
        except OSError as e:
            raise RuntimeFailure(f"seal the runtime: return to the root: {os.strerror(e.errno or 0).lower()}") from None
        for fd in (root, cwd, tree):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


def preload() -> None:
    import importlib

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import ctypes

    for lib in PRELOAD_LIBS:
        try:
            ctypes.CDLL(lib)
        except OSError:
            pass


def writable_mappings() -> list[str]:
    """Files mapped by this process from a mount that is not read-only (memfds and other
    process-private objects aside). [] when the check cannot be made (no CAP_SYS_ADMIN in the
    initial user namespace: then the host's root-owned files are not writable by the caller)."""
    bad: dict[str, None] = {}
    try:
        with open("/proc/self/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    seen: set[str] = set()
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6 or parts[4] == "0" or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path in seen or path.startswith(("/memfd:", "/SYSV", "/dev/zero")):
            continue
        seen.add(path)
        lo, _, hi = parts[0].partition("-")
        try:
            flags = os.statvfs(f"/proc/self/map_files/{int(lo, 16):x}-{int(hi, 16):x}").f_flag
        except PermissionError:
            return []
        except OSError:
            continue
        if not flags & _ST_RDONLY:
            bad[path] = None
    return list(bad)


def check_mappings() -> None:
    """Fail unless every file this process maps is on a read-only mount (only in a sealed
    process; in the fast path, or unsealed, `reason` says why there is nothing to check)."""
    if not sealed:
        return
    bad = writable_mappings()
    if bad:
        raise RuntimeFailure(f"runtime self-check (CVE-2019-5736): {', '.join(bad)} mapped from a "
                             "writable mount: refusing to enter the container")
