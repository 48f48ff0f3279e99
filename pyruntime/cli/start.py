"""pyruntime start ID: release a created container's init to exec the user process."""

from pyruntime.cli._flags import Flag, one_id, parse, usage

FLAGS = [Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="start")
    if opts.help:
        print(usage("start", "<container-id>", FLAGS, "start a created container"), end="")
        return 0
    from pyruntime.container.lifecycle import start

    start(ctx, one_id(rest, "start"))
    return 0
