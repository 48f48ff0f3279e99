"""pyruntime spec [--bundle B] [--rootless]: write runc's default config.json."""

import os

from pyruntime.cli._flags import Flag, parse
from pyruntime.errors import RuntimeFailure

FLAGS = [Flag("bundle,b", "str", "", help="path to the root of the bundle directory"),
         Flag("rootless", help="generate a configuration for a rootless container"),
         Flag("help,h")]


def run(ctx, argv):
    opts, _ = parse(FLAGS, argv, command="spec")
    from pyruntime.spec.default import default_spec, dumps

    bundle = opts.bundle or "."
    if opts.bundle and not os.path.isdir(bundle):
        raise RuntimeFailure(f"open {bundle}: no such file or directory")
    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise RuntimeFailure("File config.json exists. Remove it first")
    data = dumps(default_spec(opts.rootless))
    try:
        with open(path, "w") as f:
            f.write(data)
    except OSError as e:
        raise RuntimeFailure(f"open {path}: {e.strerror.lower()}") from None
    return 0
