"""pyruntime ps [--format table|json] ID [ps options]: processes of the container's cgroup.

`--format json` prints only a JSON array of host pids (containerd parses it)."""

from pyruntime import jsonio
import subprocess
import sys

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import RuntimeFailure, UsageError

FLAGS = [Flag("format,f", "str", "table", help="select one of: table or json"), Flag("help,h")]


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="ps")
    if not rest:
        raise UsageError('"ps" requires a minimum of 1 argument(s)')
    cid, ps_args = rest[0], rest[1:]
    from pyruntime.container.lifecycle import cgroup_of, load

    cdir, record, stat = load(ctx, cid, lock=False)
    cdir.close()
    mgr = cgroup_of(record)
    if mgr is None:
        raise RuntimeFailure("cannot list processes of a container without cgroups")
    pids = sorted(mgr.pids()) if stat != "stopped" else []
    if opts.format == "json":
        # runc's bytes: Go's json.Encoder, no spaces ("[12,34]\n")
        sys.stdout.write(jsonio.dumps(pids, compact=True) + "\n")
        return 0
    if opts.format != "table":
        raise UsageError(f"invalid format option {opts.format!r}")
    out = subprocess.run(["ps"] + (ps_args or ["-ef"]), capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeFailure(f"ps: {out.stderr.strip()}")
    lines = out.stdout.splitlines()
    if not lines:
        return 0
    header = lines[0]
    try:
        col = header.split().index("PID")
    except ValueError:
        raise RuntimeFailure("couldn't find PID field in ps output") from None
    want = set(pids)
    sys.stdout.write(header + "\n")
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > col and fields[col].isdigit() and int(fields[col]) in want:
            sys.stdout.write(line + "\n")
    return 0
