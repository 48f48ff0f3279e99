"""pyruntime rm [--force] [--keep-changes] ID [ID...]: delete the container (a running one only
with --force) and remove what `up` generated for it: the bundle with the overlay's upper and
work dirs (<root>/.bundles/<id>). --keep-changes keeps that directory (the upper dir holds the
container's changes) and prints the upper dir's path. `rm` of an id whose state is gone (removed with
`delete`) still removes its leftover bundle."""

import os
import sys

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import NotFound, UsageError

FLAGS = [Flag("force,f", help="kill and remove a running container"),
         Flag("keep-changes", help="keep the overlay's upper dir (and the generated bundle)"),
         Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="rm", interspersed=True)
    if not rest:
        raise UsageError('"rm" requires a minimum of 1 argument(s)')
    for cid in rest:
        rm(ctx, cid, force=opts.force, keep_changes=opts.keep_changes)
    return 0


def rm(ctx, cid: str, *, force: bool, keep_changes: bool) -> None:
    from pyruntime.container import state as st
    from pyruntime.container.lifecycle import delete
    from pyruntime.seed import bundle

    st.validate_id(cid)
    bdir = bundle.bundle_dir(ctx.root, cid)
    if os.path.exists(st.Store(ctx.root).path(cid)):
        delete(ctx, cid, force=force)
    elif not os.path.isdir(bdir):
        if force:
            return
        raise NotFound("container does not exist")
    if not os.path.isdir(bdir):
        return
    if keep_changes:
        sys.stdout.write(os.path.join(bdir, "upper") + "\n")
        return
    bundle.remove(bdir)
