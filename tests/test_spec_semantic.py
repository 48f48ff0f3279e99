"""Semantic checks of pyruntime.spec.validate (what the schema cannot say)."""

from __future__ import annotations

import copy
import json

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import default_spec, load_config_bytes, load_process, load_resources


def base() -> dict:
    return copy.deepcopy(default_spec(False))


def load(data: dict, **kw):
    return load_config_bytes(json.dumps(data).encode(), **kw)


def refused(data: dict, pointer: str, contains: str = "", **kw) -> str:
    with pytest.raises(ConfigError) as ei:
        load(data, **kw)
    msg = str(ei.value)
    assert msg.startswith(f"config.json: {pointer}: "), msg
    assert contains in msg, msg
    assert "\n" not in msg
    return msg


def test_default_loads():
    s = load(base()).spec
    assert s.process.args == ("sh",) and s.linux.namespace("pid") is not None
    assert load(default_spec(True)).spec.linux.uid_mappings[0].size == 1


@pytest.mark.parametrize(
    "version,ok",
    [
        ("1.0.0", True),
        ("1.0.2-dev", True),
        ("1.2.1", True),
        ("1.3.0", True),
        ("1.3.99+build.5", True),
        ("1.0.0-rc5", True),  # pre-release of a supported core version
        ("0.5.0-dev", False),
        ("1.4.0", False),
        ("1.4.0-dev", False),
        ("2.0.0", False),
        ("1.0", False),
        ("v1.0.0", False),
        ("01.0.0", False),
        ("", False),
    ],
)
def test_oci_version(version, ok):
    d = base()
    d["ociVersion"] = version
    if ok:
        load(d)
    else:
        refused(d, "/ociVersion")


def test_create_needs_root_and_process():
    d = base()
    del d["process"]
    refused(d, "/process", "required")
    load(d, for_create=False)
    d = base()
    del d["root"]
    refused(d, "/root", "required")
    d = base()
    d["root"]["path"] = ""
    refused(d, "/root/path")
    d = base()
    d["process"]["args"] = []
    refused(d, "/process/args", "must not be empty")


def test_paths():
    d = base()
    d["process"]["cwd"] = "work"
    refused(d, "/process/cwd", "absolute")
    d = base()
    d["hooks"] = {"poststart": [{"path": "/bin/true"}, {"path": "bin/false"}]}
    refused(d, "/hooks/poststart/1/path", "absolute")
    d = base()
    d["mounts"].append({"destination": "relative/dir", "type": "tmpfs", "source": "tmpfs"})
    assert load(d).spec.mounts[-1].destination == "relative/dir"  # spec 1.2: relative allowed
    d["mounts"][-1]["destination"] = ""
    refused(d, "/mounts/7/destination")


def test_namespaces():
    d = base()
    d["linux"]["namespaces"].append({"type": "pid", "path": "/proc/1/ns/pid"})
    refused(d, "/linux/namespaces/5", 'duplicate namespace type "pid"')
    d = base()
    d["linux"]["namespaces"][0]["path"] = "proc/1/ns/pid"
    refused(d, "/linux/namespaces/0/path", "absolute")


def test_user_namespace_mappings():
    d = base()
    d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    refused(d, "/linux/uidMappings", "no user namespace")
    d = base()
    d["linux"]["namespaces"].append({"type": "user"})
    refused(d, "/linux/uidMappings", "needs uidMappings")
    d["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    refused(d, "/linux/gidMappings", "needs gidMappings")
    d["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    load(d)
    # joining an existing user namespace: no mappings needed
    d = base()
    d["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"})
    load(d)


def test_time_offsets():
    d = base()
    d["linux"]["timeOffsets"] = {"monotonic": {"secs": 1, "nanosecs": 0}}
    refused(d, "/linux/timeOffsets", "time namespace")
    d["linux"]["namespaces"].append({"type": "time"})
    s = load(d).spec
    assert s.linux.time_offsets["monotonic"].secs == 1


def test_hostname_needs_uts():
    d = base()
    d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] != "uts"]
    refused(d, "/hostname", "UTS")
    del d["hostname"]
    d["domainname"] = "example.org"
    refused(d, "/domainname", "UTS")


def test_masked_paths_need_mount_ns():
    d = base()
    d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] != "mount"]
    refused(d, "/linux/maskedPaths", "mount namespace")


@pytest.mark.parametrize(
    "key,drop,pointer",
    [
        ("net.ipv4.ip_forward", None, None),
        ("net/ipv4/conf/eth0.100/rp_filter", None, None),
        ("net.ipv4.ip_forward", "network", "/linux/sysctl/net.ipv4.ip_forward"),
        ("net/ipv4/ip_forward", "network", "/linux/sysctl/net~1ipv4~1ip_forward"),
        ("kernel.msgmax", None, None),
        ("fs.mqueue.queues_max", None, None),
        ("kernel.shmmax", "ipc", "/linux/sysctl/kernel.shmmax"),
        ("kernel.domainname", None, None),
        ("kernel.domainname", "uts", "/linux/sysctl/kernel.domainname"),
        ("kernel.hostname", None, "/linux/sysctl/kernel.hostname"),
        ("vm.swappiness", None, "/linux/sysctl/vm.swappiness"),
    ],
)
def test_sysctl(key, drop, pointer):
    d = base()
    d["linux"]["sysctl"] = {key: "1"}
    if drop:
        d["linux"]["namespaces"] = [n for n in d["linux"]["namespaces"] if n["type"] != drop]
        if drop == "uts":
            del d["hostname"]
    if pointer is None:
        load(d)
    else:
        refused(d, pointer, "sysctl")


def test_sysctl_joined_host_netns():
    d = base()
    for n in d["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/proc/self/ns/net"  # this process's (= the host's) network namespace
    d["linux"]["sysctl"] = {"net.core.somaxconn": "1024"}
    refused(d, "/linux/sysctl/net.core.somaxconn", "host network namespace")


def test_devices():
    d = base()
    d["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    assert load(d).spec.linux.devices[0].major == 10
    for bad in ("/tmp/fuse", "/dev/../etc/x", "/dev", "dev/fuse"):
        d["linux"]["devices"][0]["path"] = bad
        refused(d, "/linux/devices/0/path", "under /dev")
    d["linux"]["devices"] = [{"path": "/dev/x", "type": "c"}]
    refused(d, "/linux/devices/0", "major and minor")
    d["linux"]["devices"] = [{"path": "/dev/fifo", "type": "p"}]
    load(d)


def seccomp(**kw) -> dict:
    d = base()
    d["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], **kw}
    return d


def test_seccomp():
    s = load(seccomp(syscalls=[{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}])).spec
    assert s.linux.seccomp.syscalls[0].args[0].op == "SCMP_CMP_EQ"
    refused(seccomp(defaultAction="SCMP_ACT_FOO"), "/linux/seccomp/defaultAction", "is not one of")
    refused(seccomp(architectures=["SCMP_ARCH_Z80"]), "/linux/seccomp/architectures/0")
    refused(seccomp(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                               "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]),
            "/linux/seccomp/syscalls/0/args/0/op")
    refused(seccomp(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                               "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]),
            "/linux/seccomp/syscalls/0/args/0/index", "out of range")
    notify = [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    refused(seccomp(syscalls=notify), "/linux/seccomp/listenerPath", "required")
    load(seccomp(syscalls=notify, listenerPath="/run/agent.sock"))
    refused(seccomp(listenerPath="/run/agent.sock"), "/linux/seccomp/listenerPath", "no syscall")
    refused(seccomp(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/x"), "/linux/seccomp/defaultAction")
    refused(seccomp(syscalls=[{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}], listenerPath="/x"),
            "/linux/seccomp/syscalls/0/names", "write")
    refused(seccomp(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]),
            "/linux/seccomp/syscalls/0/errnoRet")
    load(seccomp(syscalls=[{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}], defaultErrnoRet=38))
    refused(seccomp(defaultAction="SCMP_ACT_ALLOW", defaultErrnoRet=1), "/linux/seccomp/defaultErrnoRet")


def test_rlimits():
    d = base()
    d["process"]["rlimits"].append({"type": "RLIMIT_FOO", "hard": 1, "soft": 1})
    refused(d, "/process/rlimits/1/type", "unknown rlimit")
    d["process"]["rlimits"][1]["type"] = "RLIMIT_NOFILE"
    refused(d, "/process/rlimits/1/type", "duplicate")
    d["process"]["rlimits"][1] = {"type": "RLIMIT_CORE", "hard": 1, "soft": 2}
    refused(d, "/process/rlimits/1", "exceeds")
    d["process"]["rlimits"][1]["soft"] = 0
    load(d)


def test_unknown_capabilities_warned_and_dropped(monkeypatch):
    warnings = []
    monkeypatch.setattr("pyruntime.log.warn", warnings.append)
    d = base()
    d["process"]["capabilities"]["bounding"] += ["CAP_FOO", "CAP_BAR"]
    d["process"]["capabilities"]["ambient"] += ["CAP_FOO"]
    s = load(d).spec
    assert warnings == ["ignoring unknown or unavailable capabilities: [CAP_BAR CAP_FOO]"]
    assert s.process.capabilities.bounding == ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert s.process.capabilities.ambient == ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")
    assert s.process.capabilities.inheritable is None
    p = load_process({"cwd": "/", "args": ["x"], "capabilities": {"effective": ["CAP_KILL", "CAP_NOPE"]}})
    assert p.capabilities.effective == ("CAP_KILL",)


def test_scheduler_and_iopriority():
    d = base()
    d["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": 25}
    refused(d, "/process/scheduler/nice")
    d["process"]["scheduler"] = {"policy": "SCHED_OTHER", "priority": 5}
    refused(d, "/process/scheduler/priority")
    d["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 5}
    load(d)
    d["process"]["scheduler"] = {"policy": "SCHED_BATCH", "runtime": 5}
    refused(d, "/process/scheduler", "SCHED_DEADLINE")
    d["process"]["scheduler"] = {"policy": "SCHED_DEADLINE", "runtime": 5, "deadline": 10, "period": 10}
    load(d)
    d["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 8}
    refused(d, "/process/ioPriority/priority")
    d["process"]["ioPriority"]["priority"] = 4
    assert load(d).spec.process.io_priority.class_ == "IOPRIO_CLASS_BE"


def test_net_devices():
    d = base()
    d["linux"]["netDevices"] = {"eth1": {"name": "ceth1"}, "ens4": {}}
    assert load(d).spec.linux.net_devices["eth1"].name == "ceth1"
    d["linux"]["netDevices"] = {"eth1": {"name": "a/b"}}
    refused(d, "/linux/netDevices/eth1/name")
    d["linux"]["netDevices"] = {"x" * 16: {}}
    refused(d, "/linux/netDevices/" + "x" * 16)


def test_idmapped_mounts():
    d = base()
    m = {"destination": "/data", "source": "/srv", "type": "none", "options": ["rbind"],
         "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]}
    d["mounts"].append(m)
    refused(d, "/mounts/7", "together")
    m["gidMappings"] = m["uidMappings"]
    load(d)
    m["options"] = []
    refused(d, "/mounts/7", "bind")


def test_memory_policy_personality_rdt():
    d = base()
    d["linux"]["memoryPolicy"] = {"nodes": "0"}
    refused(d, "/linux/memoryPolicy/mode")
    d["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND"}
    refused(d, "/linux/memoryPolicy/nodes")
    d["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL", "nodes": "0"}
    refused(d, "/linux/memoryPolicy/nodes")
    d["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]}
    assert load(d).spec.linux.memory_policy.flags == ("MPOL_F_STATIC_NODES",)
    d["linux"]["personality"] = {"flags": []}
    refused(d, "/linux/personality/domain")
    d["linux"]["personality"] = {"domain": "LINUX32"}
    d["linux"]["intelRdt"] = {"closID": "../x"}
    refused(d, "/linux/intelRdt/closID")


def test_resources_checks():
    with pytest.raises(ConfigError, match=r"^resources: /devices/0/access: "):
        load_resources({"devices": [{"allow": True, "access": "rwx"}]})
    with pytest.raises(ConfigError, match=r"^resources: /devices/0/type: "):
        load_resources({"devices": [{"allow": True, "type": "z"}]})
    r = load_resources({"devices": [{"allow": False, "access": "rwm"}], "unified": {"memory.high": "max"}})
    assert r.unified == {"memory.high": "max"}


def test_process_checks():
    with pytest.raises(ConfigError, match=r"^process\.json: /cwd: "):
        load_process({"cwd": "tmp", "args": ["x"]})
    with pytest.raises(ConfigError, match=r"^process\.json: /args: "):
        load_process({"cwd": "/"})
    with pytest.raises(ConfigError, match=r"^process\.json: /: 'cwd' is a required property$"):
        load_process({"args": ["x"]})


def test_trailing_newline_pattern_divergence():
    """fastjsonschema reads the schema's `$` as end-of-string, jsonschema (Python re) lets a trailing
    newline through: jsonschema is trusted, the semantic checks refuse what matters."""
    from pyruntime.spec import _config_validator as fast

    d = base()
    d["process"]["rlimits"][0]["type"] = "RLIMIT_NOFILE\n"
    with pytest.raises(fast.JsonSchemaException):
        fast.validate(d)
    refused(d, "/process/rlimits/0/type", "unknown rlimit")
    d = base()
    d["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB\n", "limit": 1}]
    refused(d, "/linux/resources/hugepageLimits/0/pageSize", "invalid page size")


# --- parse_version without re: the SemVer regex it replaced, on ASCII input ----------------------

import re as _re

from hypothesis import given, settings
from hypothesis import strategies as _st

_SEMVER = _re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
                      r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_PIECES = _st.sampled_from(["0", "1", "01", "10", "1.0.0", ".", "-", "+", "a", "rc", "-rc.1", "+b.2", "..", "x-y", ""])


@settings(max_examples=2000, deadline=None)
@given(_st.lists(_PIECES, max_size=8).map("".join) | _st.text(alphabet="0123456789.-+aZ", max_size=16))
def test_parse_version_agrees_with_the_semver_regex(v):
    from pyruntime.spec.validate import parse_version

    m = _SEMVER.fullmatch(v)
    assert parse_version(v) == ((int(m[1]), int(m[2]), int(m[3])) if m else None)


def test_parse_version_examples():
    from pyruntime.spec.validate import parse_version

    assert parse_version("1.3.0") == (1, 3, 0)
    assert parse_version("1.0.2-dev") == (1, 0, 2)
    assert parse_version("1.2.3-rc.1+build.5") == (1, 2, 3)
    for bad in ("1.2", "01.2.3", "1.2.3-", "1.2.3+", "1.2.3-a..b", "1.٢.3", "v1.2.3", "1.2.3 "):
        assert parse_version(bad) is None, bad
