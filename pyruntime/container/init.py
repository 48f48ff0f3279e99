"""The container side of `create`: code that runs in the forked children.

stage1 (S1), forked first thing by `create`, imports what the init needs while the parent
validates the config, then receives its InitConfig (serialised: S1 inherits none of it), joins
the cgroup and the namespaces given by path, unshares the user namespace (the parent writes the
id maps), unshares the rest, and forks the init (I), which is pid 1 of a new pid namespace.
The init builds the container (rootfs, console, sysctl, process attributes), reports `ready`,
blocks on exec.fifo until `start`, and execs the user process.

Nothing here returns to the caller: each child ends in os._exit or execve. Errors before
`ready` travel to the parent as one-line messages over the sync channel.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # the C module: `signal` builds IntEnums at import
import sys

from pyruntime.container.sync import Channel
from pyruntime.container.seal import check_mappings
from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc
from pyruntime.log import debug


# What the container's process needs whatever its config (`_modules` adds what it depends on);
# `_ROOTFS`: what the init needs to build the rootfs. Stage 1 imports `_EARLY` while the parent
# validates the config (`stage1`); `resource` too, since nearly every config sets rlimits (runc's,
# podman's and containerd's all set RLIMIT_NOFILE): then stage 1 needs no import thread.
_BASE = ("fcntl", "struct", "prctl", "pyruntime.hooks", "pyruntime.linux.capabilities",
         "pyruntime.linux.process", "pyruntime.linux.procfs")
_ROOTFS = ("pyruntime.linux.mounts", "pyruntime.linux.rootfs")
_EARLY = _BASE + _ROOTFS + ("pyruntime.linux.namespaces", "pyruntime.spec._model", "pyruntime.cgroups",
                             "resource")


def _modules(spec, proc, rootfs: bool) -> list[str]:
    """What must be imported before pivot_root/setns(mnt), from when on the host's filesystem,
    and with it Python's stdlib and this package, are out of reach. `proc` is the process to
    start (default: the config's); `rootfs`: the init's rootfs code too."""
    names = list(_BASE)
    proc = proc if proc is not None else spec.process
    if proc is not None and proc.rlimits:
        names.append("resource")
    if proc is not None and proc.terminal:
        names.append("pyruntime.linux.console")  # termios
    if spec.hooks is not None and (spec.hooks.start_container or spec.hooks.create_container):
        names.append("subprocess")
    if spec.linux is not None and spec.linux.seccomp is not None:
        names.append("pyruntime.linux.seccomp")
    if rootfs:
        names += _ROOTFS
        if spec.linux is not None and any(n.type == "network" and not n.path for n in spec.linux.namespaces or ()):
            names.append("pyruntime.linux.network")
    return names


def _import(names) -> None:
    for name in names:
        __import__(name)


def join_cgroup_and_preload(cgroup, spec, *, proc=None, rootfs: bool = False) -> None:
    """Join the container's cgroup (stage 1, for itself and the processes it forks) and import
    what the container's process needs (`_modules`; `rootfs`: the rootfs code too), at once.

    The first cgroup migration after a quiet spell waits for an RCU grace period in the kernel
    (cgroup_threadgroup_rwsem; ~12 ms here, runc waits as long): what is not imported yet is
    imported in a thread meanwhile (the write releases the GIL). The thread is gone before this
    returns, so the forks that follow copy a single-threaded process."""
    missing = [m for m in _modules(spec, proc, rootfs) if m not in sys.modules]
    if cgroup is None or not missing:
        _import(missing)
        if cgroup is not None:
            cgroup.apply(os.getpid())
        return
    from pyruntime.background import Background

    loading = Background(lambda: _import(missing))
    try:
        cgroup.apply(os.getpid())
    finally:
        failed = loading.join()
    if failed is not None:
        raise failed


class InitConfig:
    """Everything the children need, prepared by the parent while stage 1 waits for it."""

    def __init__(self, **kw) -> None:
        self.cid: str = kw["cid"]
        self.spec = kw["spec"]
        self.rootfs: str = kw["rootfs"]
        self.bundle: str = kw["bundle"]
        self.join_fds: list[tuple[str, int]] = kw.get("join_fds", [])
        self.new_ns_flags: int = kw.get("new_ns_flags", 0)
        self.cgroup = kw.get("cgroup")
        self.fifo_fd: int | None = kw.get("fifo_fd")
        self.console_sock = kw.get("console_sock")  # a connected socket, or None
        self.preserve_fds: int = kw.get("preserve_fds", 0)
        self.no_pivot: bool = kw.get("no_pivot", False)
        self.no_new_keyring: bool = kw.get("no_new_keyring", False)
        self.seccomp_filter = kw.get("seccomp_filter")
        self.rootless: bool = kw.get("rootless", False)
        self.mount_fds: dict[int, int] = kw.get("mount_fds", {})

    def send(self, chan: Channel) -> None:
        """Hand this config to stage 1 (forked before it was made): one "config" message whose
        fds are a memfd holding the JSON (a config can exceed a datagram), then every fd."""
        from pyruntime import jsonio
        from pyruntime.spec.node import to_json

        fds = [fd for _, fd in self.join_fds] + list(self.mount_fds.values())
        for extra in (self.fifo_fd, self.console_sock.fileno() if self.console_sock is not None else None):
            if extra is not None:
                fds.append(extra)
        f = self.seccomp_filter
        data = {"cid": self.cid, "spec": to_json(self.spec), "rootfs": self.rootfs, "bundle": self.bundle,
                "join": [t for t, _ in self.join_fds], "new_ns_flags": self.new_ns_flags,
                "cgroup": self.cgroup.to_state() if self.cgroup is not None else None,
                "fifo": self.fifo_fd is not None, "console": self.console_sock is not None,
                "preserve_fds": self.preserve_fds, "no_pivot": self.no_pivot,
                "no_new_keyring": self.no_new_keyring, "rootless": self.rootless,
                "mounts": list(self.mount_fds), "seccomp": None if f is None else f.to_json()}
        memfd = os.memfd_create("pyruntime-init-config", os.MFD_CLOEXEC)
        try:
            payload = memoryview(jsonio.dumps(data).encode())
            while payload:
                payload = payload[os.write(memfd, payload):]
            chan.send_to_child("config", fds=[memfd] + fds)
        finally:
            os.close(memfd)

    @classmethod
    def receive(cls, chan: Channel) -> "InitConfig":
        """Stage 1's side of `send`."""
        from pyruntime import jsonio
        from pyruntime.spec import _model as model

        _, fds = chan.expect("config", fds=_MAX_FDS)
        memfd, fds = fds[0], fds[1:]
        try:
            chunks = []
            while chunk := os.pread(memfd, 1 << 16, sum(map(len, chunks))):
                chunks.append(chunk)
        finally:
            os.close(memfd)
        d = jsonio.loads(b"".join(chunks))
        join_fds = list(zip(d["join"], fds))
        fds = fds[len(join_fds):]
        mount_fds = dict(zip(map(int, d["mounts"]), fds))
        fds = fds[len(mount_fds):]
        fifo_fd = fds.pop(0) if d["fifo"] else None
        console_sock = None
        if d["console"]:
            from pyruntime.linux import sockets

            console_sock = sockets.Socket(fileno=fds.pop(0))
        cgroup = None
        if d["cgroup"] is not None:
            from pyruntime.cgroups import manager_from_state

            cgroup = manager_from_state(d["cgroup"], may_create=True)
        seccomp_filter = None
        if d["seccomp"] is not None:
            from pyruntime.linux.seccomp import Filter

            seccomp_filter = Filter.from_json(d["seccomp"])
        return cls(cid=d["cid"], spec=model.build(model.Spec, d["spec"]), rootfs=d["rootfs"],
                   bundle=d["bundle"], join_fds=join_fds, new_ns_flags=d["new_ns_flags"], cgroup=cgroup,
                   fifo_fd=fifo_fd, console_sock=console_sock, preserve_fds=d["preserve_fds"],
                   no_pivot=d["no_pivot"], no_new_keyring=d["no_new_keyring"],
                   seccomp_filter=seccomp_filter, rootless=d["rootless"], mount_fds=mount_fds)


_MAX_FDS = 253  # SCM_MAX_FD: namespaces to join, idmapped mounts, fifo, console


def _die(chan: Channel, exc: BaseException) -> None:
    msg = str(exc) if isinstance(exc, RuntimeFailure) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and not isinstance(exc, RuntimeFailure):
        msg = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
        if exc.strerror and exc.args and isinstance(exc.args[-1], str) and ":" in exc.args[-1]:
            msg = exc.args[-1]
    try:
        chan.send("error", msg=msg)
    except OSError:
        pass
    os._exit(1)


def stage1(chan: Channel, *, parent: int, rootless: bool) -> None:
    """S1, forked first thing in `create`: import what the init needs while the parent
    validates the config and prepares (InitConfig.send), then cgroup, join namespaces, user
    namespace, unshare, fork the init. Forked before the parent has loaded its validators and
    the config, the init holds none of that memory."""
    try:
        sc.set_pdeathsig(SIGKILL)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the line above
        # Nothing in the container may ptrace or open /proc/<pid>/ of a runtime process.
        # (Rootless: only after the parent, an unprivileged user, has written our id maps.)
        if not rootless:
            sc.set_dumpable(False)
        _import(_EARLY)
        from pyruntime.cgroups import detect_layout

        __import__("pyruntime.cgroups.v2" if detect_layout() == "unified" else "pyruntime.cgroups.v1")
        debug("stage 1: modules imported")
        cfg = InitConfig.receive(chan)
        debug("stage 1: config received")
        join_cgroup_and_preload(cfg.cgroup, cfg.spec, rootfs=True)
        debug("stage 1: joined the cgroup")
        from pyruntime.linux import namespaces as ns

        ns.join_all(cfg.join_fds)
        flags = cfg.new_ns_flags
        if flags & sc.CLONE_NEWUSER:
            sc.unshare(sc.CLONE_NEWUSER)
            chan.send("userns")
            chan.expect("userns-ok")
            sc.set_dumpable(False)
            flags &= ~sc.CLONE_NEWUSER
        if any(t == "user" for t, _ in cfg.join_fds) or cfg.new_ns_flags & sc.CLONE_NEWUSER:
            # Become root of the user namespace (uid 0 is mapped now).
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        if flags:
            try:
                sc.unshare(flags)
            except OSError as e:
                raise RuntimeFailure(f"unshare namespaces: {e.strerror}") from None
        linux = cfg.spec.linux
        if flags & sc.CLONE_NEWTIME and linux is not None and linux.time_offsets:
            ns.write_time_offsets(linux.time_offsets)
        check_mappings()  # the init is born in the container's pid namespace (CVE-2019-5736)
        try:
            pid = os.fork()
        except OSError as e:
            raise RuntimeFailure(f"fork container init: {e.strerror.lower()}") from None
        if pid == 0:
            init(cfg, chan)  # never returns
            os._exit(1)
        chan.send("pid", pid=pid)
        os._exit(0)
    except BaseException as e:  # noqa: BLE001 - everything becomes one line for the parent
        _die(chan, e)


def init(cfg: InitConfig, chan: Channel) -> None:
    try:
        _init(cfg, chan)
    except BaseException as e:  # noqa: BLE001
        _die(chan, e)


def _init(cfg: InitConfig, chan: Channel) -> None:
    debug("init: started")
    spec = cfg.spec
    proc = spec.process
    linux = spec.linux
    # "go": the parent has applied the cgroup limits and run the prestart/createRuntime hooks.
    # Without such hooks the rootfs is mounted meanwhile (runc's order too: its limits come
    # after the rootfs); with them, first, so they see the namespaces before any mount.
    early = spec.hooks is None or not (spec.hooks.prestart or spec.hooks.create_runtime)
    if not early:
        chan.expect("go")
    # The state for the hooks run in the container namespace (createContainer, startContainer):
    # built here, not sent, since annotations can exceed what one sync datagram carries.
    from pyruntime.hooks import oci_state

    hook_state = oci_state({"ociVersion": spec.oci_version, "id": cfg.cid, "bundle": cfg.bundle,
                            "pid": os.getpid(), "annotations": dict(spec.annotations or {})},
                           "creating")
    sc.set_pdeathsig(0)
    os.setsid()
    flags = cfg.new_ns_flags
    joined = {t for t, _ in cfg.join_fds}
    if spec.hostname is not None and (flags & sc.CLONE_NEWUTS or "uts" in joined):
        sc.sethostname(spec.hostname)
    if spec.domainname is not None and (flags & sc.CLONE_NEWUTS or "uts" in joined):
        sc.setdomainname(spec.domainname)
    if flags & sc.CLONE_NEWNET:
        from pyruntime.linux.network import loopback_up

        loopback_up()
    if not cfg.no_new_keyring:
        join_container_keyring(cfg.cid, in_userns=bool(flags & sc.CLONE_NEWUSER) or "user" in joined,
                               init=True)
    in_userns = bool(flags & sc.CLONE_NEWUSER) or "user" in joined
    from pyruntime.linux import rootfs as rootfs_mod

    rootfs_mod.prepare_rootfs(spec, cfg.rootfs, bundle=cfg.bundle, in_userns=in_userns,
                              mount_fds=cfg.mount_fds)
    debug("init: rootfs prepared")
    for fd in cfg.mount_fds.values():
        os.close(fd)
    if early:
        chan.expect("go")  # createContainer hooks fork: within the pids limit, like the process
    if spec.hooks is not None and spec.hooks.create_container:
        from pyruntime.hooks import run_hooks

        # In the container namespace: the pid as the container sees it (spec; runc: Getpid()).
        run_hooks(spec.hooks.create_container, hook_state, kind="createContainer")
    rootfs_mod.pivot_root(cfg.rootfs, no_pivot=cfg.no_pivot)
    if proc.terminal:
        from pyruntime.linux import console

        if cfg.console_sock is None:
            raise RuntimeFailure("process.terminal is set but no --console-socket was given")
        console.setup(cfg.console_sock, proc.console_size)
        cfg.console_sock.close()
    if linux is not None and linux.sysctl:
        from pyruntime.linux.procfs import write_sysctl

        for key, value in linux.sysctl.items():
            write_sysctl(key, value)
    rootfs_mod.finalize_rootfs(spec)
    exe, env = prepare_process(proc, linux, chan, seccomp_filter=cfg.seccomp_filter,
                               preserve_fds=cfg.preserve_fds, in_userns=in_userns, init=True)
    debug("init: ready, waiting for start")
    chan.send("ready")
    # After this point the parent may be gone: errors go to the container's stderr.
    try:
        fifo = f"/proc/self/fd/{cfg.fifo_fd}"
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as e:
            raise RuntimeFailure(f"open exec fifo {fifo}: {(e.strerror or str(e)).lower()}") from None
        os.write(fd, b"0")
        os.close(fd)
        if spec.hooks is not None and spec.hooks.start_container:
            from pyruntime.hooks import run_hooks

            hook_state = dict(hook_state, status="created")
            run_hooks(spec.hooks.start_container, hook_state, kind="startContainer")
        exec_process(proc, exe, env, init=True)
    except BaseException as e:  # noqa: BLE001
        text = str(e) if isinstance(e, RuntimeFailure) else f"exec {proc.args[0]}: {e}"
        try:
            os.write(2, f"pyruntime: {text}\n".encode())
        except OSError:
            pass
        os._exit(127 if isinstance(e, FileNotFoundError) else 1)


# The session keyring a new keyring gets (KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ |
# KEY_USR_LINK), plus what runc adds: search by the owner's UID, or by "other" in a user
# namespace, so exec'd processes can join it by name.
_KEYRING_PERM = 0x3F130000
_KEY_USR_SEARCH, _KEY_OTH_SEARCH = 0x080000, 0x000008


def join_container_keyring(cid: str, *, in_userns: bool, init: bool) -> None:
    """Join (the init: create) the session keyring _ses.<id>, so the container never holds
    the caller's session keyring. Where keyrings are unavailable (ENOSYS, or refused), go on
    without, as runc does."""
    import errno

    try:
        sc.join_session_keyring(f"_ses.{cid}")
    except OSError as e:
        if e.errno not in (errno.ENOSYS, errno.EPERM, errno.EDQUOT, errno.EACCES):
            raise RuntimeFailure(f"join session keyring: {e.strerror}") from None
        return
    if init:
        perm = _KEYRING_PERM | (_KEY_OTH_SEARCH if in_userns else _KEY_USR_SEARCH)
        try:
            sc.keyring_setperm(sc.KEY_SPEC_SESSION_KEYRING, perm)
        except OSError as e:
            raise RuntimeFailure(f"unable to mod keyring permissions: {e.strerror}") from None


def prepare_process(proc, linux, chan: Channel, *, seccomp_filter, preserve_fds: int,
                    in_userns: bool, init: bool) -> tuple[str, dict]:
    """The common tail of the init and of an exec'd process, up to just before `ready`:
    LSM, cwd, process attributes, executable lookup, fds, privileges, seccomp."""
    check_mappings()  # nothing mapped from a writable host mount since the fork (CVE-2019-5736)
    _check_lsm(proc)
    _chdir(proc.cwd)
    _setup_process(proc, linux, init=init)
    from pyruntime.linux.process import build_env, look_path

    env = build_env(proc.env, proc.user.uid)
    # Every fd above the preserved ones closes at exec (the sync socket and the fifo included).
    # Done before seccomp, so a profile denying close_range cannot stop the container.
    sc.close_range(3 + preserve_fds, 0xFFFFFFFF, sc.CLOSE_RANGE_CLOEXEC)
    # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it before dropping
    # capabilities; with it, as late as possible (runc's order).
    nnp = bool(proc.no_new_privileges)
    if seccomp_filter is not None and not nnp:
        _load_seccomp(seccomp_filter, chan)
    _drop_privileges(proc, in_userns=in_userns)
    # As the container's user (runc: LookPath after finalizeNamespace), so a binary the user
    # cannot reach or execute fails here, with runc's message, not at execve after `start`.
    exe = look_path(proc.args[0], env)
    if seccomp_filter is not None and nnp:
        _load_seccomp(seccomp_filter, chan)
    return exe, env


def exec_process(proc, exe: str, env: dict, *, init: bool = False) -> None:
    # execCPUAffinity is "not applicable to the container's init process" (spec); for an
    # exec'd process `initial` was set before it joined the cgroup (container.exec._e1).
    if not init and proc.exec_cpu_affinity is not None and proc.exec_cpu_affinity.final:
        from pyruntime.linux.process import set_affinity

        set_affinity(proc.exec_cpu_affinity.final)
    os.execve(exe, list(proc.args), env)


def _load_seccomp(seccomp_filter, chan: Channel) -> None:
    from pyruntime.linux import seccomp

    notify_fd = seccomp.load(seccomp_filter)
    if notify_fd is not None:
        # The parent takes it (pidfd_getfd) and forwards it to linux.seccomp.listenerPath.
        # One plain write: a notified sendmsg would block before the agent has the fd.
        seccomp.handover_notify_fd(chan.fileno(), notify_fd)
        chan.expect("seccomp-fd-ok")
        os.close(notify_fd)


def _check_lsm(proc) -> None:
    if proc.apparmor_profile:
        try:
            with open("/sys/module/apparmor/parameters/enabled") as f:
                enabled = f.read().strip() == "Y"
        except OSError:
            enabled = False
        if not enabled or not os.path.exists("/sys/kernel/security/apparmor"):
            raise RuntimeFailure(f"apparmor profile {proc.apparmor_profile!r} requested, but AppArmor is not enabled on this host")
        from pyruntime.linux.procfs import open_procfs_file

        fd = open_procfs_file("/proc/self/attr/apparmor/exec", os.O_WRONLY)
        try:
            os.write(fd, f"exec {proc.apparmor_profile}".encode())
        finally:
            os.close(fd)
    if proc.selinux_label:
        if not os.path.exists("/sys/fs/selinux/enforce"):
            raise RuntimeFailure(f"selinux label {proc.selinux_label!r} requested, but SELinux is not enabled on this host")
        from pyruntime.linux.procfs import open_procfs_file

        fd = open_procfs_file("/proc/self/attr/exec", os.O_WRONLY)
        try:
            os.write(fd, proc.selinux_label.encode())
        finally:
            os.close(fd)


def _chdir(cwd: str) -> None:
    """chdir, then verify the cwd is inside the container root (CVE-2024-21626)."""
    try:
        os.chdir(cwd)
    except OSError as e:
        raise RuntimeFailure(f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror.lower()}") from None
    try:
        here = os.getcwd()
    except OSError:
        raise RuntimeFailure(f"current working directory {cwd!r} is outside of container mount namespace root") from None
    if not here.startswith("/"):
        raise RuntimeFailure(f"current working directory {cwd!r} is outside of container mount namespace root")


def _setup_process(proc, linux, *, init: bool) -> None:
    from pyruntime.linux import process as p

    p.set_rlimits(proc.rlimits)
    if init and proc.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj") as f:
                current = int(f.read())
        except OSError:
            current = None
        if current != proc.oom_score_adj:
            p.set_oom_score_adj(proc.oom_score_adj)
    p.set_scheduler(proc.scheduler)
    p.set_io_priority(proc.io_priority)
    if linux is not None:
        p.set_personality(linux.personality)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _drop_privileges(proc, *, in_userns: bool) -> None:
    from pyruntime.linux import capabilities as caps
    from pyruntime.linux.process import set_user

    # Absent sets are empty sets (runc): a config without capabilities gets none.
    caps.drop_bounding(proc.capabilities.bounding if proc.capabilities else ())
    caps.set_keepcaps(True)
    set_user(proc.user, setgroups_allowed=_setgroups_allowed())
    caps.set_keepcaps(False)
    caps.apply_sets(proc.capabilities)
    if proc.no_new_privileges:
        sc.set_no_new_privs()


def _stderr(msg: str) -> None:
    try:
        sys.stderr.write(msg)
    except Exception:  # noqa: BLE001
        pass
