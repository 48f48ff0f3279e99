"""pyruntime.regex: the validators' patterns, compiled at build time, match as re.compile's."""

import re
import subprocess
import sys

import _sre
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyruntime import regex
from pyruntime.spec import _config_validator, _process_validator, _resources_validator

from conftest import PROJECT

TABLES = {**_config_validator.REGEX_PATTERNS, **_process_validator.REGEX_PATTERNS,
          **_resources_validator.REGEX_PATTERNS}


def test_loaded_from_the_build_time_program():
    for p in TABLES.values():
        assert isinstance(p, re.Pattern)
    assert len(TABLES) >= 6


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="RLIMT_ANOFcbup0123456789, -KMGB:\n=xé", max_size=20))
def test_same_matches_as_re_compile(s):
    for p in TABLES.values():
        ref = re.compile(p.pattern, p.flags & ~re.UNICODE)
        assert bool(p.search(s)) == bool(ref.search(s)), (p.pattern, s)


def test_another_engine_gets_re_compile():
    table = {"k": regex.precompile("^a+\\Z")}
    fallback = regex.patterns(table, _sre.MAGIC + 1)
    assert fallback["k"].search("aaa") and not fallback["k"].search("aab")
    assert regex.patterns(table, _sre.MAGIC)["k"].search("aaa")


def test_the_validators_do_not_import_re():
    code = (f"import sys; sys.path.insert(0, {PROJECT!r})\n"
            "from pyruntime.spec import _config_validator, _process_validator, _resources_validator\n"
            "_config_validator.validate({'ociVersion': '1.3.0', 'process': {'cwd': '/', 'args': ['x'],"
            " 'rlimits': [{'type': 'RLIMIT_NOFILE', 'hard': 1, 'soft': 1}]}})\n"
            "print('re' in sys.modules, 'enum' in sys.modules)")
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("bad", ["RLIMIT_nofile", "RLIMIT_", "XRLIMIT_A", "RLIMIT_A\n"])
def test_rlimit_pattern_refuses(bad):
    assert not _process_validator.REGEX_PATTERNS["^RLIMIT_[A-Z]+$"].search(bad)
