"""Linux primitives: namespaces, rootfs and mounts, devices, capabilities, seccomp, console,
process setup. Raw syscalls live in one place: pyruntime.linux.syscalls."""
