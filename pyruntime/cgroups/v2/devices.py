"""v2 devices: the emulator's state becomes an eBPF program attached to the cgroup
(pyruntime.cgroups.v2.ebpf, imported only here and only when rules are applied)."""

from __future__ import annotations

from pyruntime.cgroups.devices import Emulator, Rule

NAME = "devices"


def set_rules(path: str, rules: list[Rule]) -> Emulator:
    emu = Emulator.from_rules(rules)
    install(path, emu)
    return emu


def install(path: str, emu: Emulator) -> None:
    from pyruntime.cgroups.v2 import ebpf

    ebpf.install(path, emu)
