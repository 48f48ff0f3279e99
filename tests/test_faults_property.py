"""Property tests: generated configs, valid ones (a small strategy over the default spec) and
mutated invalid ones, through the real CLI. Each gives a working container or one clear error
line: never a traceback or "internal error", never a hang (every command has a timeout), and
never a leaked mount, cgroup, process or state directory.

PYRUNTIME_PROPERTY_EXAMPLES sets the number of examples of each test (default 25).
"""

from __future__ import annotations

import copy
import json
import os
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import default_config
from test_security_util import assert_clean, clean_output, error_lines, files, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

EXAMPLES = int(os.environ.get("PYRUNTIME_PROPERTY_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.filter_too_much])

names = st.from_regex(r"[a-z][a-z0-9_-]{0,12}", fullmatch=True)
env_keys = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
env_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=40)
TMPFS_OPTS = ["nosuid", "nodev", "noexec", "ro", "rw", "relatime", "noatime", "strictatime",
              "nodiratime", "sync", "dirsync", "rprivate", "rslave", "private", "tmpcopyup"]
tmpfs_data = st.one_of(st.integers(1, 65536).map(lambda n: f"size={n}k"),
                       st.integers(0, 0o1777).map(lambda m: f"mode={m:04o}"),
                       st.integers(16, 100000).map(lambda n: f"nr_inodes={n}"))


@st.composite
def valid_configs(draw):
    cfg = default_config(["sh", "-c", "echo ok"], "rootfs")
    p = cfg["process"]
    cfg["hostname"] = draw(names)
    p["env"] = p["env"] + [f"{k}={v}" for k, v in draw(st.dictionaries(env_keys, env_values, max_size=6)).items()]
    p["args"] = draw(st.sampled_from([["sh", "-c", "echo ok"], ["echo", "ok"], ["sh", "-c", "cd /; echo ok"]]))
    uid = draw(st.sampled_from([0, 1000]))
    p["user"] = {"uid": uid, "gid": uid}
    p["cwd"] = draw(st.sampled_from(["/", "/tmp", "/home/user"]) | names.map(lambda n: f"/w/{n}"))
    mounts = []
    for n in draw(st.lists(names, max_size=3, unique=True)):
        opts = draw(st.lists(st.sampled_from(TMPFS_OPTS), max_size=4)) + draw(st.lists(tmpfs_data, max_size=2))
        mounts.append({"destination": f"/mnt/{n}", "type": "tmpfs", "source": "tmpfs", "options": opts})
    cfg["mounts"] += mounts
    rl = []
    hard = draw(st.integers(64, 4096))
    rl.append({"type": "RLIMIT_NOFILE", "hard": hard, "soft": draw(st.integers(32, hard))})
    if draw(st.booleans()):
        h = draw(st.integers(0, 1 << 30))
        rl.append({"type": "RLIMIT_CORE", "hard": h, "soft": draw(st.integers(0, h))})
    p["rlimits"] = rl
    extra = draw(st.lists(st.sampled_from(["/proc/cpuinfo", "/proc/uptime", "/etc/hostname", "/nope",
                                           "/proc/sys/kernel", "/sys/kernel"]) | names.map(lambda n: "/" + n),
                          max_size=4))
    cfg["linux"]["maskedPaths"] = cfg["linux"]["maskedPaths"] + extra[: len(extra) // 2]
    cfg["linux"]["readonlyPaths"] = cfg["linux"]["readonlyPaths"] + extra[len(extra) // 2:]
    cfg["root"]["readonly"] = draw(st.booleans())
    if draw(st.booleans()):
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": draw(st.sampled_from(["0", "1"]))}
    return cfg


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=False),
                 st.text(max_size=20), st.just("\0"), st.just("../../../../etc"), st.just("x" * 5000),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


@st.composite
def invalid_configs(draw):
    cfg = copy.deepcopy(draw(valid_configs()))
    for _ in range(draw(st.integers(1, 3))):
        # mostly inside the objects (a top-level key missing is one schema error, over and over)
        deep = draw(st.integers(0, 9)) != 0
        paths = [p for p in _paths(cfg) if p and p[0] != "root" and (len(p) >= 2 or not deep)]
        path = draw(st.sampled_from(paths))
        parent = _get(cfg, path[:-1])
        how = draw(st.sampled_from(["delete", "replace", "enum", "extra"]))
        if how == "delete":
            del parent[path[-1]]
        elif how == "replace":
            parent[path[-1]] = draw(JUNK)
        elif how == "enum":
            parent[path[-1]] = draw(st.sampled_from(["", "bogus", "SCMP_ACT_BOGUS", "RLIMIT_BOGUS", "pid ",
                                                     "/", "../x", "cgroup2", "bind", "overlay"]))
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(JUNK)
    return cfg


def _write_bundle(rt, cfg: dict) -> str:
    b = rt.tmp / f"bundle-{uuid.uuid4().hex[:6]}"
    b.mkdir()
    os.symlink(rt.rootfs_copy, b / "rootfs")
    cfg = copy.deepcopy(cfg)
    cfg.setdefault("linux", {})
    if isinstance(cfg["linux"], dict):
        cfg["linux"]["cgroupsPath"] = f"/{rt.cg_parent}/{b.name}"
    (b / "config.json").write_text(json.dumps(cfg))
    return str(b)


@pytest.fixture
def prt(rt):
    """rt with one rootfs copy shared by the examples (the configs never write to it but for
    the mountpoints they create) and the host snapshot before the first one."""
    rt.rootfs_copy = os.path.join(rt.bundle(), "rootfs")
    os.chmod(rt.rootfs_copy, 0o755)
    rt.before = snapshot(rt)
    return rt


def _one_line_or_ok(r) -> None:
    clean_output(r)
    if r.returncode != 0:
        assert len(error_lines(r.stderr)) == 1, r.stderr


@SETTINGS
@given(cfg=valid_configs())
def test_valid_configs_run_or_fail_cleanly(prt, cfg):
    cid = prt.new_id("v")
    r = files(prt, "run", "--bundle", _write_bundle(prt, cfg), cid, timeout=60)
    _one_line_or_ok(r)
    if r.returncode == 0:
        assert r.stdout.strip() == "ok", r.stdout
    files(prt, "delete", "--force", cid, timeout=60)
    assert_clean(prt, prt.before)


@SETTINGS
@given(cfg=invalid_configs())
def test_mutated_configs_never_crash_hang_or_leak(prt, cfg):
    cid = prt.new_id("m")
    r = files(prt, "create", "--bundle", _write_bundle(prt, cfg), cid, timeout=60)
    _one_line_or_ok(r)
    d = files(prt, "delete", "--force", cid, timeout=60)
    clean_output(d)
    assert d.returncode == 0, d.stderr
    assert_clean(prt, prt.before)
