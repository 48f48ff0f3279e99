"""OCI hooks: each runs with the container state JSON on stdin, its own args/env, and an
optional timeout. A hook that exits without reading stdin does not break the runtime."""

from __future__ import annotations


from pyruntime.errors import RuntimeFailure
from pyruntime import jsonio


def run_hook(hook, state: dict, *, kind: str) -> None:
    import subprocess

    data = jsonio.dumps(state).encode()
    args = list(hook.args) if hook.args else [hook.path]
    env = None  # like Go's exec.Cmd: no env given -> the runtime's environment
    if hook.env is not None:
        env = dict(item.partition("=")[::2] for item in hook.env)
    try:
        proc = subprocess.Popen(args, executable=hook.path, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                close_fds=True, cwd="/")
    except OSError as e:
        raise RuntimeFailure(f"{kind} hook {hook.path}: {e.strerror}") from None
    try:
        out, err = proc.communicate(data, timeout=hook.timeout if hook.timeout else None)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeFailure(f"{kind} hook {hook.path}: timed out after {hook.timeout}s") from None
    if proc.returncode != 0:
        detail = (err or out).decode(errors="replace").strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        how = (f"exit status {proc.returncode}" if proc.returncode > 0
               else f"signal {-proc.returncode}")
        raise RuntimeFailure(f"{kind} hook {hook.path} failed: {how}{tail}")


def run_hooks(hooks, state: dict, *, kind: str, warn_only: bool = False) -> None:
    for hook in hooks or ():
        try:
            run_hook(hook, state, kind=kind)
        except RuntimeFailure as e:
            if not warn_only:
                raise
            from pyruntime.log import warn

            warn(str(e))


def oci_state(state: dict, status: str) -> dict:
    """The runtime-spec state object (state-schema.json) from our state record."""
    out = {
        "ociVersion": state.get("ociVersion", "1.3.0"),
        "id": state["id"],
        "status": status,
        "bundle": state["bundle"],
    }
    if state.get("pid") and status != "stopped":
        out["pid"] = state["pid"]
    elif state.get("pid") and status == "stopped":
        out["pid"] = 0
    ann = state.get("annotations")
    if ann:
        out["annotations"] = ann
    return out
