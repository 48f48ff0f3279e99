"""pyruntime features: what this runtime really supports (features.md, features-linux.md).

containerd's CRI reads this to tell kubelet which mount and user-namespace features the handler
supports, so everything listed is implemented and tested; nothing is listed aspirationally."""

from pyruntime import jsonio
import sys

from pyruntime.cli._flags import Flag, parse


def mount_options() -> list[str]:
    from pyruntime.linux import mounts

    names = set(mounts._FLAGS) | set(mounts.PROPAGATION) | set(mounts._REC_ATTRS)
    names |= {"bind", "tmpcopyup", "idmap", "ridmap"}
    return sorted(names)


def features() -> dict:
    from pyruntime import SPEC_VERSION, __version__
    from pyruntime import cgroups
    from pyruntime.linux import capabilities, seccomp
    from pyruntime.linux.namespaces import NS

    top = capabilities.last_cap()
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": mount_options(),
        "linux": {
            "namespaces": sorted(NS),
            "capabilities": list(capabilities.CAPS[: top + 1]),
            "cgroup": dict(cgroups.FEATURES),
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},
            "netDevices": {"enabled": True},
        },
        "annotations": {
            "io.github.pyruntime.version": __version__,
            "org.opencontainers.runc.checkpoint.enabled": "false",
        },
        "potentiallyUnsafeConfigAnnotations": [],
    }


def run(ctx, argv):
    parse([Flag("help,h")], argv, command="features")
    sys.stdout.write(jsonio.dumps(features(), indent=4) + "\n")
    return 0
