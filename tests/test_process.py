"""process.* and the per-container kernel settings (issue 3), observed from inside the container
(/proc/self/status, /proc/self/stat, /proc/self/limits, id, uname, hostname), capabilities
compared with runc on the same bundle."""

from __future__ import annotations

import os

import pytest

from test_lifecycle_util import bundle, mountinfo, runc_run, status_fields

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CAP_LINES = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


def _run(rt, args, edit=None, *extra):
    b = bundle(rt, args, edit=edit)
    r = rt.run("run", *extra, "--bundle", b, rt.new_id())
    return r


def _caps(text: str) -> dict[str, str]:
    f = status_fields(text)
    return {k: f[k] for k in CAP_LINES}


def test_args_env_cwd_user_umask(rt, no_leaks):
    def edit(cfg):
        p = cfg["process"]
        p["env"] = ["PATH=/bin:/usr/bin", "FOO=bar baz", "EMPTY=", "EQ=a=b"]
        p["cwd"] = "/home/user"
        p["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 65534], "umask": 0o027}
    script = ('echo "args:$0|$1|$2"; env | sort; pwd; id; umask; '
              'grep -E "^(Uid|Gid|Groups):" /proc/self/status; touch /tmp/f; stat -c %a /tmp/f')
    r = _run(rt, ["sh", "-c", script, "a b", "c"], edit)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "args:a b|c|"
    env = lines[1:lines.index("/home/user")]
    assert "FOO=bar baz" in env and "EMPTY=" in env and "EQ=a=b" in env and "PATH=/bin:/usr/bin" in env
    assert "HOME=/home/user" in env  # from /etc/passwd when not given (runc)
    rest = lines[lines.index("/home/user") + 1:]
    assert rest[0].startswith("uid=1000(user) gid=1000(user) groups=")
    assert "10" in rest[0] and "65534(nogroup)" in rest[0]
    assert rest[1] == "0027"
    f = status_fields("\n".join(rest[2:5]))
    assert f["Uid"].split() == ["1000"] * 4 and f["Gid"].split() == ["1000"] * 4
    assert sorted(f["Groups"].split()) == ["10", "65534"]
    assert rest[5] == "640"


def test_home_env_kept_and_default_umask(rt, no_leaks):
    def edit(cfg):
        cfg["process"]["env"].append("HOME=/custom")
    r = _run(rt, ["sh", "-c", "echo $HOME; umask; id -u"], edit)
    assert r.stdout.split() == ["/custom", "0022", "0"], r.stderr


CAP_CASES = {
    "default": None,
    "user-with-ambient": lambda p: p.update(
        user={"uid": 1000, "gid": 1000},
        capabilities={"bounding": ["CAP_NET_RAW", "CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"],
                      "effective": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"],
                      "permitted": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_SYS_NICE"],
                      "inheritable": ["CAP_NET_BIND_SERVICE", "CAP_SYS_NICE"],
                      "ambient": ["CAP_NET_BIND_SERVICE"]}),
    "root-all-of-one": lambda p: p.update(
        capabilities={k: ["CAP_SYS_ADMIN", "CAP_SETPCAP", "CAP_DAC_OVERRIDE"]
                      for k in ("bounding", "effective", "permitted", "inheritable", "ambient")}),
    "none": lambda p: p.pop("capabilities"),
    "user-no-ambient": lambda p: p.update(
        user={"uid": 1000, "gid": 1000},
        capabilities={"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}),
}


@pytest.mark.parametrize("case", list(CAP_CASES))
def test_capabilities_match_runc(rt, no_leaks, case):
    def edit(cfg):
        if CAP_CASES[case]:
            CAP_CASES[case](cfg["process"])
        cfg["process"]["noNewPrivileges"] = case != "user-with-ambient"
    ours, theirs = (bundle(rt, ["cat", "/proc/self/status"], edit=edit) for _ in range(2))
    r = rt.run("run", "--bundle", ours, rt.new_id())
    assert r.returncode == 0, r.stderr
    rr = runc_run(rt, theirs)
    assert rr.returncode == 0, rr.stderr
    assert _caps(r.stdout) == _caps(rr.stdout)
    assert status_fields(r.stdout)["NoNewPrivs"] == status_fields(rr.stdout)["NoNewPrivs"]
    if case == "user-with-ambient":
        assert status_fields(r.stdout)["CapAmb"] == "0000000000000400"  # NET_BIND_SERVICE


def test_no_new_privileges(rt, no_leaks):
    for nnp, want in ((True, "1"), (False, "0")):
        def edit(cfg, nnp=nnp):
            cfg["process"]["noNewPrivileges"] = nnp
        r = _run(rt, ["grep", "NoNewPrivs", "/proc/self/status"], edit)
        assert r.stdout.split() == ["NoNewPrivs:", want], r.stderr


def _limits(text: str) -> dict[str, tuple[str, str]]:
    out = {}
    for line in text.splitlines()[1:]:
        name = line[:26].strip()
        parts = line[26:].split()
        out[name] = (parts[0], parts[1])
    return out


def test_rlimits_lowered(rt, no_leaks):
    def edit(cfg):
        cfg["process"]["rlimits"] = [
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
            {"type": "RLIMIT_NPROC", "soft": 500, "hard": 1000},
            {"type": "RLIMIT_MSGQUEUE", "soft": 4096, "hard": 8192},
        ]
    r = _run(rt, ["cat", "/proc/self/limits"], edit)
    assert r.returncode == 0, r.stderr
    lim = _limits(r.stdout)
    assert lim["Max open files"] == ("100", "200")
    assert lim["Max core file size"] == ("0", "0")
    assert lim["Max processes"] == ("500", "1000")
    assert lim["Max msgqueue size"] == ("4096", "8192")


def test_rlimit_raise_above_hard_fails_cleanly(rt, no_leaks):
    """No CAP_SYS_RESOURCE here: raising a hard limit is refused with one clear line."""
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("hard RLIMIT_NOFILE is unlimited")

    def edit(cfg):
        cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}]
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=edit), cid)
    assert r.returncode != 0
    assert "RLIMIT_NOFILE" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.run("state", cid).returncode != 0


def test_oom_score_adj_raised(rt, no_leaks):
    def edit(cfg):
        cfg["process"]["oomScoreAdj"] = 678
    r = _run(rt, ["cat", "/proc/self/oom_score_adj"], edit)
    assert r.stdout.strip() == "678", r.stderr


def _stat_fields(text: str) -> list[str]:
    # fields after "pid (comm)": index 0 is field 3 (state)
    return text.rsplit(")", 1)[1].split()


def test_scheduler_other_nice_and_io_priority(rt, no_leaks):
    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_OTHER", "nice": 7}
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    r = _run(rt, ["sh", "-c", "cat /proc/self/stat; echo; ionice"], edit)
    assert r.returncode == 0, r.stderr
    stat_line, ion = r.stdout.splitlines()[0], r.stdout.splitlines()[-1]
    f = _stat_fields(stat_line)
    assert f[19 - 3] == "7"  # nice
    assert f[41 - 3] == "0"  # policy SCHED_OTHER
    assert ion.strip() == "best-effort: prio 6", ion

    def idle(cfg):
        cfg["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    r = _run(rt, ["ionice"], idle)
    assert r.stdout.strip() == "idle", (r.stdout, r.stderr)


def _give_rt_budget(rt, us: int) -> bool:
    """RT group scheduling (cgroup v1 cpu.rt_runtime_us): the test-owned parent needs a budget
    for the container's cgroup to get one."""
    top = "/sys/fs/cgroup/cpu"
    if not os.path.exists(os.path.join(top, "cpu.rt_runtime_us")):
        return False
    d = os.path.join(top, rt.cg_parent)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "cpu.rt_runtime_us"), "w") as f:
        f.write(str(us))
    return True


def test_scheduler_sched_rr_priority(rt, no_leaks):
    """The seed's real-time mode: SCHED_RR with a priority (field 41 policy 2, field 40)."""
    budget = _give_rt_budget(rt, 20000)

    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_RR", "priority": 7}
        if budget:
            cfg["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000, "realtimePeriod": 1000000}
    r = _run(rt, ["cat", "/proc/self/stat"], edit)
    assert r.returncode == 0, r.stderr
    f = _stat_fields(r.stdout)
    assert f[41 - 3] == "2", r.stdout  # SCHED_RR
    assert f[40 - 3] == "7", r.stdout  # rt_priority


def test_scheduler_without_rt_budget_fails_cleanly(rt, no_leaks):
    if not os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        pytest.skip("no RT group scheduling")

    def edit(cfg):
        cfg["process"]["scheduler"] = {"policy": "SCHED_FIFO", "priority": 3}
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=edit), cid)
    assert r.returncode != 0
    assert "SCHED_FIFO" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.run("state", cid).returncode != 0


def test_exec_cpu_affinity_not_applied_to_init(rt, no_leaks):
    """execCPUAffinity is for exec'd processes only ("not applicable to the container's init
    process"): the init's affinity is the kernel's, as with runc 1.1 (which ignores it)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")

    def edit(cfg):
        cfg["process"]["execCPUAffinity"] = {"initial": "0", "final": "1"}
    ours, theirs = (bundle(rt, ["grep", "Cpus_allowed_list", "/proc/self/status"], edit=edit)
                    for _ in range(2))
    r = rt.run("run", "--bundle", ours, rt.new_id())
    rr = runc_run(rt, theirs)
    assert r.returncode == 0 and rr.returncode == 0, (r.stderr, rr.stderr)
    assert r.stdout == rr.stdout


def test_personality_linux32(rt, no_leaks):
    def edit(cfg):
        cfg["linux"]["personality"] = {"domain": "LINUX32"}
    r = _run(rt, ["uname", "-m"], edit)
    assert r.stdout.strip() == "i686", (r.stdout, r.stderr)
    r = _run(rt, ["uname", "-m"])
    assert r.stdout.strip() == os.uname().machine


def test_hostname_domainname(rt, no_leaks):
    def edit(cfg):
        cfg["hostname"] = "box-one"
        cfg["domainname"] = "example.test"
    r = _run(rt, ["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"], edit)
    assert r.stdout.split() == ["box-one", "example.test"], r.stderr
    assert os.uname().nodename != "box-one"

    # hostname without a uts namespace: refused (runc), the host's name untouched
    def no_uts(cfg):
        cfg["hostname"] = "must-not-apply"
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "uts"]
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["hostname"], edit=no_uts), cid)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r
    assert "uts" in r.stderr.lower() or "hostname" in r.stderr.lower(), r.stderr
    assert os.uname().nodename != "must-not-apply"


def test_sysctl_net_and_ipc(rt, no_leaks):
    def edit(cfg):
        assert {"type": "network"} in cfg["linux"]["namespaces"] and {"type": "ipc"} in cfg["linux"]["namespaces"]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "net/ipv4/ip_default_ttl": "42",
                                  "kernel.msgmax": "12345", "kernel.shmmni": "1234"}
    with open("/proc/sys/kernel/msgmax") as f:
        host_msgmax = f.read()
    r = _run(rt, ["cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_default_ttl",
                  "/proc/sys/kernel/msgmax", "/proc/sys/kernel/shmmni"], edit)
    assert r.stdout.split() == ["1", "42", "12345", "1234"], r.stderr
    with open("/proc/sys/kernel/msgmax") as f:
        assert f.read() == host_msgmax

    # a net.* sysctl without a network namespace would change the host: refused
    def host_net(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "network"]
        cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=host_net), cid)
    assert r.returncode != 0 and "net.ipv4.ip_forward" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("field,value,word", [("apparmorProfile", "docker-default", "apparmor"),
                                              ("selinuxLabel", "system_u:system_r:container_t:s0", "selinux")])
def test_lsm_requests_fail_clearly(rt, no_leaks, field, value, word):
    if word == "apparmor" and os.path.exists("/sys/kernel/security/apparmor"):
        pytest.skip("AppArmor is enabled here")
    if word == "selinux" and os.path.exists("/sys/fs/selinux/enforce"):
        pytest.skip("SELinux is enabled here")

    def edit(cfg):
        cfg["process"][field] = value
    cid = rt.new_id()
    r = rt.run("run", "--bundle", bundle(rt, ["true"], edit=edit), cid)
    assert r.returncode != 0
    assert word in r.stderr.lower() and value in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert rt.run("state", cid).returncode != 0


def test_dev_and_mount_options_match_runc(rt, no_leaks):
    """What the process sees of /dev and of the /proc, /dev, /sys mounts, compared with runc."""
    script = "ls -ln /dev | sed 1d | sort -k9; echo ===; cat /proc/self/mountinfo"
    ours, theirs = (bundle(rt, ["sh", "-c", script]) for _ in range(2))
    r = rt.run("run", "--bundle", ours, rt.new_id())
    rr = runc_run(rt, theirs)
    assert r.returncode == 0 and rr.returncode == 0, (r.stderr, rr.stderr)

    def split(out):
        dev, _, mi = out.partition("===\n")
        # drop the date columns of ls -l
        rows = [ln.split() for ln in dev.splitlines()]
        return [(x[0], x[2], x[3], " ".join(x[4:-4]), " ".join(x[-1:])) for x in rows], mountinfo(mi)

    dev_ours, mi_ours = split(r.stdout)
    dev_runc, mi_runc = split(rr.stdout)
    assert dev_ours == dev_runc
    for m in ("/proc", "/dev", "/sys", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys/fs/cgroup"):
        assert mi_ours[m]["opts"] == mi_runc[m]["opts"], m
        assert mi_ours[m]["fstype"] == mi_runc[m]["fstype"], m
        assert mi_ours[m]["super"] == mi_runc[m]["super"], m
