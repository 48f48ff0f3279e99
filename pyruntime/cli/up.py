"""pyruntime up [flags] ROOTFS [flags] [--] [CMD...]

Run a container straight from a rootfs directory: generate a bundle in the state directory
whose root is an overlay (ROOTFS the read-only lower layer, never modified; upper and work dirs
owned by the container, see pyruntime.seed.bundle), create and start it. In the foreground
(default) wait for it, forward signals, exit with its status and remove it with its layers
(unless --keep); with -d print its id and leave it running, its stdout/stderr going to
<bundle>/console.log. Works without root (pyruntime.seed.holder).
"""

from __future__ import annotations

import os
import sys

from pyruntime.cli._flags import Flag, parse, usage
from pyruntime.errors import UsageError

FLAGS = [
    Flag("name,n", "str", "", help="container id (default: a random one, printed with -d)"),
    Flag("detach,d", help="detach: print the id and leave the container running"),
    Flag("share-ipc", help="share the host's IPC namespace (and /dev/shm)"),
    Flag("memory,m", "str", "", help="memory limit, e.g. 64m, 1g (linux.resources.memory.limit)"),
    Flag("cpus", "str", "", help="CPU list, e.g. 0-1: cpuset and the process's CPU affinity"),
    Flag("rt-priority", "int", 0, help="run the process SCHED_RR with this priority (1-99)"),
    Flag("hostname", "str", None, help="the container's hostname (default: its id)"),
    Flag("volume,v", "list", help="SRC:DST[:ro] bind mount (repeatable)"),
    Flag("tty,t", help="allocate a terminal (default: when stdin and stdout are terminals)"),
    Flag("keep", help="foreground: keep the stopped container and its layers (`rm` removes them)"),
    Flag("cgroup-parent", "str", "", help="create the container's cgroup under this cgroup path"),
    Flag("help,h", help="show help"),
]
SYNOPSIS = "[command options] ROOTFS [command options] [--] [CMD...]"


def _parse(argv: list[str]):
    """Flags before and after ROOTFS; everything after `--` or after the first positional that
    follows ROOTFS is the command."""
    opts, rest = parse(FLAGS, argv, command="up")
    if not rest or opts.help:
        return opts, None, []
    rootfs, tail = rest[0], rest[1:]
    if tail and tail[0] == "--":
        return opts, rootfs, tail[1:]
    more, cmd = parse(FLAGS, tail, command="up")
    defaults, _ = parse(FLAGS, [])
    for k, v in more.items():
        if isinstance(v, list):
            opts[k] = opts[k] + v
        elif v != defaults[k]:
            opts[k] = v
    # parse() drops the `--` it stops at; anything after it is the command as written.
    return opts, rootfs, cmd


def run(ctx, argv):
    opts, rootfs_arg, cmd = _parse(argv)
    if opts.help:
        print(usage("up", SYNOPSIS, FLAGS, "run a container straight from a rootfs directory"), end="")
        return 0
    if rootfs_arg is None:
        raise UsageError('"up" requires a ROOTFS directory')
    up = Up(ctx, opts, rootfs_arg, cmd)
    return up.run()


def _undo(*steps) -> None:
    """Run every cleanup step; a failing one is reported and does not stop the others (the
    original error is the one the user sees)."""
    for step in steps:
        try:
            step()
        except Exception as e:  # noqa: BLE001
            from pyruntime.log import warn

            warn(f"cleanup: {e}")


class Up:
    def __init__(self, ctx, opts, rootfs_arg: str, cmd: list[str]) -> None:
        import uuid

        from pyruntime.container.state import validate_id
        from pyruntime.seed.config import parse_cpus, parse_size, parse_volume

        self.ctx = ctx
        self.opts = opts
        lower = os.path.realpath(rootfs_arg)
        if not os.path.isdir(lower):
            raise UsageError(f"rootfs {rootfs_arg!r} is not a directory")
        self.lower = lower
        self.cid = opts.name or uuid.uuid4().hex[:12]
        validate_id(self.cid)
        self.cmd = cmd or ["/bin/sh"]
        self.memory = parse_size(opts.memory) if opts.memory else None
        self.cpus = parse_cpus(opts.cpus) if opts.cpus else None
        if opts.rt_priority and not 1 <= opts.rt_priority <= 99:
            raise UsageError(f"invalid --rt-priority {opts.rt_priority}: SCHED_RR priorities are 1-99")
        self.volumes = tuple(parse_volume(v) for v in opts.volume)
        if opts.detach and opts.tty:
            raise UsageError("up: -d and -t cannot be combined (the terminal would have no reader)")
        self.tty = opts.tty or (not opts.detach and os.isatty(0) and os.isatty(1))
        self.unprivileged = os.geteuid() != 0
        if self.unprivileged and opts.rt_priority:
            import resource

            soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
            if soft != resource.RLIM_INFINITY and soft < opts.rt_priority:
                raise UsageError(f"--rt-priority {opts.rt_priority} without root needs RLIMIT_RTPRIO >= "
                                 f"{opts.rt_priority} (ulimit -r is {soft})")
        parent = opts.cgroup_parent.rstrip("/")
        self.cgroups_path = f"{parent}/{self.cid}" if parent else None

    # --- the steps ---------------------------------------------------------------------------
    def run(self) -> int:
        from pyruntime.container import state as st
        from pyruntime.container.lifecycle import _poststart, destroy, release_init
        from pyruntime.seed import bundle

        if os.path.exists(st.Store(self.ctx.root).path(self.cid)):
            raise UsageError(f"container with id exists: {self.cid}")
        lay = bundle.make(self.ctx.root, self.cid, self.lower)
        holder = None
        mounted = False
        proxy = None
        try:
            if self.unprivileged:
                from pyruntime.seed.holder import Holder

                holder = Holder(lay)
                holder.start()
            else:
                bundle.enter_private_mount_ns()
                bundle.mount_overlay(lay)
                mounted = True
            bundle.write_config(lay, self._config(lay, holder))
            console = None
            if self.tty:
                from pyruntime.cli._tty import ConsoleProxy

                proxy = ConsoleProxy()
                console = proxy.child_socket
            created = self._create(lay, console)
        except BaseException:
            _undo(lambda: holder.stop() if holder is not None else None,
                  lambda: bundle.unmount_overlay(lay) if mounted else None,
                  lambda: bundle.remove(lay.bundle))
            raise
        # The container's mount namespace has its own copy of the overlay now.
        if holder is not None:
            holder.stop()
        if mounted:
            bundle.unmount_overlay(lay)
        cdir, record = created.cdir, created.record
        try:
            if proxy is not None:
                proxy.receive_master()
            release_init(cdir, record)
        except BaseException:
            _undo(lambda: destroy(record, cdir, "created"), cdir.close, lambda: bundle.remove(lay.bundle))
            raise
        cdir.close()
        if record.get("config", {}).get("hooks", {}).get("poststart"):
            _poststart(record)
        if self.opts.detach:
            sys.stdout.write(self.cid + "\n")
            return 0
        from pyruntime.container.foreground import wait_foreground

        code = wait_foreground(record["pid"], proxy)
        if not self.opts.keep and os.path.exists(st.Store(self.ctx.root).path(self.cid)):
            # (gone already: someone ran rm meanwhile, maybe --keep-changes; theirs to decide)
            from pyruntime.container.lifecycle import delete

            delete(self.ctx, self.cid, force=True)
            bundle.remove(lay.bundle)
        return code

    def _config(self, lay, holder) -> dict:
        from pyruntime.seed.config import UpOptions, build

        rt_runtime = None
        if self.opts.rt_priority and not self.unprivileged:
            from pyruntime.seed import rt

            where = rt.cpu_rt_dir(self.cid, self.cgroups_path)
            if where is not None:
                rt_runtime = rt.DEFAULT_RUNTIME_US
                rt.ensure_ancestors(where[0], where[1], rt_runtime)
        return build(UpOptions(
            cid=self.cid, args=tuple(self.cmd), tty=self.tty, hostname=self.opts.hostname,
            memory=self.memory, cpus=self.cpus, rt_priority=self.opts.rt_priority or None,
            rt_runtime=rt_runtime, share_ipc=self.opts.share_ipc, volumes=self.volumes,
            cgroups_path=self.cgroups_path, rootless=self.unprivileged,
            join_user_mnt=(holder.user_ns, holder.mnt_ns) if holder is not None else None,
            annotations=lay.annotations(self.opts.detach)))

    def _create(self, lay, console):
        """create(), with a detached container's stdio on /dev/null and the log file."""
        from pyruntime.container.create import create

        if not self.opts.detach:
            return create(self.ctx, self.cid, bundle=lay.bundle, console_socket=console, keep_locked=True)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            log = os.open(lay.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(null)
            os.close(log)
            return create(self.ctx, self.cid, bundle=lay.bundle, console_socket=None, keep_locked=True)
        finally:
            for fd, s in zip((0, 1, 2), saved):
                os.dup2(s, fd)
                os.close(s)
