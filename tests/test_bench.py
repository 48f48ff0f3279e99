"""bench/ runs end to end and cleans up after itself (not a timing test: no time is asserted).

The benchmarks are how issue 8's targets are checked; CI runs a short `floor` benchmark so the
harness, the report and their cleanup cannot rot unnoticed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CGROUP_ROOT, PROJECT, pyruntime_cmd

RUNC = shutil.which("runc")
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bench/run.py needs root")


def _bench(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "results.json"
    workdir = tmp_path / "work"
    workdir.mkdir()
    p = subprocess.run([sys.executable, os.path.join(PROJECT, "bench", "run.py"), "--json", str(out),
                        "--workdir", str(workdir), *args],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    with open(out) as f:
        results = json.load(f)
    # Nothing left: no work directory, no cgroup under the benchmark's parent in any hierarchy.
    assert os.listdir(workdir) == [], os.listdir(workdir)
    parent = results["meta"]["cgroup_parent"].strip("/")
    left = [h for h in os.listdir(CGROUP_ROOT) if os.path.isdir(os.path.join(CGROUP_ROOT, h, parent))]
    assert left == [], f"cgroup {parent} left in {left}"
    assert results["cleanup_problems"] == []
    return p, results


def test_floor_benchmark_measures_and_cleans_up(tmp_path, base_rootfs):
    assert RUNC, "scripts/setup.sh installs runc"
    p, results = _bench(tmp_path, "--only", "floor", "--rounds", "3", "--runtimes", "pyruntime,runc",
                        "--exe", f"pyruntime={pyruntime_cmd()[0]}", "--rootfs", base_rootfs)
    b = results["benchmarks"]["floor"]
    stats = {(m["series"], rt): s for m in b["metrics"] for rt, s in m["stats"].items()}
    for key in [("floor", "pyruntime"), ("floor", "runc"), ("state", "pyruntime"), ("state", "runc")]:
        assert stats[key] is not None and stats[key]["n"] == 3, (key, b["status"])
    # pyruntime's floor is its launcher's own interpreter, running no pyruntime code
    argv = b["extra"]["argv"]["pyruntime"]
    assert "-c import posix; posix._exit(0)" in argv and "pyruntime" not in argv.split(" -c ")[1]
    floor_py = stats[("floor", "pyruntime")]["median"]
    state_runc = stats[("state", "runc")]["median"]
    assert b["extra"]["least_one_process_ratio_vs_runc"] == pytest.approx(floor_py / state_runc, rel=1e-2)
    assert "lowest pyruntime/runc any one-process command" in p.stdout
