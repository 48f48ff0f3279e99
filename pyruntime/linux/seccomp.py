"""Seccomp: compile the OCI `linux.seccomp` profile in the parent, load it in the container init.

Division of work (the expensive part happens before fork):

* `compile_filter(seccomp)` (parent, before fork) builds the rules with libseccomp exactly as runc
  does (see below), exports the BPF program, prepends runc's -ENOSYS stub and prepares the
  `struct sock_fprog` in memory. The child inherits the ready-made `Filter` through fork.
* `load(filter)` (child) is one or two raw seccomp(2) calls and nothing else: no libseccomp, no
  allocation beyond ctypes' own, no other syscall. It returns the notify listener fd (O_CLOEXEC,
  set by the kernel) when the profile uses SCMP_ACT_NOTIFY or a monitor was requested.

Syscalls the caller may still make after `load` returns (they must be allowed by the profile, as
with runc; a profile that blocks anything *else*, e.g. getcwd or close_range, does not matter):

  1. with a notify fd only: `handover_notify_fd(sync_fd, fd)`: ONE write(2) on the sync socket of
     exactly HANDOVER_LEN bytes (never notified: runc forbids SCMP_ACT_NOTIFY on write, and the
     monitor filter exempts writes of that length). The parent then takes the fd with
     `fetch_notify_fd(pid, fd)` (pidfd_getfd) and passes it on with `send_to_listener`;
  2. write(2)/read(2)/close(2) on the sync socket, openat(2)+write(2)+close(2) of exec.fifo,
     execve(2). With a notify fd these may be notified; the agent has the fd by then, so they
     only wait for it (a notified syscall blocks until the agent answers).

Python itself may call mmap/munmap/brk when allocating; keep post-load code minimal.
Without noNewPrivileges, the kernel requires CAP_SYS_ADMIN at load time: load before dropping
capabilities (as runc does), so the capset/setresuid/... that follow must be allowed by the
profile (Docker's and Podman's profiles allow them).

runc compatibility (libcontainer/seccomp/seccomp_linux.go, patchbpf): errnoRet defaults to EPERM;
SCMP_ACT_KILL is KILL_THREAD; unknown syscall names are skipped (logged at debug level, as runc
does); rules whose action equals the default action are skipped; when several args of one rule
share an index, each arg becomes a separate rule (OR), otherwise all args form one rule (AND);
binary-tree optimisation above 32 syscalls; SCMP_ACT_NOTIFY is refused as default action and for
write; SECCOMP_FILTER_FLAG_TSYNC is accepted and ignored (the init is single-threaded); an -ENOSYS
stub makes syscalls newer than the newest one the profile names fail with ENOSYS (not the
default errno) unless the default action is permissive.

Monitoring (`pyruntime monitor`): `add_monitor` returns the profile with listenerPath set and the
monitored syscall names recorded in listenerMetadata ("pyruntime-monitor:a,b,c"). The monitor is a
*second* filter (default ALLOW, SCMP_ACT_NOTIFY for the monitored syscalls, bad-arch ALLOW)
loaded before the profile's: the kernel applies the strictest result of all filters, so exactly
the syscalls the profile lets through are notified and the profile is never weakened.

libseccomp is used through pyseccomp (filters, arch tokens, syscall names, API level). Importing
it costs ~17 ms (ctypes.util.find_library runs ldconfig), so it is imported only when a filter
is really built: a compiled profile is cached (see CACHE_DIR) under a key that needs no
libseccomp call, and a cache hit neither imports pyseccomp nor touches libseccomp. Loading the
exported BPF is the runtime's own seccomp(2) call (`load`), not libseccomp's seccomp_load.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
TYPE_CHECKING = False  # not `import typing` (~9 ms at start-up)
if TYPE_CHECKING:
    from typing import Any, Iterable

from pyruntime import log
from pyruntime.errors import ConfigError, RuntimeFailure, Unsupported
from pyruntime import jsonio

# --- constants -------------------------------------------------------------------------------

SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2

FLAG_TSYNC = 1
FLAG_LOG = 2
FLAG_SPEC_ALLOW = 4
FLAG_NEW_LISTENER = 8
FLAG_TSYNC_ESRCH = 16
FLAG_WAIT_KILLABLE_RECV = 32

FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

ACT_KILL_PROCESS = 0x80000000
ACT_KILL_THREAD = 0x00000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_NOTIFY = 0x7FC00000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000

_ACTIONS = {
    "SCMP_ACT_KILL": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ACT_KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ACT_KILL_PROCESS,
    "SCMP_ACT_TRAP": ACT_TRAP,
    "SCMP_ACT_ERRNO": ACT_ERRNO,
    "SCMP_ACT_TRACE": ACT_TRACE,
    "SCMP_ACT_ALLOW": ACT_ALLOW,
    "SCMP_ACT_LOG": ACT_LOG,
    "SCMP_ACT_NOTIFY": ACT_NOTIFY,
}
_WITH_ERRNO = (ACT_ERRNO, ACT_TRACE)
_PERMISSIVE = (ACT_ALLOW, ACT_LOG, ACT_TRACE)  # runc's isAllowAction (no -ENOSYS stub)

# The spec's operator names -> pyseccomp's constants (looked up when a filter is built).
_OPS = {
    "SCMP_CMP_NE": "NE",
    "SCMP_CMP_LT": "LT",
    "SCMP_CMP_LE": "LE",
    "SCMP_CMP_EQ": "EQ",
    "SCMP_CMP_GE": "GE",
    "SCMP_CMP_GT": "GT",
    "SCMP_CMP_MASKED_EQ": "MASKED_EQ",
}

# The spec's architecture names; pyseccomp.Arch has the token, libseccomp decides which it knows
# (see _arch_supported).
SPEC_ARCHS = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
)

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000
_NR_SCMP_ERROR = -1  # libseccomp's __NR_SCMP_ERROR: a syscall name it does not know

# The runtime hands the notify fd number to its parent with one write(2) of exactly this many
# bytes; the monitor filter never notifies writes of this length (see handover_notify_fd).
HANDOVER_LEN = 1021
MONITOR_TAG = "pyruntime-monitor:"
MONITOR_ONLY_TAG = "pyruntime-monitor-only:"  # add_monitor(None, ...): no profile of its own

# --- libseccomp, through pyseccomp ----------------------------------------------------------


class _SockFprog(ctypes.Structure):  # the kernel's struct sock_fprog, for seccomp(2)
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _pyseccomp() -> Any:
    """pyseccomp, imported on first use: a cache miss, the monitor filter, name lookups,
    `features`. Its import costs ~17 ms (ctypes.util.find_library runs ldconfig); a cache hit
    (see `_compile_profile`) needs no libseccomp at all."""
    try:
        import pyseccomp
    except ImportError:
        raise Unsupported("seccomp: pyseccomp (the libseccomp binding) is not installed") from None
    except (OSError, RuntimeError):  # "Unable to find libseccomp", or dlopen failed
        raise Unsupported("seccomp: libseccomp.so.2 is not installed") from None
    return pyseccomp


def _libseccomp_path() -> str | None:
    """The libseccomp shared object pyseccomp loaded into this process (from /proc/self/maps)."""
    _pyseccomp()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                if len(parts) == 6 and os.path.basename(parts[5]).startswith("libseccomp.so"):
                    path = parts[5].rstrip("\n")
                    return None if path.endswith(" (deleted)") else path
    except OSError:
        pass
    return None


def libseccomp_version() -> str:
    """libseccomp's version, from its file name (libseccomp.so.2.5.4): pyseccomp has no binding
    of seccomp_version()."""
    name = os.path.basename(_libseccomp_path() or "")
    return name.partition(".so.")[2] or "(unknown version)"


_ARCH_OK: dict[int, bool] = {}


def _arch_supported(token: int) -> bool:
    """Whether this libseccomp knows the architecture: seccomp_arch_add refuses an unknown
    token with EINVAL (EEXIST: the native one, EDOM: the other endianness -- both known)."""
    got = _ARCH_OK.get(token)
    if got is None:
        ps = _pyseccomp()
        try:
            ps.SyscallFilter(ps.ALLOW).add_arch(token)
            got = True
        except OSError as e:
            got = e.errno != _errno.EINVAL
        _ARCH_OK[token] = got
    return got


def _check_arch_name(spec_name: str) -> None:
    if spec_name not in SPEC_ARCHS:
        raise ConfigError(f"seccomp: unknown architecture {spec_name!r}")


def _known_arch(spec_name: str) -> int | None:
    """SCMP_ARCH_X86_64 -> libseccomp's token (pyseccomp.Arch), None when unknown."""
    tok = getattr(_pyseccomp().Arch, spec_name[len("SCMP_ARCH_"):], None)
    return tok if tok is not None and _arch_supported(tok) else None


def _arch_token(spec_name: str) -> int:
    """SCMP_ARCH_X86_64 -> libseccomp's token; ConfigError when unknown."""
    _check_arch_name(spec_name)
    tok = _known_arch(spec_name)
    if tok is None:
        raise ConfigError(f"seccomp: architecture {spec_name} is not supported by libseccomp "
                          f"{libseccomp_version()}")
    return tok


def _arch_tokens(spec_names: Iterable[str]) -> list[tuple[str, int]]:
    return [(a, _arch_token(a)) for a in spec_names]


def _audit_arch(token: int) -> int:
    """libseccomp's arch token -> the kernel's AUDIT_ARCH (they differ only for x32)."""
    return AUDIT_ARCH_X86_64 if token == (AUDIT_ARCH_X86_64 & ~0x80000000) else token


def resolve_syscall(name: str, arch: int = 0) -> int:
    """The syscall number (native arch by default); -1 when libseccomp does not know it.
    Negative pseudo numbers (< -1) mean 'not on this arch' (e.g. socketcall on x86_64)."""
    return _pyseccomp().resolve_syscall(arch, name)


def syscall_name(nr: int, audit_arch: int | None = None) -> str:
    """Name of syscall `nr` as reported in seccomp_data (arch = AUDIT_ARCH_*)."""
    ps = _pyseccomp()
    tok = ps.system_arch() if audit_arch is None else audit_arch
    if tok == AUDIT_ARCH_X86_64 and nr & X32_SYSCALL_BIT:
        tok = ps.Arch.X32
    try:
        return ps.resolve_syscall(tok, nr).decode()
    except (ValueError, ctypes.ArgumentError):
        return f"syscall_{nr}"


def _native_syscall_names() -> list[str]:
    ps = _pyseccomp()
    tok = ps.system_arch()
    names = []
    for nr in range(0, 1024):
        try:
            names.append(ps.resolve_syscall(tok, nr).decode())
        except ValueError:
            pass
    return names


def _api_level() -> int:
    try:
        return _pyseccomp().get_api()
    except NotImplementedError:  # a libseccomp without seccomp_api_get (< 2.4)
        return 0


# --- kernel probes ---------------------------------------------------------------------------

_FLAG_SUPPORT: dict[int, bool] = {}


def _kernel_flag_supported(flag: int) -> bool:
    """seccomp(SET_MODE_FILTER, flag, NULL) fails with EFAULT iff the kernel knows the flag."""
    got = _FLAG_SUPPORT.get(flag)
    if got is None:
        from pyruntime.linux.syscalls import seccomp_raw

        probe = flag | (FLAG_NEW_LISTENER if flag == FLAG_WAIT_KILLABLE_RECV else 0)
        got = _FLAG_SUPPORT[flag] = seccomp_raw(SECCOMP_SET_MODE_FILTER, probe, None) == -_errno.EFAULT
    return got


def _action_available(action: int) -> bool:
    from pyruntime.linux.syscalls import seccomp_raw

    val = ctypes.c_uint32(action)
    return seccomp_raw(SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(val)) == 0


def features() -> dict:
    """The features.md `linux.seccomp` object: names pyruntime + libseccomp recognize, and the
    flags this kernel supports."""
    try:
        _pyseccomp()
    except Unsupported:
        return {"enabled": False}
    archs = sorted(a for a in SPEC_ARCHS if _known_arch(a) is not None)
    return {
        "enabled": True,
        "actions": sorted(_ACTIONS),
        "operators": sorted(_OPS),
        "archs": archs,
        "knownFlags": sorted(FLAGS),
        "supportedFlags": sorted(n for n, v in FLAGS.items() if _kernel_flag_supported(v)),
    }


FEATURES = features


# --- the compiled filter ---------------------------------------------------------------------


class _Program:
    """One BPF program ready for seccomp(2): the buffer and the sock_fprog pointing at it."""

    __slots__ = ("insns", "flags", "_buf", "fprog", "ptr")

    def __init__(self, insns: bytes, flags: int) -> None:
        if not insns or len(insns) % 8 or len(insns) // 8 > 4096:
            raise RuntimeFailure(f"seccomp: BPF program of {len(insns) // 8} instructions cannot be loaded "
                                 "(the kernel limit is 4096)")
        self.insns = insns
        self.flags = flags
        self._buf = ctypes.create_string_buffer(insns, len(insns))
        self.fprog = _SockFprog(len(insns) // 8, ctypes.addressof(self._buf))
        self.ptr = ctypes.pointer(self.fprog)

    def __len__(self) -> int:
        return len(self.insns) // 8


class Filter:
    """A compiled profile: up to two programs (monitor, then profile) loaded in that order."""

    __slots__ = ("programs", "notify", "pfc")

    def __init__(self, programs: list[_Program], notify: bool, pfc: str) -> None:
        self.programs = programs
        self.notify = notify
        self.pfc = pfc  # libseccomp's pseudo filter code, for --debug and tests

    def __repr__(self) -> str:
        return f"Filter({[len(p) for p in self.programs]} insns, notify={self.notify})"

    def to_json(self) -> dict:
        """What stage 1 needs of it, as JSON (container.init.InitConfig.send); not the pfc."""
        return {"notify": self.notify, "programs": [[p.insns.hex(), p.flags] for p in self.programs]}

    @classmethod
    def from_json(cls, d: dict) -> "Filter":
        return cls([_Program(bytes.fromhex(insns), flags) for insns, flags in d["programs"]], d["notify"], "")


def _errno_ret(value: int | None, action: int, what: str) -> int:
    if value is None:
        return action | _errno.EPERM if action in _WITH_ERRNO else action
    if action not in _WITH_ERRNO:
        raise ConfigError(f"seccomp: {what} sets errnoRet but its action takes no errno")
    if not 0 <= value <= 0xFFFF:
        raise ConfigError(f"seccomp: {what}: errnoRet {value} is out of range")
    return action | value


def _action(name: str | None, errno_ret: int | None, what: str) -> int:
    try:
        base = _ACTIONS[name]  # type: ignore[index]
    except KeyError:
        raise ConfigError(f"seccomp: {what}: unknown action {name!r}") from None
    return _errno_ret(errno_ret, base, what)


def _call(what: str, fn: Any, *args: Any) -> None:
    """A pyseccomp call; its OSError becomes runc's one-line ConfigError."""
    try:
        fn(*args)
    except OSError as e:
        raise ConfigError(f"seccomp: {what}: {os.strerror(e.errno or 0)}") from None


def _new_filter(default: int, arch_tokens: list[tuple[str, int]], n_calls: int) -> Any:
    """A pyseccomp.SyscallFilter as runc sets it up: no_new_privs left to the runtime, the
    listed architectures, binary-tree optimisation above 32 syscalls."""
    ps = _pyseccomp()
    try:
        filt = ps.SyscallFilter(default)
    except OSError:
        raise ConfigError(f"seccomp: libseccomp refused the default action {default:#x}") from None
    _call("clearing no_new_privs", filt.set_attr, ps.Attr.CTL_NNP, 0)
    for name, tok in arch_tokens:
        try:
            filt.add_arch(tok)
        except OSError as e:
            if e.errno != _errno.EEXIST:
                raise ConfigError(f"seccomp: adding architecture {name}: {os.strerror(e.errno or 0)}") from None
    if n_calls > 32:
        try:
            filt.set_attr(ps.Attr.CTL_OPTIMIZE, 2)
        except OSError:
            pass  # not fatal (runc)
    return filt


def _add_rule(filt: Any, action: int, nr: int, conds: list[tuple[int, str, int, int]], name: str) -> None:
    ps = _pyseccomp()
    args = [ps.Arg(idx, getattr(ps, op), a, b) for idx, op, a, b in conds]
    _call(f"error adding seccomp rule for syscall {name}", filt.add_rule, action, nr, *args)


def _export(filt: Any) -> tuple[bytes, str]:
    """The BPF program (and, for --debug, libseccomp's pseudo filter code) of a filter."""
    with open(os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC), "w+b", buffering=0) as f:
        fd = f.fileno()
        _call("exporting the BPF program", filt.export_bpf, f)
        bpf = os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0)
        pfc = ""
        if log.log.debug_enabled or os.environ.get("PYRUNTIME_SECCOMP_PFC"):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            _call("exporting the filter", filt.export_pfc, f)
            pfc = os.pread(fd, os.lseek(fd, 0, os.SEEK_CUR), 0).decode(errors="replace")
    return bpf, pfc


def _field(obj: Any, name: str) -> Any:
    return getattr(obj, name, None)


def monitored_syscalls(seccomp: Any) -> tuple[str, ...]:
    """The syscalls `add_monitor` recorded in listenerMetadata, or ()."""
    meta = _field(seccomp, "listener_metadata") if seccomp is not None else None
    for tag in (MONITOR_TAG, MONITOR_ONLY_TAG):
        if meta and meta.startswith(tag):
            return tuple(n for n in meta[len(tag):].split(",") if n)
    return ()


def compile_filter(seccomp: Any, *, extra_notify: tuple[str, ...] = ()) -> Filter:
    """Build the filter for the spec `Seccomp` (or None when only monitoring). `extra_notify`
    names syscalls to report to the listener (a monitor filter) in addition to those that
    `add_monitor` recorded. Raises ConfigError (one line) for a bad profile."""
    monitor = tuple(dict.fromkeys(tuple(extra_notify) + monitored_syscalls(seccomp)))
    programs: list[_Program] = []
    pfc: list[str] = []
    notify = False
    # names only here: the tokens come from libseccomp, needed only when a filter is built
    arch_names = tuple(_field(seccomp, "architectures") or ()) if seccomp is not None else ()
    for a in arch_names:
        _check_arch_name(a)

    profile, profile_pfc = None, ""
    monitor_only = (_field(seccomp, "listener_metadata") or "").startswith(MONITOR_ONLY_TAG)
    if seccomp is not None and not monitor_only:
        profile, notify, profile_pfc = _compile_profile(seccomp, arch_names)
    if monitor:
        if notify:
            raise ConfigError("seccomp: cannot monitor a container whose profile already uses SCMP_ACT_NOTIFY")
        profile_addr = ctypes.addressof(profile.fprog) if profile is not None else None
        mon = _compile_monitor(monitor, _arch_tokens(arch_names), profile_addr)
        programs.append(mon[0])
        pfc.append(mon[1])
        notify = True
    if profile is not None:
        programs.append(profile)
        pfc.append(profile_pfc)
    return Filter(programs, notify, "\n".join(pfc))


def _compile_profile(seccomp: Any, arch_names: tuple[str, ...]) -> tuple[_Program, bool, str]:
    default = _action(_field(seccomp, "default_action"), _field(seccomp, "default_errno_ret"), "defaultAction")
    if default == ACT_NOTIFY:
        raise ConfigError("seccomp: SCMP_ACT_NOTIFY cannot be used as default action")
    syscalls = _field(seccomp, "syscalls") or ()

    flags = 0
    wait_killable = False
    for name in _field(seccomp, "flags") or ():
        if name not in FLAGS:
            raise ConfigError(f"seccomp: flag {name} is not known to pyruntime")
        value = FLAGS[name]
        if value == FLAG_TSYNC:
            continue  # single-threaded init: nothing to synchronise (runc ignores it too)
        if not _kernel_flag_supported(value):
            raise Unsupported(f"seccomp: flag {name} is not supported by this kernel")
        if value == FLAG_WAIT_KILLABLE_RECV:
            wait_killable = True
        else:
            flags |= value

    # Validate everything and plan the rules (pure Python; libseccomp only on a cache miss).
    notify = False
    all_names: list[str] = []
    plan: list[tuple[int, str, list[list[tuple[int, str, int, int]]]]] = []
    for i, call in enumerate(syscalls):
        names = _field(call, "names") or ()
        what = f"syscalls[{i}]"
        act = _action(_field(call, "action"), _field(call, "errno_ret"), what)
        conds = []
        counts = [0] * 6
        for j, arg in enumerate(_field(call, "args") or ()):
            idx = _field(arg, "index")
            if idx is None or not 0 <= idx < 6:
                raise ConfigError(f"seccomp: {what}.args[{j}]: index {idx} is out of range (0-5)")
            op = _field(arg, "op")
            if op not in _OPS:
                raise ConfigError(f"seccomp: {what}.args[{j}]: unknown operator {op!r}")
            counts[idx] += 1
            conds.append((idx, _OPS[op], (_field(arg, "value") or 0) & (2**64 - 1),
                          (_field(arg, "value_two") or 0) & (2**64 - 1)))
        if not conds:
            rules = [[]]
        elif max(counts) > 1:
            rules = [[c] for c in conds]  # args sharing an index: one rule per arg (runc)
        else:
            rules = [conds]  # all args in one rule (AND)
        for name in names:
            all_names.append(name)
            if not name:
                raise ConfigError(f"seccomp: {what}: empty string is not a valid syscall")
            if act == ACT_NOTIFY:
                if name == "write":
                    raise ConfigError("seccomp: SCMP_ACT_NOTIFY cannot be used for the write syscall")
                notify = True
            if act != default:  # a rule with the default action is redundant (runc skips it)
                plan.append((act, name, rules))
    if notify:
        flags |= FLAG_NEW_LISTENER
        if wait_killable:
            flags |= FLAG_WAIT_KILLABLE_RECV

    # The cache key covers the profile as given (names, not numbers), the identity of the
    # libseccomp file and the kernel: a hit costs a few stat/open calls and no libseccomp.
    lib_id = _lib_identity()
    key = _cache_key(lib_id, default, arch_names, plan) if lib_id else None
    bpf = _cache_get(key) if key else None
    pfc = ""
    if bpf is None or log.log.debug_enabled:
        if notify and _api_level() < 6:
            raise Unsupported("seccomp notify unsupported: libseccomp API level below 6")
        arch_tokens = _arch_tokens(arch_names)
        bpf, pfc = _build_profile(default, arch_tokens, plan, len(all_names))
        if default not in _PERMISSIVE and default != ACT_ERRNO | _errno.ENOSYS:
            bpf = _enosys_stub(arch_tokens, all_names) + bpf
        lib_id = _record_lib()
        if lib_id:
            _cache_put(_cache_key(lib_id, default, arch_names, plan), bpf)
    return _Program(bpf, flags), notify, pfc


def _build_profile(default: int, arch_tokens: list[tuple[str, int]], plan: list, n_calls: int) -> tuple[bytes, str]:
    filt = _new_filter(default, arch_tokens, n_calls)
    for act, name, rules in plan:
        nr = resolve_syscall(name)
        if nr == _NR_SCMP_ERROR:
            log.debug(f"unknown seccomp syscall {name!r} ignored")
            continue
        for conds in rules:
            _add_rule(filt, act, nr, conds, name)
    return _export(filt)


# --- compiled-program cache ------------------------------------------------------------------
# Building the BPF is most of the cost (~20 ms for Docker's/Podman's profile on three x86
# arches, with pyseccomp's import) and every container of an engine uses the same profile: the
# result is cached in a root-only directory by a hash of the planned rules (syscall and arch
# names as the profile gives them), the identity of the libseccomp file (stat of the symlink
# LIB_LINK that a miss points at the library pyseccomp loaded), the machine and kernel release.

# Outside every --root: clients count what is in the state root (containerd's cleanup check).
# /run is tmpfs, root-only 0700; a non-root caller gets no cache.
CACHE_DIR: str | None = "/run/pyruntime-seccomp-cache" if os.geteuid() == 0 else None
_CACHE_VERSION = 2
LIB_LINK = ".libseccomp"  # in CACHE_DIR: symlink to the libseccomp the entries were built with


def _cache_key(lib_id: str, default: int, arch_names: tuple[str, ...], plan: list) -> str:
    import hashlib

    u = os.uname()
    h = hashlib.sha256(repr((_CACHE_VERSION, lib_id, os.environ.get("LD_LIBRARY_PATH", ""),
                             u.machine, u.release, default, arch_names, plan)).encode())
    return h.hexdigest()


def _lib_identity() -> str | None:
    """The identity of the libseccomp file LIB_LINK points at (one stat(2) through the links),
    or None: no usable cache, nothing recorded yet, or the library is gone (upgraded)."""
    if not _cache_dir_ok():
        return None
    try:
        st = os.stat(os.path.join(CACHE_DIR, LIB_LINK))  # type: ignore[arg-type]
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def _record_lib() -> str | None:
    """After a build: point LIB_LINK at the libseccomp pyseccomp loaded -- its soname link
    (libseccomp.so.2) when that resolves to it, so that an upgrade that moves the link changes
    the identity -- and return the identity (None: nothing can be cached)."""
    if not _cache_dir_ok():
        return None
    path = _libseccomp_path()
    if path is None:
        return None
    real = os.path.realpath(path)
    name = os.path.basename(real)
    head, _, tail = name.partition(".so.")
    soname = os.path.join(os.path.dirname(real), f"{head}.so.{tail.split('.')[0]}")
    target = soname if tail and os.path.realpath(soname) == real else real
    link = os.path.join(CACHE_DIR, LIB_LINK)  # type: ignore[arg-type]
    try:
        current = os.readlink(link)
    except OSError:
        current = None
    if current != target:
        tmp = f"{link}.{os.getpid()}"
        try:
            os.symlink(target, tmp)
            os.rename(tmp, link)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return None
    return _lib_identity()


def _cache_dir_ok() -> bool:
    if not CACHE_DIR:
        return False
    try:
        st = os.lstat(CACHE_DIR)
    except FileNotFoundError:
        try:
            os.mkdir(CACHE_DIR, 0o700)  # never its parents
            st = os.lstat(CACHE_DIR)
        except OSError:
            return False
    import stat

    # a poisoned cache would bypass the profile: only a private directory of ours is trusted
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0


def _cache_get(key: str) -> bytes | None:
    if not _cache_dir_ok():
        return None
    try:
        with open(os.path.join(CACHE_DIR, key), "rb") as f:  # type: ignore[arg-type]
            data = f.read()
    except OSError:
        return None
    return data if data and len(data) % 8 == 0 else None


def _cache_put(key: str, bpf: bytes) -> None:
    if not _cache_dir_ok():
        return
    tmp = os.path.join(CACHE_DIR, f".{key}.{os.getpid()}")  # type: ignore[arg-type]
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, bpf)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(CACHE_DIR, key))  # type: ignore[arg-type]
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _compile_monitor(names: tuple[str, ...], arch_tokens: list[tuple[str, int]],
                     profile_addr: int | None) -> tuple[_Program, str]:
    filt = _new_filter(ACT_ALLOW, arch_tokens, len(names))
    _call("setting the bad-arch action", filt.set_attr, _pyseccomp().Attr.ACT_BADARCH, ACT_ALLOW)
    for name in names:
        nr = resolve_syscall(name)
        if nr == _NR_SCMP_ERROR:
            raise ConfigError(f"monitor: unknown syscall {name!r}")
        if name == "write":
            # the fd handover write (HANDOVER_LEN bytes) must not wait for the agent
            _add_rule(filt, ACT_NOTIFY, nr, [(2, "NE", HANDOVER_LEN, 0)], name)
        elif name == "seccomp" and profile_addr is not None:
            # neither must loading the profile right after this filter
            _add_rule(filt, ACT_NOTIFY, nr, [(2, "NE", profile_addr, 0)], name)
        else:
            _add_rule(filt, ACT_NOTIFY, nr, [], name)
    bpf, pfc = _export(filt)
    return _Program(bpf, FLAG_NEW_LISTENER), pfc


# --- runc's -ENOSYS stub (patchbpf) ----------------------------------------------------------

_LD_W_ABS = 0x20
_JA = 0x05
_JEQ = 0x15
_JGT = 0x25
_JSET = 0x45
_RET_K = 0x06


def _enosys_stub(arch_tokens: list[tuple[str, int]], names: list[str]) -> bytes:
    """Prepended to the filter: per listed arch, syscall numbers above the largest one the
    profile names return ENOSYS (so libc falls back from syscalls newer than the profile),
    instead of the default action. Mirrors runc's patchbpf (only the listed architectures)."""
    # audit arch -> {token: largest syscall number}
    last: dict[int, dict[int, int]] = {}
    for spec_name, tok in arch_tokens:
        largest = max((resolve_syscall(n, tok) for n in set(names)), default=-1)
        if largest <= 0:
            log.warn(f"could not find any syscalls for arch {spec_name}")
            continue
        last.setdefault(_audit_arch(tok), {})[tok] = largest
    if not last:
        return b""
    # Symbolic assembly: conditional jumps only skip 0/1 instruction; far jumps are `ja label`.
    prog: list[tuple[int, int, int, Any]] = []  # (code, jt, jf, k or label)
    labels: dict[str, int] = {}

    def emit(code: int, k: Any = 0, jt: int = 0, jf: int = 0) -> None:
        prog.append((code, jt, jf, k))

    def goto_if(code: int, k: int, label: str, negate: bool = False) -> None:
        # if (cond) goto label  ==  jcond k, 0, 1 ; ja label   (negate: jcond k, 1, 0)
        emit(code, k, 1 if negate else 0, 0 if negate else 1)
        emit(_JA, label)

    emit(_LD_W_ABS, 4)  # arch
    for audit in last:
        goto_if(_JEQ, audit, f"arch{audit}")
    emit(_JA, "filter")
    s390 = {0x16, 0x80000016}
    for audit, per_tok in last.items():
        labels[f"arch{audit}"] = len(prog)
        emit(_LD_W_ABS, 0)  # nr
        if audit in s390:
            goto_if(_JEQ, 0, "enosys")
        if audit == AUDIT_ARCH_X86_64:
            x32_tok = AUDIT_ARCH_X86_64 & ~0x80000000
            x86 = per_tok.get(AUDIT_ARCH_X86_64)
            x32 = per_tok.get(x32_tok)
            goto_if(_JSET, X32_SYSCALL_BIT, f"x32_{audit}")
            if x86 is not None:
                goto_if(_JGT, x86, "enosys")
            emit(_JA, "filter")
            labels[f"x32_{audit}"] = len(prog)
            if x32 is not None:
                goto_if(_JGT, x32, "enosys")
            emit(_JA, "filter")
        else:
            goto_if(_JGT, next(iter(per_tok.values())), "enosys")
            emit(_JA, "filter")
    labels["enosys"] = len(prog)
    emit(_RET_K, ACT_ERRNO | _errno.ENOSYS)
    labels["filter"] = len(prog)
    import struct

    out = bytearray()
    for i, (code, jt, jf, k) in enumerate(prog):
        if isinstance(k, str):
            k = labels[k] - (i + 1)
        out += struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)
    return bytes(out)


# --- loading (in the child) ------------------------------------------------------------------


def load(filter: Filter) -> int | None:
    """Load the compiled filter into the calling process (the container init, after
    no_new_privs if requested). Returns the notify listener fd (O_CLOEXEC) or None.
    Makes only seccomp(2) calls; see the module docstring for what may follow."""
    from pyruntime.linux.syscalls import seccomp_raw

    notify_fd = None
    for prog in filter.programs:
        ret = seccomp_raw(SECCOMP_SET_MODE_FILTER, prog.flags, prog.ptr)
        if ret < 0:
            hint = " (no_new_privs is unset and CAP_SYS_ADMIN is missing)" if ret == -_errno.EACCES else ""
            raise RuntimeFailure(f"error loading seccomp filter into kernel: {os.strerror(-ret)}{hint}")
        if prog.flags & FLAG_NEW_LISTENER:
            notify_fd = ret
    return notify_fd


def handover_notify_fd(sync_fd: int, notify_fd: int) -> None:
    """In the child right after `load`: tell the parent the listener fd number with exactly one
    write(2) of HANDOVER_LEN bytes, a JSON datagram {"type": "seccomp-fd", "fd": N} padded with
    spaces (pyruntime.container.sync.Channel reads it as a normal message). The parent calls
    `fetch_notify_fd(pid, N)` before the child may exec."""
    msg = jsonio.dumps({"type": "seccomp-fd", "fd": notify_fd}).encode().ljust(HANDOVER_LEN)
    n = os.write(sync_fd, msg)
    if n != HANDOVER_LEN:
        raise RuntimeFailure("short write handing over the seccomp notify fd")


def fetch_notify_fd(pid: int, fd: int) -> int:
    """In the parent: a copy (O_CLOEXEC) of the child's listener fd, by pidfd_getfd(2)."""
    from pyruntime.linux.syscalls import pidfd_getfd

    pidfd = os.pidfd_open(pid)
    try:
        return pidfd_getfd(pidfd, fd)
    except OSError as e:
        raise RuntimeFailure(f"cannot take the seccomp notify fd from the container init: {e.strerror}") from None
    finally:
        os.close(pidfd)


def send_to_listener(listener_path: str, notify_fd: int, state: dict, metadata: str | None) -> None:
    """Send the container process state (config-linux.md "The Container Process State") with the
    notify fd as SCM_RIGHTS to the seccomp agent at listenerPath: one connection, one message,
    then close. Failure raises RuntimeFailure (the runtime MUST generate an error)."""
    import socket

    msg: dict[str, Any] = {"ociVersion": state.get("ociVersion", "1.0.2"), "fds": ["seccompFd"],
                           "pid": state.get("pid", 0)}
    if metadata:
        msg["metadata"] = metadata
    msg["state"] = state
    payload = jsonio.dumps(msg).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
            s.settimeout(10)
            s.connect(listener_path)
            sent = socket.send_fds(s, [payload], [notify_fd])
            if sent < len(payload):
                s.sendall(payload[sent:])
    except OSError as e:
        raise RuntimeFailure(f"cannot send the seccomp fd to {listener_path}: {e.strerror or e}") from None


# --- monitoring ------------------------------------------------------------------------------


def monitor_rules(syscalls: Iterable[str] | str) -> tuple[str, ...]:
    """The syscall names to monitor: a list (validated against libseccomp) or "all" (every
    syscall libseccomp knows on this architecture)."""
    if syscalls == "all" or syscalls == ["all"] or syscalls == ("all",):
        return tuple(_native_syscall_names())
    names = tuple(dict.fromkeys(s.strip() for s in syscalls if s.strip()))  # type: ignore[union-attr]
    if not names:
        raise ConfigError("monitor: no syscalls given")
    for n in names:
        if resolve_syscall(n) < 0:
            raise ConfigError(f"monitor: unknown syscall {n!r}")
    return names


def add_monitor(seccomp: Any, socket_path: str, syscalls: Iterable[str] | str) -> Any:
    """The container's Seccomp (a new spec object) with listenerPath = socket_path and the
    monitored syscalls recorded for `compile_filter` (listenerMetadata). The profile's own
    rules are untouched: the monitor is a separate, permissive filter (see module docstring)."""
    from pyruntime.spec._model import Seccomp, build

    names = monitor_rules(syscalls)
    if seccomp is None:
        data: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    else:
        data = seccomp.to_json() if hasattr(seccomp, "to_json") else _ns_to_json(seccomp)
        if data.get("listenerPath") or any(c.get("action") == "SCMP_ACT_NOTIFY" for c in data.get("syscalls") or ()):
            raise ConfigError("monitor: the container's seccomp profile already has a seccomp agent (SCMP_ACT_NOTIFY)")
    data["listenerPath"] = socket_path
    data["listenerMetadata"] = (MONITOR_TAG if seccomp is not None else MONITOR_ONLY_TAG) + ",".join(names)
    return build(Seccomp, data)


def _ns_to_json(s: Any) -> dict:
    """SimpleNamespace-shaped Seccomp -> spec JSON (tests, before the model existed)."""
    def camel(n: str) -> str:
        h, *r = n.split("_")
        return h + "".join(p.title() for p in r)

    def conv(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if hasattr(v, "__dict__"):
            return {camel(k): conv(x) for k, x in vars(v).items() if x is not None}
        return v

    return conv(s)
