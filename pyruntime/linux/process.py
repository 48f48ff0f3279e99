"""Process setup inside the container: rlimits, scheduler, I/O priority, personality, CPU
affinity, user and groups, umask, environment, and finding the executable."""

from __future__ import annotations

import os
import stat

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}


def set_rlimits(rlimits) -> None:
    if not rlimits:
        return
    import resource  # preloaded (container.init.preload) when the process has rlimits

    for r in rlimits or ():
        num = RLIMITS.get(r.type)
        if num is None:
            raise RuntimeFailure(f"unknown rlimit type {r.type}")
        try:
            resource.setrlimit(num, (r.soft, r.hard))
        except (OSError, ValueError) as e:
            msg = e.strerror if isinstance(e, OSError) else str(e)
            if isinstance(e, ValueError) or getattr(e, "errno", 0) == 1:
                msg = "operation not permitted"
            raise RuntimeFailure(f"error setting rlimit type {num} ({r.type}): {msg}") from None


def set_scheduler(s) -> None:
    if s is None:
        return
    policy = SCHED_POLICIES[s.policy]
    flags = 0
    for f in s.flags or ():
        flags |= SCHED_FLAGS[f]
    try:
        sc.sched_setattr(0, policy, flags, s.nice or 0, s.priority or 0, s.runtime or 0,
                         s.deadline or 0, s.period or 0)
    except OSError as e:
        raise RuntimeFailure(f"error setting scheduler {s.policy}: {e.strerror}") from None


def set_io_priority(p) -> None:
    if p is None:
        return
    value = (IOPRIO_CLASSES[p.class_] << 13) | (p.priority or 0)
    try:
        sc.ioprio_set(1, 0, value)  # IOPRIO_WHO_PROCESS, self
    except OSError as e:
        raise RuntimeFailure(f"error setting I/O priority: {e.strerror}") from None


def set_personality(p) -> None:
    if p is None:
        return
    try:
        sc.personality(PERSONALITY_DOMAINS[p.domain])
    except OSError as e:
        raise RuntimeFailure(f"error setting personality {p.domain}: {e.strerror}") from None


def parse_cpu_list(text: str) -> set[int]:
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise RuntimeFailure(f"invalid CPU list {text!r}") from None
        if b < a:
            raise RuntimeFailure(f"invalid CPU list {text!r}")
        cpus.update(range(a, b + 1))
    return cpus


def set_affinity(cpu_list: str | None) -> None:
    if not cpu_list:
        return
    try:
        os.sched_setaffinity(0, parse_cpu_list(cpu_list))
    except OSError as e:
        raise RuntimeFailure(f"error setting CPU affinity {cpu_list!r}: {e.strerror}") from None


def set_oom_score_adj(value: int | None, pid: int | str = "self") -> None:
    if value is None:
        return
    from pyruntime.linux.procfs import open_procfs_file

    fd = open_procfs_file(f"/proc/{pid}/oom_score_adj", os.O_WRONLY)
    try:
        os.write(fd, str(value).encode())
    except OSError as e:
        raise RuntimeFailure(f"error setting oom_score_adj {value}: {e.strerror}") from None
    finally:
        os.close(fd)


def set_user(user, *, setgroups_allowed: bool = True) -> None:
    """Groups, gid, uid (keepcaps must be on so capabilities survive the uid change)."""
    uid, gid = user.uid, user.gid
    groups = list(user.additional_gids or ())
    try:
        if setgroups_allowed:
            sc.setgroups(groups)
        elif groups:
            raise RuntimeFailure("cannot set additional gids: setgroups is denied in this user namespace")
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise RuntimeFailure(f"setting user {uid}:{gid}: {e.strerror}") from None
    os.umask(user.umask if user.umask is not None else 0o022)


def home_of(uid: int, passwd: str = "/etc/passwd") -> str:
    try:
        with open(passwd) as f:
            for line in f:
                parts = line.rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == str(uid):
                    return parts[5] or "/"
    except OSError:
        pass
    return "/"


def build_env(env, uid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or ():
        k, sep, v = item.partition("=")
        if k:
            out[k] = v
    if "HOME" not in out:
        out["HOME"] = home_of(uid)
    return out


def look_path(arg0: str, env: dict[str, str]) -> str:
    """Resolve the executable like Go's exec.LookPath in runc, with runc's error texts."""
    if "/" in arg0:
        _check_exec(arg0, arg0)
        return arg0
    path = env.get("PATH", "")
    for d in path.split(":"):
        cand = os.path.join(d or ".", arg0)
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
            return cand
    raise RuntimeFailure(f'exec: "{arg0}": executable file not found in $PATH')


def _check_exec(path: str, arg0: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise RuntimeFailure(f'exec: "{arg0}": stat {path}: no such file or directory') from None
    except OSError as e:
        raise RuntimeFailure(f'exec: "{arg0}": stat {path}: {e.strerror.lower()}') from None
    if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111:
        raise RuntimeFailure(f'exec: "{arg0}": permission denied')
