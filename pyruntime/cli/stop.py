"""pyruntime stop [--time N] ID [ID...]: SIGTERM to the container's init, SIGKILL to every
process of the container if it has not exited after N seconds (default 10); returns once it has
stopped. A paused container is thawed after the TERM so it can act on it; a created (never
started) one is killed at once. Stopping a stopped container succeeds.

The container's lock is held only to read its state: the waiting goes through a pidfd of the
init (no pid-reuse race), so a foreground `up`/`run` can clean up as soon as the init exits."""

import os
import select
import signal

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import RuntimeFailure, UsageError

FLAGS = [Flag("time,t", "int", 10, help="seconds to wait for the container to stop before killing it"),
         Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="stop", interspersed=True)
    if not rest:
        raise UsageError('"stop" requires a minimum of 1 argument(s)')
    if opts.time < 0:
        raise UsageError("stop: --time must not be negative")
    for cid in rest:
        stop(ctx, cid, opts.time)
    return 0


def _exited(pidfd: int, timeout: float) -> bool:
    r, _, _ = select.select([pidfd], [], [], max(0.0, timeout))
    return bool(r)


def stop(ctx, cid: str, timeout: float, kill_wait: float = 10.0) -> None:
    from pyruntime.container.lifecycle import cgroup_of, load, pidfd_of
    from pyruntime.container.status import CREATED, PAUSED, STOPPED
    from pyruntime.linux.syscalls import pidfd_send_signal

    cdir, record, stat = load(ctx, cid)
    with cdir:
        if stat == STOPPED:
            return
        pidfd = pidfd_of(record)
        if pidfd is None:
            return
    mgr = cgroup_of(record)
    try:
        if stat != CREATED:
            try:
                pidfd_send_signal(pidfd, signal.SIGTERM)
            except ProcessLookupError:
                return
            if stat == PAUSED and mgr is not None:
                mgr.thaw()
            if _exited(pidfd, timeout):
                return
        if mgr is not None and mgr.exists():
            mgr.kill_all(signal.SIGKILL)
        try:
            pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return
        if not _exited(pidfd, kill_wait):
            raise RuntimeFailure(f"container {cid} did not stop after SIGKILL")
    finally:
        os.close(pidfd)
