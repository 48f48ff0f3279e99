"""start, kill, delete and friends on an existing container (the state machine).

Every operation takes the container's lock, computes the live status, and refuses the wrong
state with runc's wording.
"""

from __future__ import annotations

import os
import select

from pyruntime.container import state as st
from pyruntime.container.status import CREATED, PAUSED, RUNNING, STOPPED, init_alive, status
from pyruntime.errors import RuntimeFailure, WrongState


def load(ctx, cid: str, *, lock: bool = True) -> tuple[st.ContainerDir, dict, str]:
    cdir = st.Store(ctx.root).open(cid, lock=lock)
    try:
        record = cdir.read()
    except BaseException:
        cdir.close()
        raise
    return cdir, record, status(record, cdir.fifo)


def config_spec(record: dict):
    """The spec model of a container, rebuilt from the config saved at create."""
    from pyruntime.spec._model import Spec, build

    return build(Spec, record["config"])


def pidfd_of(record: dict) -> int | None:
    """A pidfd for the init, verified against its start time (no pid-reuse races)."""
    pid = record.get("pid") or 0
    if pid <= 0:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if not init_alive(record):
        os.close(fd)
        return None
    return fd


def start(ctx, cid: str) -> None:
    cdir, record, stat = load(ctx, cid)
    with cdir:
        if stat != CREATED:
            if stat == STOPPED:
                raise WrongState("cannot start a container that has stopped")
            raise WrongState(f"cannot start an already running container" if stat in (RUNNING, PAUSED)
                             else f"cannot start a container in the {stat} state")
        release_init(cdir, record)
        if record.get("config", {}).get("hooks", {}).get("poststart"):
            try:
                _poststart(record)
            except RuntimeFailure:
                destroy(record, cdir, RUNNING)
                raise


def release_init(cdir: st.ContainerDir, record: dict) -> None:
    """Read exec.fifo: the init, blocked opening it for writing, goes on to exec."""
    pidfd = pidfd_of(record)
    if pidfd is None:
        raise WrongState("cannot start a container that has stopped")
    try:
        fd = os.open(cdir.fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        os.close(pidfd)
        raise WrongState("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(pidfd, select.POLLIN)
        while True:
            events = dict(poller.poll())
            if fd in events:
                data = os.read(fd, 16)
                if data:
                    break
            if pidfd in events:
                # The init exited; one last non-blocking read in case it wrote first.
                try:
                    if os.read(fd, 16):
                        break
                except BlockingIOError:
                    pass
                raise RuntimeFailure("container init exited before start")
    finally:
        os.close(fd)
        os.close(pidfd)
    st.remove_quietly(cdir.fifo)
    record["started"] = _now()
    cdir.write(record)


def _now() -> str:
    return st.rfc3339_now()


def _poststart(record: dict) -> None:
    """Run the poststart hooks; a failure raises. The spec (runtime.md lifecycle step 9): "If
    any poststart hook fails, the runtime MUST generate an error, stop the container, and
    continue the lifecycle at step 12" (destroy) -- what runc 1.1 and crun do; callers destroy."""
    from pyruntime.hooks import oci_state, run_hooks

    spec = config_spec(record)
    run_hooks(spec.hooks.poststart, oci_state(record, RUNNING), kind="poststart")


SIGKILL = 9


def _signal_table() -> dict[str, int]:
    # The C module: the `signal` wrapper builds an IntEnum at import (~3 ms on every kill).
    import _signal

    return {k: v for k, v in vars(_signal).items()
            if k.startswith("SIG") and not k.startswith("SIG_") and isinstance(v, int)}


def parse_signal(text: str) -> int:
    """KILL, SIGKILL, 9, RTMIN+3 ... (runc accepts the same forms)."""
    t = text.strip().upper()
    if t.isdigit():
        n = int(t)
        if 0 <= n < 65:
            return n
        raise RuntimeFailure(f"invalid signal: {text}")
    if not t.startswith("SIG"):
        t = "SIG" + t
    table = _signal_table()
    if t in table:
        return table[t]
    for base, sign in (("SIGRTMIN+", 1), ("SIGRTMAX-", -1)):
        if t.startswith(base) and t[len(base):].isdigit():
            n = table[base[:-1]] + sign * int(t[len(base):])
            if table["SIGRTMIN"] <= n <= table["SIGRTMAX"]:
                return n
    raise RuntimeFailure(f"unknown signal {text!r}")


def kill(ctx, cid: str, sig: int, *, all_procs: bool = False) -> None:
    cdir, record, stat = load(ctx, cid)
    with cdir:
        if stat == STOPPED and not all_procs:
            raise WrongState("container not running")
        if all_procs:
            mgr = cgroup_of(record)
            if mgr is not None:
                mgr.kill_all(sig)
                return
            if stat == STOPPED:
                raise WrongState("container not running")
        pidfd = pidfd_of(record)
        if pidfd is None:
            raise WrongState("container not running")
        try:
            from _signal import pidfd_send_signal  # the C module: no ctypes, no IntEnum

            pidfd_send_signal(pidfd, sig)
        except OSError as e:
            raise RuntimeFailure(f"kill container: {e.strerror.lower()}") from None
        finally:
            os.close(pidfd)


def cgroup_of(record: dict):
    data = record.get("cgroup")
    if not data:
        return None
    from pyruntime import cgroups

    return cgroups.manager_from_state(data)


def wait_exit(record: dict, timeout: float | None = None) -> bool:
    pidfd = pidfd_of(record)
    if pidfd is None:
        return True
    try:
        r, _, _ = select.select([pidfd], [], [], timeout)
        return bool(r)
    finally:
        os.close(pidfd)


def delete(ctx, cid: str, *, force: bool = False) -> None:
    try:
        cdir, record, stat = load(ctx, cid)
    except RuntimeFailure as e:
        if not (force and "does not exist" in str(e)):
            raise
        # A directory without state.json: a create or delete killed half-way. Once its lock
        # is free (no live command holds it), nothing else will ever remove it.
        if not st.Store(ctx.root).remove_orphan(cid):
            return
        cdir, record, stat = load(ctx, cid)  # created meanwhile: delete it as asked
    with cdir:
        if stat in (RUNNING, PAUSED) and not force:
            raise WrongState(f"cannot delete container {cid} that is not stopped: {stat}")
        if stat == "creating" and not force:
            raise WrongState(f"cannot delete container {cid} that is being created")
        destroy(record, cdir, stat)


def destroy(record: dict, cdir: st.ContainerDir, stat: str) -> None:
    """Kill whatever is left, remove the cgroup, run poststop hooks, remove the state dir."""
    mgr = cgroup_of(record)
    if stat != STOPPED:
        if mgr is not None:
            try:
                mgr.kill_all(SIGKILL)
            except Exception:  # noqa: BLE001 - fall back to the init pid
                pass
        pidfd = pidfd_of(record)
        if pidfd is not None:
            try:
                from pyruntime.linux.syscalls import pidfd_send_signal

                pidfd_send_signal(pidfd, SIGKILL)
            except OSError:
                pass
            select.select([pidfd], [], [], 10)
            os.close(pidfd)
    if mgr is not None:
        try:
            mgr.destroy()
        except Exception as e:  # noqa: BLE001
            raise RuntimeFailure(f"removing cgroup: {e}") from None
    hooks = record.get("config", {}).get("hooks", {})
    if hooks.get("poststop"):
        from pyruntime.hooks import oci_state, run_hooks

        spec = config_spec(record)
        run_hooks(spec.hooks.poststop, oci_state(record, STOPPED), kind="poststop", warn_only=True)
    cdir.remove()
