"""`pyruntime monitor --socket PATH [--format text|json] [--syscalls a,b,c]`: the syscall monitor.

Listens on PATH for containers whose seccomp listenerPath is PATH (e.g. started with
`--monitor PATH[:syscalls]`), prints their intercepted syscalls live and lets them continue.
"""

from __future__ import annotations

import argparse
from typing import Any

from pyruntime.errors import UsageError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyruntime monitor",
                                description="syscall monitor: prints the syscalls of monitored containers "
                                            "(seccomp user notifications) and lets them continue")
    p.add_argument("--socket", required=True, help="unix socket to listen on (the containers' listenerPath)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--syscalls", default="", help="comma-separated syscalls to print (default: all notified)")
    return p


class _Raise(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"monitor: {message}")


def run(ctx_or_argv: Any, argv: list[str] | None = None) -> int:
    """Entry point; accepts run(argv) or the dispatcher's run(ctx, argv)."""
    if argv is None:
        argv = ctx_or_argv
    p = _parser()
    p.__class__ = _Raise
    opts = p.parse_args(list(argv))
    only = {s.strip() for s in opts.syscalls.split(",") if s.strip()} or None
    from pyruntime.monitor import serve

    return serve(opts.socket, opts.format, only)


if __name__ == "__main__":
    import sys

    sys.exit(run(sys.argv[1:]))
