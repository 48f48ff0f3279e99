"""pyruntime.jsonio gives what the stdlib json gives, byte for byte, without importing it."""

import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyruntime import jsonio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(), c, max_size=4),
                      max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values)
def test_same_text_as_json(v):
    assert jsonio.dumps(v) == json.dumps(v)
    assert jsonio.dumps(v, compact=True) == json.dumps(v, separators=(",", ":"))
    assert jsonio.dumps(v, indent=2) == json.dumps(v, indent=2)
    assert jsonio.dumps(v, indent=4) == json.dumps(v, indent=4)
    text = json.dumps(v, indent=1)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(text.encode()) == json.loads(text)


@pytest.mark.parametrize("key", [1, 2.5, True, False, None])
def test_non_string_keys_as_json(key):
    assert jsonio.dumps({key: 1}, indent=2) == json.dumps({key: 1}, indent=2)
    assert jsonio.dumps({key: 1}) == json.dumps({key: 1})


@pytest.mark.parametrize("bad", ["", "  ", "{", '{"a": 1} x', "[1,]", "nul", '{"a" 1}', "\ufeff{}"])
def test_errors_are_json_decode_errors_at_the_same_place(bad):
    with pytest.raises(json.JSONDecodeError) as ours:
        jsonio.loads(bad)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(bad)
    assert (ours.value.lineno, ours.value.colno) == (theirs.value.lineno, theirs.value.colno)


def test_constants_and_bom():
    assert jsonio.loads(b'\xef\xbb\xbf{"a": [NaN, Infinity, -Infinity]}')["a"][1] == float("inf")
    assert jsonio.dumps([float("inf")]) == "[Infinity]"


def test_does_not_import_json_or_re():
    code = ("import sys; from pyruntime import jsonio; jsonio.dumps(jsonio.loads('{\"a\": [1]}'), indent=2);"
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {ROOT!r}); {code}"],
                         capture_output=True, text=True, check=True, cwd="/").stdout
    assert out.strip() == "[]"


def test_decode_error_without_json_loaded_first():
    """The C scanner needs json.decoder loaded to raise its error (a fresh process has not)."""
    code = ("import sys; from pyruntime import jsonio\n"
            "try:\n    jsonio.loads('{\"a\": [1, }')\nexcept ValueError as e:\n"
            "    print(type(e).__name__, e.lineno, e.colno)")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {ROOT!r})\n{code}"],
                         capture_output=True, text=True, check=True, cwd="/").stdout
    assert out.split() == ["JSONDecodeError", "1", "11"]
