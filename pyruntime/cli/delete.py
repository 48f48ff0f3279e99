"""pyruntime delete [--force] ID: remove a stopped (or, with --force, any) container."""

from pyruntime.cli._flags import Flag, one_id, parse

FLAGS = [Flag("force,f", help="Forcibly deletes the container if it is still running (uses SIGKILL)"),
         Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="delete", interspersed=True)
    from pyruntime.container.lifecycle import delete

    delete(ctx, one_id(rest, "delete"), force=opts.force)
    return 0
