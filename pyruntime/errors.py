"""Error types. Every user-facing failure is a RuntimeFailure carrying one line of text.

The CLI turns a RuntimeFailure into a runc-style log line and a non-zero exit; anything else
escaping is a bug and is still reported as one line (never a traceback unless --debug).
"""


class RuntimeFailure(Exception):
    """A failure to report to the user as a single line."""

    exit_code = 1

    def __init__(self, msg: str):
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:
        return self.msg


class ConfigError(RuntimeFailure):
    """config.json is malformed, schema-invalid, or semantically wrong."""


class NotFound(RuntimeFailure):
    """Unknown container id."""


class WrongState(RuntimeFailure):
    """The operation is not allowed in the container's current state."""


class UsageError(RuntimeFailure):
    """Bad command line."""


class Unsupported(RuntimeFailure):
    """The host (kernel, LSM, cgroup layout) cannot do what the config asks."""
