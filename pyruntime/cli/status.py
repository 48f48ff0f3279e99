"""pyruntime status ID: the container's status as one word (creating, created, running, paused,
stopped) on stdout."""

import sys

from pyruntime.cli._flags import Flag, one_id, parse


def run(ctx, argv):
    _, rest = parse([Flag("help,h")], argv, command="status")
    from pyruntime.container.lifecycle import load

    cdir, _record, stat = load(ctx, one_id(rest, "status"), lock=False)
    cdir.close()
    sys.stdout.write(stat + "\n")
    return 0
