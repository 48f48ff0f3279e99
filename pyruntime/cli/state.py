"""pyruntime state ID: the OCI state JSON on stdout."""

from pyruntime import jsonio
import sys

from pyruntime.cli._flags import Flag, one_id, parse


def run(ctx, argv):
    _, rest = parse([Flag("help,h")], argv, command="state")
    from pyruntime.container.lifecycle import load

    cdir, record, stat = load(ctx, one_id(rest, "state"), lock=False)
    cdir.close()
    sys.stdout.write(jsonio.dumps(runc_state(record, stat), indent=2) + "\n")
    return 0


def runc_state(record: dict, stat: str) -> dict:
    """runc's `state` output: the OCI state plus rootfs, created and owner."""
    out = {
        "ociVersion": record.get("ociVersion", "1.3.0"),
        "id": record["id"],
        "pid": record.get("pid", 0) if stat != "stopped" else 0,
        "status": stat,
        "bundle": record["bundle"],
        "rootfs": record.get("rootfs", ""),
        "created": record.get("created", ""),
        "owner": "",
    }
    if record.get("annotations"):
        out["annotations"] = record["annotations"]
    return out
