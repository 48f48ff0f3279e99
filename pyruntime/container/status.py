"""Container status from the state record and the live system: creating, created, running,
paused, stopped. A recorded init pid counts only while /proc/<pid>/stat shows the same start
time (pid reuse) and the process is not a zombie."""

from __future__ import annotations

import os

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[19])


def start_time(pid: int) -> int | None:
    st = proc_stat(pid)
    return st[1] if st else None


def init_alive(state: dict) -> bool:
    pid = state.get("pid") or 0
    if pid <= 0:
        return False
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return st[1] == state.get("init_start_time")


def frozen(state: dict) -> bool:
    path = state.get("freezer_state")
    if not path:
        return False
    try:
        with open(path) as f:
            data = f.read()
    except OSError:
        return False
    if path.endswith("cgroup.events"):
        return "frozen 1" in data
    return data.strip() in ("FROZEN", "FREEZING")


def creator_alive(state: dict) -> bool:
    c = state.get("creator")
    if not c:
        return False
    st = proc_stat(c[0])
    return st is not None and st[0] not in ("Z", "X") and st[1] == c[1]


def status(state: dict, fifo_path: str) -> str:
    if state.get("status") == CREATING:
        # A create still in progress; if its process died, what it left is stopped.
        return CREATING if creator_alive(state) else STOPPED
    if not state.get("pid"):
        return STOPPED
    if not init_alive(state):
        return STOPPED
    if os.path.exists(fifo_path):
        return CREATED
    if frozen(state):
        return PAUSED
    return RUNNING
