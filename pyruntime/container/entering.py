"""What a command that puts a process into a container does before anything else.

`create`, `run`, `exec` and `up` (cli.SEALED_COMMANDS) call `prepare` first thing:
- the CVE-2019-5736 seal (container/seal.py), which may re-execute the command;
- then, unless rootless, the start of the kernel's wait for the cgroup join
  (cgroups/warmup.py): the earlier it starts, the more of it the command's own work hides. It
  comes after the seal because a re-exec would have to wait for it.
"""

from __future__ import annotations


def prepare(command: str, argv: list[str], root: str, *, rootless: bool) -> None:
    from pyruntime.container.seal import seal

    seal(command, argv, root)
    if not rootless:
        from pyruntime.cgroups import warmup

        warmup.start()
