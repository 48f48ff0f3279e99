"""Concurrency and soak: commands racing on one id and on many ids, and many lifecycles in a
row, counting what the host holds before and after (mounts at the test's paths, cgroups below
the test's parent, the test process's open fds, state directories, zombies): zero growth.

PYRUNTIME_SOAK sets the number of lifecycles (default 30; the exec + pause/resume soak runs a
third of it), PYRUNTIME_CONCURRENCY the number of parallel commands (default 50) and
PYRUNTIME_CONCURRENCY_ROUNDS the rounds on one id (default 3).
"""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_lifecycle_util import create, run_detached, wait_until
from test_security_util import assert_clean, clean_output, error_lines, files, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

SOAK = int(os.environ.get("PYRUNTIME_SOAK", "30"))
PARALLEL = int(os.environ.get("PYRUNTIME_CONCURRENCY", "50"))
ROUNDS = int(os.environ.get("PYRUNTIME_CONCURRENCY_ROUNDS", "3"))
STATUSES = {"creating", "created", "running", "paused", "stopped"}


def _shared_rootfs(rt) -> str:
    rootfs = os.path.join(rt.bundle(), "rootfs")
    os.chmod(rootfs, 0o755)
    return rootfs


def _bundle(rt, rootfs: str, args=("sleep", "1000")) -> str:
    def edit(cfg):
        cfg["root"]["path"] = rootfs
    return rt.bundle(list(args), edit=edit, copy_rootfs=False)


def _check_state_output(r) -> None:
    clean_output(r)
    if r.returncode == 0:
        st = json.loads(r.stdout)  # never a half-written state
        assert st["status"] in STATUSES, st
    else:
        assert len(error_lines(r.stderr)) == 1, r.stderr


def _state_file_parses(rt, cid: str) -> None:
    path = os.path.join(rt.root, cid, "state.json")
    try:
        with open(path) as f:
            json.load(f)
    except FileNotFoundError:
        pass


def test_parallel_mixed_commands_on_one_id(rt):
    """PARALLEL commands at once on one id -- create (several bundles), start, kill, delete,
    delete --force, state, exec -- for ROUNDS rounds: serialised by the per-id lock, every
    output one clean line or valid JSON, the state file always whole; one delete --force at the
    end leaves nothing."""
    rootfs = _shared_rootfs(rt)
    before = snapshot(rt)
    rng = random.Random(int(os.environ.get("PYRUNTIME_SEED", "0")) or None)
    for _ in range(ROUNDS):
        cid = rt.new_id("one")
        bundles = [_bundle(rt, rootfs) for _ in range(3)]
        cmds = []
        for i in range(PARALLEL):
            kind = rng.choice(["create", "start", "kill", "delete", "delete-f", "state", "state", "exec"])
            cmds.append({"create": ("create", "--bundle", bundles[i % 3], cid), "start": ("start", cid),
                         "kill": ("kill", cid, "KILL"), "delete": ("delete", cid),
                         "delete-f": ("delete", "--force", cid), "state": ("state", cid),
                         "exec": ("exec", cid, "true")}[kind])
        with ThreadPoolExecutor(PARALLEL) as ex:
            results = list(ex.map(lambda a: (a, files(rt, *a, timeout=120)), cmds))
            # the state file is read while they run, too
            _state_file_parses(rt, cid)
        creates_ok = 0
        for args, r in results:
            clean_output(r)
            if args[0] == "state":
                _check_state_output(r)
            elif args[0] == "exec" and r.returncode > 128 and not r.stderr:
                pass  # the exec'd process was killed by a concurrent kill: 128+N, as runc says
            elif r.returncode != 0:
                assert len(error_lines(r.stderr)) == 1, (args, r.stderr)
            creates_ok += args[0] == "create" and r.returncode == 0
        _state_file_parses(rt, cid)
        _check_state_output(rt.run("state", cid))
        assert rt.run("delete", "--force", cid).returncode == 0
        assert rt.run("state", cid).returncode != 0
    assert_clean(rt, before)


def test_parallel_containers_none_lost(rt):
    """PARALLEL `run --detach` of different ids at once, then PARALLEL `delete --force`: every
    one created, listed, and removed; nothing left."""
    rootfs = _shared_rootfs(rt)
    before = snapshot(rt)
    ids = [rt.new_id("many") for _ in range(PARALLEL)]
    bundles = {cid: _bundle(rt, rootfs) for cid in ids}
    with ThreadPoolExecutor(PARALLEL) as ex:
        res = list(ex.map(lambda cid: files(rt, "run", "--detach", "--bundle", bundles[cid], cid, timeout=120), ids))
    for r in res:
        clean_output(r)
        assert r.returncode == 0, r.stderr
    listed = {c["id"]: c["status"] for c in json.loads(rt.run("list", "--format", "json", check=True).stdout)}
    assert set(ids) <= set(listed), set(ids) - set(listed)
    assert {listed[c] for c in ids} == {"running"}, listed
    with ThreadPoolExecutor(PARALLEL) as ex:
        res = list(ex.map(lambda cid: files(rt, "delete", "--force", cid, timeout=120), ids))
    for r in res:
        clean_output(r)
        assert r.returncode == 0, r.stderr
    assert not json.loads(rt.run("list", "--format", "json", check=True).stdout)  # runc: null
    assert_clean(rt, before)


def test_soak_lifecycles(rt):
    """SOAK lifecycles in a row (create/start/kill/delete, run in the foreground, run --detach
    + delete --force), zero growth of mounts, cgroups, fds, state dirs, zombies."""
    rootfs = _shared_rootfs(rt)
    b_sleep, b_true = _bundle(rt, rootfs), _bundle(rt, rootfs, ("true",))
    # one lifecycle first: whatever is created once (caches, the state root) is not growth
    cid = rt.new_id("warm")
    assert files(rt, "run", "--bundle", b_true, cid).returncode == 0
    before = snapshot(rt)
    for i in range(SOAK):
        cid = rt.new_id("soak")
        kind = i % 3
        if kind == 0:
            create(rt, b_sleep, cid)
            rt.run("start", cid, check=True)
            assert rt.state(cid)["status"] == "running"
            rt.run("kill", cid, "KILL", check=True)
            assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
            rt.run("delete", cid, check=True)
        elif kind == 1:
            r = files(rt, "run", "--bundle", b_true, cid)
            assert r.returncode == 0, r.stderr
        else:
            run_detached(rt, b_sleep, cid)
            rt.run("delete", "--force", cid, check=True)
    assert_clean(rt, before)


def test_soak_exec_pause_resume(rt):
    """SOAK/3 rounds of exec, pause, exec --ignore-paused -d, resume, exec on one container,
    then delete: zero growth."""
    rootfs = _shared_rootfs(rt)
    b = _bundle(rt, rootfs)
    cid = rt.new_id("warm")
    run_detached(rt, b, cid)
    assert files(rt, "exec", cid, "true").returncode == 0
    rt.run("delete", "--force", cid, check=True)
    before = snapshot(rt)
    cid = rt.new_id("ep")
    run_detached(rt, b, cid)
    for _ in range(max(1, SOAK // 3)):
        r = files(rt, "exec", cid, "sh", "-c", "echo hi")
        assert r.returncode == 0 and r.stdout == "hi\n", r.stderr
        rt.run("pause", cid, check=True)
        assert rt.state(cid)["status"] == "paused"
        r = files(rt, "exec", cid, "true")
        assert r.returncode != 0 and "paused" in r.stderr, r.stderr
        rt.run("resume", cid, check=True)
        assert rt.state(cid)["status"] == "running"
        r = files(rt, "exec", "--detach", cid, "sleep", "0.01")
        assert r.returncode == 0, r.stderr
    rt.run("delete", "--force", cid, check=True)
    assert_clean(rt, before)
