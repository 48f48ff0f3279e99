"""pyruntime resume ID (alias: thaw)."""

from pyruntime.cli._flags import Flag, one_id, parse


def run(ctx, argv):
    _, rest = parse([Flag("help,h")], argv, command=ctx.command)
    from pyruntime.cli.pause import set_frozen

    set_frozen(ctx, one_id(rest, ctx.command), False)
    return 0
