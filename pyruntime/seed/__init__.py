"""The seed runtime's own commands: shared logic behind `up`, `inspect`, `rm` and `mountdev`.

pyruntime grew out of a small C runtime whose users started a container straight from a rootfs
directory (`up`), ran it without root, and managed it by name. This package holds what those
commands share; the commands themselves are thin modules in pyruntime.cli.

- `bundle`: the bundle `up` generates in the state directory (<root>/.bundles/<id>/: config.json,
  an empty `rootfs` mount point, the overlay's `upper` and `work` dirs, `console.log` when
  detached), the overlay mount, and its safe removal (`rm`).
- `holder`: the rootless case: a child in a new user+mount namespace that mounts the overlay
  there, so the container can join both namespaces.
- `rt`: real-time CPU budget for `up --rt-priority` on cgroup v1 with RT group scheduling.
- `info`: the data of `inspect`.
- `hotplug`: `mountdev`, a host device node hot-plugged into running containers.
"""
