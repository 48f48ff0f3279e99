"""The OCI runtime config as attrs frozen classes, built from the *validated* JSON.

Conventions (see ARCHITECTURE.md): attribute names are the JSON keys converted from camelCase to
snake_case (`blockIO` -> `block_io`, `classID` -> `class_id`, `class` -> `class_`); nested objects
are classes, arrays are tuples, maps (annotations, sysctl, unified, netDevices, rdma, timeOffsets)
are dicts, and an absent field is None (the model adds no defaults; the JSON is mirrored exactly,
so `to_json(build(Spec, x))` gives back `x` minus keys the model does not know).

The mapping is table driven: every field is declared with `_f(...)` which records in the attrs
metadata the JSON key (derived from the name unless irregular), the nested class if any, and
whether the value is an array (`many`) or a string-keyed map (`mapping`). `build()` and
`to_json()` walk those tables; nothing is hand-written per class.
"""

from __future__ import annotations

from typing import Any

import attrs

from pyruntime.spec.node import Node, build, evolve, field_names, to_json  # noqa: F401 (re-exported)

_META = "oci"


def _f(key: str | None = None, cls: type | None = None, many: bool = False, mapping: bool = False) -> Any:
    return attrs.field(default=None, metadata={_META: (key, cls, many, mapping)})


def _camel(name: str) -> str:
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _model(cls: type) -> type:
    """attrs.frozen (slots, keyword-only, no generated eq/repr: Node's are generic), then the
    field table Node, build and to_json walk."""
    cls = attrs.frozen(cls, slots=True, kw_only=True, eq=False, repr=False, match_args=False,
                       getstate_setstate=False)
    rows = []
    for a in attrs.fields(cls):
        key, sub, many, mapping = a.metadata[_META]
        rows.append((a.name, key or _camel(a.name), sub, many, mapping))
    cls._oci_fields = tuple(rows)
    return cls


# --- config.md: root, mounts, process, hooks -------------------------------------------------


@_model
class Root(Node):
    path: str | None = _f()
    readonly: bool | None = _f()


@_model
class IDMapping(Node):
    container_id: int | None = _f("containerID")
    host_id: int | None = _f("hostID")
    size: int | None = _f()


@_model
class Mount(Node):
    destination: str | None = _f()
    source: str | None = _f()
    type: str | None = _f()
    options: tuple[str, ...] | None = _f(many=True)
    uid_mappings: tuple[IDMapping, ...] | None = _f(cls=IDMapping, many=True)
    gid_mappings: tuple[IDMapping, ...] | None = _f(cls=IDMapping, many=True)


@_model
class ConsoleSize(Node):
    height: int | None = _f()
    width: int | None = _f()


@_model
class Rlimit(Node):
    type: str | None = _f()
    hard: int | None = _f()
    soft: int | None = _f()


@_model
class Capabilities(Node):
    bounding: tuple[str, ...] | None = _f(many=True)
    effective: tuple[str, ...] | None = _f(many=True)
    inheritable: tuple[str, ...] | None = _f(many=True)
    permitted: tuple[str, ...] | None = _f(many=True)
    ambient: tuple[str, ...] | None = _f(many=True)


@_model
class Scheduler(Node):
    policy: str | None = _f()
    nice: int | None = _f()
    priority: int | None = _f()
    flags: tuple[str, ...] | None = _f(many=True)
    runtime: int | None = _f()
    deadline: int | None = _f()
    period: int | None = _f()


@_model
class IOPriority(Node):
    class_: str | None = _f("class")
    priority: int | None = _f()


@_model
class ExecCPUAffinity(Node):
    initial: str | None = _f()
    final: str | None = _f()


@_model
class User(Node):
    uid: int | None = _f()
    gid: int | None = _f()
    umask: int | None = _f()
    additional_gids: tuple[int, ...] | None = _f(many=True)
    username: str | None = _f()


@_model
class Process(Node):
    terminal: bool | None = _f()
    console_size: ConsoleSize | None = _f(cls=ConsoleSize)
    cwd: str | None = _f()
    env: tuple[str, ...] | None = _f(many=True)
    args: tuple[str, ...] | None = _f(many=True)
    command_line: str | None = _f()
    rlimits: tuple[Rlimit, ...] | None = _f(cls=Rlimit, many=True)
    apparmor_profile: str | None = _f()
    capabilities: Capabilities | None = _f(cls=Capabilities)
    no_new_privileges: bool | None = _f()
    oom_score_adj: int | None = _f()
    scheduler: Scheduler | None = _f(cls=Scheduler)
    selinux_label: str | None = _f()
    io_priority: IOPriority | None = _f(cls=IOPriority)
    exec_cpu_affinity: ExecCPUAffinity | None = _f("execCPUAffinity", cls=ExecCPUAffinity)
    user: User | None = _f(cls=User)


@_model
class Hook(Node):
    path: str | None = _f()
    args: tuple[str, ...] | None = _f(many=True)
    env: tuple[str, ...] | None = _f(many=True)
    timeout: int | None = _f()


@_model
class Hooks(Node):
    prestart: tuple[Hook, ...] | None = _f(cls=Hook, many=True)
    create_runtime: tuple[Hook, ...] | None = _f(cls=Hook, many=True)
    create_container: tuple[Hook, ...] | None = _f(cls=Hook, many=True)
    start_container: tuple[Hook, ...] | None = _f(cls=Hook, many=True)
    poststart: tuple[Hook, ...] | None = _f(cls=Hook, many=True)
    poststop: tuple[Hook, ...] | None = _f(cls=Hook, many=True)


# --- config-linux.md ----------------------------------------------------------------------


@_model
class Namespace(Node):
    type: str | None = _f()
    path: str | None = _f()


@_model
class TimeOffset(Node):
    secs: int | None = _f()
    nanosecs: int | None = _f()


@_model
class Device(Node):
    type: str | None = _f()
    path: str | None = _f()
    major: int | None = _f()
    minor: int | None = _f()
    file_mode: int | None = _f()
    uid: int | None = _f()
    gid: int | None = _f()


@_model
class NetDevice(Node):
    name: str | None = _f()


@_model
class DeviceCgroup(Node):
    allow: bool | None = _f()
    type: str | None = _f()
    major: int | None = _f()
    minor: int | None = _f()
    access: str | None = _f()


@_model
class Memory(Node):
    limit: int | None = _f()
    reservation: int | None = _f()
    swap: int | None = _f()
    kernel: int | None = _f()
    kernel_tcp: int | None = _f("kernelTCP")
    swappiness: int | None = _f()
    disable_oom_killer: bool | None = _f("disableOOMKiller")
    use_hierarchy: bool | None = _f()
    check_before_update: bool | None = _f()


@_model
class Cpu(Node):
    shares: int | None = _f()
    quota: int | None = _f()
    burst: int | None = _f()
    period: int | None = _f()
    realtime_runtime: int | None = _f()
    realtime_period: int | None = _f()
    cpus: str | None = _f()
    mems: str | None = _f()
    idle: int | None = _f()


@_model
class Pids(Node):
    limit: int | None = _f()


@_model
class WeightDevice(Node):
    major: int | None = _f()
    minor: int | None = _f()
    weight: int | None = _f()
    leaf_weight: int | None = _f()


@_model
class ThrottleDevice(Node):
    major: int | None = _f()
    minor: int | None = _f()
    rate: int | None = _f()


@_model
class BlockIO(Node):
    weight: int | None = _f()
    leaf_weight: int | None = _f()
    weight_device: tuple[WeightDevice, ...] | None = _f(cls=WeightDevice, many=True)
    throttle_read_bps_device: tuple[ThrottleDevice, ...] | None = _f(cls=ThrottleDevice, many=True)
    throttle_write_bps_device: tuple[ThrottleDevice, ...] | None = _f(cls=ThrottleDevice, many=True)
    throttle_read_iops_device: tuple[ThrottleDevice, ...] | None = _f(
        "throttleReadIOPSDevice", cls=ThrottleDevice, many=True
    )
    throttle_write_iops_device: tuple[ThrottleDevice, ...] | None = _f(
        "throttleWriteIOPSDevice", cls=ThrottleDevice, many=True
    )


@_model
class HugepageLimit(Node):
    page_size: str | None = _f()
    limit: int | None = _f()


@_model
class InterfacePriority(Node):
    name: str | None = _f()
    priority: int | None = _f()


@_model
class Network(Node):
    class_id: int | None = _f("classID")
    priorities: tuple[InterfacePriority, ...] | None = _f(cls=InterfacePriority, many=True)


@_model
class Rdma(Node):
    hca_handles: int | None = _f()
    hca_objects: int | None = _f()


@_model
class Resources(Node):
    devices: tuple[DeviceCgroup, ...] | None = _f(cls=DeviceCgroup, many=True)
    memory: Memory | None = _f(cls=Memory)
    cpu: Cpu | None = _f(cls=Cpu)
    pids: Pids | None = _f(cls=Pids)
    block_io: BlockIO | None = _f("blockIO", cls=BlockIO)
    hugepage_limits: tuple[HugepageLimit, ...] | None = _f(cls=HugepageLimit, many=True)
    network: Network | None = _f(cls=Network)
    rdma: dict[str, Rdma] | None = _f(cls=Rdma, mapping=True)
    unified: dict[str, str] | None = _f(mapping=True)


@_model
class SeccompArg(Node):
    index: int | None = _f()
    value: int | None = _f()
    value_two: int | None = _f()
    op: str | None = _f()


@_model
class SeccompSyscall(Node):
    names: tuple[str, ...] | None = _f(many=True)
    action: str | None = _f()
    errno_ret: int | None = _f()
    args: tuple[SeccompArg, ...] | None = _f(cls=SeccompArg, many=True)


@_model
class Seccomp(Node):
    default_action: str | None = _f()
    default_errno_ret: int | None = _f()
    architectures: tuple[str, ...] | None = _f(many=True)
    flags: tuple[str, ...] | None = _f(many=True)
    listener_path: str | None = _f()
    listener_metadata: str | None = _f()
    syscalls: tuple[SeccompSyscall, ...] | None = _f(cls=SeccompSyscall, many=True)


@_model
class IntelRdt(Node):
    clos_id: str | None = _f("closID")
    l3_cache_schema: str | None = _f()
    mem_bw_schema: str | None = _f()
    schemata: tuple[str, ...] | None = _f(many=True)
    enable_monitoring: bool | None = _f()


@_model
class MemoryPolicy(Node):
    mode: str | None = _f()
    nodes: str | None = _f()
    flags: tuple[str, ...] | None = _f(many=True)


@_model
class Personality(Node):
    domain: str | None = _f()
    flags: tuple[str, ...] | None = _f(many=True)


@_model
class Linux(Node):
    namespaces: tuple[Namespace, ...] | None = _f(cls=Namespace, many=True)
    uid_mappings: tuple[IDMapping, ...] | None = _f(cls=IDMapping, many=True)
    gid_mappings: tuple[IDMapping, ...] | None = _f(cls=IDMapping, many=True)
    time_offsets: dict[str, TimeOffset] | None = _f(cls=TimeOffset, mapping=True)
    devices: tuple[Device, ...] | None = _f(cls=Device, many=True)
    net_devices: dict[str, NetDevice] | None = _f(cls=NetDevice, mapping=True)
    cgroups_path: str | None = _f()
    resources: Resources | None = _f(cls=Resources)
    rootfs_propagation: str | None = _f()
    seccomp: Seccomp | None = _f(cls=Seccomp)
    sysctl: dict[str, str] | None = _f(mapping=True)
    masked_paths: tuple[str, ...] | None = _f(many=True)
    readonly_paths: tuple[str, ...] | None = _f(many=True)
    mount_label: str | None = _f()
    personality: Personality | None = _f(cls=Personality)
    intel_rdt: IntelRdt | None = _f(cls=IntelRdt)
    memory_policy: MemoryPolicy | None = _f(cls=MemoryPolicy)

    def namespace(self, type_: str) -> Namespace | None:
        """The namespace entry of that type ("pid", "network", ...), or None."""
        for ns in self.namespaces or ():
            if ns.type == type_:
                return ns
        return None


@_model
class Spec(Node):
    oci_version: str | None = _f()
    process: Process | None = _f(cls=Process)
    root: Root | None = _f(cls=Root)
    hostname: str | None = _f()
    domainname: str | None = _f()
    mounts: tuple[Mount, ...] | None = _f(cls=Mount, many=True)
    hooks: Hooks | None = _f(cls=Hooks)
    annotations: dict[str, str] | None = _f(mapping=True)
    linux: Linux | None = _f(cls=Linux)


@attrs.frozen(slots=True)
class LoadedConfig:
    """What `load_bundle` returns: the model, the raw JSON dict, sha256 hex of config.json."""

    spec: Spec
    raw: dict
    digest: str
