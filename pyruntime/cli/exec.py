"""pyruntime exec [flags] ID [COMMAND ARGS...]  or  pyruntime exec --process FILE ID"""

from pyruntime import jsonio

from pyruntime.cli._flags import Flag, parse, preserve_fds
from pyruntime.errors import RuntimeFailure, UsageError

FLAGS = [
    Flag("console-socket", "str", "", help="path to an AF_UNIX socket which will receive the pty master"),
    Flag("cwd", "str", "", help="current working directory in the container"),
    Flag("env,e", "list", help="set environment variables"),
    Flag("tty,t", help="allocate a pseudo-TTY"),
    Flag("user,u", "str", "", help="UID (format: <uid>[:<gid>])"),
    Flag("additional-gids,g", "list", help="additional gids"),
    Flag("process,p", "str", "", help="path to the process.json"),
    Flag("detach,d", help="detach from the container's process"),
    Flag("pid-file", "str", "", help="specify the file to write the process id to"),
    Flag("process-label", "str", "", help="set the asm process label for the process commonly used with selinux"),
    Flag("apparmor", "str", "", help="set the apparmor profile for the process"),
    Flag("no-new-privs", help="set the no new privileges value for the process"),
    Flag("cap,c", "list", help="add a capability to the bounding set for the process"),
    Flag("preserve-fds", "int", 0, help="pass N additional file descriptors to the container"),
    Flag("cgroup", "list", help="run the process in an (existing) sub-cgroup(s)"),
    Flag("ignore-paused", help="allow exec in a paused container"),
    Flag("help,h"),
]

_MAXID = 2**32 - 2


def _decimal(text: str) -> bool:
    """1 to 10 ASCII digits (int() would also take " 2", "+2", "2_0" or non-ASCII digits)."""
    return 1 <= len(text) <= 10 and all("0" <= c <= "9" for c in text)


def parse_user(text: str) -> tuple[int, int | None]:
    """Strictly `uid[:gid]`, decimal, in range (no names, signs, spaces or trailing junk)."""
    u, colon, g = text.partition(":")
    if not _decimal(u) or (colon and not _decimal(g)):
        raise UsageError(f"invalid --user {text!r}: must be <uid>[:<gid>] with numeric ids")
    uid = int(u)
    gid = int(g) if colon else None
    if uid > _MAXID or (gid is not None and gid > _MAXID):
        raise UsageError(f"invalid --user {text!r}: id out of range")
    return uid, gid


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="exec")
    if not rest:
        raise UsageError('"exec" requires a minimum of 1 argument(s)')
    cid, args = rest[0], rest[1:]
    from pyruntime.container.lifecycle import load

    # Loaded (and locked) once: the process is built from the config of the container it joins.
    loaded = load(ctx, cid)
    try:
        proc = _process(loaded[1], args, opts)
    except BaseException:
        loaded[0].close()
        raise
    if opts.tty and opts.process:
        from pyruntime.spec.node import evolve

        proc = evolve(proc, terminal=True)
    console = opts.console_socket or None
    proxy = None
    if proc.terminal and not console and not opts.detach:
        from pyruntime.cli._tty import ConsoleProxy

        proxy = ConsoleProxy()
        console = proxy.child_socket
    from pyruntime.container.exec import exec_in

    return exec_in(ctx, loaded, proc, detach=opts.detach, pid_file=opts.pid_file or None,
                   console_socket=console, preserve_fds=preserve_fds(opts.preserve_fds),
                   sub_cgroup=opts.cgroup[0] if opts.cgroup else None,
                   ignore_paused=opts.ignore_paused, proxy=proxy)


def _process(record: dict, args: list[str], opts):
    """The process to start: --process FILE, or the container's own process with the flags."""
    from pyruntime.spec import load_process

    if opts.process:
        try:
            with open(opts.process, "rb") as f:
                data = jsonio.loads(f.read())
        except OSError as e:
            raise RuntimeFailure(f"open {opts.process}: {e.strerror.lower()}") from None
        except ValueError as e:
            raise RuntimeFailure(f"process.json: invalid JSON: {e}") from None
        return load_process(data)
    if not args:
        raise UsageError("exec args cannot be empty")
    return load_process(_process_from_flags(record["config"]["process"], args, opts))


def _process_from_flags(base: dict, args: list[str], opts) -> dict:
    """runc's newProcess: the container's process as the base, overridden by the flags."""
    p = jsonio.loads(jsonio.dumps(base))
    p["args"] = args
    p["terminal"] = bool(opts.tty)
    p.pop("consoleSize", None)
    if opts.cwd:
        p["cwd"] = opts.cwd
    if opts.env:
        p["env"] = list(p.get("env") or []) + list(opts.env)
    if opts.user:
        uid, gid = parse_user(opts.user)
        p.setdefault("user", {})["uid"] = uid
        if gid is not None:
            p["user"]["gid"] = gid
    if opts.additional_gids:
        gids = []
        for g in opts.additional_gids:
            # as strict as --user (Python's int() would take " 2", "+2" or "2_0")
            if not _decimal(g) or int(g) > _MAXID:
                raise UsageError(f"invalid --additional-gids {g!r}: must be a numeric gid")
            gids.append(int(g))
        p.setdefault("user", {})["additionalGids"] = gids
    if opts.cap:
        caps = p.setdefault("capabilities", {})
        # Only bounding, effective and permitted: never inheritable/ambient (CVE-2022-29162).
        for key in ("bounding", "effective", "permitted"):
            have = list(caps.get(key) or [])
            for c in opts.cap:
                c = c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
                if c not in have:
                    have.append(c)
            caps[key] = have
    if opts.no_new_privs:
        p["noNewPrivileges"] = True
    if opts.apparmor:
        p["apparmorProfile"] = opts.apparmor
    if opts.process_label:
        p["selinuxLabel"] = opts.process_label
    return p
