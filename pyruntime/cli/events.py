"""pyruntime events [--stats] [--interval D] ID: runc's events stream (stats and OOM)."""

from pyruntime import jsonio
import sys
import time

from pyruntime.cli._flags import Flag, one_id, parse
from pyruntime.errors import RuntimeFailure, UsageError

FLAGS = [Flag("interval", "str", "5s", help="set the stats collection interval"),
         Flag("stats", help="display the container's stats then exit"), Flag("help,h")]


def parse_duration(text: str) -> float:
    import re

    total, pos = 0.0, 0
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise UsageError(f"invalid duration {text!r}")
    return total


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="events")
    from pyruntime.container.lifecycle import cgroup_of, load

    cid = one_id(rest, "events")
    interval = parse_duration(opts.interval)
    if interval <= 0:
        raise UsageError("duration interval must be greater than 0")
    cdir, record, stat = load(ctx, cid, lock=False)
    cdir.close()
    if stat == "stopped":
        raise RuntimeFailure(f"container with id {cid} is not running")
    mgr = cgroup_of(record)
    if mgr is None:
        raise RuntimeFailure("cannot collect statistics of a container without cgroups")

    def emit(ev: dict) -> None:
        sys.stdout.write(jsonio.dumps(ev) + "\n")
        sys.stdout.flush()

    if opts.stats:
        emit({"type": "stats", "id": cid, "data": mgr.stats()})
        return 0
    ooms = mgr.oom_kill_count()
    next_stats = time.monotonic()
    while True:
        _, _, stat = load(ctx, cid, lock=False)
        if stat == "stopped":
            return 0
        n = mgr.oom_kill_count()
        if n > ooms:
            emit({"type": "oom", "id": cid})
            ooms = n
        now = time.monotonic()
        if now >= next_stats:
            emit({"type": "stats", "id": cid, "data": mgr.stats()})
            next_stats = now + interval
        time.sleep(min(0.2, interval))
