"""v1 devices controller: the minimal devices.allow / devices.deny writes from the cgroup's current
state (devices.list) to the target rules (runc's emulator Transition)."""

from __future__ import annotations

from pyruntime.cgroups import fs
from pyruntime.cgroups.devices import Emulator, Rule
from pyruntime.errors import RuntimeFailure

NAME = "devices"


def write_rule(path: str, rule: Rule) -> None:
    fs.write(path, "devices.allow" if rule.allow else "devices.deny", rule.cgroup_string())


def set_rules(path: str, rules: list[Rule]) -> Emulator:
    current = Emulator.from_devices_list(fs.read(path, "devices.list"))
    target = Emulator.from_rules(rules)
    for rule in current.transition(target):
        write_rule(path, rule)
    after = Emulator.from_devices_list(fs.read(path, "devices.list"))
    if not target.is_blacklist():
        if after.rules != target.rules or after.default_allow:
            raise RuntimeFailure(f"resulting devices cgroup {path} doesn't precisely match target")
    elif target.is_blacklist() != after.is_blacklist():
        raise RuntimeFailure(f"resulting devices cgroup {path} doesn't match target mode")
    return target


def set(path: str, r, mgr) -> None:
    pass  # the manager calls set_rules with the full rule list


def stats(path: str, st: dict) -> None:
    pass
