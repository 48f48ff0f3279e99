"""hugetlb and io (throttle, weight) limits of REAL containers on a pure cgroup v2 host (the VM:
marker cgroup2_vm), checked from both sides: the files the runtime wrote under
/sys/fs/cgroup/<cgroupsPath>/ and the effect inside the container.

* hugetlb: hugepageLimits 2MB = 0 and = 4 MiB -> hugetlb.2MB.max (+ .rsvd.max); inside, with a
  cgroup namespace, the container sees its own hugetlb.2MB.max; with 4 huge pages reserved in the
  (throwaway) VM, busybox `fallocate` on a hugetlbfs mount is refused at limit 0 and charged (and
  capped) at 4 MiB.
* io: a loop device added through linux.devices (allowed by resources.devices), throttled with
  throttleReadBpsDevice / throttleWriteIOPSDevice (+ weight) -> the io.max line and io.weight;
  inside, O_DIRECT reads and writes with busybox dd take as long as the limits say.

One grouped test (Python is ~20x slower in the VM; see test_container_cgroups_v2.py):

    bash /work/shared/vm/run-in-vm.sh -- /opt/pyruntime/venv/bin/python -m pytest \
        tests/cgroupv2/test_container_cgroups_v2_extra.py -q -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

pytestmark = pytest.mark.cgroup2_vm

CG = "/sys/fs/cgroup"
MiB = 1 << 20
PODMAN_DEVICES = [{"allow": False, "access": "rwm"}]
T = 180  # per CLI call: generous, the VM is slow


# --- helpers (as in test_container_cgroups_v2.py) ---------------------------------------------

def cli(rt, *args, timeout=T):
    """The CLI with stdout/stderr in files (detached processes keep the runtime's stdio open)."""
    n = len(os.listdir(rt.tmp))
    out, err = rt.tmp / f"cli-{n}.out", rt.tmp / f"cli-{n}.err"
    with open(out, "w") as o, open(err, "w") as e:
        r = subprocess.run(rt.cmd + ["--root", rt.root, *args], stdout=o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=timeout)
    res = subprocess.CompletedProcess(r.args, r.returncode, out.read_text(), err.read_text())
    res.out_path, res.err_path = out, err
    return res


def wait_until(fn, timeout=120.0, step=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def run_script(rt, b, cid):
    """run -d the bundle (its process: a script that ends with `echo done; exec sleep 1000`);
    -> the script's stdout words, and stderr, once "done" is printed."""
    r = ok(cli(rt, "run", "--detach", "--bundle", b, cid))
    assert wait_until(lambda: "done" in r.out_path.read_text().split()), \
        (r.out_path.read_text(), r.err_path.read_text())
    return r.out_path.read_text().split(), r.err_path.read_text()


def ok(r):
    assert r.returncode == 0, (r.args[3:], r.stderr)
    return r


def bundle(rt, args, resources, *, cgroupns=False, mounts=(), devices=()):
    def ed(cfg):
        cfg["linux"]["resources"] = json.loads(json.dumps(resources))
        if cgroupns:
            cfg["linux"]["namespaces"].append({"type": "cgroup"})
        cfg["mounts"] += list(mounts)
        if devices:
            cfg["linux"]["devices"] = list(devices)
    # the shared base rootfs (copying it costs seconds here): containers write only to tmpfs
    return rt.bundle(args, edit=ed, copy_rootfs=False)


def cgdir(b) -> str:
    with open(os.path.join(b, "config.json")) as f:
        return CG + json.load(f)["linux"]["cgroupsPath"]


def rd(b, name) -> str:
    with open(os.path.join(cgdir(b), name)) as f:
        return f.read().strip()


def keyed(b, name) -> dict:
    return {k: int(v) for k, v in (line.split() for line in rd(b, name).splitlines())}


def tree_left(b) -> bool:
    return os.path.exists(cgdir(b))


NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
HP2M = "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages"


def reserve_hugepages(n: int) -> str | None:
    """Reserve n 2MB pages (only in the throwaway VM); the old value, or None if not possible."""
    if not os.environ.get("RUN_IN_VM") or not os.path.exists(HP2M):
        return None
    with open(NR_HUGEPAGES) as f:
        old = f.read().strip()
    try:
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(n))
        with open(HP2M) as f:
            if int(f.read()) >= n:
                return old
    except OSError:
        pass
    with open(NR_HUGEPAGES, "w") as f:
        f.write(old)
    return None


HUGETLBFS = {"destination": "/hp", "type": "hugetlbfs", "source": "hugetlbfs",
             "options": ["pagesize=2M"]}


# (elapsed time from /proc/uptime inside the container: the CLI's own seconds do not count)
TIMED = ('read a _ < /proc/uptime; {cmd}; echo rc=$?; read z _ < /proc/uptime; '
         'echo dt=$(echo "$z $a" | awk \'{{printf "%d", ($1 - $2) * 1000}}\')')

HUGE_INSIDE = ("cat /sys/fs/cgroup/hugetlb.2MB.max; "
               "fallocate -l 4M /hp/a; echo a=$?; fallocate -l 2M /hp/b; echo b=$?; "
               "cat /sys/fs/cgroup/hugetlb.2MB.current")


def test_v2_hugetlb_and_io_throttle(rt, no_leaks):
    # --- hugetlb -------------------------------------------------------------------------------
    old_nr = reserve_hugepages(4)
    try:
        got = {}
        for limit in (0, 4 * MiB):
            cid = rt.new_id()
            script = HUGE_INSIDE if old_nr is not None else "cat /sys/fs/cgroup/hugetlb.2MB.max"
            b = bundle(rt, ["sh", "-c", script + "; echo done; exec sleep 1000"],
                       {"devices": PODMAN_DEVICES,
                        "hugepageLimits": [{"pageSize": "2MB", "limit": limit}]},
                       cgroupns=True, mounts=[HUGETLBFS] if old_nr is not None else [])
            out, err = run_script(rt, b, cid)
            assert rd(b, "hugetlb.2MB.max") == str(limit)
            if os.path.exists(os.path.join(cgdir(b), "hugetlb.2MB.rsvd.max")):
                assert rd(b, "hugetlb.2MB.rsvd.max") == str(limit)
            assert rd(b, "hugetlb.1GB.max") == "max"          # other sizes untouched
            got[limit] = (out, err, b, cid)
            assert out[0] == str(limit), (out, err)           # its own file
        if old_nr is not None:
            # limit 0: nothing can be charged; 4 MiB: two pages are, the third is refused
            out, err, b0, _ = got[0]
            assert out[1:] == ["a=1", "b=1", "0", "done"], (out, err)
            out, err, b4, _ = got[4 * MiB]
            assert out[1:] == ["a=0", "b=1", str(4 * MiB), "done"], (out, err)
            assert rd(b4, "hugetlb.2MB.current") == str(4 * MiB)
            assert keyed(b4, "hugetlb.2MB.events")["max"] >= 1
        for _out, _err, b, cid in got.values():
            ok(cli(rt, "delete", "--force", cid))
            assert not tree_left(b)
    finally:
        if old_nr is not None:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(old_nr)

    # --- io: throttle a loop device ----------------------------------------------------------
    img = str(rt.tmp / "loop.img")
    subprocess.run(["truncate", "-s", "64M", img], check=True)
    subprocess.run(["modprobe", "loop"], capture_output=True)
    dev = subprocess.run(["losetup", "--find", "--show", img], check=True, capture_output=True,
                         text=True).stdout.strip()
    try:
        rdev = os.stat(dev).st_rdev
        ma, mi = os.major(rdev), os.minor(rdev)
        cid = rt.new_id()
        resources = {"devices": PODMAN_DEVICES + [{"allow": True, "type": "b", "major": ma,
                                                   "minor": mi, "access": "rw"}],
                     "blockIO": {"weight": 500,
                                 "throttleReadBpsDevice": [{"major": ma, "minor": mi,
                                                            "rate": 1 * MiB}],
                                 "throttleWriteIOPSDevice": [{"major": ma, "minor": mi,
                                                              "rate": 4}]}}
        # inside: 4 MiB of O_DIRECT reads at 1 MiB/s take ~3-4 s (>= 2 s asserted); 12 O_DIRECT
        # 4k writes at 4 IO/s take ~2.75 s (>= 1.5 s asserted); the device itself is a file in
        # tmpfs, read at GB/s without the limit.
        read = TIMED.format(cmd="dd if=/dev/blk of=/dev/null bs=1M count=4 iflag=direct")
        write = TIMED.format(cmd="dd if=/dev/zero of=/dev/blk bs=4k count=12 oflag=direct")
        b = bundle(rt, ["sh", "-c", f"{read}; {write}; echo done; exec sleep 1000"], resources,
                   devices=[{"path": "/dev/blk", "type": "b", "major": ma, "minor": mi,
                             "fileMode": 0o660, "uid": 0, "gid": 0}])
        out, err = run_script(rt, b, cid)
        # host side: one io.max line for the device (the unset keys stay "max")
        lines = [ln for ln in rd(b, "io.max").splitlines() if ln.split()[0] == f"{ma}:{mi}"]
        assert len(lines) == 1, rd(b, "io.max")
        kv = dict(x.split("=") for x in lines[0].split()[1:])
        assert kv == {"rbps": str(MiB), "wbps": "max", "riops": "max", "wiops": "4"}, lines
        if os.path.exists(os.path.join(cgdir(b), "io.bfq.weight")):
            assert rd(b, "io.bfq.weight").split()[-1] == "500"
        else:
            assert rd(b, "io.weight") == f"default {1 + (500 - 10) * 9999 // 990}"

        # inside: the timings of the reads and writes
        assert [w for w in out if w.startswith("rc=")] == ["rc=0", "rc=0"], (out, err)
        dts = [int(w[3:]) for w in out if w.startswith("dt=")]
        assert dts[0] >= 2000, (dts, err)
        assert dts[1] >= 1500, (dts, err)
        stat = next(ln for ln in rd(b, "io.stat").splitlines() if ln.startswith(f"{ma}:{mi} "))
        st = dict(x.split("=") for x in stat.split()[1:])
        assert int(st["rbytes"]) >= 4 * MiB and int(st["wios"]) >= 12, stat
        ok(cli(rt, "delete", "--force", cid))
        assert not tree_left(b)
    finally:
        subprocess.run(["losetup", "-d", dev], capture_output=True)
