"""The OCI config: loading, validation (schema + semantic), the attrs model, the default config.

Entry points (all failures are `pyruntime.errors.ConfigError`, one line `<file>: <pointer>: <what>`):

- `load_bundle(bundle_dir, for_create=True) -> LoadedConfig` (`.spec`, `.raw`, `.digest`)
- `load_process(data) -> model.Process`             (`exec --process FILE`, prefix `process.json:`)
- `load_resources(data) -> model.Resources`         (`update -r`, prefix `resources:`)
- `validate_state(data)`, `validate_features(data)` (jsonschema; tests and self-checks)
- `default_spec(rootless) -> dict`                  (`pyruntime spec`)

This module stays import-light: submodules (attrs model, generated validators, jsonschema on the
error path only) are imported inside the functions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `from typing import ...`: keeps this module free of imports
if TYPE_CHECKING:
    from typing import Any

    from pyruntime.spec._model import LoadedConfig, Process, Resources

__all__ = [
    "load_bundle",
    "load_config_bytes",
    "load_process",
    "load_resources",
    "validate_state",
    "validate_features",
    "default_spec",
]


def _parse_json(raw: bytes, prefix: str) -> Any:
    from pyruntime import jsonio
    from pyruntime.errors import ConfigError

    try:
        return jsonio.loads(raw, constants=False)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        if hasattr(e, "lineno"):  # json.JSONDecodeError (json is imported only on this path)
            raise ConfigError(f"{prefix}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
        msg = " ".join(str(e).split())
        raise ConfigError(f"{prefix}: invalid JSON: {msg}") from None


def load_bundle(bundle_dir: str, *, for_create: bool = True) -> LoadedConfig:
    """Read, validate and build `<bundle_dir>/config.json`.

    for_create=False skips the checks only `create` needs (root.path and process present)."""
    import os

    from pyruntime.errors import ConfigError

    path = os.path.join(bundle_dir, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise ConfigError(f"config.json: open {path}: {reason}") from None
    return load_config_bytes(raw, for_create=for_create)


def load_config_bytes(raw: bytes, *, for_create: bool = True, prefix: str = "config.json") -> LoadedConfig:
    """load_bundle for config bytes already read."""
    from pyruntime.spec import _model as model  # the compiled attrs model (scripts/gen-model.py)
    from pyruntime.spec.validate import check_config, check_schema

    data = _parse_json(raw, prefix)
    _compat(data)
    check_schema("config", data, prefix)
    unknown_caps = check_config(data, for_create=for_create, prefix=prefix)
    spec = model.build(model.Spec, data)
    if unknown_caps and spec.process is not None:
        spec = model.evolve(spec, process=_drop_caps(spec.process, unknown_caps))
    return model.LoadedConfig(spec=spec, raw=data, digest=_sha256(raw))


def _compat(data: Any) -> None:
    """What real clients send that the 1.3 schema no longer admits, normalised as runc reads it.

    podman 4.x writes linux.devices[].fileMode with the file type bits (S_IFCHR|0666 = 8630);
    runc masks them off. Only those exact type bits are dropped: any other out-of-range value is
    still refused by the schema.
    """
    try:
        devices = data["linux"]["devices"]
    except (KeyError, TypeError):
        return
    if not isinstance(devices, list):
        return
    for d in devices:
        if isinstance(d, dict):
            mode = d.get("fileMode")
            if type(mode) is int and mode > 0o777 and (mode & ~0o777) in (0o020000, 0o060000, 0o010000):
                d["fileMode"] = mode & 0o777


def _sha256(raw: bytes) -> str:
    try:  # the builtin module: hashlib would load OpenSSL (~3 ms)
        from _sha2 import sha256  # type: ignore[import-not-found]  # Python >= 3.12
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]  # Python 3.11
        except ImportError:
            from hashlib import sha256
    return sha256(raw).hexdigest()


def _drop_caps(proc: Process, unknown: set[str]) -> Process:
    from pyruntime.spec.node import evolve, field_names

    caps = proc.capabilities
    if caps is None:
        return proc
    kw = {}
    for name in field_names(caps):
        v = getattr(caps, name)
        if v is not None:
            kw[name] = tuple(c for c in v if c not in unknown)
    return evolve(proc, capabilities=evolve(caps, **kw))


def load_process(data: Any, *, prefix: str = "process.json") -> Process:
    """Validate and build a process object (`exec --process FILE`; bytes/str are parsed)."""
    from pyruntime.spec import _model as model  # the compiled attrs model (scripts/gen-model.py)
    from pyruntime.spec.validate import check_process, check_schema

    if isinstance(data, (bytes, str)):
        data = _parse_json(data.encode() if isinstance(data, str) else data, prefix)
    check_schema("process", data, prefix)
    unknown = check_process(data, prefix, "")
    proc = model.build(model.Process, data)
    return _drop_caps(proc, unknown) if unknown else proc


def load_resources(data: Any, *, prefix: str = "resources") -> Resources:
    """Validate and build a linux.resources object (`update -r FILE`; bytes/str are parsed)."""
    from pyruntime.spec import _model as model  # the compiled attrs model (scripts/gen-model.py)
    from pyruntime.spec.validate import check_resources, check_schema

    if isinstance(data, (bytes, str)):
        data = _parse_json(data.encode() if isinstance(data, str) else data, prefix)
    check_schema("resources", data, prefix)
    check_resources(data, prefix, "")
    return model.build(model.Resources, data)


def validate_state(data: Any) -> None:
    """Validate a state object against state-schema.json (jsonschema)."""
    from pyruntime.spec.validate import schema_error

    err = schema_error("state", data, "state")
    if err is not None:
        raise err


def validate_features(data: Any) -> None:
    """Validate a features object against features-schema.json (jsonschema)."""
    from pyruntime.spec.validate import schema_error

    err = schema_error("features", data, "features")
    if err is not None:
        raise err


def default_spec(rootless: bool = False) -> dict:
    """What `runc spec [--rootless]` writes (with our ociVersion)."""
    from pyruntime.spec.default import default_spec as _d

    return _d(rootless)
