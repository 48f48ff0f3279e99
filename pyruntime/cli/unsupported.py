"""checkpoint/restore: CRIU does not work on this kernel (criu check fails); refuse clearly."""

from pyruntime.errors import Unsupported


def run(ctx, argv):
    raise Unsupported(f"{ctx.command} is not supported by pyruntime (no CRIU support)")
