"""exec: run another process inside a running container.

pyruntime exec (P, child subreaper)
  └─ E1: non-dumpable, joins the container's cgroup, then every namespace of its init
     (user first); forks so a pid namespace applies, reports the pid and exits
        └─ E2: console, cwd, rlimits, user, capabilities, no_new_privs, seccomp; `ready`; execve

P writes the pid file; with --detach it exits, otherwise it waits for E2 (its child once E1
is gone), forwarding signals, and exits with E2's status.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # the C module: `signal` builds IntEnums at import

from pyruntime.container.status import PAUSED, RUNNING, CREATED
from pyruntime.container.seal import check_mappings
from pyruntime.errors import WrongState
from pyruntime.linux import syscalls as sc
from pyruntime.log import debug


def exec_in(ctx, loaded, proc, *, detach: bool, pid_file: str | None, console_socket,
            preserve_fds: int = 0, sub_cgroup: str | None = None, ignore_paused: bool = False,
            proxy=None) -> int:
    """`loaded`: the container as lifecycle.load returned it, locked (closed here)."""
    from pyruntime.container import state as st
    from pyruntime.container.lifecycle import cgroup_of, config_spec
    from pyruntime.container.sync import Channel
    from pyruntime.linux import namespaces as ns

    cdir, record, stat = loaded
    cid = cdir.id
    try:
        if stat == PAUSED and not ignore_paused:
            raise WrongState("cannot exec in a paused container (use --ignore-paused to override)")
        if stat not in (RUNNING, CREATED, PAUSED):
            raise WrongState("cannot exec in a stopped container")
        from pyruntime.container import seal

        seal.confirm(record.get("config"), exec_process=proc.to_json())
        spec = config_spec(record)
        linux = spec.linux
        init_pid = record["pid"]
        types = [n.type for n in linux.namespaces or ()]
        join = {t: f"/proc/{init_pid}/ns/{ns.NS[t][1]}" for t in types}
        join_fds = ns.open_join_fds(join)
        mgr = cgroup_of(record)
        if mgr is not None and sub_cgroup:
            mgr = mgr.sub(sub_cgroup) if hasattr(mgr, "sub") else mgr
        seccomp_filter = None
        if linux.seccomp is not None:
            from pyruntime.linux import seccomp
            seccomp_filter = seccomp.compile_filter(linux.seccomp)
        console_sock = None
        if proc.terminal:
            from pyruntime.linux import console

            console_sock = console.connect(console_socket)
        parent, child = Channel.pair(peer="the exec'd process")
        sc.set_child_subreaper()
        lock_fd = cdir._fd
        debug("exec: forking")
        pid = os.fork()
        if pid == 0:
            try:
                keyring = None if record.get("no_new_keyring") else cid
                _e1(child, parent, lock_fd, mgr, join_fds, proc, spec, console_sock,
                    seccomp_filter, preserve_fds, "user" in join, keyring)
            finally:
                os._exit(1)
        child.close()
        for _, fd in join_fds:
            os.close(fd)
        if console_sock is not None and not proxy:
            console_sock.close()
        from pyruntime.cgroups import warmup

        warmup.finish()
    finally:
        cdir.close()
    pids = [pid]
    try:
        msg, _ = parent.expect("pid")
        epid = int(msg["pid"])
        pids.insert(0, epid)
        os.waitpid(pid, 0)
        pids.remove(pid)
        parent.send_to_child("go")
        while True:
            msg, _ = parent.expect_any(("ready", "seccomp-fd"))
            if msg["type"] == "ready":
                break
            from pyruntime.container.create import _forward_seccomp_fd

            _forward_seccomp_fd(linux.seccomp, msg, record, epid)
            parent.send_to_child("seccomp-fd-ok")
    except BaseException:
        for p in pids:
            try:
                os.kill(p, SIGKILL)
                os.waitpid(p, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        raise
    finally:
        parent.close()
    if pid_file:
        st.write_pid_file(pid_file, epid)
    if detach:
        return 0
    if proxy is not None:
        proxy.receive_master()
    from pyruntime.container.foreground import wait_foreground

    return wait_foreground(epid, proxy)


def _e1(chan, other, lock_fd, mgr, join_fds, proc, spec, console_sock, seccomp_filter,
        preserve_fds, in_userns, keyring) -> None:
    linux = spec.linux
    from pyruntime.container.init import (_die, exec_process, join_cgroup_and_preload,
                                          join_container_keyring, prepare_process)

    try:
        other.close()
        if lock_fd is not None:
            os.close(lock_fd)
        sc.set_dumpable(False)  # before joining: nothing inside may ptrace or open /proc/<us>
        sc.set_pdeathsig(SIGKILL)
        if proc.exec_cpu_affinity is not None and proc.exec_cpu_affinity.initial:
            # Before the cgroup transition (spec); `final` is set just before execve.
            from pyruntime.linux.process import set_affinity

            set_affinity(proc.exec_cpu_affinity.initial)
        join_cgroup_and_preload(mgr, spec, proc=proc)  # before setns(mnt): the host's files are needed
        debug("exec: joined the cgroup")
        from pyruntime.linux import namespaces as ns

        ns.join_all(join_fds)
        if in_userns:
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        check_mappings()  # the child is born in the container's pid namespace (CVE-2019-5736)
        epid = os.fork()
        if epid:
            chan.send("pid", pid=epid)
            os._exit(0)
    except BaseException as e:  # noqa: BLE001
        _die(chan, e)
    try:
        chan.expect("go")
        sc.set_pdeathsig(0)
        os.setsid()
        if keyring is not None:
            # runc's setns init: never keep the caller's session keyring in the container
            join_container_keyring(keyring, in_userns=in_userns, init=False)
        if proc.terminal:
            from pyruntime.linux import console

            console.setup(console_sock, proc.console_size, bind=False)
            console_sock.close()
        exe, env = prepare_process(proc, linux, chan, seccomp_filter=seccomp_filter,
                                   preserve_fds=preserve_fds, in_userns=in_userns, init=False)
        debug("exec: ready")
        chan.send("ready")
        exec_process(proc, exe, env)
    except BaseException as e:  # noqa: BLE001
        _die(chan, e)
