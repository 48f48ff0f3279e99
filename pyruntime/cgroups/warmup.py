"""Start the kernel's wait for the next cgroup migration early, in the background.

Moving a process between cgroups takes the global cgroup_threadgroup_rwsem for writing, and the
first writer after a quiet spell waits for an RCU grace period (the rwsem's rcu_sync switching
readers to their slow path): ~12 ms on this kind of machine, for runc too, and the largest single
wait in `create` and `exec`. Later writers within about one grace period of the last one do not
wait. So `create` and `exec` start that wait as soon as they know they will join a cgroup: a
thread writes our own pid into our own cgroup (a migration that moves nothing, but takes the
rwsem as every migration does) while the main thread validates, imports and prepares; when the
container's stage 1 joins its cgroup a few milliseconds later, the readers are already in slow
mode and the join is immediate (or waits only for the rest of the same grace period, while it
imports what it needs in a thread of its own). The thread only writes to a file: the fork of
stage 1 need not wait for it (the child has none of it); `finish()` reaps it later.

The migration holds cgroup_mutex through its wait, as every migration does: cgroupfs mkdirs and
writes wait with it. So the CLI starts it as early as it can (right after the CVE-2019-5736 seal
decision, which may still re-execute the command), and `create` leaves the cgroup mkdirs to
stage 1. Measured in A/B runs: run -4 to -8 ms, exec -4 to -7 ms; started after the cgroup was
made, it gained nothing.
"""

from __future__ import annotations

import os

_thread = None  # the Background running the migration, while one runs


def start(root: str = "/sys/fs/cgroup") -> None:
    """Start the background no-op migration (once; without privileges it fails quietly)."""
    global _thread
    if _thread is None:
        from pyruntime.background import Background

        _thread = Background(lambda: _rewrite_own_cgroup(root))


def finish() -> None:
    """Wait until the thread is gone (to be tidy: nothing depends on its result)."""
    global _thread
    if _thread is not None:
        _thread.join()
        _thread = None


def _rewrite_own_cgroup(root: str) -> None:
    """Write our pid into the cgroup.procs of the cgroup we are in: unified first, else the first
    v1 hierarchy that is mounted under root. Failing is fine: it is only an optimisation."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in sorted(lines, key=lambda ln: not ln.startswith("0::")):
        _, ctrls, path = line.split(":", 2)
        if ctrls == "":
            candidates = (os.path.join(root, "unified"), root)
        else:
            candidates = (os.path.join(root, c.replace("name=", "")) for c in ctrls.split(","))
        for mnt in candidates:
            procs = os.path.join(mnt, path.lstrip("/"), "cgroup.procs")
            try:
                fd = os.open(procs, os.O_WRONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                os.write(fd, str(os.getpid()).encode())
                return
            except OSError:
                continue
            finally:
                os.close(fd)
