"""pyruntime create [--bundle B] [--pid-file F] [--console-socket S] [--preserve-fds N]
[--no-pivot] [--no-new-keyring] ID"""

import os

from pyruntime.cli._flags import Flag, one_id, parse, preserve_fds, usage

FLAGS = [
    Flag("bundle,b", "str", "", help="path to the root of the bundle directory, defaults to the current directory"),
    Flag("console-socket", "str", "", help="path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    Flag("pid-file", "str", "", help="specify the file to write the process id to"),
    Flag("no-pivot", help="do not use pivot root to jail process inside rootfs"),
    Flag("no-new-keyring", help="do not create a new session keyring for the container"),
    Flag("preserve-fds", "int", 0, help="pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)"),
    Flag("monitor", "str", "", help="SOCKET[:syscall,...]: report the container's syscalls (all, or those listed) to `pyruntime monitor --socket SOCKET`"),
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
           no_new_keyring=opts.no_new_keyring, extra_seccomp=monitor_hook(opts.monitor))
    return 0


def monitor_hook(value: str):
    """--monitor SOCKET[:a,b,c] -> a function adding seccomp notify rules to the spec."""
    if not value:
        return None
    sock, _, names = value.partition(":")
    syscalls = [n for n in names.split(",") if n] or "all"

    def add(spec):
        from pyruntime.linux.seccomp import add_monitor
        from pyruntime.spec.node import evolve

        linux = evolve(spec.linux, seccomp=add_monitor(spec.linux.seccomp, os.path.abspath(sock), syscalls))
        return evolve(spec, linux=linux)
    return add
