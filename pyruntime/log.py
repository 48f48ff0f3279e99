"""runc-compatible logging: `--log FILE` and `--log-format text|json`.

runc writes `time="..." level=error msg="..."` (text) or `{"level","msg","time"}` (json) lines
to the log file; without --log the formatted line goes to stderr, with it stderr gets the bare
message. containerd reads the last "error" line of the json log; podman reads a json log as a
single object, so one error produces one line.
"""

from __future__ import annotations

import os
import time

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    def __init__(self) -> None:
        self.path: str | None = None
        self.fmt = "text"
        self.debug_enabled = False
        self._fd: int | None = None

    def configure(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path = path or None
        self.fmt = fmt
        self.debug_enabled = debug
        if self.path:
            # Opened now, so the processes forked into a container write through this fd:
            # opened there, after pivot_root, the path would name a file of the container.
            try:
                self._open()
            except OSError:
                pass  # reported by the first write that fails, as before

    def _open(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    @staticmethod
    def _now() -> str:
        t = time.time()
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)

    def format(self, level: str, msg: str) -> str:
        now = self._now()
        if self.fmt == "json":
            from pyruntime import jsonio

            return jsonio.dumps({"level": level, "msg": msg, "time": now}) + "\n"
        esc = msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'time="{now}" level={level} msg="{esc}"\n'

    def _write_file(self, line: str) -> bool:
        if not self.path:
            return False
        try:
            self._open()
            os.write(self._fd, line.encode())
            return True
        except OSError:
            return False

    def log(self, level: str, msg: str) -> None:
        if level == "debug" and not self.debug_enabled:
            return
        line = self.format(level, msg)
        if not self._write_file(line) and level != "debug":
            # No log file: runc prints the formatted line on stderr.
            _stderr(line)

    def debug(self, msg: str) -> None:
        self.log("debug", msg)

    def info(self, msg: str) -> None:
        if self.path:
            self.log("info", msg)

    def warning(self, msg: str) -> None:
        self.log("warning", msg)

    def error(self, msg: str) -> None:
        """One error: formatted into the log, and a bare line on stderr (as runc does)."""
        msg = " ".join(msg.splitlines()) or "unknown error"
        line = self.format("error", msg)
        if self._write_file(line):
            _stderr(msg + "\n")
        else:
            _stderr(line)


def _stderr(text: str) -> None:
    try:
        os.write(2, text.encode(errors="replace"))
    except OSError:
        pass


log = Logger()


def warn(msg: str) -> None:
    log.warning(msg)


def debug(msg: str) -> None:
    log.debug(msg)
