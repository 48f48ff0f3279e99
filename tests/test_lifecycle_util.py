"""Helpers for the lifecycle/exec/process/namespace/console/hooks tests (no tests here).

A created or detached container keeps the stdio of the command that created it (as with
runc), so `create` and `run --detach` must not get pipes the test then reads to EOF: detached()
runs them with stdout/stderr on files.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

RUNC = "/usr/sbin/runc"


def detached(rt, *args: str, glob: tuple[str, ...] = (), timeout: float = 60,
             env: dict | None = None, pass_fds=(), cmd: list[str] | None = None
             ) -> subprocess.CompletedProcess:
    """Run a pyruntime command whose container outlives it; stdout/stderr go to files.
    cmd=[RUNC] runs runc instead, with a --root of its own."""
    tag = uuid.uuid4().hex[:8]
    out, err = os.path.join(rt.tmp, f"out-{tag}"), os.path.join(rt.tmp, f"err-{tag}")
    root = rt.root if cmd is None else os.path.join(rt.tmp, "runc-state")
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run((cmd or rt.cmd) + ["--root", root, *glob, *args], stdout=o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=env, pass_fds=pass_fds)
    with open(out) as o, open(err) as e:
        return subprocess.CompletedProcess(args, r.returncode, o.read(), e.read())


def create(rt, bundle: str, cid: str, *extra: str, check: bool = True, **kw):
    r = detached(rt, "create", "--bundle", bundle, *extra, cid, **kw)
    if check:
        assert r.returncode == 0, f"create failed: {r.stderr}"
    return r


def run_detached(rt, bundle: str, cid: str, *extra: str, check: bool = True, **kw):
    r = detached(rt, "run", "--detach", "--bundle", bundle, *extra, cid, **kw)
    if check:
        assert r.returncode == 0, f"run --detach failed: {r.stderr}"
    return r


def wait_until(cond, timeout: float = 5.0, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except (FileNotFoundError, ProcessLookupError):
        return []


def status_of(rt, cid: str) -> str | None:
    r = rt.run("state", cid)
    return json.loads(r.stdout)["status"] if r.returncode == 0 else None


def runc(rt, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    """runc with a --root of its own under the test's tmp dir."""
    root = os.path.join(rt.tmp, "runc-state")
    return subprocess.run([RUNC, "--root", root, *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def runc_run(rt, bundle: str, *, timeout: float = 60) -> subprocess.CompletedProcess:
    """`runc run` of the bundle with a distinct id; the container is deleted afterwards."""
    cid = f"runc-{uuid.uuid4().hex[:10]}"
    try:
        return runc(rt, "run", "--bundle", bundle, cid, timeout=timeout)
    finally:
        runc(rt, "delete", "--force", cid)


def pair_bundles(rt, args, edit=None):
    """Two bundles from the same config (distinct cgroupsPaths): one for us, one for runc."""
    return rt.bundle(args, edit=edit), rt.bundle(args, edit=edit)


def status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def mountinfo(text: str) -> dict[str, dict]:
    out = {}
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        a, b = left.split(), right.split()
        out[a[4]] = {"opts": sorted(a[5].split(",")), "fstype": b[0], "source": b[1],
                     "super": sorted(b[2].split(","))}
    return out


def no_pidns(cfg):
    cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]


def write_hook_script(path: str, body: str) -> str:
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body)
    os.chmod(path, 0o755)
    return path


def bundle(rt, args=None, *, edit=None, **kw) -> str:
    """rt.bundle with the rootfs directory itself traversable by every user: the cached rootfs
    is made with mktemp -d (mode 0700), which a non-root container user could not enter."""
    b = rt.bundle(args, edit=edit, **kw)
    rootfs = os.path.join(b, "rootfs")
    if os.path.isdir(rootfs) and kw.get("copy_rootfs", True):
        os.chmod(rootfs, 0o755)
    return b


def public_bundle(rt, args=None, *, edit=None) -> str:
    """A bundle under a world-traversable directory (pytest's tmp dirs are 0700): a user
    namespace's root is an unprivileged host uid that must reach the rootfs. The directory
    is removed by rt's cleanup... of its own: register it with rt.public_dirs."""
    import shutil
    import tempfile

    src = bundle(rt, args, edit=edit)
    top = tempfile.mkdtemp(prefix="pyrt-pub-", dir="/tmp")
    os.chmod(top, 0o755)
    dest = os.path.join(top, os.path.basename(src))
    shutil.move(src, dest)
    cfg_path = os.path.join(dest, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = "rootfs"
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    _PUBLIC_DIRS.append(top)
    return dest


_PUBLIC_DIRS: list[str] = []


def remove_public_dirs() -> None:
    import shutil

    while _PUBLIC_DIRS:
        shutil.rmtree(_PUBLIC_DIRS.pop(), ignore_errors=True)
