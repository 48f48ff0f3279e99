"""pyruntime inspect ID: all metadata of a container as one JSON object (pyruntime.seed.info):
id, status, pid, the pids of its cgroup, bundle, rootfs and overlay layers, namespaces with their
inode numbers, cgroup path and usage, created/started times, a summary of its config."""

from pyruntime import jsonio
import sys

from pyruntime.cli._flags import Flag, one_id, parse


def run(ctx, argv):
    _, rest = parse([Flag("help,h")], argv, command="inspect")
    from pyruntime.container.lifecycle import load
    from pyruntime.seed.info import inspect

    cdir, record, stat = load(ctx, one_id(rest, "inspect"), lock=False)
    cdir.close()
    sys.stdout.write(jsonio.dumps(inspect(record, stat), indent=2) + "\n")
    return 0
