"""pyruntime mountdev [--remove] HOST_DEVICE CONTAINER_PATH ID [ID...]

Hot-plug a host device node into running containers: the node appears at CONTAINER_PATH in
each container's mount namespace (created safely inside its rootfs; bind-mounted from the host
in a user-namespaced container), the container's device cgroup allows it, and its recorded
config lists it. --remove takes it away. See pyruntime.seed.hotplug. Every container is tried;
the command fails if any of them failed."""

from pyruntime.cli._flags import Flag, parse, usage
from pyruntime.errors import RuntimeFailure, UsageError
from pyruntime.log import log

FLAGS = [Flag("remove,r", help="remove the device from the containers"), Flag("help,h")]
SYNOPSIS = "[--remove] HOST_DEVICE CONTAINER_PATH ID [ID...]"


def run(ctx, argv):
    opts, rest = parse(FLAGS, argv, command="mountdev", interspersed=True)
    if opts.help:
        print(usage("mountdev", SYNOPSIS, FLAGS, "hot-plug a host device node into running containers"), end="")
        return 0
    if len(rest) < 3:
        raise UsageError(f'"mountdev" requires a minimum of 3 arguments: {SYNOPSIS}')
    from pyruntime.seed.hotplug import container_path, host_device, plug

    dev = host_device(rest[0])
    cpath = container_path(rest[1])
    failed = 0
    for cid in rest[2:]:
        try:
            plug(ctx, cid, dev, cpath, remove=opts.remove)
        except RuntimeFailure as e:
            failed += 1
            log.error(f"{cid}: {e}")
    if failed:
        raise RuntimeFailure(f"mountdev failed for {failed} of {len(rest) - 2} container(s)")
    return 0
