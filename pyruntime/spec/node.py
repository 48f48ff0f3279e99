"""What every spec-model class shares, without attrs: the field table, build/to_json, evolve.

The model is written with attrs in `model.py`; the runtime imports `_model.py`, the same classes
compiled to plain Python by scripts/gen-model.py (importing attrs costs ~30 ms, a quarter of a
`create`). Both forms carry the same `_oci_fields` table, built from the attrs fields, and
everything here works on either.

`_oci_fields` rows: (attribute name, JSON key, nested model class or None, many, mapping).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Node:
    """Base of the model classes: generic eq/hash/repr/to_json, driven by `_oci_fields`."""

    __slots__ = ()
    _oci_fields: tuple[tuple[str, str, Any, bool, bool], ...] = ()

    def _values(self) -> tuple:
        return tuple(getattr(self, row[0]) for row in self._oci_fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._values()))

    def __repr__(self) -> str:
        parts = [f"{row[0]}={getattr(self, row[0])!r}" for row in self._oci_fields if getattr(self, row[0]) is not None]
        return f"{type(self).__name__}({', '.join(parts)})"

    def to_json(self) -> Any:
        """The JSON form (camelCase keys, None fields omitted)."""
        return to_json(self)


def field_names(obj: Any) -> list[str]:
    return [row[0] for row in obj._oci_fields]


def evolve(obj: Any, **changes: Any) -> Any:
    """A copy of a model object with some fields replaced (attrs.evolve, for both forms)."""
    kw = {row[0]: getattr(obj, row[0]) for row in obj._oci_fields}
    kw.update(changes)
    return type(obj)(**kw)


def build(cls: type, data: Any) -> Any:
    """Build an instance of `cls` (or None) from already-validated JSON data."""
    if data is None:
        return None
    kw = {}
    for name, key, sub, many, mapping in cls._oci_fields:  # type: ignore[attr-defined]
        v = data.get(key)
        if v is None:
            continue
        if many:
            v = tuple(build(sub, x) for x in v) if sub else tuple(v)
        elif mapping:
            v = {k: build(sub, x) for k, x in v.items()} if sub else dict(v)
        elif sub:
            v = build(sub, v)
        kw[name] = v
    return cls(**kw)


def to_json(obj: Any) -> Any:
    """The JSON form of a model object (None fields omitted)."""
    out: dict[str, Any] = {}
    for name, key, sub, many, mapping in obj._oci_fields:
        v = getattr(obj, name)
        if v is None:
            continue
        if many:
            v = [to_json(x) for x in v] if sub else list(v)
        elif mapping:
            v = {k: to_json(x) for k, x in v.items()} if sub else dict(v)
        elif sub:
            v = to_json(v)
        out[key] = v
    return out
