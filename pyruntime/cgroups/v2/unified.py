"""linux.resources.unified: key -> file name in the container's cgroup, value written line by
line (io.max "259:0 rbps=1\n253:0 rbps=2"). Keys with "/" or ".." are refused."""

from __future__ import annotations

import os

from pyruntime.cgroups import fs
from pyruntime.errors import ConfigError, Unsupported

NAME = "unified"


def set(path: str, unified: dict, available: set[str]) -> None:
    for key, val in unified.items():
        if "/" in key or key in (".", "..") or ".." in key or not key:
            raise ConfigError(f"unified resource {key!r} must be a file name (no slashes, no ..)")
        ctrl = key.split(".", 1)[0]
        if "." not in key:
            raise ConfigError(f"unified resource {key!r} must be in the form CONTROLLER.PARAMETER")
        if not os.path.exists(os.path.join(path, key)):
            if ctrl not in available and ctrl != "cgroup":
                raise Unsupported(f"unified resource {key!r} can't be set: controller {ctrl!r} not available")
            raise Unsupported(f"unified resource {key!r} can't be set: {os.path.join(path, key)} does not exist")
        lines = str(val).split("\n") if "\n" in str(val) else [str(val)]
        for line in lines:
            if line.strip():
                try:
                    fs.write(path, key, line)
                except fs.WriteError as e:
                    raise fs.CgroupError(f"unified resource {key!r} can't be set: {e}") from None
