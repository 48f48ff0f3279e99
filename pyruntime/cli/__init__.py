"""Command line: runc's global flags, then one module per subcommand, imported lazily.

`pyruntime [global flags] COMMAND [flags] ARGS`. Each command module exposes
`run(ctx, argv) -> int`. Only the chosen module is imported, so `state` never pays for the
spec model or the schema validator.
"""

from __future__ import annotations

import os
import sys

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import RuntimeFailure, UsageError
from pyruntime.log import log

# name -> (module, one-line description). Aliases point at the same module.
COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("create", "create a container"),
    "start": ("start", "executes the user defined process in a created container"),
    "run": ("run", "create and run a container"),
    "state": ("state", "output the state of a container"),
    "kill": ("kill", "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "delete": ("delete", "delete any resources held by the container often used with detached container"),
    "list": ("list", "lists containers started by pyruntime with the given root"),
    "ps": ("ps", "ps displays the processes running inside a container"),
    "exec": ("exec", "execute new process inside the container"),
    "pause": ("pause", "pause suspends all processes inside the container"),
    "resume": ("resume", "resumes all processes that have been previously paused"),
    "update": ("update", "update container resource constraints"),
    "events": ("events", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "spec": ("spec", "create a new specification file"),
    "features": ("features", "show the enabled features"),
    "checkpoint": ("unsupported", "checkpoint a running container (not supported)"),
    "restore": ("unsupported", "restore a container from a previous checkpoint (not supported)"),
    # the seed's commands
    "freeze": ("pause", "alias of pause"),
    "thaw": ("resume", "alias of resume"),
    "up": ("up", "run a container straight from a rootfs directory, on an overlay"),
    "stop": ("stop", "stop a container: TERM, then KILL after a grace period"),
    "status": ("status", "print a container's status as one word"),
    "inspect": ("inspect", "print all metadata of a container as JSON"),
    "rm": ("rm", "delete a container and its overlay layers"),
    "mountdev": ("mountdev", "hot-plug a host device node into running containers"),
    "monitor": ("monitor", "syscall monitor: an agent receiving seccomp notify fds"),
}

# The commands whose processes enter a container's pid namespace running this interpreter.
SEALED_COMMANDS = ("create", "run", "exec", "up")

GLOBAL_FLAGS = [
    Flag("debug", help="enable debug logging"),
    Flag("log", "str", "", help="set the log file to write pyruntime logs to (default is '/dev/stderr')"),
    Flag("log-format", "str", "text", help="set the log format ('text' (default), or 'json')"),
    Flag("root", "str", None, help="root directory for storage of container state (this should be located in tmpfs)"),
    Flag("criu", "str", "criu", help="path to the criu binary (unused)"),
    Flag("systemd-cgroup", help="enable systemd cgroup support (not available: no systemd)"),
    Flag("rootless", "str", "auto", help="ignore cgroup permission errors ('true', 'false', or 'auto')"),
    Flag("help,h", help="show help"),
    Flag("version,v", help="print the version"),
]


class Context:
    """Global options shared by every command."""

    def __init__(self, opts) -> None:
        self.debug: bool = opts.debug
        self.log_path: str = opts.log
        self.log_format: str = opts.log_format
        self.systemd_cgroup: bool = opts.systemd_cgroup
        euid = os.geteuid()
        rl = opts.rootless
        if rl == "auto":
            self.rootless = euid != 0
        else:
            self.rootless = rl in ("true", "1")
        if opts.root:
            self.root = os.path.abspath(opts.root)
        elif euid != 0:
            xdg = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{euid}"
            self.root = os.path.join(xdg, "pyruntime")
        else:
            self.root = "/run/pyruntime"


def version_text() -> str:
    from pyruntime import SPEC_VERSION, __version__

    return (f"pyruntime version {__version__}\nspec: {SPEC_VERSION}\n"
            f"python: {sys.version.split()[0]}\n")


def help_text() -> str:
    lines = ["NAME:", "   pyruntime - Open Container Initiative runtime in Python", "",
             "USAGE:", "   pyruntime [global options] command [command options] [arguments...]", "",
             "COMMANDS:"]
    for name, (_, desc) in COMMANDS.items():
        lines.append(f"   {name:<11}{desc}")
    lines += ["", "GLOBAL OPTIONS:"]
    for f in GLOBAL_FLAGS:
        lines.append(f"   --{f.names[0]:<16}{f.help}")
    return "\n".join(lines) + "\n"


def _wants_help(args: list[str]) -> bool:
    """-h/--help before the first positional argument (runc's urfave/cli behaviour)."""
    for a in args:
        if a in ("-h", "--help", "-help"):
            return True
        if a == "--" or not a.startswith("-"):
            return False
    return False


def command_help(cmd: str, desc: str, mod) -> str:
    from pyruntime.cli._flags import usage

    doc = (mod.__doc__ or "").strip().splitlines()
    synopsis = doc[0].split(cmd, 1)[-1].strip() if doc and cmd in doc[0] else "[command options] <container-id>"
    return usage(cmd, synopsis, [f for f in getattr(mod, "FLAGS", []) if f.names[0] != "help"], desc)


def main(argv: list[str] | None = None) -> int:
    """Run one command; from the command line (argv None) this never returns: the process
    exits without the interpreter's teardown, which would add ~5 ms (finalising every module and
    object) to every command for nothing: what must reach stdout/stderr is flushed here, and
    files the commands write are closed by the commands themselves."""
    if argv is not None:
        return _main(argv, from_cli=False)
    # A command makes ~10k objects the collector tracks (most by its imports), nearly none in
    # cycles: at the default threshold (700) it runs a dozen times per command for nothing, and
    # after a fork each run writes to pages shared with the parent (copy-on-write faults).
    # Long-running commands (run, events, monitor) still collect, every 100k allocations.
    # Measured: ~190 fewer page faults and 1-2 ms less CPU per create+start+delete.
    import gc

    gc.set_threshold(100_000, 20, 100)
    rc = _main(sys.argv[1:], from_cli=True)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if rc == 0 and stream is sys.stdout:
                rc = 1
    os._exit(rc)


def _main(argv: list[str], from_cli: bool) -> int:
    try:
        opts, rest = parse(GLOBAL_FLAGS, argv)
    except UsageError as e:
        log.error(str(e))
        return 1
    if opts.log_format not in ("text", "json"):
        log.error(f"invalid log-format: {opts.log_format}")
        return 1
    log.configure(opts.log, opts.log_format, opts.debug)
    if opts.version:
        sys.stdout.write(version_text())
        return 0
    if not rest:
        sys.stdout.write(help_text())
        return 0 if opts.help else 1
    cmd, args = rest[0], rest[1:]
    if cmd == "help":
        sys.stdout.write(help_text())
        return 0
    entry = COMMANDS.get(cmd)
    if entry is None:
        log.error(f"No help topic for '{cmd}'")
        return 1
    try:
        if opts.systemd_cgroup:
            raise RuntimeFailure("systemd cgroup driver requested, but systemd is not running on this host")
        ctx = Context(opts)
        ctx.command = cmd
        if cmd in SEALED_COMMANDS and from_cli:
            # Before anything else (the seal may re-execute the command): container/entering.py
            from pyruntime.container.entering import prepare

            prepare(cmd, args, ctx.root, rootless=ctx.rootless)
        # __import__, not importlib.import_module: importing importlib costs ~0.4 ms per command
        mod = __import__(f"pyruntime.cli.{entry[0]}", fromlist=["run"])
        if _wants_help(args):
            sys.stdout.write(command_help(cmd, entry[1], mod))
            return 0
        return mod.run(ctx, args) or 0
    except RuntimeFailure as e:
        log.error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        raise
    except BaseException as e:  # a bug: still one line, full traceback only with --debug
        if opts.debug:
            import traceback

            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        return 1
