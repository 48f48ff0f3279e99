"""pyruntime create [--bundle B] [--pid-file F] [--console-socket S] [--preserve-fds N]
[--no-pivot] [--no-new-keyring] ID"""

from pyruntime.cli._flags import Flag, parse, usage

FLAGS = [
    Flag("bundle,b", "str", "", help="path to the root of the bundle directory, defaults to the current directory"),
    Flag("console-socket", "str", "", help="path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    Flag("pid-file", "str", "", help="specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container"),
    Flag("preserve-fds", "int", 0, help="pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"),
    Flag("help,h", help="show help"),
]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="create")
    if opts.help:
        print(usage("create", "[command options] <container-id>", FLAGS, "create a container"), end="")
        return 0
    cid = one_id(rest, "create")
    from pyruntime.container.create import create

    create(ctx, cid, bundle=opts.bundle, pid_file=opts.pid_file, console_socket=opts.console_socket,
           preserve_fds=preserve_fds(opts.preserve_fds), no_pivot=opts.no_pivot,
           no_new_keyring=opts.no_new_keyring)
    return 0


def one_id(rest, command):
    from pyruntime.errors import UsageError

    if len(rest) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument(s)')
    return rest[0]


def preserve_fds(n: int) -> int:
    import os

    listen = os.environ.get("LISTEN_FDS")
    extra = int(listen) if listen and listen.isdigit() else 0
    return max(0, n) + extra
