"""Bad input (issue 3): one clear line on stderr, the same error in --log FILE (text and json,
each json line parses with level/msg/time RFC3339), a non-zero exit, and nothing left behind
(no state dir, cgroup, mount or process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from test_lifecycle_util import bundle, create, detached, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TEXT_LINE = re.compile(r'^time="([^"]+)" level=(\w+) msg="((?:[^"\\]|\\.)*)"$')


def _procs_of(rt) -> list[int]:
    """Processes whose command line names the test's state root (inits, stage-1s, runtimes)."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                if rt.root.encode() in f.read():
                    out.append(int(p))
        except OSError:
            pass
    return out


def _cgroups_of(rt) -> list[str]:
    left = []
    for h in os.listdir("/sys/fs/cgroup"):
        parent = os.path.join("/sys/fs/cgroup", h, rt.cg_parent)
        if os.path.isdir(parent):
            left += [d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d))]
    return left


def _state_dirs(rt) -> list[str]:
    return [d for d in os.listdir(rt.root) if not d.startswith(".")] if os.path.isdir(rt.root) else []


def _one(rt, args, expect, mode):
    glob: tuple[str, ...] = ()
    log = os.path.join(rt.tmp, f"log-{mode}-{uuid.uuid4().hex[:6]}")
    if mode != "plain":
        glob = ("--log", log, "--log-format", mode)
    r = detached(rt, *args, glob=glob)
    assert r.returncode != 0, (args, mode)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, (args, mode, r.stderr)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    if mode == "plain":
        m = TEXT_LINE.match(lines[0])
        assert m, lines[0]
        assert RFC3339.match(m.group(1)) and m.group(2) == "error"
        assert expect in m.group(3).replace('\\"', '"'), (expect, lines[0])
        return
    # stderr has the bare message; the log file the formatted line
    assert expect in lines[0], (expect, lines[0])
    with open(log) as f:
        loglines = [ln for ln in f.read().splitlines() if ln]
    assert loglines, (args, mode)
    if mode == "json":
        recs = [json.loads(ln) for ln in loglines]
        for rec in recs:
            assert {"level", "msg", "time"} <= set(rec), rec
            assert RFC3339.match(rec["time"]), rec
        errs = [rec for rec in recs if rec["level"] == "error"]
        assert len(errs) == 1 and expect in errs[0]["msg"], recs
    else:
        ms = [TEXT_LINE.match(ln) for ln in loglines]
        assert all(ms), loglines
        errs = [m for m in ms if m.group(2) == "error"]
        assert len(errs) == 1 and expect in errs[0].group(3).replace('\\"', '"'), loglines
        assert RFC3339.match(errs[0].group(1))


def check_failure(rt, args: list, expect: str):
    """Run args three ways at once (plain, --log text, --log json); each must fail with one
    line mentioning `expect`, and leave the environment as it was. "{id}" in args becomes a
    fresh id for each run, a callable its result (a bundle of its own: runs sharing one
    cgroupsPath would share a cgroup)."""
    runs = []
    for mode in ("plain", "text", "json"):
        cid = rt.new_id()
        runs.append(([a() if callable(a) else a.replace("{id}", cid) for a in args], mode))
    before = sorted(_state_dirs(rt))
    cgroups_before = sorted(_cgroups_of(rt))
    with ThreadPoolExecutor(3) as ex:
        for f in [ex.submit(_one, rt, a, expect, mode) for a, mode in runs]:
            f.result()
    assert sorted(_state_dirs(rt)) == before, (args, _state_dirs(rt))
    assert sorted(_cgroups_of(rt)) == cgroups_before, args
    assert wait_until(lambda: not _procs_of(rt), 2), (args, _procs_of(rt))


def test_unknown_and_invalid_ids(rt, no_leaks):
    for cmd in (["state"], ["start"], ["kill"], ["delete"], ["exec"], ["ps"]):
        extra = ["true"] if cmd == ["exec"] else []
        check_failure(rt, cmd + ["nope-{id}"] + extra, "container does not exist")
    b = rt.bundle(["true"], copy_rootfs=False)
    for cmd, bad in (("create", "../x"), ("create", "a/b"), ("run", ".."), ("run", "x y")):
        check_failure(rt, [cmd, "--bundle", b, bad], "invalid container id format")
    check_failure(rt, ["create", "--bundle", b, ""], "container id cannot be empty")
    check_failure(rt, ["create", "--bundle", b], "requires exactly 1 argument")
    check_failure(rt, ["state"], "requires exactly 1 argument")
    # nothing was created outside the test root either
    assert not os.path.exists(os.path.join(os.path.dirname(rt.root), "x"))


def test_bad_bundles(rt, no_leaks, tmp_path):
    malformed = rt.bundle(["true"], copy_rootfs=False)
    with open(os.path.join(malformed, "config.json"), "w") as f:
        f.write('{"ociVersion": "1.0.0", "process": {')
    check_failure(rt, ["create", "--bundle", malformed, "{id}"], "config.json")
    check_failure(rt, ["run", "--bundle", malformed, "{id}"], "config.json")

    def schema_bad(cfg):
        cfg["process"]["args"] = "sh"
    check_failure(rt, ["create", "--bundle", rt.bundle(edit=schema_bad, copy_rootfs=False), "{id}"], "/process/args")

    def bad_ns(cfg):
        cfg["linux"]["namespaces"].append({"type": "bogus"})
    check_failure(rt, ["create", "--bundle", rt.bundle(edit=bad_ns, copy_rootfs=False), "{id}"], "/linux/namespaces")

    check_failure(rt, ["create", "--bundle", str(tmp_path / "no-such-bundle"), "{id}"], "no-such-bundle")
    empty = tmp_path / "empty-bundle"
    empty.mkdir()
    check_failure(rt, ["create", "--bundle", str(empty), "{id}"], "config.json")

    def no_rootfs(cfg):
        cfg["root"]["path"] = str(tmp_path / "missing-rootfs")
    check_failure(rt, ["create", "--bundle", rt.bundle(edit=no_rootfs, copy_rootfs=False), "{id}"], "missing-rootfs")


def test_missing_and_unexecutable_binary(rt, no_leaks):
    missing = lambda: rt.bundle(["no-such-binary", "x"])  # noqa: E731
    msg = 'exec: "no-such-binary": executable file not found in $PATH'
    check_failure(rt, ["create", "--bundle", missing, "{id}"], msg)
    check_failure(rt, ["run", "--bundle", missing, "{id}"], msg)
    check_failure(rt, ["run", "--detach", "--bundle", missing, "{id}"], msg)
    check_failure(rt, ["create", "--bundle", lambda: rt.bundle(["/etc/passwd"]), "{id}"],
                  'exec: "/etc/passwd": permission denied')
    check_failure(rt, ["create", "--bundle", lambda: rt.bundle(["/nope/x"]), "{id}"],
                  "no such file or directory")

    # a missing cwd is created (runc); one that is a file is an error
    def bad_cwd(cfg):
        cfg["process"]["cwd"] = "/etc/passwd"
    check_failure(rt, ["create", "--bundle", lambda: rt.bundle(["true"], edit=bad_cwd), "{id}"],
                  "not a directory")


def test_duplicate_id_and_wrong_states(rt, no_leaks):
    cid = rt.new_id()
    b = rt.bundle(["sleep", "1000"])
    create(rt, b, cid)
    st = rt.state(cid)
    state = sorted(_state_dirs(rt))
    # the failed duplicate must not touch the existing container
    r = detached(rt, "create", "--bundle", rt.bundle(["true"]), cid)
    assert r.returncode != 0 and f"container with id exists: {cid}" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert rt.state(cid) == st and sorted(_state_dirs(rt)) == state
    assert os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))

    rt.run("start", cid, check=True)
    r = rt.run("start", cid)
    assert r.returncode != 0 and "cannot start an already running container" in r.stderr
    r = rt.run("delete", cid)
    assert r.returncode != 0 and "not stopped" in r.stderr
    assert rt.state(cid)["status"] == "running"
    rt.run("kill", cid, "KILL", check=True)
    assert wait_until(lambda: rt.state(cid)["status"] == "stopped")
    r = rt.run("kill", cid)
    assert r.returncode != 0 and "container not running" in r.stderr
    r = rt.run("exec", cid, "true")
    assert r.returncode != 0 and "stopped" in r.stderr
    r = rt.run("start", cid)
    assert r.returncode != 0 and "stopped" in r.stderr
    rt.run("delete", cid, check=True)


def test_cli_usage_errors(rt, no_leaks):
    for args, expect in ((["--bogus", "state", "x"], "flag provided but not defined"),
                         (["no-such-command"], "no-such-command"),
                         (["kill", "a", "b", "c"], "kill"),
                         (["create", "--pid-file"], "flag needs an argument"),
                         (["create", "--preserve-fds", "x", "id"], "preserve-fds")):
        r = rt.run(*args)
        assert r.returncode != 0, args
        assert len(r.stderr.strip().splitlines()) == 1 and expect in r.stderr, (args, r.stderr)
    r = rt.run("--log-format", "xml", "state", "x")
    assert r.returncode != 0 and "log-format" in r.stderr


def test_log_file_keeps_warnings_and_errors_apart(rt, no_leaks):
    """A warning (a failing poststop hook) lands in the json log as level=warning; the
    operation still succeeds."""
    hook = os.path.join(rt.tmp, "fail.sh")
    with open(hook, "w") as f:
        f.write("#!/bin/sh\necho poststop-broke >&2\nexit 3\n")
    os.chmod(hook, 0o755)

    def edit(cfg):
        cfg["hooks"] = {"poststop": [{"path": hook}]}
    cid = rt.new_id()
    log = os.path.join(rt.tmp, "log.json")
    r = detached(rt, "run", "--bundle", rt.bundle(["true"], edit=edit), cid,
                 glob=("--log", log, "--log-format", "json"))
    assert r.returncode == 0, r.stderr
    with open(log) as f:
        recs = [json.loads(ln) for ln in f if ln.strip()]
    warns = [x for x in recs if x["level"] in ("warning", "warn")]
    assert warns and "poststop" in warns[0]["msg"] and "exit status 3" in warns[0]["msg"], recs
    assert all(RFC3339.match(x["time"]) for x in recs)
    assert not _state_dirs(rt)


def test_binary_the_user_cannot_reach(rt, no_leaks):
    """The executable is looked up as the container's user (runc): a binary under a 0700
    directory fails `create` with runc's message instead of failing execve after `start`."""
    def user(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    def mk(args):
        def make():
            b = bundle(rt, args, edit=user)
            root = os.path.join(b, "rootfs", "root")
            os.chmod(root, 0o700)
            shutil.copy(os.path.join(b, "rootfs", "bin", "busybox"), os.path.join(root, "bb"))
            return b
        return make
    check_failure(rt, ["create", "--bundle", mk(["/root/bb", "true"]), "{id}"],
                  'exec: "/root/bb": stat /root/bb: permission denied')
    ok = mk(["id", "-u"])()
    r = rt.run("run", "--bundle", ok, rt.new_id())
    assert (r.returncode, r.stdout) == (0, "1000\n"), r.stderr
