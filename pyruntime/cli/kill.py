"""pyruntime kill [--all] ID [SIGNAL]: SIGNAL is a name (KILL, SIGKILL) or number; default TERM."""

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import UsageError

FLAGS = [Flag("all,a", help="send the specified signal to all processes inside the container"),
         Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="kill", interspersed=True)
    if not 1 <= len(rest) <= 2:
        raise UsageError('"kill" requires a minimum of 1 and a maximum of 2 arguments')
    from pyruntime.container.lifecycle import kill, parse_signal

    sig = parse_signal(rest[1] if len(rest) == 2 else "SIGTERM")
    kill(ctx, rest[0], sig, all_procs=opts.all)
    return 0
