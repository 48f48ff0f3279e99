"""Loads the run-in-vm pytest plugin (../shared/vm/pytest_run_in_vm.py) for the cgroup v2 tests
when the top-level conftest has not: `pytest_plugins` is not allowed in a non-root conftest, so
the plugin is registered from pytest_configure (its option defaults and hooks still apply; the
mode then comes from RUN_IN_VM_PYTEST, default auto)."""

import pathlib
import sys

_VM = pathlib.Path(__file__).resolve().parents[3] / "shared" / "vm"
if not _VM.is_dir():
    _VM = pathlib.Path("/work/shared/vm")
if str(_VM) not in sys.path:
    sys.path.insert(0, str(_VM))


def pytest_configure(config):
    if config.pluginmanager.has_plugin("pytest_run_in_vm"):
        return
    import pytest_run_in_vm

    if not config.pluginmanager.is_registered(pytest_run_in_vm):
        config.pluginmanager.register(pytest_run_in_vm, "pytest_run_in_vm")
