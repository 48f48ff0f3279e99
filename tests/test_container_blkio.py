"""blkio throttling of a REAL container on the hybrid (cgroup v1) host: a loop device added through
linux.devices (allowed by resources.devices), throttled with throttleReadBpsDevice /
throttleWriteIOPSDevice -> blkio.throttle.read_bps_device / write_iops_device in the blkio
hierarchy; inside, O_DIRECT reads and writes with busybox dd take as long as the limits say.
(The v2 counterpart, io.max, is in tests/cgroupv2/test_container_cgroups_v2_extra.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from pyruntime.cgroups import detect_layout

CG = "/sys/fs/cgroup"
MiB = 1 << 20

pytestmark = [
    pytest.mark.skipif(detect_layout(CG) == "unified",
                       reason="cgroup v1 layout only (v2: tests/cgroupv2/)"),
    pytest.mark.skipif(not os.path.exists(os.path.join(CG, "blkio", "blkio.throttle.read_bps_device")),
                       reason="no v1 blkio hierarchy with throttling"),
]

PODMAN_DEVICES = [{"allow": False, "access": "rwm"}]


# --- helpers (as in tests/test_container_cgroups.py) -------------------------------------------

def wait_until(fn, timeout=30.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def cli(rt, *args, timeout=60):
    """The CLI with stdout/stderr in files (detached processes keep the runtime's stdio open)."""
    n = len(os.listdir(rt.tmp))
    out, err = rt.tmp / f"cli-{n}.out", rt.tmp / f"cli-{n}.err"
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run(rt.cmd + ["--root", rt.root, *args], stdout=o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    res = subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), err.read_text())
    res.out_path, res.err_path = out, err
    return res


def ok(r):
    assert r.returncode == 0, (r.args[3:], r.stderr)
    return r


def cgdir(ctrl: str, bundle) -> str:
    with open(os.path.join(bundle, "config.json")) as f:
        return CG + "/" + ctrl + json.load(f)["linux"]["cgroupsPath"]


def rd(ctrl: str, bundle, name: str) -> str:
    with open(os.path.join(cgdir(ctrl, bundle), name)) as f:
        return f.read().strip()


def cgroup_dirs_left(bundle) -> list[str]:
    hiers = sorted(h for h in os.listdir(CG) if os.path.isdir(os.path.join(CG, h)))
    return [cgdir(h, bundle) for h in hiers if os.path.exists(cgdir(h, bundle))]


# (elapsed time from /proc/uptime inside the container: the CLI's own time does not count)
TIMED = ('read a _ < /proc/uptime; {cmd}; echo rc=$?; read z _ < /proc/uptime; '
         'echo dt=$(echo "$z $a" | awk \'{{printf "%d", ($1 - $2) * 1000}}\')')


def test_blkio_throttle_loop_device(rt, no_leaks):
    img = str(rt.tmp / "loop.img")
    subprocess.run(["truncate", "-s", "64M", img], check=True)
    r = subprocess.run(["losetup", "--find", "--show", img], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"no loop device: {r.stderr.strip()}")
    dev = r.stdout.strip()
    try:
        rdev = os.stat(dev).st_rdev
        ma, mi = os.major(rdev), os.minor(rdev)
        resources = {"devices": PODMAN_DEVICES + [{"allow": True, "type": "b", "major": ma,
                                                   "minor": mi, "access": "rw"}],
                     "blockIO": {"throttleReadBpsDevice": [{"major": ma, "minor": mi,
                                                            "rate": 1 * MiB}],
                                 "throttleWriteIOPSDevice": [{"major": ma, "minor": mi,
                                                              "rate": 4}]}}
        # 4 MiB of O_DIRECT reads at 1 MiB/s take ~3-4 s (>= 2 s asserted); 12 O_DIRECT 4k
        # writes at 4 IO/s take ~2.75 s (>= 1.5 s asserted); unthrottled, both take milliseconds
        read = TIMED.format(cmd="dd if=/dev/blk of=/dev/null bs=1M count=4 iflag=direct")
        write = TIMED.format(cmd="dd if=/dev/zero of=/dev/blk bs=4k count=12 oflag=direct")

        def ed(cfg):
            cfg["linux"]["resources"] = resources
            cfg["linux"]["devices"] = [{"path": "/dev/blk", "type": "b", "major": ma, "minor": mi,
                                        "fileMode": 0o660, "uid": 0, "gid": 0}]
        b = rt.bundle(["sh", "-c", f"{read}; {write}; echo done; exec sleep 1000"], edit=ed,
                      copy_rootfs=False)
        cid = rt.new_id()
        run = ok(cli(rt, "run", "--detach", "--bundle", b, cid))
        assert wait_until(lambda: "done" in run.out_path.read_text().split()), \
            (run.out_path.read_text(), run.err_path.read_text())
        out, err = run.out_path.read_text().split(), run.err_path.read_text()

        # host side: one line per throttled device in the blkio hierarchy, nothing else set
        assert rd("blkio", b, "blkio.throttle.read_bps_device") == f"{ma}:{mi} {MiB}"
        assert rd("blkio", b, "blkio.throttle.write_iops_device") == f"{ma}:{mi} 4"
        assert rd("blkio", b, "blkio.throttle.write_bps_device") == ""
        assert rd("blkio", b, "blkio.throttle.read_iops_device") == ""
        assert f"b {ma}:{mi} rw" in rd("devices", b, "devices.list").splitlines()

        # inside: the limits slow the reads and writes down
        assert [w for w in out if w.startswith("rc=")] == ["rc=0", "rc=0"], (out, err)
        dts = [int(w[3:]) for w in out if w.startswith("dt=")]
        assert dts[0] >= 2000 and dts[1] >= 1500, (dts, err)
        served = {tuple(ln.split()[:2]): int(ln.split()[2])
                  for ln in rd("blkio", b, "blkio.throttle.io_service_bytes").splitlines()
                  if ln.startswith(f"{ma}:{mi} ")}
        assert served[(f"{ma}:{mi}", "Read")] >= 4 * MiB, served
        assert served[(f"{ma}:{mi}", "Write")] >= 12 * 4096, served

        ok(cli(rt, "delete", "--force", cid))
        assert cgroup_dirs_left(b) == []
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
