"""Validation of the OCI config: the JSON schema (fast generated validator, jsonschema for the
message) and the semantic checks the schema cannot express (runc's validator and the spec's MUSTs).

Every failure is a ConfigError with one line: `<prefix>: <json pointer>: <what is wrong>`.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False  # not `import typing` (~9 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

from pyruntime.errors import ConfigError

# kind -> (schema file, pointer of the sub-schema, generated fast module or None)
_KINDS = {
    "config": ("config-schema.json", "", "_config_validator"),
    "process": ("config-schema.json", "/properties/process", "_process_validator"),
    "resources": ("config-linux.json", "/linux/properties/resources", "_resources_validator"),
    "state": ("state-schema.json", "", None),
    "features": ("features-schema.json", "", None),
}

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CAP_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

MIN_VERSION = (1, 0, 0)
MAX_VERSION = (1, 4, 0)  # exclusive


def pointer(parts: Any) -> str:
    """JSON pointer (RFC 6901) of a path; the empty path is `/`."""
    out = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return out or "/"


def fail(prefix: str, ptr: str, what: str) -> ConfigError:
    what = " ".join(str(what).split())
    if len(what) > 300:
        what = what[:297] + "..."
    return ConfigError(f"{prefix}: {ptr or '/'}: {what}")


# --- schema ------------------------------------------------------------------------------------


def schema_dir() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for d in (os.path.join(here, "schemas"), os.path.join(os.path.dirname(here), "schemas")):
        if os.path.isfile(os.path.join(d, "config-schema.json")):
            return d
    raise ConfigError(f"pyruntime: JSON schemas not found (looked in {here}/schemas and ../schemas)")


_JS_CACHE: dict[str, Any] = {}


def jsonschema_validator(kind: str) -> Any:
    """A jsonschema Draft4Validator for `kind`, resolving $refs from the shipped files only."""
    v = _JS_CACHE.get(kind)
    if v is not None:
        return v
    import json

    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    d = schema_dir()
    store = {}
    for fn in os.listdir(d):
        if fn.endswith(".json"):
            with open(os.path.join(d, fn), "rb") as f:
                store[fn] = json.load(f)

    def retrieve(uri: str) -> Any:  # never the network
        raise LookupError(f"unresolvable $ref {uri!r} (offline)")

    registry = Registry(retrieve=retrieve).with_resources(
        (fn, Resource.from_contents(doc, default_specification=DRAFT4)) for fn, doc in store.items()
    )
    fn, ptr, _ = _KINDS[kind]
    schema = store[fn]
    for part in ptr.split("/")[1:]:
        schema = schema[part]
    # A sub-schema is resolved against the file it comes from (all its refs name a file).
    v = _JS_CACHE[kind] = jsonschema.Draft4Validator(schema, registry=registry)
    return v


def _short(instance: Any, limit: int = 60) -> str:
    import json

    try:
        s = json.dumps(instance, ensure_ascii=False, sort_keys=False)
    except (TypeError, ValueError):
        s = repr(instance)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def schema_error(kind: str, data: Any, prefix: str) -> ConfigError | None:
    """The authoritative (jsonschema) error for `data`, or None if jsonschema finds it valid."""
    from jsonschema.exceptions import best_match

    err = best_match(jsonschema_validator(kind).iter_errors(data))
    if err is None:
        return None
    msg = err.message
    r = repr(err.instance)
    if msg.startswith(r):
        msg = _short(err.instance) + msg[len(r):]
    return fail(prefix, pointer(err.absolute_path), msg)


def check_schema(kind: str, data: Any, prefix: str) -> None:
    """Validate against the schema: fast generated code first, jsonschema only on failure."""
    _, _, mod = _KINDS[kind]
    if mod is not None:
        fast = __import__(f"pyruntime.spec.{mod}", fromlist=["validate"])
        try:
            fast.validate(data)
            return
        except Exception:  # JsonSchemaValueException, or anything odd: ask jsonschema
            pass
    err = schema_error(kind, data, prefix)
    if err is not None:
        raise err


# --- semantic checks ---------------------------------------------------------------------------


_DIGITS = frozenset("0123456789")
_IDENT = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")


def parse_version(v: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a SemVer 2.0.0 string (pre-release/build allowed), else None.
    Digits are ASCII, as in runc's Go regexp (and without importing `re` on every create)."""
    core, plus, build = v.partition("+")
    core, dash, pre = core.partition("-")
    nums = core.split(".")
    if len(nums) != 3 or not all(n and _DIGITS.issuperset(n) and (n == "0" or n[0] != "0") for n in nums):
        return None
    for tag, present in ((pre, dash), (build, plus)):
        if present and not all(part and _IDENT.issuperset(part) for part in tag.split(".")):
            return None
    return int(nums[0]), int(nums[1]), int(nums[2])


def _is_abs(p: str) -> bool:
    return p.startswith("/")


def check_config(data: dict, *, for_create: bool = True, prefix: str = "config.json") -> set[str]:
    """Semantic checks of a schema-valid config. Returns the unknown/unavailable capability names
    (already warned about, to be dropped from the model as runc does)."""
    v = data.get("ociVersion")
    ver = parse_version(v) if isinstance(v, str) else None
    if ver is None:
        raise fail(prefix, "/ociVersion", f"{_short(v)} is not a SemVer 2.0.0 version")
    if not (MIN_VERSION <= ver < MAX_VERSION):
        raise fail(prefix, "/ociVersion", f"unsupported version {_short(v)} (supported: >= 1.0.0, < 1.4.0)")

    root = data.get("root")
    if for_create:
        if root is None:
            raise fail(prefix, "/root", "required for create")
        if not root.get("path"):
            raise fail(prefix, "/root/path", "must not be empty")

    unknown_caps: set[str] = set()
    proc = data.get("process")
    if proc is None:
        if for_create:
            raise fail(prefix, "/process", "required for create")
    else:
        unknown_caps = check_process(proc, prefix, "/process")

    for i, m in enumerate(data.get("mounts") or ()):
        check_mount(m, prefix, f"/mounts/{i}")

    hooks = data.get("hooks") or {}
    for kind in HOOK_KINDS:
        for i, h in enumerate(hooks.get(kind) or ()):
            if not _is_abs(h["path"]):
                raise fail(prefix, f"/hooks/{kind}/{i}/path", f"{_short(h['path'])} is not an absolute path")

    linux = data.get("linux") or {}
    ns = check_namespaces(linux, prefix)
    if data.get("hostname") and "uts" not in ns:
        raise fail(prefix, "/hostname", "unable to set hostname without a private UTS namespace")
    if data.get("domainname") and "uts" not in ns:
        raise fail(prefix, "/domainname", "unable to set domainname without a private UTS namespace")
    check_linux(linux, ns, prefix)
    return unknown_caps


def check_mount(m: dict, prefix: str, base: str) -> None:
    if not m["destination"]:
        raise fail(prefix, base + "/destination", "must not be empty")
    uid, gid = m.get("uidMappings"), m.get("gidMappings")
    if uid is not None or gid is not None:
        if not uid or not gid:
            raise fail(prefix, base, "uidMappings and gidMappings must be given together")
        opts = m.get("options") or ()
        if "bind" not in opts and "rbind" not in opts:
            raise fail(prefix, base, "gidMappings/uidMappings is supported only for mounts with the option 'bind'")


def check_process(p: dict, prefix: str, base: str = "", *, require_args: bool = True) -> set[str]:
    """Semantic checks of a process object; returns unknown capability names (warned)."""
    if not _is_abs(p["cwd"]):
        raise fail(prefix, base + "/cwd", f"{_short(p['cwd'])} is not an absolute path")
    if require_args and not p.get("args"):
        raise fail(prefix, base + "/args", "must not be empty")

    from pyruntime.spec.names import CAPABILITIES, RLIMITS

    seen: dict[str, int] = {}
    for i, r in enumerate(p.get("rlimits") or ()):
        t = r["type"]
        if t not in RLIMITS:
            raise fail(prefix, f"{base}/rlimits/{i}/type", f"unknown rlimit type {_short(t)}")
        if t in seen:
            raise fail(prefix, f"{base}/rlimits/{i}/type", f"duplicate rlimit {t} (also at index {seen[t]})")
        seen[t] = i
        if r["soft"] > r["hard"]:
            raise fail(prefix, f"{base}/rlimits/{i}", f"soft limit {r['soft']} exceeds hard limit {r['hard']}")

    unknown: set[str] = set()
    caps = p.get("capabilities")
    if caps:
        last = _cap_last_cap()
        for kind in CAP_SETS:
            for c in caps.get(kind) or ():
                n = CAPABILITIES.get(c)
                if n is None or (last is not None and n > last):
                    unknown.add(c)
        if unknown:
            from pyruntime.log import warn

            # runc: logrus.Warn("ignoring unknown or unavailable capabilities: ", mapKeys(unknownCaps))
            warn("ignoring unknown or unavailable capabilities: [" + " ".join(sorted(unknown)) + "]")

    s = p.get("scheduler")
    if s is not None:
        pol = s["policy"]
        if not -20 <= s.get("nice", 0) <= 19:
            raise fail(prefix, base + "/scheduler/nice", f"invalid scheduler.nice: {s['nice']} (want -20..19)")
        if s.get("priority", 0) != 0 and pol not in ("SCHED_FIFO", "SCHED_RR"):
            raise fail(prefix, base + "/scheduler/priority", "can only be specified for SCHED_FIFO or SCHED_RR policy")
        if pol != "SCHED_DEADLINE" and any(s.get(k, 0) != 0 for k in ("runtime", "deadline", "period")):
            raise fail(prefix, base + "/scheduler", "runtime/deadline/period can only be specified for SCHED_DEADLINE policy")

    io = p.get("ioPriority")
    if io is not None and not 0 <= io.get("priority", 0) <= 7:
        raise fail(prefix, base + "/ioPriority/priority", f"invalid priority {io['priority']} (want 0..7)")
    return unknown


def _cap_last_cap() -> int | None:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def check_namespaces(linux: dict, prefix: str) -> dict[str, str]:
    """Namespace entries as {type: path ('' = new)}; duplicates and relative paths refused."""
    out: dict[str, str] = {}
    for i, n in enumerate(linux.get("namespaces") or ()):
        t = n["type"]
        if t in out:
            raise fail(prefix, f"/linux/namespaces/{i}", f"duplicate namespace type {_short(t)}")
        path = n.get("path") or ""
        if path and not _is_abs(path):
            raise fail(prefix, f"/linux/namespaces/{i}/path", f"{_short(path)} is not an absolute path")
        out[t] = path
    return out


def _sysctl_dots(key: str) -> str:
    """runc's convertSysctlVariableToDotsSeparator: 'net/ipv4/x.y' -> 'net.ipv4.x/y'."""
    for ch in key:
        if ch == ".":
            return key
        if ch == "/":
            return key.translate(str.maketrans("./", "/."))
    return key


def _is_host_netns(path: str) -> bool:
    a, b = os.stat("/proc/self/ns/net"), os.stat(path)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def check_linux(linux: dict, ns: dict[str, str], prefix: str) -> None:
    from pyruntime.spec.names import IPC_SYSCTLS

    # user namespace and id mappings (runc: libcontainer/configs/validate namespaces())
    has_maps = "uidMappings" in linux or "gidMappings" in linux
    if "user" not in ns:
        if has_maps:
            key = "/linux/uidMappings" if "uidMappings" in linux else "/linux/gidMappings"
            raise fail(prefix, key, "user namespace mappings specified, but no user namespace in linux.namespaces")
    elif ns["user"] == "":
        if not linux.get("uidMappings"):
            raise fail(prefix, "/linux/uidMappings", "a new user namespace needs uidMappings")
        if not linux.get("gidMappings"):
            raise fail(prefix, "/linux/gidMappings", "a new user namespace needs gidMappings")

    if "timeOffsets" in linux and "time" not in ns:
        raise fail(prefix, "/linux/timeOffsets", "time namespace offsets specified, but no time namespace in linux.namespaces")

    for key in ("maskedPaths", "readonlyPaths"):
        paths = linux.get(key)
        if paths and "mount" not in ns:
            raise fail(prefix, f"/linux/{key}", "unable to restrict paths without a private mount namespace")
        for i, p in enumerate(paths or ()):
            if not _is_abs(p):
                raise fail(prefix, f"/linux/{key}/{i}", f"{_short(p)} is not an absolute path")

    hostnet: bool | None = None
    for key in linux.get("sysctl") or {}:
        ptr = pointer(("linux", "sysctl", key))
        s = _sysctl_dots(key)
        if s in IPC_SYSCTLS or s.startswith("fs.mqueue."):
            if "ipc" not in ns:
                raise fail(prefix, ptr, f"sysctl {_short(s)} is not allowed in the host's ipc namespace")
            continue
        if s.startswith("net."):
            if hostnet is None:
                if "network" not in ns:
                    hostnet = True
                elif ns["network"] == "":
                    hostnet = False
                else:
                    try:
                        hostnet = _is_host_netns(ns["network"])
                    except OSError as e:
                        raise fail(prefix, "/linux/namespaces", f"invalid netns path {ns['network']}: {e.strerror}")
            if hostnet:
                raise fail(prefix, ptr, f"sysctl {_short(s)} not allowed in host network namespace")
            continue
        if "uts" in ns:
            if s == "kernel.domainname":
                continue
            if s == "kernel.hostname":
                raise fail(prefix, ptr, 'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field')
        raise fail(prefix, ptr, f"sysctl {_short(s)} is not in a separate kernel namespace")

    for i, d in enumerate(linux.get("devices") or ()):
        path = os.path.normpath(d["path"])
        if not path.startswith("/dev/") or d["path"].endswith("/"):
            raise fail(prefix, f"/linux/devices/{i}/path", f"{_short(d['path'])} is not a path under /dev")
        if d["type"] != "p" and ("major" not in d or "minor" not in d):
            raise fail(prefix, f"/linux/devices/{i}", f"major and minor are required for a device of type {d['type']!r}")

    nd = linux.get("netDevices")
    if nd:
        if "network" not in ns:
            raise fail(prefix, "/linux/netDevices", "moving network devices needs a network namespace")
        for host, dev in nd.items():
            for name, ptr in ((host, ("linux", "netDevices", host)), (dev.get("name"), ("linux", "netDevices", host, "name"))):
                if name is None:
                    continue
                if not name or len(name.encode()) > 15 or name in (".", "..") or "/" in name or any(c.isspace() for c in name):
                    raise fail(prefix, pointer(ptr), f"invalid network device name {_short(name)}")

    if "resources" in linux:
        check_resources(linux["resources"], prefix, "/linux/resources")
    if "seccomp" in linux:
        check_seccomp(linux["seccomp"], prefix)

    rdt = linux.get("intelRdt")
    if rdt is not None:
        clos = rdt.get("closID", "")
        if clos in (".", "..") or "/" in clos:
            raise fail(prefix, "/linux/intelRdt/closID", f"invalid intelRdt.closID {_short(clos)}")

    mp = linux.get("memoryPolicy")
    if mp is not None:
        mode = mp.get("mode")
        if mode is None:
            raise fail(prefix, "/linux/memoryPolicy/mode", "required")
        nodes = mp.get("nodes", "")
        if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") and nodes:
            raise fail(prefix, "/linux/memoryPolicy/nodes", f"must be empty for {mode}")
        if mode in ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED_MANY") and not nodes:
            raise fail(prefix, "/linux/memoryPolicy/nodes", f"at least one node is required for {mode}")

    pers = linux.get("personality")
    if pers is not None and "domain" not in pers:
        raise fail(prefix, "/linux/personality/domain", "required")


def check_resources(r: dict, prefix: str, base: str = "") -> None:
    for i, h in enumerate(r.get("hugepageLimits") or ()):
        import re  # only here: ~5 ms on every create otherwise

        # the schema's "^...$" lets a trailing newline through (Python's `$`)
        if not re.fullmatch(r"[1-9][0-9]*[KMG]B", h["pageSize"]):
            raise fail(prefix, f"{base}/hugepageLimits/{i}/pageSize", f"invalid page size {_short(h['pageSize'])}")
    for i, d in enumerate(r.get("devices") or ()):
        t = d.get("type", "a")
        if t not in ("a", "b", "c"):
            raise fail(prefix, f"{base}/devices/{i}/type", f"invalid device type {_short(t)} (want a, b or c)")
        acc = d.get("access", "")
        if acc.strip("rwm"):
            raise fail(prefix, f"{base}/devices/{i}/access", f"invalid access {_short(acc)} (want a combination of r, w, m)")


def check_seccomp(s: dict, prefix: str) -> None:
    from pyruntime.spec.names import SECCOMP_ACTIONS, SECCOMP_ARCHES, SECCOMP_FLAGS, SECCOMP_OPERATORS

    base = "/linux/seccomp"
    errno_actions = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")

    def action(a: Any, ptr: str) -> None:
        if a not in SECCOMP_ACTIONS:
            raise fail(prefix, ptr, f"unknown seccomp action {_short(a)}")

    da = s["defaultAction"]
    action(da, base + "/defaultAction")
    if da == "SCMP_ACT_NOTIFY":
        raise fail(prefix, base + "/defaultAction", "SCMP_ACT_NOTIFY cannot be used as default action")
    if "defaultErrnoRet" in s and da not in errno_actions:
        raise fail(prefix, base + "/defaultErrnoRet", f"defaultErrnoRet is not supported with action {da}")
    for i, a in enumerate(s.get("architectures") or ()):
        if a not in SECCOMP_ARCHES:
            raise fail(prefix, f"{base}/architectures/{i}", f"unknown seccomp architecture {_short(a)}")
    for i, f in enumerate(s.get("flags") or ()):
        if f not in SECCOMP_FLAGS:
            raise fail(prefix, f"{base}/flags/{i}", f"unknown seccomp flag {_short(f)}")
    notify = False
    for i, sc in enumerate(s.get("syscalls") or ()):
        p = f"{base}/syscalls/{i}"
        a = sc["action"]
        action(a, p + "/action")
        if a == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in sc["names"]:
                raise fail(prefix, p + "/names", "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        if "errnoRet" in sc and a not in errno_actions:
            raise fail(prefix, p + "/errnoRet", f"errnoRet is not supported with action {a}")
        for j, arg in enumerate(sc.get("args") or ()):
            if arg["op"] not in SECCOMP_OPERATORS:
                raise fail(prefix, f"{p}/args/{j}/op", f"unknown seccomp operator {_short(arg['op'])}")
            if arg["index"] > 5:
                raise fail(prefix, f"{p}/args/{j}/index", f"syscall argument index {arg['index']} out of range (0..5)")
    if notify and not s.get("listenerPath"):
        raise fail(prefix, base + "/listenerPath", "required when SCMP_ACT_NOTIFY is used")
    if not notify and s.get("listenerPath"):
        raise fail(prefix, base + "/listenerPath", "set, but no syscall uses SCMP_ACT_NOTIFY")
