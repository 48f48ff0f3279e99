"""pyruntime list [-q] [--format table|json]"""

from pyruntime import jsonio
import sys

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import UsageError

FLAGS = [Flag("format,f", "str", "table", help="select one of: table or json"),
         Flag("quiet,q", help="display only container IDs"), Flag("help,h")]


def collect(ctx) -> list[dict]:
    from pyruntime.container import state as st
    from pyruntime.container.status import status

    store = st.Store(ctx.root)
    out = []
    for cid in store.ids():
        d = st.ContainerDir(cid, store.path(cid))
        try:
            record = d.read()
        except Exception:  # noqa: BLE001 - a container being deleted right now
            continue
        stat = status(record, d.fifo)
        out.append({
            "ociVersion": record.get("ociVersion", ""),
            "id": cid,
            "pid": record.get("pid", 0) if stat != "stopped" else 0,
            "status": stat,
            "bundle": record.get("bundle", ""),
            "rootfs": record.get("rootfs", ""),
            "created": record.get("created", ""),
            "annotations": record.get("annotations") or {},
            "owner": _owner(record.get("owner", 0)),
        })
    return out


def _owner(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"#{uid}"


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="list")
    items = collect(ctx)
    if opts.quiet:
        sys.stdout.write("".join(i["id"] + "\n" for i in items))
        return 0
    if opts.format == "json":
        sys.stdout.write(jsonio.dumps(items or None) + "\n")
        return 0
    if opts.format != "table":
        raise UsageError(f"invalid format option {opts.format!r}")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for i in items:
        rows.append((i["id"], str(i["pid"]), i["status"], i["bundle"], i["created"], i["owner"]))
    widths = [max(len(r[c]) for r in rows) for c in range(6)]
    for r in rows:
        sys.stdout.write("".join(r[c].ljust(widths[c] + 4) if c < 5 else r[c] for c in range(6)).rstrip() + "\n")
    return 0
