"""cgroups/warmup.py: the background no-op migration changes nothing and leaves one thread."""

import os
import subprocess
import sys

from conftest import PROJECT


def test_warmup_moves_nothing_and_leaves_a_single_thread():
    code = f"""
import os, sys
sys.path.insert(0, {PROJECT!r})
from pyruntime.cgroups import warmup
before = open("/proc/self/cgroup").read()
warmup.start()
warmup.start()  # once per process
warmup.finish()
warmup.finish()
print(before == open("/proc/self/cgroup").read(), len(os.listdir("/proc/self/task")))
"""
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "1"]


def test_warmup_really_migrates_into_the_same_cgroup(tmp_path):
    """strace sees our own pid written to the cgroup.procs of the cgroup we are in (the unified
    one: a child of this test, not moved, is in the test's cgroup)."""
    code = f"""
import os, sys
sys.path.insert(0, {PROJECT!r})
from pyruntime.cgroups import warmup
warmup.start()
warmup.finish()
"""
    log = tmp_path / "trace"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,write", "-o", str(log), sys.executable, "-I", "-c", code],
                   check=True)
    lines = log.read_text().splitlines()
    own = next(ln.split("::", 1)[1] for ln in open("/proc/self/cgroup").read().splitlines() if ln.startswith("0::"))
    want = [os.path.join(m, own.lstrip("/"), "cgroup.procs") for m in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")]
    opened = [ln for ln in lines if "cgroup.procs" in ln and "openat(" in ln]
    assert opened and any(f'"{os.path.normpath(w)}"' in opened[0] for w in want), (opened, want)
    fd = opened[0].rsplit("= ", 1)[1].strip()
    main_pid = lines[0].split()[0]
    assert any(f"write({fd}, \"{main_pid}\"" in ln for ln in lines), lines[-20:]
