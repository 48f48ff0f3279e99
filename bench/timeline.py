#!/usr/bin/env python3
"""Where the time of one `create` (or `exec`) goes, across the processes it forks.

    /opt/pyruntime/venv/bin/python bench/timeline.py [--command create|exec] [--rounds 20] [--gap 0]

Runs the command with `--debug --log FILE`: the parent, stage 1, the init (or exec's children)
write their debug lines, each with a microsecond timestamp, through one inherited fd. Prints the
median offset of every line from the moment the command was spawned, in order, and the median
total (until the command was reaped). The first line's offset includes the interpreter's start.
`--gap MS` sleeps before each round, so each command pays the kernel's cgroup-join wait
(bench/README.md). pyruntime only; the same harness and bundles as bench/run.py.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from calendar import timegm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Harness, become_subreaper  # noqa: E402

LINE = re.compile(r'^time="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})Z" level=debug msg="(.*)"$')


def parse(path: str) -> list[tuple[str, float]]:
    """(message, unix time) of every debug line, in file order."""
    out = []
    with open(path) as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if m:
                t = timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) + int(m.group(2)) / 1e6
                out.append((re.sub(r"\bpid \d+", "pid N", m.group(3)), t))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--command", choices=("create", "exec"), default="create")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.0, help="ms of quiet before each round")
    ap.add_argument("--rootfs", default=None, help="busybox rootfs (default: build one)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("timeline: run as root")
    become_subreaper()
    h = Harness.setup(["pyruntime"], {}, rootfs=a.rootfs, timeout=30,
                      log=lambda m: print(m, file=sys.stderr))
    offsets: dict[str, list[float]] = {}
    totals: list[float] = []
    try:
        sleeper = None
        if a.command == "exec":
            sleeper = h.start_sleeper("pyruntime", "timeline")[0]
        for i in range(a.rounds + 1):  # the first round warms the caches, and is dropped
            time.sleep(a.gap / 1000)
            log = os.path.join(h.workdir, "tmp", f"timeline-{i}.log")
            if a.command == "create":
                cid = h.new_id("timeline", "pyruntime")
                args = ("create", "--bundle", h.bundle(cid, ["true"]), cid)
            else:
                args = ("exec", sleeper, "true")
            t0 = time.time()
            r = h.cmd("pyruntime", "--debug", "--log", log, *args)
            if not r.ok:
                raise SystemExit(f"timeline: {r.describe()}")
            if a.command == "create":
                h.force_delete("pyruntime", cid)
            if i == 0:
                continue
            totals.append(r.wall_ms)
            seen = set()
            for msg, t in parse(log):
                if msg not in seen:  # the first of repeated lines
                    seen.add(msg)
                    offsets.setdefault(msg, []).append((t - t0) * 1000)
    finally:
        problems = h.cleanup()
        for p in problems:
            print(f"timeline: cleanup: {p}", file=sys.stderr)
    print(f"{a.command}: median of {a.rounds} rounds, ms after the spawn (gap {a.gap:g} ms)")
    for msg, v in sorted(offsets.items(), key=lambda kv: statistics.median(kv[1])):
        note = "" if len(v) == a.rounds else f"  ({len(v)} of {a.rounds} rounds)"
        print(f"  {statistics.median(v):7.1f}  {msg}{note}")
    print(f"  {statistics.median(totals):7.1f}  (reaped)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
