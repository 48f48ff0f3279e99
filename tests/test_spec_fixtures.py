"""pyruntime.spec against the upstream runtime-spec fixtures and the recorded client configs."""

from __future__ import annotations

import glob
import json
import os
import re

import pytest

from pyruntime.errors import ConfigError
from pyruntime.spec import load_bundle, load_config_bytes, load_process, load_resources, validate_features, validate_state
from pyruntime.spec.validate import check_schema

UPSTREAM = "/work/shared/oci-runtime-spec/schema"
SAMPLES = "/work/shared/clients/samples"
ONE_LINE = re.compile(r"^(config\.json|process\.json|resources|state|features): (/\S*: )?[^\n]+$")

pytestmark = pytest.mark.skipif(not os.path.isdir(UPSTREAM), reason="upstream runtime-spec copy not present")


def fixtures(kind: str, which: str) -> list[str]:
    return sorted(glob.glob(f"{UPSTREAM}/test/{kind}/{which}/*.json"))


def bundle(tmp_path, data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    (tmp_path / "config.json").write_bytes(raw)
    return str(tmp_path)


def refused(fn, *args, **kw) -> str:
    with pytest.raises(ConfigError) as ei:
        fn(*args, **kw)
    msg = str(ei.value)
    assert ONE_LINE.match(msg), msg
    assert "Traceback" not in msg and len(msg) < 400
    return msg


# Good fixtures the Linux semantic checks refuse on purpose: (pointer named in the error).
#  - spec-example/zos-example declare ociVersion 0.5.0-dev (we support 1.0.0 <= v < 1.4.0)
#  - freebsd-example sets a hostname with no linux.namespaces (runc: no UTS namespace)
#  - linux-netdevice moves net devices with no network namespace (runc refuses too)
SEMANTIC_REFUSALS = {
    "spec-example.json": "/ociVersion",
    "zos-example.json": "/ociVersion",
    "freebsd-example.json": "/hostname",
    "linux-netdevice.json": "/linux/netDevices",
}


def linuxify(data: dict) -> dict:
    """Make an upstream fixture usable for `create` on Linux: supported version, a process, the
    namespaces its settings need."""
    data = json.loads(json.dumps(data))
    data["ociVersion"] = "1.3.0"
    data.setdefault("process", {"cwd": "/", "args": ["sh"]})
    linux = data.setdefault("linux", {})
    have = {n["type"] for n in linux.get("namespaces", [])}
    for t in ("mount", "uts", "network", "ipc", "pid"):
        if t not in have:
            linux.setdefault("namespaces", []).append({"type": t})
    return data


@pytest.mark.parametrize("path", fixtures("config", "good"), ids=os.path.basename)
def test_good_config_fixture(path, tmp_path):
    with open(path) as f:
        data = json.load(f)
    check_schema("config", data, "config.json")  # the shipped (Linux) schema accepts all of them
    name = os.path.basename(path)
    if name in SEMANTIC_REFUSALS:
        msg = refused(load_bundle, bundle(tmp_path, data), for_create=False)
        assert msg.startswith(f"config.json: {SEMANTIC_REFUSALS[name]}: "), msg
    else:
        loaded = load_bundle(bundle(tmp_path, open(path, "rb").read()), for_create=False)
        assert loaded.raw == data
    loaded = load_bundle(bundle(tmp_path, linuxify(data)))
    assert loaded.spec.root.path == data["root"]["path"]


@pytest.mark.parametrize("path", fixtures("config", "bad"), ids=os.path.basename)
def test_bad_config_fixture(path, tmp_path):
    name = os.path.basename(path)
    raw = open(path, "rb").read()
    if name.startswith("freebsd-"):
        pytest.skip("FreeBSD-only setting: not part of the Linux schema subset pyruntime ships")
    msg = refused(load_bundle, bundle(tmp_path, raw), for_create=False)
    if name == "invalid-json.json":
        assert msg.startswith("config.json: invalid JSON at line 1 column 2: "), msg
        return
    expected = {
        "linux-hugepage.json": "/linux/resources/hugepageLimits/0/pageSize",
        "linux-netdevice.json": "/linux/netDevices/eth0/name",
        "linux-rdma.json": "/linux/resources/rdma/mlx5_1/hcaHandles",
    }[name]
    assert msg.startswith(f"config.json: {expected}: "), msg


def test_bad_fixture_messages():
    raw = open(f"{UPSTREAM}/test/config/bad/linux-rdma.json", "rb").read()
    msg = refused(load_config_bytes, raw, for_create=False)
    assert msg == "config.json: /linux/resources/rdma/mlx5_1/hcaHandles: \"not a uint32\" is not of type 'integer'"


@pytest.mark.parametrize("path", fixtures("state", "good") + fixtures("features", "good"), ids=os.path.basename)
def test_good_state_features(path):
    with open(path) as f:
        data = json.load(f)
    (validate_state if "/state/" in path else validate_features)(data)


@pytest.mark.parametrize("path", fixtures("state", "bad") + fixtures("features", "bad"), ids=os.path.basename)
def test_bad_state_features(path):
    fn = validate_state if "/state/" in path else validate_features
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError:
        return  # invalid JSON: nothing to validate (the loaders report it, see test_invalid_json)
    msg = refused(fn, data)
    assert msg == "features: /: 'ociVersionMax' is a required property", msg


def test_state_errors():
    msg = refused(validate_state, {"ociVersion": "1.0.0", "id": "x", "status": "paused", "bundle": "/b"})
    assert msg.startswith("state: /status: \"paused\" is not one of "), msg


@pytest.mark.parametrize("path", sorted(glob.glob(f"{SAMPLES}/*.config.json")), ids=os.path.basename)
def test_client_sample_configs(path, tmp_path):
    raw = open(path, "rb").read()
    loaded = load_bundle(bundle(tmp_path, raw))
    assert loaded.raw == json.loads(raw)
    import hashlib

    assert loaded.digest == hashlib.sha256(raw).hexdigest()
    assert loaded.spec.process.args and loaded.spec.root.path


@pytest.mark.parametrize("path", sorted(glob.glob(f"{SAMPLES}/*.process.json")), ids=os.path.basename)
def test_client_sample_process(path):
    raw = open(path, "rb").read()
    proc = load_process(raw)
    assert proc.to_json() == json.loads(raw)
    assert load_process(json.loads(raw)) == proc


def test_client_sample_resources():
    raw = open(f"{SAMPLES}/podman-update.resources.json", "rb").read()
    res = load_resources(raw)
    assert res.to_json() == json.loads(raw)


def test_missing_config(tmp_path):
    msg = refused(load_bundle, str(tmp_path))
    assert msg == f"config.json: open {tmp_path}/config.json: no such file or directory"


def test_invalid_json(tmp_path):
    msg = refused(load_bundle, bundle(tmp_path, b'{\n  "ociVersion": "1.0.0",\n  "root": }'))
    assert msg.startswith("config.json: invalid JSON at line 3 column 11: "), msg
    refused(load_bundle, bundle(tmp_path, b'{"ociVersion": NaN}'))
    refused(load_bundle, bundle(tmp_path, b"\xff\xfe\xff"))
    assert refused(load_process, b"[").startswith("process.json: invalid JSON at line 1 column 2: ")
    assert refused(load_resources, "{").startswith("resources: invalid JSON at line 1 column 2: ")


def test_schema_error_format(tmp_path):
    base = json.load(open(f"{SAMPLES}/podman-run-echo.config.json"))
    base["linux"].setdefault("resources", {})["memory"] = {"limit": "1g"}
    msg = refused(load_bundle, bundle(tmp_path, base))
    assert msg == "config.json: /linux/resources/memory/limit: \"1g\" is not of type 'integer'"
    msg = refused(load_bundle, bundle(tmp_path, []))
    assert msg == "config.json: /: [] is not of type 'object'"
    msg = refused(load_bundle, bundle(tmp_path, {"root": {"path": "r"}}))
    assert msg == "config.json: /: 'ociVersion' is a required property"
    long = {"ociVersion": "1.0.0", "hostname": ["x" * 1000]}
    msg = refused(load_bundle, bundle(tmp_path, long))
    assert msg.startswith('config.json: /hostname: ["xxxxx') and "..." in msg and len(msg) < 150, msg
    msg = refused(load_process, {"cwd": "/", "args": ["a", 1]})
    assert msg == "process.json: /args/1: 1 is not of type 'string'"
    msg = refused(load_resources, {"pids": {"limit": 1.5}})
    assert msg == "resources: /pids/limit: 1.5 is not of type 'integer'"
    msg = refused(load_resources, {"memory": {"limit": True}})
    assert msg == "resources: /memory/limit: true is not of type 'integer'"


def test_pointer_escaping(tmp_path):
    data = {"ociVersion": "1.0.0", "annotations": {"a/b~c": 1}}
    msg = refused(load_bundle, bundle(tmp_path, data), for_create=False)
    assert msg == "config.json: /annotations/a~1b~0c: 1 is not of type 'string'"
