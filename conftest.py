"""Top-level pytest configuration: load the run-in-vm plugin (tests marked `cgroup2_vm` run in
a pure cgroup v2 VM, ../shared/vm) when the shared folder is present."""

import pathlib
import sys

_VM = pathlib.Path(__file__).resolve().parent.parent / "shared" / "vm"
if (_VM / "pytest_run_in_vm.py").exists():
    sys.path.insert(0, str(_VM))
    pytest_plugins = ["pytest_run_in_vm"]
