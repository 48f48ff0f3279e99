"""The CVE-2019-5736 seal's decision (container/seal.py: fast_path, config_verdict,
interpreter_problem), at the function level: which configs, exec flags and interpreters may
skip the re-exec. The attacks on both paths are in tests/test_security_exe.py."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import PROJECT, default_config
from pyruntime.container import seal

SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")
DANGEROUS = ("CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE", "CAP_LINUX_IMMUTABLE")


@pytest.fixture
def cfg() -> dict:
    return default_config(["true"], "/nonexistent-rootfs")


def _with(cfg: dict, cap: str, key: str) -> dict:
    c = copy.deepcopy(cfg)
    caps = c["process"].setdefault("capabilities", {})
    caps[key] = list(caps.get(key) or []) + [cap]
    return c


def _userns(cfg: dict, path: str | None = None) -> dict:
    c = copy.deepcopy(cfg)
    c["linux"]["namespaces"].append({"type": "user", **({"path": path} if path else {})})
    return c


def test_default_config_is_fast(cfg):
    ok, why = seal.config_verdict(cfg)
    assert ok, why
    assert not {c for k in SETS for c in cfg["process"]["capabilities"].get(k, ())} & set(DANGEROUS)


@pytest.mark.parametrize("key", SETS)
@pytest.mark.parametrize("cap", DANGEROUS)
def test_each_dangerous_cap_in_each_set_seals(cfg, cap, key):
    ok, why = seal.config_verdict(_with(cfg, cap, key))
    assert not ok and cap in why and key in why, why


@pytest.mark.parametrize("name", ["sys_admin", "cap_sys_admin", " CAP_SYS_ADMIN ", "checkpoint_restore",
                                  "Linux_Immutable", "ALL"])
def test_names_are_read_generously(cfg, name):
    assert not seal.config_verdict(_with(cfg, name, "bounding"))[0]


def test_other_caps_stay_fast(cfg):
    c = cfg
    for cap in ("CAP_SYS_PTRACE", "CAP_NET_ADMIN", "CAP_DAC_OVERRIDE", "CAP_SYS_MODULE"):
        c = _with(c, cap, "bounding")
    assert seal.config_verdict(c)[0]


def test_no_capabilities_at_all_is_fast(cfg):
    del cfg["process"]["capabilities"]
    assert seal.config_verdict(cfg)[0]
    del cfg["process"]
    assert seal.config_verdict(cfg)[0]


@pytest.mark.parametrize("cap", DANGEROUS)
def test_own_user_namespace_is_fast_whatever_the_caps(cfg, cap):
    c = _userns(cfg)
    for key in SETS:
        c = _with(c, cap, key)
    ok, why = seal.config_verdict(c, exec_caps=[cap], exec_process={"capabilities": {"bounding": [cap]}})
    assert ok and "user namespace" in why, why


def test_joined_user_namespace(cfg):
    """A user namespace joined by path counts only if it is not the runtime's own (the initial
    one): then the capabilities would be in it."""
    admin = _with(cfg, "CAP_SYS_ADMIN", "bounding")
    assert not seal.config_verdict(_userns(admin, "/proc/self/ns/user"))[0]
    assert not seal.config_verdict(_userns(admin, "/proc/1/ns/user"))[0]
    assert not seal.config_verdict(_userns(admin, "/nonexistent/ns/user"))[0]
    assert seal.config_verdict(_userns(cfg, "/proc/self/ns/user"))[0]  # no caps: fast anyway
    assert shutil.which("unshare"), "unshare (util-linux) is missing: scripts/setup.sh installs it"
    p = subprocess.Popen(["unshare", "-U", "sleep", "60"])
    try:
        mine = os.readlink("/proc/self/ns/user")
        for _ in range(500):
            try:
                if os.readlink(f"/proc/{p.pid}/ns/user") != mine:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        ok, why = seal.config_verdict(_userns(admin, f"/proc/{p.pid}/ns/user"))
        assert ok and "user namespace" in why, why
    finally:
        p.kill()
        p.wait()


def test_pid_namespace_must_be_the_containers_own(cfg):
    """The host's pid namespace or one joined by path: other processes (another container of a
    pod) could reach the runtime's processes; even with a user namespace of its own."""
    for c in (cfg, _userns(cfg)):
        no_pid = copy.deepcopy(c)
        no_pid["linux"]["namespaces"] = [n for n in no_pid["linux"]["namespaces"] if n["type"] != "pid"]
        ok, why = seal.config_verdict(no_pid)
        assert not ok and "pid namespace" in why, why
        joined = copy.deepcopy(c)
        for n in joined["linux"]["namespaces"]:
            if n["type"] == "pid":
                n["path"] = "/proc/1/ns/pid"
        assert not seal.config_verdict(joined)[0]
    no_linux = copy.deepcopy(cfg)
    del no_linux["linux"]
    assert not seal.config_verdict(no_linux)[0]


@pytest.mark.parametrize("cap", [*DANGEROUS, "sys_admin", "checkpoint_restore", "linux_immutable"])
def test_exec_cap_seals(cfg, cap):
    ok, why = seal.config_verdict(cfg, exec_caps=["CAP_NET_ADMIN", cap])
    assert not ok and "--cap" in why, why


def test_exec_harmless_cap_is_fast(cfg):
    assert seal.config_verdict(cfg, exec_caps=["CAP_NET_ADMIN", "sys_ptrace"])[0]


@pytest.mark.parametrize("key", SETS)
@pytest.mark.parametrize("cap", DANGEROUS)
def test_exec_process_file_caps_seal(cfg, cap, key):
    proc = copy.deepcopy(cfg["process"])
    proc["capabilities"][key] = [cap]
    ok, why = seal.config_verdict(cfg, exec_process=proc)
    assert not ok and "exec'd process" in why and key in why, why
    assert seal.config_verdict(cfg, exec_process=cfg["process"])[0]
    assert seal.config_verdict(cfg, exec_process={"args": ["true"], "cwd": "/"})[0]


@pytest.mark.parametrize("bad", [
    None, [], "x",
    {"process": "x"}, {"linux": []},
    {"linux": {"namespaces": {"type": "pid"}}},
    {"linux": {"namespaces": ["pid"]}},
    {"linux": {"namespaces": [{"type": "pid"}]}, "process": {"capabilities": {"bounding": "CAP_CHOWN"}}},
    {"linux": {"namespaces": [{"type": "pid"}]}, "process": {"capabilities": {"bounding": [1]}}},
    {"linux": {"namespaces": [{"type": "pid"}]}, "process": {"capabilities": []}},
])
def test_unexpected_shapes_seal(bad):
    assert not seal.config_verdict(bad)[0]


def test_unexpected_exec_inputs_seal(cfg):
    assert not seal.config_verdict(cfg, exec_process=["x"])[0]
    assert not seal.config_verdict(cfg, exec_process={"capabilities": {"ambient": "CAP_SYS_ADMIN"}})[0]
    assert not seal.config_verdict(cfg, exec_caps="CAP_SYS_ADMIN")[0]


# --- interpreter_problem -----------------------------------------------------------------------

def _chattr(flag: str, path: str) -> bool:
    return shutil.which("chattr") is not None and subprocess.run(
        ["chattr", flag, path], capture_output=True).returncode == 0


def test_interpreter_flag(tmp_path):
    # Next to the venv's interpreter: scripts/setup.sh has set the flag on that filesystem.
    d = tempfile.mkdtemp(dir=os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    f = os.path.join(d, "python")
    try:
        with open(f, "wb") as out:
            out.write(b"\x7fELF not really")
        why = seal.interpreter_problem(f)
        assert why and "not immutable" in why, why
        assert _chattr("+i", f), "chattr +i failed where scripts/setup.sh set it on the interpreter"
        try:
            assert seal.interpreter_problem(f) is None
        finally:
            _chattr("-i", f)
        assert "not immutable" in seal.interpreter_problem(f)
    finally:
        shutil.rmtree(d)
    assert "open the interpreter" in seal.interpreter_problem(str(tmp_path / "missing"))


def test_system_interpreter_is_not_immutable():
    system = os.path.realpath("/usr/bin/python3")
    assert os.path.realpath(sys.executable) != system, \
        "the tests run on the venv's private interpreter (scripts/test.sh), not the system's"
    assert seal.interpreter_problem(system), "the system's python3 should not be immutable"


# --- fast_path: the command line, the bundle, the recorded state --------------------------------

@pytest.fixture
def immutable_self():
    why = seal.interpreter_problem()
    assert why is None, f"this interpreter cannot take the fast path ({why}): run scripts/setup.sh"


@pytest.fixture
def bundle(tmp_path, cfg):
    b = tmp_path / "bundle"
    b.mkdir()
    (b / "config.json").write_text(json.dumps(cfg))
    return b


def _state(root, cid: str, config: dict) -> None:
    d = root / cid
    d.mkdir(parents=True)
    (d / "state.json").write_text(json.dumps({"id": cid, "pid": 0, "config": config}))


def test_fast_path_create_and_run(immutable_self, bundle, tmp_path, cfg, monkeypatch):
    root = str(tmp_path / "state")
    for cmd in ("create", "run"):
        for argv in (["--bundle", str(bundle), "c1"], ["-b", str(bundle), "c1"],
                     [f"--bundle={bundle}", "c1"]):
            ok, why = seal.fast_path(cmd, argv, root)
            assert ok and "immutable" in why, (cmd, argv, why)
    monkeypatch.chdir(bundle)
    assert seal.fast_path("run", ["c1"], root)[0]  # the bundle defaults to the cwd
    (bundle / "config.json").write_text(json.dumps(_with(cfg, "CAP_SYS_ADMIN", "ambient")))
    ok, why = seal.fast_path("create", ["c1"], root)
    assert not ok and "CAP_SYS_ADMIN" in why


def test_fast_path_undeterminable_seals(immutable_self, bundle, tmp_path):
    root = str(tmp_path / "state")
    assert not seal.fast_path("up", ["--bundle", str(bundle), "c1"], root)[0]
    assert not seal.fast_path("", [], root)[0]
    assert not seal.fast_path("create", ["--no-such-flag", "c1"], root)[0]
    assert not seal.fast_path("create", ["--bundle"], root)[0]
    assert not seal.fast_path("create", ["--bundle", str(tmp_path / "missing"), "c1"], root)[0]
    (bundle / "config.json").write_text("{not json")
    ok, why = seal.fast_path("create", ["--bundle", str(bundle), "c1"], root)
    assert not ok and "cannot tell" in why, why
    os.chmod(bundle / "config.json", 0)
    try:
        assert not seal.fast_path("run", ["--bundle", str(bundle), "c1"], root)[0]
    finally:
        os.chmod(bundle / "config.json", 0o644)


def test_fast_path_exec(immutable_self, tmp_path, cfg):
    root = tmp_path / "state"
    _state(root, "fast", cfg)
    _state(root, "admin", _with(cfg, "CAP_CHECKPOINT_RESTORE", "inheritable"))
    _state(root, "userns", _with(_userns(cfg), "CAP_SYS_ADMIN", "bounding"))
    r = str(root)
    assert seal.fast_path("exec", ["fast", "true"], r)[0]
    assert seal.fast_path("exec", ["-t", "--env", "A=1", "fast", "sh", "--cap", "CAP_SYS_ADMIN"], r)[0]
    assert not seal.fast_path("exec", ["admin", "true"], r)[0]
    assert seal.fast_path("exec", ["userns", "true"], r)[0]
    assert seal.fast_path("exec", ["--cap", "CAP_SYS_ADMIN", "userns", "true"], r)[0]
    for flags in (["--cap", "CAP_SYS_ADMIN"], ["-c", "checkpoint_restore"], ["--cap=CAP_LINUX_IMMUTABLE"],
                  ["--cap", "CAP_NET_ADMIN", "--cap", "SYS_ADMIN"]):
        ok, why = seal.fast_path("exec", [*flags, "fast", "true"], r)
        assert not ok and "--cap" in why, (flags, why)
    assert seal.fast_path("exec", ["--cap", "CAP_NET_ADMIN", "fast", "true"], r)[0]
    # --process FILE
    pfile = tmp_path / "process.json"
    pfile.write_text(json.dumps(cfg["process"]))
    assert seal.fast_path("exec", ["--process", str(pfile), "fast"], r)[0]
    assert seal.fast_path("exec", ["-p", str(pfile), "fast"], r)[0]
    pfile.write_text(json.dumps(_with(cfg, "CAP_LINUX_IMMUTABLE", "effective")["process"]))
    ok, why = seal.fast_path("exec", ["--process", str(pfile), "fast"], r)
    assert not ok and "exec'd process" in why, why
    assert not seal.fast_path("exec", ["--process", str(tmp_path / "missing.json"), "fast"], r)[0]
    # no such container, no id, a bad id, a state without a config
    assert not seal.fast_path("exec", ["nosuch", "true"], r)[0]
    assert not seal.fast_path("exec", [], r)[0]
    assert not seal.fast_path("exec", ["../state/fast", "true"], r)[0]
    (root / "bare").mkdir()
    (root / "bare" / "state.json").write_text(json.dumps({"id": "bare"}))
    assert not seal.fast_path("exec", ["bare", "true"], r)[0]


def test_not_immutable_interpreter_never_takes_the_fast_path(bundle, tmp_path):
    """The same decision in a process of a mutable interpreter (the system's python3)."""
    system = os.path.realpath("/usr/bin/python3")
    assert seal.interpreter_problem(system), f"{system} is immutable: only the venv's copy may be"
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from pyruntime.container import seal; "
            "print(seal.fast_path('create', ['--bundle', sys.argv[2], 'c1'], sys.argv[3]))")
    r = subprocess.run([system, "-IS", "-c", code, project, str(bundle), str(tmp_path / "state")],
                       capture_output=True, text=True, check=True)
    assert r.stdout.startswith("(False,") and "not immutable" in r.stdout, r.stdout


# --- confirm: the decision re-checked on the config the command really uses ------------------


def test_confirm_refuses_a_config_that_turned_privileged_after_the_fast_path(cfg, monkeypatch):
    from pyruntime.errors import RuntimeFailure

    monkeypatch.setattr(seal, "fast", True)
    seal.confirm(cfg)  # still safe: nothing happens
    with pytest.raises(RuntimeFailure, match="configuration changed while starting"):
        seal.confirm(_with(cfg, "CAP_SYS_ADMIN", "bounding"))
    with pytest.raises(RuntimeFailure, match="configuration changed while starting"):
        seal.confirm(cfg, exec_process={"args": ["sh"], "capabilities": {"effective": ["CAP_LINUX_IMMUTABLE"]}})


def test_confirm_is_a_no_op_when_sealed_or_not_decided(cfg, monkeypatch):
    monkeypatch.setattr(seal, "fast", False)
    seal.confirm(_with(cfg, "CAP_SYS_ADMIN", "bounding"))


def test_create_refuses_a_bundle_changed_after_the_fast_path_decision(rt):
    """End to end: the decision reads a safe config.json; it is replaced by a privileged one
    before `create` loads it (simulated by rewriting it right after seal() returns)."""
    why = seal.interpreter_problem(os.path.realpath(sys.executable))
    assert why is None, f"this interpreter cannot take the fast path ({why}): run scripts/setup.sh"
    bundle = rt.bundle(["true"], copy_rootfs=False)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        evil = _with(json.load(f), "CAP_SYS_ADMIN", "bounding")
    cid = rt.new_id()
    code = f"""
import sys
import tempfile
sys.path.insert(0, {PROJECT!r})
sys.argv = ["pyruntime", "--root", {rt.root!r}, "create", "--bundle", {bundle!r}, {cid!r}]
from pyruntime.container import seal
orig = seal.seal
def swapped(*a, **kw):
    orig(*a, **kw)
    assert seal.fast, seal.reason
    with open({path!r}, "w") as f:
        f.write({json.dumps(evil)!r})
seal.seal = swapped
from pyruntime.cli import main
main()
"""
    r = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "configuration changed while starting" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
