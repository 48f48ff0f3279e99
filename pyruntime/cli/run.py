"""pyruntime run [--bundle B] [--detach] [--keep] [--pid-file F] [--console-socket S] ID

create + start; in the foreground, wait for the container, forward signals to it, and exit
with its status (128+N when killed by signal N), then delete it unless --keep."""

import os

from pyruntime.cli._flags import Flag, one_id, parse, preserve_fds
from pyruntime.cli.create import FLAGS as CREATE_FLAGS, monitor_hook

FLAGS = CREATE_FLAGS[:-1] + [
    Flag("detach,d", help="detach from the container's process"),
    Flag("keep", help="do not delete the container after it exits"),
    Flag("help,h"),
]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="run")
    cid = one_id(rest, "run")
    from pyruntime.container.create import create
    from pyruntime.container.lifecycle import _poststart, destroy, release_init

    console = opts.console_socket or None
    proxy = None
    if not opts.detach and not console:
        if _wants_terminal(opts.bundle):
            from pyruntime.cli._tty import ConsoleProxy

            proxy = ConsoleProxy()
            console = proxy.child_socket
    created = create(ctx, cid, bundle=opts.bundle, pid_file=opts.pid_file, console_socket=console,
                     preserve_fds=preserve_fds(opts.preserve_fds), no_pivot=opts.no_pivot,
                     no_new_keyring=opts.no_new_keyring, keep_locked=True,
                     extra_seccomp=monitor_hook(opts.monitor))
    cdir, record = created.cdir, created.record
    try:
        if proxy is not None:
            proxy.receive_master()
        release_init(cdir, record)
        if record.get("config", {}).get("hooks", {}).get("poststart"):
            _poststart(record)  # a failure destroys the container (spec lifecycle step 9)
    except BaseException:
        destroy(record, cdir, "created")
        cdir.close()
        raise
    cdir.close()
    if opts.detach:
        return 0
    from pyruntime.container.foreground import wait_foreground

    code = wait_foreground(record["pid"], proxy)
    if not opts.keep:
        from pyruntime.container.lifecycle import delete

        delete(ctx, cid, force=True)
    return code


def _wants_terminal(bundle: str) -> bool:
    """A cheap look at process.terminal (create validates the config properly)."""
    from pyruntime import jsonio

    try:
        with open(os.path.join(os.path.abspath(bundle or os.getcwd()), "config.json"), "rb") as f:
            return bool((jsonio.loads(f.read()).get("process") or {}).get("terminal"))
    except (OSError, ValueError, AttributeError):
        return False
