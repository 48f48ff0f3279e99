"""The attrs classes compiled by scripts/gen-model.py behave like their attrs sources.

The runtime imports pyruntime/spec/_model.py and pyruntime/linux/_records.py (plain Python),
never attrs; pyruntime/spec/model.py and pyruntime/linux/records.py are the sources."""

from __future__ import annotations

import glob
import inspect
import json
import os
import subprocess
import sys

import attrs
import pytest

from pyruntime.linux import _records, records
from pyruntime.spec import _model, model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [(model, _model), (records, _records)]
CLASSES = [(src, getattr(comp, name)) for s, comp in PAIRS for name, src in vars(s).items()
           if isinstance(src, type) and attrs.has(src) and src.__module__ == s.__name__]
UPSTREAM = "/work/shared/oci-runtime-spec/schema/test/config/good"
SAMPLES = "/work/shared/clients/samples"


def test_compiled_modules_are_up_to_date():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen-model.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_every_attrs_class_is_compiled():
    assert len(CLASSES) >= 40
    assert {c.__name__ for c, _ in CLASSES} == {c.__name__ for _, c in CLASSES}


@pytest.mark.parametrize("src,comp", CLASSES, ids=lambda c: c.__name__ if isinstance(c, type) else "")
def test_same_fields_signature_and_frozenness(src, comp):
    assert comp.__slots__ == tuple(a.name for a in attrs.fields(src))
    s_params = inspect.signature(src.__init__).parameters
    c_params = inspect.signature(comp.__init__).parameters
    assert list(s_params) == list(c_params)
    for name, p in s_params.items():
        q = c_params[name]
        assert p.kind == q.kind, name
        default = attrs.fields_dict(src)[name].default if name != "self" else None
        if not isinstance(default, attrs.Factory):
            assert (p.default is inspect.Parameter.empty) == (q.default is inspect.Parameter.empty), name
            if p.default is not inspect.Parameter.empty:
                assert p.default == q.default, name
    assert getattr(src, "_oci_fields", None) == _tables(comp)
    inst_s, inst_c = _sample(src), _sample(comp)
    frozen = getattr(src.__setattr__, "__name__", "") == "_frozen_setattrs"
    for inst in (inst_s, inst_c):
        field = attrs.fields(src)[0].name
        if frozen:
            with pytest.raises(AttributeError):
                setattr(inst, field, 1)
        else:
            setattr(inst, field, getattr(inst, field))
    assert repr(inst_s) == repr(inst_c)
    assert (inst_s == _sample(src)) and (inst_c == _sample(comp)) and not (inst_c != _sample(comp))
    assert (src.__hash__ is None) == (comp.__hash__ is None)
    if src.__hash__ is not None:
        assert hash(inst_c) == hash(_sample(comp))


def _tables(comp):
    rows = getattr(comp, "_oci_fields", None)
    if rows is None:
        return None
    # nested classes compare by name (one table holds attrs classes, the other compiled ones)
    return tuple((n, k, getattr(model, s.__name__) if s else None, m, mp) for n, k, s, m, mp in rows)


def _sample(cls):
    """An instance with every field given a distinct value (the same for both forms; attrs'
    slotted classes have __slots__ too)."""
    names = [n for n in cls.__slots__ if n != "__weakref__"]
    return cls(**{n: (i, f"v{i}") for i, n in enumerate(names)})


def _configs():
    paths = sorted(glob.glob(f"{UPSTREAM}/*.json")) + sorted(glob.glob(f"{SAMPLES}/**/config*.json", recursive=True))
    return [p for p in paths if os.path.isfile(p)]


@pytest.mark.skipif(not _configs(), reason="no upstream fixtures or client samples on this machine")
def test_build_and_to_json_agree_on_real_configs():
    n = 0
    for path in _configs():
        with open(path) as f:
            data = json.load(f)
        a, b = model.build(model.Spec, data), _model.build(_model.Spec, data)
        assert a.to_json() == b.to_json(), path
        assert repr(a) == repr(b), path
        ns = (data.get("linux") or {}).get("namespaces") or [{}]
        assert repr(a.linux.namespace(ns[0].get("type")) if a.linux else None) == \
               repr(b.linux.namespace(ns[0].get("type")) if b.linux else None)
        n += 1
    assert n >= 5


def test_evolve_works_on_both_forms():
    for m in (model, _model):
        p = m.Process(args=("sh",), terminal=False)
        q = m.evolve(p, terminal=True)
        assert (q.args, q.terminal, p.terminal) == (("sh",), True, False)


def test_the_runtime_never_imports_attrs():
    mods = ["pyruntime.cli.create", "pyruntime.cli.run", "pyruntime.cli.exec", "pyruntime.container.create",
            "pyruntime.container.init", "pyruntime.container.exec", "pyruntime.linux.rootfs",
            "pyruntime.linux.seccomp", "pyruntime.cgroups.v1", "pyruntime.cgroups.v2", "pyruntime.spec.validate"]
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import {', '.join(mods)}; "
            "from pyruntime.spec import load_config_bytes; "
            f"load_config_bytes(open({os.path.join(ROOT, 'bundles', 'demo', 'config.json')!r}, 'rb').read()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('attr', 'attrs', 'typing', 'inspect', 'json', 're', 'enum')))")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
