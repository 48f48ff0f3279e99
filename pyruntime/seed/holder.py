"""Rootless `up`: a namespace holder that mounts the overlay where an unprivileged user can.

An unprivileged user can mount overlayfs only inside a user namespace it owns (Linux >= 5.11),
in a mount namespace owned by that user namespace. So `up` forks a holder H that

    unshare(CLONE_NEWUSER | CLONE_NEWNS); maps itself to root (one line, setgroups deny: no
    helper needed); makes "/" rslave; mounts the overlay on <bundle>/rootfs (userxattr)

and waits. The generated config then *joins* H's user and mount namespaces by path
(/proc/H/ns/user, /proc/H/ns/mnt) instead of creating them; stage-1 joins them (user first,
which gives it the capabilities the mount namespace needs), the init builds the rootfs in that
namespace and pivots into the overlay. Once `create` has returned nothing needs H any more: it
is killed and reaped, and the namespaces live on with the container. H dies with its parent
(PR_SET_PDEATHSIG), so a failed or killed `up` leaves no holder behind, and the mount was never
visible outside H's namespace.
"""

from __future__ import annotations

import os
import signal

from pyruntime.errors import RuntimeFailure
from pyruntime.linux import syscalls as sc


class Holder:
    def __init__(self, lay) -> None:
        self.lay = lay
        self.pid: int | None = None

    @property
    def user_ns(self) -> str:
        return f"/proc/{self.pid}/ns/user"

    @property
    def mnt_ns(self) -> str:
        return f"/proc/{self.pid}/ns/mnt"

    def start(self) -> None:
        from pyruntime.seed import bundle

        uid, gid = os.geteuid(), os.getegid()
        r, w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # H
            try:
                os.close(r)
                sc.set_pdeathsig(signal.SIGKILL)
                try:
                    sc.unshare(sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
                except OSError as e:
                    raise RuntimeFailure(f"cannot create a user namespace ({os.strerror(e.errno).lower()}): "
                                         f"unprivileged user namespaces may be disabled "
                                         f"(sysctl kernel.unprivileged_userns_clone, user.max_user_namespaces)") from None
                for name, data in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1\n"),
                                   ("gid_map", f"0 {gid} 1\n")):
                    with open(f"/proc/self/{name}", "w") as f:
                        f.write(data)
                sc.mount(None, "/", None, sc.MS_REC | sc.MS_SLAVE)
                bundle.mount_overlay(self.lay, userxattr=True)
                os.write(w, b"ok")
                os.close(w)
                signal.pause()  # until killed (by `up`, or with it)
            except BaseException as e:  # noqa: BLE001 - one line to the parent
                try:
                    os.write(w, f"{e}".encode()[:4000])
                except OSError:
                    pass
            os._exit(1)
        self.pid = pid
        os.close(w)
        try:
            data = b""
            while True:
                chunk = os.read(r, 4096)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(r)
        if data != b"ok":
            self.stop()
            raise RuntimeFailure(data.decode(errors="replace") or "overlay namespace holder died")

    def stop(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None
