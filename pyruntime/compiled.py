"""Support for the attrs classes compiled to plain Python by scripts/gen-model.py.

`import attrs` costs ~30 ms on the machines we target, on every `create`, `run` and `exec`. The
data classes the runtime needs on those paths are written with attrs (pyruntime/spec/model.py,
pyruntime/linux/records.py) and compiled into `_model.py` / `_records.py`, which import this
instead. tests/test_compiled_attrs.py checks each compiled module is up to date and behaves like
its attrs source.
"""

from __future__ import annotations

set_slot = object.__setattr__
NOTHING = object()  # an attrs.Factory default not given to __init__


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen compiled class (attrs.exceptions.FrozenInstanceError)."""


class Frozen:
    """attrs' frozen classes: no assignment and no deletion after __init__."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")
