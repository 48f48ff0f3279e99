"""pyruntime pause ID (alias: freeze): freeze every process of the container's cgroup."""

from pyruntime.cli._flags import Flag, one_id, parse
from pyruntime.errors import RuntimeFailure, WrongState


def run(ctx, argv):
    _, rest = parse([Flag("help,h")], argv, command=ctx.command)

    set_frozen(ctx, one_id(rest, ctx.command), True)
    return 0


def set_frozen(ctx, cid: str, freeze: bool) -> None:
    from pyruntime.container.lifecycle import cgroup_of, load
    from pyruntime.container.status import CREATED, PAUSED, RUNNING

    cdir, record, stat = load(ctx, cid)
    with cdir:
        want = (RUNNING, CREATED) if freeze else (PAUSED,)
        if stat not in want:
            raise WrongState("container not running" if freeze else "container not paused")
        mgr = cgroup_of(record)
        if mgr is None or not mgr.paths():
            raise RuntimeFailure("cannot pause or resume a container without cgroups (rootless on cgroup v1)")
        if freeze:
            mgr.freeze()
        else:
            mgr.thaw()
