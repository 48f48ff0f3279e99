"""The parent side of `create`: fork stage 1 (pyruntime.container.init), validate the bundle,
make the state dir and cgroup, hand stage 1 its config, drive the container's processes through
the sync protocol, run the runtime-namespace hooks, and leave the init waiting on exec.fifo.

On any failure everything made so far is undone: the init is killed and reaped, the cgroup
removed, the state directory deleted. Nothing is left behind.
"""

from __future__ import annotations

import os

from pyruntime.container import state as st
from pyruntime.container.status import CREATED, CREATING, start_time
from pyruntime.errors import ConfigError, RuntimeFailure
from pyruntime.linux import syscalls as sc
from pyruntime.log import debug


class Created:
    """What `create` leaves for `run`: the container dir (still locked) and its record."""

    def __init__(self, cdir: st.ContainerDir, record: dict, spec) -> None:
        self.cdir = cdir
        self.record = record
        self.spec = spec


def _check_for_create(spec, bundle: str) -> str:
    if spec.process is None:
        raise ConfigError("config.json: /process: process is required to create a container")
    if spec.root is None or not spec.root.path:
        raise ConfigError("config.json: /root: root.path is required to create a container")
    if spec.linux is None:
        raise ConfigError("config.json: /linux: linux is required on this platform")
    if not any(n.type == "mount" for n in spec.linux.namespaces or ()):
        raise ConfigError("config.json: /linux/namespaces: a mount namespace is required")
    if spec.linux.net_devices and not _private_netns(spec.linux.namespaces):
        # runc's wording; moving a device "into" the host's namespace would rename host devices
        raise ConfigError("config.json: /linux/netDevices: unable to move network devices without "
                          "a private network namespace")
    root = spec.root.path
    rootfs = root if os.path.isabs(root) else os.path.join(bundle, root)
    rootfs = os.path.realpath(rootfs)
    if not os.path.isdir(rootfs):
        raise ConfigError(f"config.json: /root/path: rootfs {rootfs!r} does not exist or is not a directory")
    return rootfs


def _private_netns(namespaces) -> bool:
    """A new network namespace, or one joined by path that is not our own."""
    for n in namespaces or ():
        if n.type != "network":
            continue
        if not n.path:
            return True
        try:
            return os.stat(n.path).st_ino != os.stat("/proc/self/ns/net").st_ino
        except OSError:
            return True  # the join reports the bad path
    return False


def create(ctx, cid: str, *, bundle: str | None, pid_file: str | None = None,
           console_socket: str | None = None, preserve_fds: int = 0, no_pivot: bool = False,
           no_new_keyring: bool = False, keep_locked: bool = False, extra_seccomp=None) -> Created:
    st.validate_id(cid)
    bundle = os.path.abspath(bundle or os.getcwd())
    if not os.path.isdir(bundle):
        raise RuntimeFailure(f"bundle {bundle!r}: no such directory")
    undo = _Undo()
    chan = None
    try:
        chan = _fork_stage1(ctx, undo)
        created = _create(ctx, cid, bundle, chan, undo, pid_file=pid_file, console_socket=console_socket,
                          preserve_fds=preserve_fds, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                          extra_seccomp=extra_seccomp)
    except BaseException:
        undo.run()
        raise
    finally:
        if chan is not None:
            chan.close()
    if not keep_locked:
        created.cdir.close()
    return created


def _fork_stage1(ctx, undo: "_Undo"):
    """Fork stage 1 before anything else (container.init.stage1): it imports what it needs
    while this process validates and prepares. Returns our end of the sync channel."""
    from pyruntime.container.sync import Channel

    parent, child = Channel.pair()
    # The init is a grandchild; as a child subreaper we inherit it when stage-1 exits, so
    # `run` can wait for it. After we exit it is re-parented to our caller's subreaper
    # (conmon, containerd-shim), which is what those callers expect.
    sc.set_child_subreaper()
    me = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            parent.close()
            from pyruntime.container.init import stage1

            stage1(child, parent=me, rootless=ctx.rootless)
        finally:
            os._exit(1)
    undo.pids.append(pid)
    child.close()
    return parent


def _create(ctx, cid: str, bundle: str, chan, undo: "_Undo", *, pid_file, console_socket,
            preserve_fds, no_pivot, no_new_keyring, extra_seccomp) -> Created:
    from pyruntime.spec import load_bundle

    loaded = load_bundle(bundle)
    debug("create: config validated")
    from pyruntime.container import seal

    seal.confirm(loaded.raw)
    spec = loaded.spec
    if extra_seccomp is not None:
        spec = extra_seccomp(spec)
    rootfs = _check_for_create(spec, bundle)

    store = st.Store(ctx.root)
    cdir = undo.cdir = store.create(cid)
    me = os.getpid()
    record = {
        "ociVersion": spec.oci_version,
        "id": cid,
        "status": CREATING,
        "pid": 0,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": st.rfc3339_now(),
        "owner": os.geteuid(),
        "annotations": dict(spec.annotations or {}),
        "creator": [me, start_time(me)],
        "config_digest": loaded.digest,
        "config": loaded.raw,
        "rootless": ctx.rootless,
        "no_new_keyring": no_new_keyring,  # exec'd processes join _ses.<id> unless set
    }
    cdir.write(record)
    _spawn(ctx, cid, cdir, record, spec, rootfs, bundle, undo, chan, console_socket=console_socket,
           preserve_fds=preserve_fds, no_pivot=no_pivot, no_new_keyring=no_new_keyring)
    record["status"] = CREATED
    record.pop("creator", None)
    cdir.write(record)
    if pid_file:
        st.write_pid_file(pid_file, record["pid"])
    return Created(cdir, record, spec)


class _Undo:
    """Tear down a half-created container: kill, reap, cgroup, state dir (once made)."""

    def __init__(self) -> None:
        self.cdir: st.ContainerDir | None = None
        self.pids: list[int] = []
        self.cgroup = None

    def run(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, 9)  # SIGKILL
            except ProcessLookupError:
                pass
        for pid in self.pids:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        if self.cgroup is not None:
            try:
                self.cgroup.destroy()
            except Exception as e:  # noqa: BLE001 - report, keep cleaning
                from pyruntime.log import warn

                warn(f"removing cgroup: {e}")
        if self.cdir is not None:
            self.cdir.remove()
            self.cdir.close()


def _spawn(ctx, cid, cdir, record, spec, rootfs, bundle, undo: _Undo, parent, *, console_socket,
           preserve_fds, no_pivot, no_new_keyring) -> None:
    from pyruntime.container.init import InitConfig
    from pyruntime.linux import namespaces as ns

    linux = spec.linux
    join, new_flags = ns.split(linux.namespaces)
    rootless = ctx.rootless
    if new_flags & sc.CLONE_NEWUSER or "user" in join:
        pass
    elif rootless:
        raise ConfigError("config.json: /linux/namespaces: rootless containers require a user namespace")

    # cgroup: create and set limits before any process joins (cpuset needs cpus/mems first).
    cgroup = None
    from pyruntime import cgroups

    cgroup = cgroups.manager_for(cid, linux.cgroups_path, rootless=rootless)
    if cgroup is not None:
        undo.cgroup = cgroup
        # Recorded before it exists: a create killed from here on leaves a state that
        # `delete` can clean up completely.
        record["cgroup"] = cgroup.to_state()
        record["freezer_state"] = cgroup.freezer_state_file()
        cdir.write(record)
        if rootless:
            cgroup.create()  # what it may skip (no access) must be known here, for set()
        # else stage 1 makes the directories as it joins them (apply): cgroupfs mkdir waits for
        # cgroup_mutex, which the warm-up's migration holds through its grace period
        # (cgroups/warmup.py); stage 1 waits there while it imports, the parent goes on.

    seccomp_filter = None
    if linux.seccomp is not None:
        from pyruntime.linux import seccomp
        seccomp_filter = seccomp.compile_filter(linux.seccomp)

    # 0622 without the umask (as runc), owned by the container's root: the init opens it for
    # writing after it has become the container's user.
    old = os.umask(0)
    try:
        os.mkfifo(cdir.fifo, 0o622)
    finally:
        os.umask(old)
    os.chown(cdir.fifo, *_container_root_ids(linux))
    fifo_fd = os.open(cdir.fifo, os.O_PATH | os.O_CLOEXEC)
    console_sock = None
    if spec.process.terminal:
        from pyruntime.linux import console

        console_sock = console.connect(console_socket)
    mount_fds = {}
    if any(m.uid_mappings or m.gid_mappings or (m.options and ("idmap" in m.options or "ridmap" in m.options))
           for m in spec.mounts or ()):
        # Idmapped mounts are made here, in the initial user namespace: inside the
        # container's, the kernel refuses to idmap a filesystem that namespace does not own.
        from pyruntime.linux.rootfs import open_idmapped_mounts

        mount_fds = open_idmapped_mounts(spec, bundle=bundle)
    join_fds = ns.open_join_fds(join)
    cfg = InitConfig(cid=cid, spec=spec, rootfs=rootfs, bundle=bundle, join_fds=join_fds,
                     new_ns_flags=new_flags, cgroup=cgroup, fifo_fd=fifo_fd,
                     console_sock=console_sock, preserve_fds=preserve_fds, no_pivot=no_pivot,
                     no_new_keyring=no_new_keyring, seccomp_filter=seccomp_filter,
                     rootless=rootless, mount_fds=mount_fds)
    pid = undo.pids[0]  # stage 1
    cfg.send(parent)
    debug("create: config sent to stage 1")
    # What comes after the init's pid, loaded while stage 1 waits to join the cgroup.
    if cgroup is not None:
        cgroup.load_controllers()
    from pyruntime.cgroups import warmup

    warmup.finish()
    from pyruntime.hooks import oci_state, run_hooks
    for _, fd in join_fds:
        os.close(fd)
    for fd in mount_fds.values():
        os.close(fd)
    if console_sock is not None:
        console_sock.close()
    try:
        if new_flags & sc.CLONE_NEWUSER:
            parent.expect("userns", what="while creating the user namespace")
            ns.write_id_maps(pid, linux.uid_mappings or (), linux.gid_mappings or (), rootless=rootless)
            parent.send_to_child("userns-ok")
        msg, _ = parent.expect("pid")
        init_pid = int(msg["pid"])
        debug(f"create: stage 1 forked the init, pid {init_pid}")
        undo.pids.insert(0, init_pid)
        _reap(pid)
        undo.pids.remove(pid)
        record["pid"] = init_pid
        record["init_start_time"] = start_time(init_pid)
        if cgroup is not None:
            # Limits go on once the init is inside (runc's procReady order): a pids.max of 0
            # or 1 must not stop the runtime's own forks. Meanwhile the init mounts the rootfs
            # and makes its device nodes (as runc's does before its limits), unless prestart or
            # createRuntime hooks must run first; createContainer hooks wait for this.
            cgroup.set(linux.resources, linux_devices=linux.devices or ())
            debug("create: cgroup limits set")
            record["cgroup"] = cgroup.to_state()
        cdir.write(record)
        if linux.net_devices:
            from pyruntime.linux.network import move_net_devices

            move_net_devices(linux.net_devices, init_pid)
        hook_state = oci_state(record, CREATING)
        if spec.hooks is not None:
            run_hooks(spec.hooks.prestart, hook_state, kind="prestart")
            run_hooks(spec.hooks.create_runtime, hook_state, kind="createRuntime")
        parent.send_to_child("go")  # the init builds its hooks' state itself: annotations may not fit a datagram
        while True:
            msg, _ = parent.expect_any(("ready", "seccomp-fd"))
            if msg["type"] == "ready":
                debug("create: init ready")
                break
            _forward_seccomp_fd(linux.seccomp, msg, record, init_pid)
            parent.send_to_child("seccomp-fd-ok")
    finally:
        parent.close()
        os.close(fifo_fd)


def _container_root_ids(linux) -> tuple[int, int]:
    """Host uid/gid of the container's root (itself, without a user namespace mapping)."""
    def host_id(maps, default):
        for m in maps or ():
            if m.container_id <= 0 < m.container_id + m.size:
                return m.host_id - m.container_id
        return default
    return host_id(linux.uid_mappings, os.geteuid()), host_id(linux.gid_mappings, os.getegid())


def _forward_seccomp_fd(seccomp_spec, msg: dict, record: dict, pid: int) -> None:
    """Copy the child's seccomp listener fd (pidfd_getfd) and send it to listenerPath."""
    from pyruntime.hooks import oci_state
    from pyruntime.linux import seccomp

    fd = seccomp.fetch_notify_fd(pid, int(msg["fd"]))
    try:
        state = oci_state(record, CREATING)
        state["pid"] = pid
        seccomp.send_to_listener(seccomp_spec.listener_path, fd, state, seccomp_spec.listener_metadata)
    finally:
        os.close(fd)


def _reap(pid: int) -> None:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return
