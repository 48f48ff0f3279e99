"""The cgroup v2 device filter: a BPF_PROG_TYPE_CGROUP_DEVICE program built from raw eBPF
instructions (like runc's devicefilter and crun's ebpf_bpf.c), loaded with BPF_PROG_LOAD and
attached to the cgroup directory with BPF_F_ALLOW_MULTI, replacing the program(s) attached
before. Imported only when device rules are applied on v2.

Program (context struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }):

    r2 = ctx->access_type & 0xffff       // BPF_DEVCG_DEV_BLOCK 1 / BPF_DEVCG_DEV_CHAR 2
    r3 = ctx->access_type >> 16          // BPF_DEVCG_ACC_MKNOD 1 | READ 2 | WRITE 4
    r4 = ctx->major; r5 = ctx->minor
    for each exception of the emulator:  // white-list: allow rules; black-list: deny rules
        if type matches and major matches and minor matches and access matches: return !default
    return default

An allow exception matches when the requested access is a subset of the rule's (runc); a deny
exception when they overlap (the v1 kernel's semantics: any denied bit denies).
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from pyruntime.cgroups.devices import WILDCARD, Emulator
from pyruntime.errors import RuntimeFailure, Unsupported
from pyruntime.linux import syscalls

# bpf(2) commands
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
PROG_NAME = b"pyruntime_devs"

# instruction classes / ops
_LDX_MEM_W = 0x61                 # BPF_LDX | BPF_MEM | BPF_W
_ALU32_AND_K = 0x54               # BPF_ALU | BPF_AND | BPF_K
_ALU32_RSH_K = 0x74
_ALU32_MOV_K = 0xB4
_ALU32_MOV_X = 0xBC
_JMP_JNE_K = 0x55
_JMP_JNE_X = 0x5D
_JMP_JEQ_K = 0x15
_JMP_JSET_K = 0x45                # jump if (dst & imm)
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _access_bits(access: str) -> int:
    return (ACC_MKNOD if "m" in access else 0) | (ACC_READ if "r" in access else 0) | \
           (ACC_WRITE if "w" in access else 0)


def build_program(emu: Emulator) -> bytes:
    """The instructions (8 bytes each) for the emulator's state."""
    default = 1 if emu.default_allow else 0
    out = [
        _insn(_LDX_MEM_W, dst=2, src=1, off=0),
        _insn(_ALU32_AND_K, dst=2, imm=0xFFFF),
        _insn(_LDX_MEM_W, dst=3, src=1, off=0),
        _insn(_ALU32_RSH_K, dst=3, imm=16),
        _insn(_LDX_MEM_W, dst=4, src=1, off=4),
        _insn(_LDX_MEM_W, dst=5, src=1, off=8),
    ]
    for rule in emu.exceptions():
        block: list[tuple] = []        # (code, dst, src, imm) of the conditional jumps
        if rule.type in ("b", "c"):
            block.append((_JMP_JNE_K, 2, 0, DEV_BLOCK if rule.type == "b" else DEV_CHAR))
        acc = _access_bits(rule.access)
        if emu.default_allow:
            # deny exception: matches when any requested bit is in the rule
            block.append(("jset_none", 3, 0, acc))
        elif acc != 7:
            # allow exception: matches when (requested & rule) == requested
            block.append(("subset", 3, 0, acc))
        if rule.major != WILDCARD:
            block.append((_JMP_JNE_K, 4, 0, rule.major))
        if rule.minor != WILDCARD:
            block.append((_JMP_JNE_K, 5, 0, rule.minor))
        # expand to instructions, then fix the jump offsets to the end of the block
        insns: list[list] = []
        for code, dst, src, imm in block:
            if code == "subset":
                insns.append([_ALU32_MOV_X, 1, 3, 0, 0])
                insns.append([_ALU32_AND_K, 1, 0, 0, imm])
                insns.append([_JMP_JNE_X, 1, 3, None, 0])
            elif code == "jset_none":
                insns.append([_ALU32_MOV_X, 1, 3, 0, 0])
                insns.append([_ALU32_AND_K, 1, 0, 0, imm])
                insns.append([_JMP_JEQ_K, 1, 0, None, 0])
            else:
                insns.append([code, dst, src, None, imm])
        insns.append([_ALU32_MOV_K, 0, 0, 0, 0 if emu.default_allow else 1])
        insns.append([_EXIT, 0, 0, 0, 0])
        n = len(insns)
        for i, ins in enumerate(insns):
            if ins[3] is None:
                ins[3] = n - i - 1        # skip to the first instruction after the block
            out.append(_insn(ins[0], dst=ins[1], src=ins[2], off=ins[3], imm=ins[4]))
    out.append(_insn(_ALU32_MOV_K, dst=0, imm=default))
    out.append(_insn(_EXIT))
    return b"".join(out)


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32)]


class _AttachAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("replace_bpf_fd", ctypes.c_uint32)]


class _QueryAttr(ctypes.Structure):
    _fields_ = [("target_fd", ctypes.c_uint32), ("attach_type", ctypes.c_uint32),
                ("query_flags", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
                ("prog_ids", ctypes.c_uint64), ("prog_cnt", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


class _GetFdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


def load(prog: bytes) -> int:
    """BPF_PROG_LOAD; returns the program fd. A verifier refusal carries the verifier log."""
    buf = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"Apache")
    attr = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(prog) // 8,
                         insns=ctypes.addressof(buf), license=ctypes.addressof(lic), prog_name=PROG_NAME)
    try:
        return syscalls.bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.ENOSYS):
            raise Unsupported(f"cannot load the cgroup v2 device filter (BPF_PROG_LOAD): {os.strerror(e.errno)}"
                              ) from None
        logbuf = ctypes.create_string_buffer(1 << 16)
        attr.log_level, attr.log_size, attr.log_buf = 1, len(logbuf), ctypes.addressof(logbuf)
        try:
            os.close(syscalls.bpf(BPF_PROG_LOAD, attr))
        except OSError:
            pass
        log = " | ".join(logbuf.value.decode(errors="replace").strip().splitlines()[-4:])
        raise RuntimeFailure(f"BPF_PROG_LOAD of the device filter: {os.strerror(e.errno)}: {log}") from None


def query(cgroup_fd: int) -> list[int]:
    """Ids of the device programs attached to the cgroup itself."""
    n = 64
    while True:
        ids = (ctypes.c_uint32 * n)()
        attr = _QueryAttr(target_fd=cgroup_fd, attach_type=BPF_CGROUP_DEVICE,
                          prog_ids=ctypes.addressof(ids), prog_cnt=n)
        try:
            syscalls.bpf(BPF_PROG_QUERY, attr)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                n *= 4
                continue
            raise RuntimeFailure(f"BPF_PROG_QUERY on the cgroup: {os.strerror(e.errno)}") from None
        return list(ids[: attr.prog_cnt])


def prog_fd_by_id(prog_id: int) -> int:
    return syscalls.bpf(BPF_PROG_GET_FD_BY_ID, _GetFdAttr(prog_id=prog_id))


def attach(cgroup_fd: int, prog_fd: int, replace_fd: int | None = None) -> None:
    flags = BPF_F_ALLOW_MULTI | (BPF_F_REPLACE if replace_fd is not None else 0)
    attr = _AttachAttr(target_fd=cgroup_fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE,
                       attach_flags=flags, replace_bpf_fd=replace_fd or 0)
    syscalls.bpf(BPF_PROG_ATTACH, attr)


def detach(cgroup_fd: int, prog_fd: int) -> None:
    attr = _AttachAttr(target_fd=cgroup_fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE)
    syscalls.bpf(BPF_PROG_DETACH, attr)


def install(cgroup_path: str, emu: Emulator) -> None:
    """Load the program for emu and make it the only device program of the cgroup: attach it
    (atomically replacing a single old one with BPF_F_REPLACE), then detach any others, so the
    cgroup is never without a filter."""
    prog_fd = load(build_program(emu))
    try:
        cg = os.open(cgroup_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            old = query(cg)
            old_fds = []
            try:
                for pid in old:
                    try:
                        old_fds.append(prog_fd_by_id(pid))
                    except OSError as e:
                        if e.errno != errno.ENOENT:
                            raise
                replaced = None
                if len(old_fds) == 1:
                    try:
                        attach(cg, prog_fd, replace_fd=old_fds[0])
                        replaced = old_fds[0]
                    except OSError as e:
                        if e.errno not in (errno.EINVAL, errno.ENOENT):
                            raise
                if replaced is None:
                    attach(cg, prog_fd)
                for fd in old_fds:
                    if fd != replaced:
                        try:
                            detach(cg, fd)
                        except OSError as e:
                            if e.errno != errno.ENOENT:
                                raise
            finally:
                for fd in old_fds:
                    os.close(fd)
        except OSError as e:
            raise RuntimeFailure(f"cannot attach the device filter to {cgroup_path}: {e.strerror}") from None
        finally:
            os.close(cg)
    finally:
        os.close(prog_fd)
