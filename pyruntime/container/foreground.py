"""The foreground of `run` and `exec`: the runtime stays until the container's process exits,
forwarding the signals it gets, and exits with the process's status."""

from __future__ import annotations

import os


def wait_foreground(pid: int, proxy=None) -> int:
    """We are a child subreaper and the init is our child: forward signals, reap, return status."""
    import _signal  # the C module: `signal` builds IntEnums at import

    keep = {_signal.SIGKILL, _signal.SIGSTOP, _signal.SIGCHLD} | ({_signal.SIGWINCH} if proxy else set())
    fwd = [s for s in range(1, _signal.NSIG) if s not in keep]  # every signal, as runc forwards

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for s in fwd:
        try:
            _signal.signal(s, forward)
        except (OSError, ValueError, RuntimeError):  # glibc's reserved real-time signals
            pass
    if proxy is not None:
        proxy.copy_until_exit(pid)
    while True:
        try:
            wpid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0
        if wpid == pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)
