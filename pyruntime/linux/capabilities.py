"""Capabilities through python-prctl: bounding set, then (after the uid change, with keepcaps)
effective/permitted/inheritable, then ambient — runc's order."""

from __future__ import annotations

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc

# Capability numbers from linux/capability.h (CAP_LAST_CAP = 40 on 6.x kernels).
CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)
CAP_NUM = {name: i for i, name in enumerate(CAPS)}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(CAPS) - 1


def to_numbers(names, *, warn_unknown: bool = True) -> list[int]:
    """Names -> numbers. Unknown names are skipped with a warning, as runc does."""
    out, top = [], last_cap()
    for n in names or ():
        num = CAP_NUM.get(n)
        if num is None or num > top:
            if warn_unknown:
                from pyruntime.log import warn

                warn(f"unknown or unsupported capability {n!r} ignored")
            continue
        out.append(num)
    return out


def drop_bounding(bounding) -> None:
    """Drop every capability not in the bounding list (needs CAP_SETPCAP, so before setuid)."""
    keep = set(to_numbers(bounding or ()))
    import prctl

    for cap in range(last_cap() + 1):
        if cap not in keep and prctl.capbset_read(cap):
            try:
                prctl.capbset_drop(cap)
            except OSError as e:
                raise RuntimeFailure(f"drop bounding capability {CAPS[cap]}: {e.strerror}") from None


def apply_sets(caps) -> None:
    """Set effective, permitted and inheritable exactly; then raise the ambient set."""
    import prctl

    top = last_cap()
    allcaps = [c for c in range(top + 1) if c in prctl.ALL_CAPS]
    eff = set(to_numbers(caps.effective, warn_unknown=False)) if caps else set()
    per = set(to_numbers(caps.permitted, warn_unknown=False)) if caps else set()
    inh = set(to_numbers(caps.inheritable, warn_unknown=False)) if caps else set()
    args = []
    for flag, chosen in ((prctl.CAP_EFFECTIVE, eff), (prctl.CAP_PERMITTED, per),
                         (prctl.CAP_INHERITABLE, inh)):
        on = [c for c in allcaps if c in chosen]
        off = [c for c in allcaps if c not in chosen]
        if on:
            args.append((on, flag, True))
        if off:
            args.append((off, flag, False))
    try:
        prctl.set_caps(*args)
    except OSError as e:
        raise RuntimeFailure(f"setting capabilities: {e.strerror}") from None
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    for cap in to_numbers(caps.ambient if caps else (), warn_unknown=False):
        try:
            sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_RAISE, cap)
        except OSError:
            # Not in permitted+inheritable: the kernel refuses, and runc ignores it too
            # (runc's default spec lists ambient caps without inheritable ones).
            continue


def set_keepcaps(on: bool) -> None:
    sc.prctl(sc.PR_SET_KEEPCAPS, 1 if on else 0)
