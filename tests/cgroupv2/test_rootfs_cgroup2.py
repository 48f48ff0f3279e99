"""The container's /sys/fs/cgroup on a pure cgroup v2 host (runs in the VM): a read-only
cgroup2 mount, with and without user and cgroup namespaces."""

import pytest

from test_rootfs import _fn_mountinfo, _mountinfo
from test_rootfs_util import default_spec, make_rootfs, run_in_container

pytestmark = pytest.mark.cgroup2_vm


@pytest.mark.parametrize("userns,cgroupns", [(False, False), (True, False), (False, True), (True, True)])
def test_cgroup2(tmp_path, userns, cgroupns):
    rootfs = make_rootfs(tmp_path)
    spec = default_spec()
    if cgroupns:
        spec["linux"]["namespaces"].append({"type": "cgroup"})
    res = run_in_container(rootfs, spec, fn=_fn_mountinfo, userns=userns, cgroupns=cgroupns)
    assert res.error is None, (res.error, res.err)
    mi = _mountinfo(res.out)
    assert mi["/sys/fs/cgroup"]["fstype"] == "cgroup2"
    assert {"ro", "nosuid", "nodev", "noexec"} <= mi["/sys/fs/cgroup"]["opts"]
