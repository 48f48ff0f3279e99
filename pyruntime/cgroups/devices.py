"""Device cgroup rules, shared by v1 (devices.allow/deny) and v2 (eBPF).

The rule list a container gets is runc's: the spec's ``linux.resources.devices`` in order, then
runc's default allowed devices (specconv.AllowedDevices: mknod of any c/b device, /dev/null,
zero, full, random, urandom, tty, ptmx, /dev/pts/*, /dev/net/tun). The list is evaluated by an
*emulator* of the v1 devices cgroup (runc's devices.Emulator) that starts in deny-all (white-list)
mode: a wildcard rule ("a", or no type) resets the state to allow-all (allow) or deny-all (deny);
a specific rule adds or removes an exception. The emulator's clean state is what gets written:
as a minimal transition of devices.allow/deny writes on v1, and as an eBPF program on v2.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Iterable

from pyruntime.errors import ConfigError

WILDCARD = -1


class Rule:
    """One device rule. type is "a", "b" or "c"; major/minor -1 means any; access a subset of
    "rwm"."""

    __slots__ = ("type", "major", "minor", "access", "allow")

    def __init__(self, type: str, major: int, minor: int, access: str, allow: bool):
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access
        self.allow = allow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def key(self) -> tuple:
        return (self.type, self.major, self.minor, self.access, self.allow)

    def __repr__(self) -> str:
        return f"Rule({'allow' if self.allow else 'deny'} {self.cgroup_string()})"

    def cgroup_string(self) -> str:
        """The devices.allow / devices.deny line: "c 1:3 rwm", "a *:* rwm"."""
        if self.type == "a":
            return "a *:* rwm" if self.access == "rwm" else f"a *:* {self.access}"
        ma = "*" if self.major == WILDCARD else str(self.major)
        mi = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {ma}:{mi} {self.access}"

    def to_dict(self) -> dict:
        return {"type": self.type, "major": self.major, "minor": self.minor, "access": self.access,
                "allow": self.allow}

    @classmethod
    def from_dict(cls, d: dict) -> "Rule":
        return cls(d["type"], d["major"], d["minor"], d["access"], d["allow"])


def _norm_access(access: str | None, what: str) -> str:
    if not access:
        return "rwm"
    if any(c not in "rwm" for c in access):
        raise ConfigError(f"{what}: invalid device access {access!r} (want a subset of rwm)")
    return "".join(c for c in "rwm" if c in access)


def make_rule(allow: bool, type: str | None = None, major: int | None = None, minor: int | None = None,
              access: str | None = None, what: str = "device rule") -> Rule:
    t = type or "a"
    if t not in ("a", "b", "c"):
        raise ConfigError(f"{what}: invalid device type {t!r} (want a, b or c)")
    ma = WILDCARD if major is None else int(major)
    mi = WILDCARD if minor is None else int(minor)
    return Rule(t, ma, mi, _norm_access(access, what), bool(allow))


def from_spec(dev) -> Rule:
    """A LinuxDeviceCgroup of the spec model (allow, type, major, minor, access)."""
    return make_rule(getattr(dev, "allow", False), getattr(dev, "type", None), getattr(dev, "major", None),
                     getattr(dev, "minor", None), getattr(dev, "access", None),
                     "linux.resources.devices")


# runc 1.1 specconv.AllowedDevices: (path or None, rule)
DEFAULT_ALLOWED: tuple[tuple[str | None, Rule], ...] = (
    (None, Rule("c", WILDCARD, WILDCARD, "m", True)),
    (None, Rule("b", WILDCARD, WILDCARD, "m", True)),
    ("/dev/null", Rule("c", 1, 3, "rwm", True)),
    ("/dev/random", Rule("c", 1, 8, "rwm", True)),
    ("/dev/full", Rule("c", 1, 7, "rwm", True)),
    ("/dev/tty", Rule("c", 5, 0, "rwm", True)),
    ("/dev/zero", Rule("c", 1, 5, "rwm", True)),
    ("/dev/urandom", Rule("c", 1, 9, "rwm", True)),
    (None, Rule("c", 136, WILDCARD, "rwm", True)),   # /dev/pts/*
    (None, Rule("c", 5, 2, "rwm", True)),            # /dev/ptmx
    (None, Rule("c", 10, 200, "rwm", True)),         # /dev/net/tun
)


def container_rules(spec_devices: Iterable | None, linux_devices: Iterable = ()) -> list[Rule]:
    """runc's rule list: the spec's resources.devices, then the default allowed devices (a
    default device whose path is also in linux.devices is left out, as runc does)."""
    rules = [from_spec(d) for d in (spec_devices or ())]
    spec_paths = {getattr(d, "path", None) for d in linux_devices}
    for path, rule in DEFAULT_ALLOWED:
        if path is not None and path in spec_paths:
            continue
        rules.append(rule)
    return rules


class Emulator:
    """runc's devices.Emulator: the state of a v1 devices cgroup."""

    def __init__(self, default_allow: bool = False, rules: dict | None = None):
        self.default_allow = default_allow
        # (type, major, minor) -> access string
        self.rules: dict[tuple[str, int, int], str] = dict(rules or {})

    def is_blacklist(self) -> bool:
        return self.default_allow

    def is_allow_all(self) -> bool:
        return self.default_allow and not self.rules

    def apply(self, rule: Rule) -> None:
        if rule.type == "a":
            # a wildcard rule resets the state
            self.default_allow = rule.allow
            self.rules = {}
            return
        if rule.allow == self.default_allow:
            self._rm(rule)
        else:
            self._add(rule)

    def _add(self, rule: Rule) -> None:
        k = (rule.type, rule.major, rule.minor)
        self.rules[k] = _union(self.rules.get(k, ""), rule.access)

    def _rm(self, rule: Rule) -> None:
        k = (rule.type, rule.major, rule.minor)
        for partial in ((rule.type, WILDCARD, rule.minor), (rule.type, rule.major, WILDCARD),
                        (rule.type, WILDCARD, WILDCARD)):
            if partial == k:
                continue
            have = self.rules.get(partial, "")
            if set(have) & set(rule.access):
                p = Rule(partial[0], partial[1], partial[2], have, not rule.allow)
                raise ConfigError(
                    f"device rule {rule.cgroup_string()} ({'allow' if rule.allow else 'deny'}) cannot "
                    f"punch a hole in the wildcard rule {p.cgroup_string()} (not supported by the "
                    "devices cgroup)")
        left = _diff(self.rules.get(k, ""), rule.access)
        if left:
            self.rules[k] = left
        else:
            self.rules.pop(k, None)

    def exceptions(self) -> list[Rule]:
        """The exceptions to the default, sorted (each with allow = not default)."""
        return [Rule(t, ma, mi, acc, not self.default_allow)
                for (t, ma, mi), acc in sorted(self.rules.items())]

    def clean_rules(self) -> list[Rule]:
        """Default rule first, then the exceptions (runc's Emulator.Rules)."""
        return [Rule("a", WILDCARD, WILDCARD, "rwm", self.default_allow)] + self.exceptions()

    def transition(self, target: "Emulator") -> list[Rule]:
        """The minimal devices.allow/deny writes to go from self to target (runc's Transition)."""
        out: list[Rule] = []
        old = self.rules
        if self.is_blacklist() or self.default_allow != target.default_allow:
            out.append(Rule("a", WILDCARD, WILDCARD, "rwm", target.default_allow))
            old = {}
        for k, acc in sorted(old.items()):
            dropped = _diff(acc, target.rules.get(k, ""))
            if dropped:
                out.append(Rule(k[0], k[1], k[2], dropped, target.default_allow))
        for k, acc in sorted(target.rules.items()):
            gained = _diff(acc, old.get(k, ""))
            if gained:
                out.append(Rule(k[0], k[1], k[2], gained, not target.default_allow))
        return out

    def allows(self, type: str, major: int, minor: int, access: str) -> bool:
        """Whether an access is allowed (the semantics of the generated eBPF program)."""
        for (t, ma, mi), acc in self.rules.items():
            if t != type or (ma != WILDCARD and ma != major) or (mi != WILDCARD and mi != minor):
                continue
            if self.default_allow:
                if set(access) & set(acc):
                    return False
            elif set(access) <= set(acc):
                return True
        return self.default_allow

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.clean_rules()]

    @classmethod
    def from_rules(cls, rules: Iterable[Rule]) -> "Emulator":
        emu = cls(default_allow=False)
        for r in rules:
            emu.apply(r)
        return emu

    @classmethod
    def from_devices_list(cls, text: str) -> "Emulator":
        """Parse a v1 devices.list (runc's loadEmulator)."""
        emu = cls(default_allow=False)
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ValueError(f"bad devices.list line {line!r}")
            t, mm, acc = parts
            ma_s, mi_s = mm.split(":")
            if t == "a":
                # "a *:* rwm" is how the kernel shows an allow-all (black-list) cgroup
                emu.default_allow = True
                emu.rules = {}
                continue
            ma = WILDCARD if ma_s == "*" else int(ma_s)
            mi = WILDCARD if mi_s == "*" else int(mi_s)
            emu._add(Rule(t, ma, mi, _norm_access(acc, "devices.list"), True))
        return emu


def _union(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a or c in b)


def _diff(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a and c not in b)
